// Regime-II MoE DMFT driver: constants from a parameterization (with the vanishing-term rule),
// validation, memory estimate, replicate solves and their error bars (independent seeds).
#include <omp.h>

#include <cmath>
#include <sstream>

#include "models/random.hpp"
#include "solver/dmft/memory.hpp"
#include "solver/dmft/moe.hpp"
#include "solver/dmft/moe2_march.hpp"
#include "solver/dmft/noise.hpp"
#include "solver/dmft/replicates.hpp"

namespace moedmft::dmft {

Moe2LimitConstants limit2_constants(const ResolvedParam& p, const Shape& s, bool normalised) {
  const double N = s.N, Ne = s.Ne, M = s.M;
  Moe2LimitConstants k;
  k.sigma_in = effective_std(p, Group::in);
  k.lr_in = effective_lr(p, Group::in) / N;
  k.c_router = std::sqrt(N) * effective_std(p, Group::router);
  k.lr_router = effective_lr(p, Group::router);
  k.c_expert1 = std::sqrt(N) * effective_std(p, Group::expert1);
  k.lr_expert1 = effective_lr(p, Group::expert1);
  // Normalised gates already carry 1/M through their normaliser; plain gates need the table's 1/M.
  const double factor = p.gate_factor * p.aggregation * p.residual_multiplier;
  k.gate = normalised ? factor : factor * M;
  k.c_expert2 = k.gate * effective_std(p, Group::expert2) * std::sqrt(Ne / M);
  k.lr_expert2 = k.gate * k.gate * effective_lr(p, Group::expert2) / (M * M);
  k.c_out = N * effective_std(p, Group::out);
  k.lr_out = N * effective_lr(p, Group::out);
  k.nu = M / N;
  k.kappa = double(s.K) / M;
  k.Ne = s.Ne;
  return k;
}

Moe2LimitConstants regime2_constants(const ParamTable& table, const Shape& shape, int m_base,
                                     const ResolveInputs& inputs, bool normalised, bool keep_vanishing) {
  if (inputs.adam_like)
    throw ConfigError("optim.kind: the regime-II MoE limit is derived for SGD (allowed: \"sgd\")");
  Shape wide = shape;
  wide.N *= 2;
  wide.M *= 2;
  wide.K *= 2;
  Moe2LimitConstants a = limit2_constants(resolve(table, shape, m_base, inputs), shape, normalised);
  const Moe2LimitConstants b = limit2_constants(resolve(table, wide, m_base, inputs), wide, normalised);
  std::pair<const char*, std::pair<double*, double>> pairs[] = {
      {"in init_std", {&a.sigma_in, b.sigma_in}},       {"in lr", {&a.lr_in, b.lr_in}},
      {"router init_std", {&a.c_router, b.c_router}},   {"router lr", {&a.lr_router, b.lr_router}},
      {"expert1 init_std", {&a.c_expert1, b.c_expert1}}, {"expert1 lr", {&a.lr_expert1, b.lr_expert1}},
      {"expert2 init_std", {&a.c_expert2, b.c_expert2}}, {"expert2 lr", {&a.lr_expert2, b.lr_expert2}},
      {"out init_std", {&a.c_out, b.c_out}},             {"out lr", {&a.lr_out, b.lr_out}}};
  std::ostringstream vanishing;
  auto check = [&](const char* what, double x, double z) {
    const double power = doubling_power(x, z);
    if (power <= 0.0) return power;  // fixed, or vanishing (NaN falls through: refused)
    std::ostringstream msg;
    msg << "param: '" << table.name << "' has no regime-II DMFT limit: the " << what << " constant scales as N^"
        << power << " along N ~ M ~ K with Ne fixed (needs N^0, or a negative power that vanishes; use a "
        << "muP/MSSP regime-II table)";
    throw ConfigError(msg.str());
  };
  // The gate scale must stay put: a normalised gate under a 1/M gate factor vanishes entirely.
  if (const double pw = check("gate factor", a.gate, b.gate); pw != 0.0)
    throw ConfigError("param: '" + table.name + "' has no regime-II DMFT limit: the gate scale Gamma = " +
                      std::string(normalised ? "gate factor (softmax/renormalised gates)" : "M x gate factor") +
                      " scales as N^" + std::to_string(pw) + (normalised ? " (set gate_exponent = 0)" : ""));
  for (auto& [what, v] : pairs) {
    const double power = check(what, *v.first, v.second);
    if (power < 0.0) {
      vanishing << (vanishing.tellp() > 0 ? "; " : "") << what << " ~ N^" << power;
      if (!keep_vanishing) *v.first = 0.0;  // the term is absent from the limit
    }
  }
  a.vanishing = vanishing.str();
  return a;
}

int Moe2DmftConfig::selected() const {
  return routing == Routing::topk ? static_cast<int>(std::llround(k.kappa * expert_samples)) : expert_samples;
}

void Moe2DmftConfig::validate() const {
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) throw ConfigError(msg);
  };
  need(T >= 0, "dmft.T: must be >= 0");
  need(samples >= 2, "dmft.samples: must be >= 2");
  need(!antithetic || samples % 2 == 0, "dmft.samples: must be even with antithetic pairs");
  need(expert_samples >= 2, "dmft.expert_samples: must be >= 2");
  need(replicates >= 1, "dmft.replicates: must be >= 1");
  need(jitter >= 0.0, "dmft.jitter: must be >= 0");
  need(k.Ne >= 1, "model.Ne: must be >= 1");
  need(k.nu > 0.0, "model.M: M/N must be > 0");
  need(k.kappa > 0.0 && k.kappa <= 1.0, "model.K: K/M must be in (0, 1]");
  need(routing == Routing::topk || k.kappa == 1.0, "model.K: soft routing uses every expert, so K must equal M");
  if (routing == Routing::topk) {
    const double ks = k.kappa * expert_samples;
    need(std::abs(ks - std::llround(ks)) < 1e-9 && ks >= 1.0,
         "dmft.expert_samples: (K/M) x expert_samples must be a whole number >= 1 (the particles selected per token)");
  }
}

