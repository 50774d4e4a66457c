// Regime-II MoE DMFT driver: constants from a parameterization (with the vanishing-term rule),
// validation, memory estimate, replicate solves and their error bars (independent seeds).
#include <omp.h>

#include <cmath>
#include <sstream>

#include "models/random.hpp"
#include "solver/dmft/memory.hpp"
#include "solver/dmft/moe.hpp"
#include "solver/dmft/particle_march.hpp"
#include "solver/dmft/noise.hpp"
#include "solver/dmft/replicates.hpp"

namespace moedmft::dmft {

void fill_stream_constants(const ResolvedParam& p, const Shape& s, bool normalised, StreamConstants& k,
                           bool entrywise) {
  const double N = s.N, M = s.M;
  k.sigma_in = effective_std(p, Group::in);
  k.lr_in = effective_lr(p, Group::in) / N;
  k.c_router = std::sqrt(N) * effective_std(p, Group::router);
  k.lr_router = effective_lr(p, Group::router);
  k.c_expert1 = std::sqrt(N) * effective_std(p, Group::expert1);
  // Normalised gates already carry 1/M through their normaliser; plain gates need the table's 1/M.
  const double factor = p.gate_factor * p.aggregation * p.residual_multiplier;
  k.gate = normalised ? factor : factor * M;
  k.c_out = N * effective_std(p, Group::out);
  k.lr_out = N * effective_lr(p, Group::out);
  k.nu = M / N;
  k.kappa = double(s.K) / M;
  if (entrywise) {
    // the field's step per unit direction: s eta times the fan-in sum; eps over the raw entry's
    // scale gamma (dL/dW = gamma c): in s_in/N, router s_r/N, out s_out
    const auto& in = p[Group::in];
    const auto& router = p[Group::router];
    const auto& out = p[Group::out];
    k.lr_in = in.multiplier * in.lr;
    k.lr_router = N * router.multiplier * router.lr;
    k.lr_out = N * out.multiplier * out.lr;
    k.eps_in = in.eps * N / in.multiplier;
    k.eps_router = router.eps * N / router.multiplier;
    k.eps_out = out.eps / out.multiplier;
  }
}

void apply_stream_limit_rule(const std::string& table, const char* regime, const char* ladder, bool normalised,
                             StreamConstants& a, const StreamConstants& b, const std::vector<LimitConstant>& own,
                             bool keep_vanishing) {
  if (const double pw = doubling_power(a.gate, b.gate); pw != 0.0)
    throw ConfigError("param: '" + table + "' has no regime-" + regime + " DMFT limit: the gate scale Gamma = " +
                      std::string(normalised ? "gate factor (softmax/renormalised gates)" : "M x gate factor") +
                      " scales as N^" + std::to_string(pw) + (normalised ? " (set gate_exponent = 0)" : ""));
  std::vector<LimitConstant> all = {{"in init_std", &a.sigma_in, b.sigma_in},
                                    {"in lr", &a.lr_in, b.lr_in},
                                    {"router init_std", &a.c_router, b.c_router},
                                    {"router lr", &a.lr_router, b.lr_router},
                                    {"expert1 init_std", &a.c_expert1, b.c_expert1}};
  all.insert(all.end(), own.begin(), own.end());
  all.push_back({"out init_std", &a.c_out, b.c_out});
  all.push_back({"out lr", &a.lr_out, b.lr_out});
  a.vanishing = apply_limit_rule(table, regime, ladder, all, keep_vanishing);
}

Moe2LimitConstants limit2_constants(const ResolvedParam& p, const Shape& s, bool normalised, bool entrywise) {
  const double N = s.N, Ne = s.Ne, M = s.M;
  Moe2LimitConstants k;
  fill_stream_constants(p, s, normalised, k, entrywise);
  k.lr_expert1 = effective_lr(p, Group::expert1);
  k.c_expert2 = k.gate * effective_std(p, Group::expert2) * std::sqrt(Ne / M);
  k.lr_expert2 = k.gate * k.gate * effective_lr(p, Group::expert2) / (M * M);
  k.Ne = s.Ne;
  if (entrywise) {
    // expert1: raw entry (s_1/N) c, fan-in N. expert2: hagg = (Gamma/M) sum s_2 W2 a~, raw entry
    // (Gamma s_2 / (N M)) c, fan-in M Ne; stored so that the march's forward coefficient
    // lr_expert2 nu Ne is Gamma s_2 eta_2 Ne (as under SGD it is lr_expert2 nu Ne).
    const auto& e1 = p[Group::expert1];
    const auto& e2 = p[Group::expert2];
    k.lr_expert1 = N * e1.multiplier * e1.lr;
    k.lr_expert2 = k.gate * e2.multiplier * e2.lr * N / M;
    k.eps_expert1 = e1.eps * N / e1.multiplier;
    k.eps_expert2 = e2.eps * N * M / (k.gate * e2.multiplier);
  }
  return k;
}

Moe2LimitConstants regime2_constants(const ParamTable& table, const Shape& shape, int m_base,
                                     const ResolveInputs& inputs, bool normalised, bool keep_vanishing) {
  Shape wide = shape;
  wide.N *= 2;
  wide.M *= 2;
  wide.K *= 2;
  auto limit = [](const ResolvedParam& p, const Shape& s, bool normalised, bool entrywise) {
    return limit2_constants(p, s, normalised, entrywise);
  };
  Moe2LimitConstants a = particle_limit_constants(table, shape, wide, m_base, inputs, normalised, keep_vanishing,
                                                  "II", "N ~ M ~ K with Ne fixed", limit, true);
  if (inputs.adam_like) {
    const Moe2LimitConstants b = limit2_constants(resolve(table, wide, m_base, inputs), wide, normalised, true);
    apply_eps_rule(table.name, "II", "N ~ M ~ K with Ne fixed", a, b);
  }
  return a;
}

std::string apply_limit_rule(const std::string& table, const char* regime, const char* ladder,
                             std::vector<LimitConstant>& constants, bool keep_vanishing) {
  std::ostringstream vanishing;
  for (LimitConstant& c : constants) {
    const double power = doubling_power(*c.value, c.doubled);
    if (power > 0.0 || std::isnan(power)) {
      std::ostringstream msg;
      msg << "param: '" << table << "' has no regime-" << regime << " DMFT limit: the " << c.what
          << " constant scales as N^" << power << " along " << ladder
          << " (needs N^0, or a negative power that vanishes; use a muP/MSSP regime-" << regime << " table)";
      throw ConfigError(msg.str());
    }
    if (power < 0.0) {
      vanishing << (vanishing.tellp() > 0 ? "; " : "") << c.what << " ~ N^" << power;
      if (!keep_vanishing) *c.value = 0.0;  // the term is absent from the limit
    }
  }
  return vanishing.str();
}

int ParticleSolveOptions::selected_at(double kappa) const {
  return routing == Routing::topk ? static_cast<int>(std::llround(kappa * expert_samples)) : expert_samples;
}

void ParticleSolveOptions::validate_common(double nu, double kappa) const {
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) throw ConfigError(msg);
  };
  need(T >= 0, "dmft.T: must be >= 0");
  need(samples >= 2, "dmft.samples: must be >= 2");
  need(!antithetic || samples % 2 == 0, "dmft.samples: must be even with antithetic pairs");
  need(expert_samples >= 2, "dmft.expert_samples: must be >= 2");
  need(replicates >= 1, "dmft.replicates: must be >= 1");
  need(jitter >= 0.0, "dmft.jitter: must be >= 0");
  need(beta1 >= 0.0 && beta1 < 1.0, "optim.beta1: must lie in [0, 1)");
  need(beta2 >= 0.0 && beta2 < 1.0, "optim.beta2: must lie in [0, 1)");
  need(nu > 0.0, "model.M: M/N must be > 0");
  need(kappa > 0.0 && kappa <= 1.0, "model.K: K/M must be in (0, 1]");
  need(routing == Routing::topk || kappa == 1.0, "model.K: soft routing uses every expert, so K must equal M");
  if (routing == Routing::topk) {
    const double ks = kappa * expert_samples;
    need(std::abs(ks - std::llround(ks)) < 1e-9 && ks >= 1.0,
         "dmft.expert_samples: (K/M) x expert_samples must be a whole number >= 1 (the particles selected per token)");
  }
}

