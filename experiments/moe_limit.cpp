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
  toml::table knobs;
  if (auto* d = root.get("dmft")) {
    if (!d->is_table()) throw ConfigError("dmft: must be a table");
    knobs = *d->as_table();
  }
  const bool expert_samples_given = knobs.contains("expert_samples");
  {
    Section d(knobs, "dmft.");
    dmft::MoeDmftConfig& c = out.dmft;
    dmft::Moe2DmftConfig& c2 = out.dmft2;
    dmft::Moe3DmftConfig& c3 = out.dmft3;
    regime = d.get<std::string>("regime", "auto");
    c.samples = d.get_int("samples", 1024, 2, 1 << 22);
    c2.samples = c3.samples = c.samples;
    c2.expert_samples = c3.expert_samples = d.get_int("expert_samples", 1024, 2, 1 << 22);
    c3.neuron_samples = d.get_int("neuron_samples", 1024, 2, 1 << 20);
    c.replicates = c2.replicates = c3.replicates = d.get_int("replicates", 4, 1, 4096);
    c.seed = c2.seed = c3.seed = uint64_t(d.get<int64_t>("seed", 1));
    c.jitter = c2.jitter = c3.jitter = d.get_number("jitter", 1e-9, 0.0, 1.0, "0 .. 1");
    c.antithetic = c2.antithetic = c3.antithetic = d.get<bool>("antithetic", true);
    out.keep_vanishing = d.get<bool>("keep_vanishing", false);
    d.finish();
  }
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
  } else if (regime == "III") {
    out.regime = 3;
    fill_moe3_limit_config(out.run, out.dmft3, out.keep_vanishing);
  } else if (regime == "auto") {
    // The first regime whose limit the table has; otherwise the error of the regime it names.
    std::string errors[3];
    for (int r = 1; r <= 3; ++r) {
      try {
        if (r == 1) fill_moe_limit_config(out.run, out.dmft);
        if (r == 2) fill_moe2_limit_config(out.run, out.dmft2, out.keep_vanishing);
        if (r == 3) fill_moe3_limit_config(out.run, out.dmft3, out.keep_vanishing);
        out.regime = r;
        break;
      } catch (const ConfigError& e) {
        errors[r - 1] = e.what();
      }
    }
    if (!errors[out.regime - 1].empty()) {
      const std::string& t = out.run.param_table;
      const int named = t.find("-III-") != std::string::npos ? 3 : t.find("-II-") != std::string::npos ? 2 : 1;
      throw ConfigError(errors[named - 1] + " [dmft.regime = \"auto\"]");
    }
  } else {
    throw ConfigError("dmft.regime: unknown value '" + regime + "' (allowed: auto, I, II, III)");
  }
  if (out.regime == 3 && !expert_samples_given) {
    // Regime III holds an S_e x S_n grid of pairs: fewer particles, many neurons per particle
    // (the neuron-level Stein estimates need S_n well above n = (T+1) P; docs/dmft_moe_regime3.md 7).
    out.dmft3.expert_samples = 32;
    knobs.insert_or_assign("expert_samples", int64_t(32));
    out.dmft3.validate();
  }
  // The document as solved: the run part plus every [dmft] knob with its resolved value.
  toml::table all = root;
  all.insert_or_assign("dmft", knobs);
  std::ostringstream text_all;
  text_all << all;
  out.resolved_toml = text_all.str();
  return out;
}

namespace {

dmft::DmftOptimizer limit_optimizer(const RunConfig& run) {
  return run.optim.kind == OptimizerKind::adam     ? dmft::DmftOptimizer::adam
         : run.optim.kind == OptimizerKind::signgd ? dmft::DmftOptimizer::signgd
                                                   : dmft::DmftOptimizer::sgd;
}

// The checks every MoE limit shares; throws ConfigError naming the field.
void check_limit_scope(const RunConfig& run, const char* regime) {
  const std::string r(regime);
  const std::string doc = r == "I" ? "dmft_moe" : r == "II" ? "dmft_moe_regime2" : "dmft_moe_regime3";
  auto need = [regime, doc](bool ok, const std::string& field) {
    if (!ok)
      throw ConfigError(field + " (the regime-" + regime + " DMFT limit is derived for it; docs/" + doc + ".md)");
  };
  need(run.train.protocol == Protocol::full_batch, "train.protocol: must be \"full_batch\"");
  // Every regime has the pair estimator for the entrywise optimizers (section 8 of docs/dmft_moe.md,
  // section 9 of docs/dmft_moe_regime2.md, section 10 of _regime3.md).
  need(run.optim.kind == OptimizerKind::sgd || run.optim.kind == OptimizerKind::signgd ||
           run.optim.kind == OptimizerKind::adam,
       "optim.kind: must be \"sgd\", \"signgd\" or \"adam\"");
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
  c.optimizer = limit_optimizer(run);
  c.beta1 = run.optim.beta1;
  c.beta2 = run.optim.beta2;
  c.validate();
}

namespace {

// The run's steps and model options, as both particle regimes take them; returns the table.
ParamTable particle_options(const RunConfig& run, const char* regime, dmft::ParticleSolveOptions& c) {
  check_limit_scope(run, regime);
  ParamTable table;
  resolve_run_param(run, &table);
  c.T = run.train.steps;
  c.phi = run.model.activation;
  c.routing = run.model.routing;
  c.gate = run.model.gate;
  c.renormalize = run.model.renormalize;
  return table;
}

}  // namespace

void fill_moe2_limit_config(const RunConfig& run, dmft::Moe2DmftConfig& c, bool keep_vanishing) {
  const ParamTable table = particle_options(run, "II", c);
  if (table.shared_experts)
    throw ConfigError("param.shared_experts: must be false (the regime-II DMFT limit is derived for independent experts)");
  c.k = dmft::regime2_constants(table, run.shape, run.model.m_base, run.resolve, c.normalised(), keep_vanishing);
  c.optimizer = limit_optimizer(run);
  c.beta1 = run.optim.beta1;
  c.beta2 = run.optim.beta2;
  c.validate();
}

void fill_moe3_limit_config(const RunConfig& run, dmft::Moe3DmftConfig& c, bool keep_vanishing) {
  const ParamTable table = particle_options(run, "III", c);
  c.k = dmft::regime3_constants(table, run.shape, run.model.m_base, run.resolve, c.normalised(), keep_vanishing);
  c.optimizer = limit_optimizer(run);
  c.beta1 = run.optim.beta1;
  c.beta2 = run.optim.beta2;
  c.validate();
}

const char* regime_name(int regime) { return regime == 3 ? "III" : regime == 2 ? "II" : "I"; }

MoeLimitSolution solve_moe_limit(const MoeLimitSetup& setup, const Mat<double>& x, const Vec<double>& y) {
  MoeLimitSolution out;
  out.regime = setup.regime;
  auto take = [&](const auto& r) {
    out.loss = r.loss;
    out.loss_err = r.loss_err;
    out.loss_replicates = r.loss_replicates;
  };
  if (setup.regime == 2) {
    out.particles = dmft::solve_moe2_dmft(setup.dmft2, x, y);
    take(out.particles);
  } else if (setup.regime == 3) {
    out.particles = dmft::solve_moe3_dmft(setup.dmft3, x, y);
    take(out.particles);
  } else {
    out.regime1 = dmft::solve_moe_dmft(setup.dmft, x, y);
    take(out.regime1);
  }
  return out;
}

}  // namespace moedmft
