// Regime-I MoE DMFT driver: constants from a parameterization, validation, replicate solves and
// their error bars (independent seeds, dmft.md section 4).
#include <omp.h>

#include <cmath>
#include <sstream>

#include "models/random.hpp"
#include "solver/dmft/memory.hpp"
#include "solver/dmft/moe_march.hpp"
#include "solver/dmft/noise.hpp"
#include "solver/dmft/replicates.hpp"

namespace moedmft::dmft {

MoeLimitConstants limit_constants(const ResolvedParam& p, const Shape& s, bool entrywise) {
  const double N = s.N, Ne = s.Ne;
  MoeLimitConstants k;
  if (entrywise) {
    // a group's stored weight moves by eta u(raw gradient); the effective weight by s eta u
    auto step = [&](Group g, double fan) { return fan * p[g].multiplier * p[g].lr; };
    auto eps = [&](Group g, double gamma) { return p[g].eps / gamma; };
    k.sigma_in = effective_std(p, Group::in);
    k.lr_in = step(Group::in, 1.0);
    k.eps_in = eps(Group::in, p[Group::in].multiplier / N);
    k.c_router = N * effective_std(p, Group::router);
    k.lr_router = step(Group::router, N);
    k.eps_router = eps(Group::router, p[Group::router].multiplier);
    k.c_expert1 = std::sqrt(N) * effective_std(p, Group::expert1);
    k.lr_expert1 = step(Group::expert1, N);
    k.eps_expert1 = eps(Group::expert1, p[Group::expert1].multiplier / N);
    k.c_expert2 = std::sqrt(Ne) * effective_std(p, Group::expert2);
    k.lr_expert2 = step(Group::expert2, Ne);
    k.eps_expert2 = eps(Group::expert2, p[Group::expert2].multiplier / N);
    k.c_out = N * effective_std(p, Group::out);
    k.lr_out = step(Group::out, N);
    k.eps_out = eps(Group::out, p[Group::out].multiplier);
    k.gate = p.gate_factor * p.aggregation * p.residual_multiplier;
    k.ratio = Ne / N;
    return k;
  }
  k.sigma_in = effective_std(p, Group::in);
  k.lr_in = effective_lr(p, Group::in) / N;
  k.c_router = N * effective_std(p, Group::router);
  k.lr_router = N * effective_lr(p, Group::router);
  k.c_expert1 = std::sqrt(N) * effective_std(p, Group::expert1);
  k.lr_expert1 = effective_lr(p, Group::expert1);
  k.c_expert2 = std::sqrt(Ne) * effective_std(p, Group::expert2);
  k.lr_expert2 = effective_lr(p, Group::expert2) * Ne / N;
  k.c_out = N * effective_std(p, Group::out);
  k.lr_out = N * effective_lr(p, Group::out);
  k.gate = p.gate_factor * p.aggregation * p.residual_multiplier;
  k.ratio = Ne / N;
  return k;
}

void apply_eps_rule(const std::string& table, const char* regime, const char* ladder,
                    std::vector<LimitConstant> eps) {
  for (LimitConstant& e : eps) {
    const double power = doubling_power(*e.value, e.doubled);
    if (power == 0.0) continue;
    if (power < 0.0) {
      *e.value = 0.0;
      continue;
    }
    std::ostringstream msg;
    msg << "param: '" << table << "' has no regime-" << regime << " Adam limit: the " << e.what
        << " in gradient units scales as N^" << power << " along " << ladder << " (needs N^0 or below)";
    throw ConfigError(msg.str());
  }
}

MoeLimitConstants regime1_constants(const ParamTable& table, const Shape& shape, int m_base,
                                    const ResolveInputs& inputs) {
  Shape wide = shape;
  wide.N *= 2;
  wide.Ne *= 2;
  const bool entrywise = inputs.adam_like;
  MoeLimitConstants a = limit_constants(resolve(table, shape, m_base, inputs), shape, entrywise);
  const MoeLimitConstants b = limit_constants(resolve(table, wide, m_base, inputs), wide, entrywise);
  if (entrywise)
    apply_eps_rule(table.name, "I", "N ~ Ne", a, b);
  const std::pair<const char*, std::pair<double, double>> pairs[] = {
      {"in init_std", {a.sigma_in, b.sigma_in}},       {"in lr", {a.lr_in, b.lr_in}},
      {"router init_std", {a.c_router, b.c_router}},   {"router lr", {a.lr_router, b.lr_router}},
      {"expert1 init_std", {a.c_expert1, b.c_expert1}}, {"expert1 lr", {a.lr_expert1, b.lr_expert1}},
      {"expert2 init_std", {a.c_expert2, b.c_expert2}}, {"expert2 lr", {a.lr_expert2, b.lr_expert2}},
      {"out init_std", {a.c_out, b.c_out}},             {"out lr", {a.lr_out, b.lr_out}},
      {"gate factor", {a.gate, b.gate}}};
  for (const auto& [what, v] : pairs) {
    const double x = v.first, z = v.second;
    const double power = doubling_power(x, z);
    if (power == 0.0) continue;
    throw ConfigError("param: '" + table.name + "' has no regime-I DMFT limit: the " + what +
                      " constant scales as N^" + std::to_string(power) +
                      " along N ~ Ne (needs N^0; use a muP/MSSP regime-I table)");
  }
  return a;
}

void MoeDmftConfig::validate() const {
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) throw ConfigError(msg);
  };
  need(T >= 0, "dmft.T: must be >= 0");
  need(samples >= 2, "dmft.samples: must be >= 2");
  need(!antithetic || samples % 2 == 0, "dmft.samples: must be even with antithetic pairs");
  need(replicates >= 1, "dmft.replicates: must be >= 1");
  need(jitter >= 0.0, "dmft.jitter: must be >= 0");
  need(M >= 1, "model.M: must be >= 1");
  need(K >= 1 && K <= M, "model.K: must be in [1, M]");
  need(routing == Routing::topk || K == M, "model.K: soft routing uses every expert, so K must equal M");
  need(k.ratio > 0.0, "model.Ne: must be > 0");
  need(beta1 >= 0.0 && beta1 < 1.0, "optim.beta1: must lie in [0, 1)");
  need(beta2 >= 0.0 && beta2 < 1.0, "optim.beta2: must lie in [0, 1)");
}