void Moe2DmftConfig::validate() const {
  validate_common(k.nu, k.kappa);
  if (k.Ne < 1) throw ConfigError("model.Ne: must be >= 1");
}

double moe2_march_bytes(const Moe2DmftConfig& cfg, int P) {
  const double n = double(cfg.T + 1) * P, S = cfg.samples, E = cfg.expert_samples, EN = E * cfg.k.Ne;
  // [S, n] x 6, [E, n] x 4, [E Ne, n] x 6 histories, [E Ne, T+1] noise, 8 kernels/factors [n, n],
  // plus the temporaries of one step (a few [rows, P] blocks and [rows, n] products).
  double doubles = 6 * S * n + 4 * E * n + 6 * EN * n + EN * (cfg.T + 1) + 8 * n * n + 12 * (S + EN) * P;
  // the pair estimator: expert1 [S_e Ne, S], expert2 [S, S_e Ne], router [S_e, S] update sums
  // (Adam: and two moments each), plus one pair-sized temporary
  if (cfg.pairs()) doubles += (cfg.optimizer == DmftOptimizer::adam ? 3.0 : 1.0) * (2 * EN + E) * S + EN * S;
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
      R, outer, [&](int r) { return march_moe2_once(cfg, x, XXt, y, mix_seed(cfg.seed, 2000 + r)); });

  return collect_particle_traces(runs, T);
}

Moe2DmftResult collect_particle_traces(const std::vector<Moe2Trace>& runs, int T) {
  const int R = static_cast<int>(runs.size());
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