double moe2_march_bytes(const Moe2DmftConfig& cfg, int P) {
  const double n = double(cfg.T + 1) * P, S = cfg.samples, E = cfg.expert_samples, EN = E * cfg.k.Ne;
  // [S, n] x 6, [E, n] x 4, [E Ne, n] x 6 histories, [E Ne, T+1] noise, 8 kernels/factors [n, n],
  // plus the temporaries of one step (a few [rows, P] blocks and [rows, n] products).
  const double doubles = 6 * S * n + 4 * E * n + 6 * EN * n + EN * (cfg.T + 1) + 8 * n * n + 12 * (S + EN) * P;
  return 8.0 * doubles * 1.1;
}

Moe2DmftResult solve_moe2_dmft(const Moe2DmftConfig& cfg, const Mat<double>& x, const Vec<double>& y) {
  cfg.validate();
  if (y.size() != x.rows())
    throw ConfigError("dmft: y has " + std::to_string(y.size()) + " rows, x has " + std::to_string(x.rows()));
  const int R = cfg.replicates, T = cfg.T, P = static_cast<int>(x.rows());
  const int outer = std::min(R, omp_get_max_threads());
  const double bytes = moe2_march_bytes(cfg, P) * outer;
  require_memory(bytes, "dmft.samples/dmft.expert_samples/train.steps/data.P",
                 std::to_string(outer) + " replicates at once, S = " + std::to_string(cfg.samples) + ", S_e = " +
                     std::to_string(cfg.expert_samples) + ", Ne = " + std::to_string(cfg.k.Ne) +
                     ", n = (T+1) P = " + std::to_string((T + 1) * P));
  const Mat<double> XXt = x * x.transpose();
  const std::vector<Moe2Trace> runs = solve_replicates<Moe2Trace>(
      R, outer, [&](int r) { return march_moe2_once(cfg, XXt, y, mix_seed(cfg.seed, 2000 + r)); });

  Moe2DmftResult out;
  auto stats = [R](auto get, Mat<double>& mean, Mat<double>* err) { replicate_stats(R, get, mean, err); };
  trajectory_stats(runs, out);
  stats([&](int r) { return runs[r].logit_mean; }, out.logit_mean, &out.logit_mean_err);
  stats([&](int r) { return runs[r].logit_std; }, out.logit_std, &out.logit_std_err);
  stats([&](int r) { return runs[r].logit_quantile; }, out.logit_quantile, &out.logit_quantile_err);
  stats([&](int r) { return runs[r].load; }, out.load, &out.load_err);
  stats([&](int r) { return runs[r].agg; }, out.agg, &out.agg_err);
  stats([&](int r) { return runs[r].rms; }, out.rms, &out.rms_err);
  stats([&](int r) { return runs[r].cz; }, out.readout_kernel, nullptr);
  for (auto [dst, src] : {std::pair{&out.phi1, &Moe2Trace::phi1}, std::pair{&out.phi2, &Moe2Trace::phi2},
                          std::pair{&out.gated, &Moe2Trace::gated}, std::pair{&out.g2, &Moe2Trace::g2}}) {
    dst->resize(T + 1);
    for (int t = 0; t <= T; ++t) stats([&, src = src](int r) { return (runs[r].*src)[t]; }, (*dst)[t], nullptr);
  }
  return out;
}

}  // namespace moedmft::dmft
