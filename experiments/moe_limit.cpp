#include "experiments/moe_limit.hpp"

#include <sstream>

#include "experiments/toml_section.hpp"

namespace moedmft {

MoeLimitSetup read_moe_limit_config(const std::string& text, const std::vector<std::string>& overrides,
                                    const std::string& origin) {
  toml::table root = parse_toml(text, origin);
  for (const auto& s : overrides) apply_override(root, s);
  MoeLimitSetup out;
  {
    toml::table knobs;
    if (auto* d = root.get("dmft")) {
      if (!d->is_table()) throw ConfigError("dmft: must be a table");
      knobs = *d->as_table();
    }
    Section top(knobs, "");
    Section d(knobs, "dmft");
    dmft::MoeDmftConfig& c = out.dmft;
    c.samples = d.get_int("samples", 1024, 2, 1 << 22);
    c.replicates = d.get_int("replicates", 4, 1, 4096);
    c.seed = uint64_t(d.get<int64_t>("seed", 1));
    c.jitter = d.get_number("jitter", 1e-9, 0.0, 1.0, "0 .. 1");
    c.antithetic = d.get<bool>("antithetic", true);
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
  fill_moe_limit_config(out.run, out.dmft);
  return out;
}

void fill_moe_limit_config(const RunConfig& run, dmft::MoeDmftConfig& c) {
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) throw ConfigError(msg);
  };
  const char* why = " (the regime-I DMFT limit is derived for it; docs/dmft_moe.md)";
  need(run.train.protocol == Protocol::full_batch, std::string("train.protocol: must be \"full_batch\"") + why);
  need(run.optim.kind == OptimizerKind::sgd, std::string("optim.kind: must be \"sgd\"") + why);
  need(run.optim.schedule.kind == ScheduleKind::constant, std::string("optim.schedule: must be \"constant\"") + why);
  need(run.model.loss == LossKind::mse, std::string("model.loss: must be \"mse\"") + why);
  need(run.shape.C == 1, std::string("data.C: must be 1 (one output)") + why);
  need(run.shape.L == 1, std::string("model.L: must be 1") + why);
  need(!run.model.residual, std::string("model.residual: must be false") + why);
  need(run.model.selection == Selection::logits, std::string("model.selection: must be \"logits\"") + why);
  need(run.resolve.base_weight_decay == 0.0, std::string("optim.weight_decay: must be 0") + why);
  ParamTable table;
  resolve_run_param(run, &table);
  need(!table.shared_experts, std::string("param.shared_experts: must be false") + why);
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

}  // namespace moedmft