MoeDmftResult solve_moe_dmft(const MoeDmftConfig& cfg, const Mat<double>& x, const Vec<double>& y) {
  cfg.validate();
  if (y.size() != x.rows())
    throw ConfigError("dmft: y has " + std::to_string(y.size()) + " rows, x has " + std::to_string(x.rows()));
  const Mat<double> XXt = x * x.transpose();
  const int R = cfg.replicates, T = cfg.T;
  // Replicates in parallel; each march runs its GEMMs on one thread.
  const int outer = std::min(R, omp_get_max_threads());
  {
    // [S, n] histories: 3 of h1 plus 9 per expert; [n, n] kernels and factors: 2 + 4 per expert.
    const double n = double(T + 1) * x.rows(), S = cfg.samples, M = cfg.M;
    // the pair estimator adds per expert two S x S update sums (Adam: and their two moments each)
    const double pair_mats = !cfg.pairs() ? 0.0 : cfg.optimizer == DmftOptimizer::adam ? 6 * M + 2 : 2 * M + 2;
    const double bytes = 8.0 * 1.1 * ((3 + 9 * M) * S * n + (2 + 4 * M) * n * n + pair_mats * S * S) * outer;
    require_memory(bytes, "dmft.samples/train.steps/data.P",
                   std::to_string(outer) + " replicates at once, S = " + std::to_string(cfg.samples) +
                       ", M = " + std::to_string(cfg.M) + ", n = (T+1) P = " + std::to_string(int(n)));
  }
  // Replicates in parallel; each march runs its GEMMs on one thread.
  const std::vector<MoeTrace> runs = solve_replicates<MoeTrace>(
      R, outer, [&](int r) { return march_moe_once(cfg, x, XXt, y, mix_seed(cfg.seed, 1000 + r)); });

  MoeDmftResult out;
  auto stats = [R](auto get, Mat<double>& mean, Mat<double>* err) { replicate_stats(R, get, mean, err); };
  trajectory_stats(runs, out);
  stats([&](int r) { return runs[r].psi; }, out.psi, &out.psi_err);
  stats([&](int r) { return runs[r].gates; }, out.gates, nullptr);
  stats([&](int r) { return runs[r].load; }, out.load, nullptr);
  stats([&](int r) { return runs[r].agg; }, out.agg, &out.agg_err);
  stats([&](int r) { return runs[r].rms; }, out.rms, &out.rms_err);
  stats([&](int r) { return runs[r].cz; }, out.readout_kernel, nullptr);
  out.phi1.resize(T + 1);
  out.phi2.resize(T + 1);
  out.g2.resize(T + 1);
  for (int t = 0; t <= T; ++t) {
    stats([&](int r) { return runs[r].phi1[t]; }, out.phi1[t], nullptr);
    stats([&](int r) { return runs[r].phi2[t]; }, out.phi2[t], nullptr);
    stats([&](int r) { return runs[r].g2[t]; }, out.g2[t], nullptr);
  }
  return out;
}

}  // namespace moedmft::dmft
