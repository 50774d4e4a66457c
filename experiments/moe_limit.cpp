#include "experiments/moe_limit.hpp"

#include <sstream>

#include "experiments/toml_section.hpp"

namespace moedmft {

MoeLimitSetup read_moe_limit_config(const std::string& text, const std::vector<std::string>& overrides,
                                    const std::string& origin) {
  toml::table root = parse_toml(text, origin);
  for (const auto& s : overrides) apply_override(root, s);
  MoeLimitSetup out;
  std::string regime;
  {
    toml::table knobs;
    if (auto* d = root.get("dmft")) {
      if (!d->is_table()) throw ConfigError("dmft: must be a table");
      knobs = *d->as_table();
    }
    Section d(knobs, "dmft.");
    dmft::MoeDmftConfig& c = out.dmft;
    dmft::Moe2DmftConfig& c2 = out.dmft2;
    regime = d.get<std::string>("regime", "auto");
    c.samples = d.get_int("samples", 1024, 2, 1 << 22);
    c2.samples = c.samples;
    c2.expert_samples = d.get_int("expert_samples", 1024, 2, 1 << 22);
    c.replicates = c2.replicates = d.get_int("replicates", 4, 1, 4096);
    c.seed = c2.seed = uint64_t(d.get<int64_t>("seed", 1));
    c.jitter = c2.jitter = d.get_number("jitter", 1e-9, 0.0, 1.0, "0 .. 1");
    c.antithetic = c2.antithetic = d.get<bool>("antithetic", true);
    out.keep_vanishing = d.get<bool>("keep_vanishing", false);
    d.finish();
  }
  std::ostringstream all;
  all << root;
  out.resolved_toml = all.str();
  root.erase("dmft");
  std::ostringstream run_text;
  run_text << root;
  out.run_toml = run_text.str();
  out.run = parse_run_config(out.run_toml, {}, origin);
  if (regime == "I") {
    fill_moe_limit_config(out.run, out.dmft);
  } else if (regime == "II") {
    out.regime = 2;
    fill_moe2_limit_config(out.run, out.dmft2, out.keep_vanishing);
  } else if (regime == "auto") {
    try {
      fill_moe_limit_config(out.run, out.dmft);
    } catch (const ConfigError& first) {
      try {
        fill_moe2_limit_config(out.run, out.dmft2, out.keep_vanishing);
        out.regime = 2;
      } catch (const ConfigError& second) {
        // name the error of the regime the table is written for
        const bool two = out.run.param_table.find("-II-") != std::string::npos;
        throw ConfigError(std::string(two ? second.what() : first.what()) + " [dmft.regime = \"auto\"]");
      }
    }
  } else {
    throw ConfigError("dmft.regime: unknown value '" + regime + "' (allowed: auto, I, II)");
  }
  return out;
}

namespace {

// The checks every MoE limit shares; throws ConfigError naming the field.
void check_limit_scope(const RunConfig& run, const char* regime) {
  auto need = [regime](bool ok, const std::string& field) {
    if (!ok)
      throw ConfigError(field + " (the regime-" + regime + " DMFT limit is derived for it; docs/dmft_moe" +
                        (std::string(regime) == "I" ? "" : "_regime2") + ".md)");
  };
  need(run.train.protocol == Protocol::full_batch, "train.protocol: must be \"full_batch\"");
  need(run.optim.kind == OptimizerKind::sgd, "optim.kind: must be \"sgd\"");
  need(run.optim.schedule.kind == ScheduleKind::constant, "optim.schedule: must be \"constant\"");
  need(run.model.loss == LossKind::mse, "model.loss: must be \"mse\"");
  need(run.shape.C == 1, "data.C: must be 1 (one output)");
  need(run.shape.L == 1, "model.L: must be 1");
  need(!run.model.residual, "model.residual: must be false");
  need(run.model.selection == Selection::logits, "model.selection: must be \"logits\"");
  need(run.resolve.base_weight_decay == 0.0, "optim.weight_decay: must be 0");
}

}  // namespace

void fill_moe_limit_config(const RunConfig& run, dmft::MoeDmftConfig& c) {
  check_limit_scope(run, "I");
  ParamTable table;
  resolve_run_param(run, &table);
  if (table.shared_experts)
    throw ConfigError("param.shared_experts: must be false (the regime-I DMFT limit is derived for it; docs/dmft_moe.md)");
  c.k = dmft::regime1_constants(table, run.shape, run.model.m_base, run.resolve);
  c.T = run.train.steps;
  c.phi = run.model.activation;
  c.M = run.shape.M;
  c.K = run.shape.K;
  c.routing = run.model.routing;
  c.gate = run.model.gate;
  c.renormalize = run.model.renormalize;
  c.validate();
}

void fill_moe2_limit_config(const RunConfig& run, dmft::Moe2DmftConfig& c, bool keep_vanishing) {
  check_limit_scope(run, "II");
  ParamTable table;
  resolve_run_param(run, &table);
  if (table.shared_experts)
    throw ConfigError("param.shared_experts: must be false (the regime-II DMFT limit is derived for independent experts)");
  c.T = run.train.steps;
  c.phi = run.model.activation;
  c.routing = run.model.routing;
  c.gate = run.model.gate;
  c.renormalize = run.model.renormalize;
  c.k = dmft::regime2_constants(table, run.shape, run.model.m_base, run.resolve, c.normalised(), keep_vanishing);
  c.validate();
}

MoeLimitSolution solve_moe_limit(const MoeLimitSetup& setup, const Mat<double>& x, const Vec<double>& y) {
  MoeLimitSolution out;
  out.regime = setup.regime;
  auto take = [&](const auto& r) {
    out.loss = r.loss;
    out.loss_err = r.loss_err;
    out.loss_replicates = r.loss_replicates;
  };
  if (setup.regime == 2) {
    out.regime2 = dmft::solve_moe2_dmft(setup.dmft2, x, y);
    take(out.regime2);
  } else {
    out.regime1 = dmft::solve_moe_dmft(setup.dmft, x, y);
    take(out.regime1);
  }
  return out;
}

}  // namespace moedmft
