// Regime-III MoE DMFT driver: constants from a parameterization (with the vanishing-term rule),
// validation, memory estimate and replicate solves (error bars from independent seeds).
#include <omp.h>

#include <cmath>

#include "models/random.hpp"
#include "solver/dmft/memory.hpp"
#include "solver/dmft/moe.hpp"
#include "solver/dmft/moe3.hpp"
#include "solver/dmft/moe3_march.hpp"
#include "solver/dmft/particle_march.hpp"
#include "solver/dmft/replicates.hpp"

namespace moedmft::dmft {

Moe3LimitConstants limit3_constants(const ResolvedParam& p, const Shape& s, bool normalised, bool entrywise) {
  const double N = s.N, Ne = s.Ne, M = s.M;
  Moe3LimitConstants k;
  fill_stream_constants(p, s, normalised, k, entrywise);
  k.lr_expert1 = k.gate * effective_lr(p, Group::expert1) / M;
  k.c_expert2 = std::sqrt(Ne) * effective_std(p, Group::expert2);
  k.lr_expert2 = k.gate * k.gate * effective_lr(p, Group::expert2) * Ne / (M * N);
  k.rho = Ne / N;
  k.shared = p.shared_experts;
  if (entrywise) {
    // expert1: raw entry (Gamma s_1 / (M N)) c, fan-in N; expert2: hagg = (Gamma/M) sum s_2 W2 a~,
    // raw entry (Gamma s_2 / (M N)) c, fan-in M Ne (the march's forward coefficient is lr_expert2)
    const auto& e1 = p[Group::expert1];
    const auto& e2 = p[Group::expert2];
    k.lr_expert1 = N * e1.multiplier * e1.lr;
    k.lr_expert2 = k.gate * e2.multiplier * e2.lr * Ne;
    k.eps_expert1 = e1.eps * M * N / (k.gate * e1.multiplier);
    k.eps_expert2 = e2.eps * M * N / (k.gate * e2.multiplier);
  }
  return k;
}

Moe3LimitConstants regime3_constants(const ParamTable& table, const Shape& shape, int m_base,
                                     const ResolveInputs& inputs, bool normalised, bool keep_vanishing) {
  Shape wide = shape;
  wide.N *= 2;
  wide.Ne *= 2;
  wide.M *= 2;
  wide.K *= 2;
  Moe3LimitConstants a = particle_limit_constants(table, shape, wide, m_base, inputs, normalised, keep_vanishing,
                                                  "III", "N ~ Ne ~ M ~ K", limit3_constants, true);
  if (inputs.adam_like) {
    const Moe3LimitConstants b = limit3_constants(resolve(table, wide, m_base, inputs), wide, normalised, true);
    apply_eps_rule(table.name, "III", "N ~ Ne ~ M ~ K", a, b);
  }
  if (!a.shared) {
    // Sums of M independent experts' init terms: structural, never held (docs/dmft_moe_regime3.md 3).
    const std::string structural =
        "independent experts: expert2 init source in hagg ~ N^-0.5; expert1 init source into h1 ~ N^-0.5; "
        "their responses through one expert ~ N^-1";
    a.vanishing = a.vanishing.empty() ? structural : a.vanishing + "; " + structural;
  }
  return a;
}

void Moe3DmftConfig::validate() const {
  validate_common(k.nu, k.kappa);
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) throw ConfigError(msg);
  };
  need(neuron_samples >= 2, "dmft.neuron_samples: must be >= 2");
  need(!antithetic || neuron_samples % 2 == 0, "dmft.neuron_samples: must be even with antithetic pairs");
  need(k.rho > 0.0, "model.Ne: Ne/N must be > 0");
  need(k.gate > 0.0, "param: the gate scale Gamma must be > 0");
}

double moe3_march_bytes(const Moe3DmftConfig& cfg, int P) {
  const double n = double(cfg.T + 1) * P, S = cfg.samples, E = cfg.expert_samples, Sn = cfg.neuron_samples;
  const double EN = E * Sn, src_rows = cfg.k.shared ? Sn : EN;
  // [S, n] x 7, [E, n] x 4, [E Sn, n] x 3 (+ the u2 noise), shared: [S_n, n] x 4, kernels and
  // factors [n, n] x (6 + 4 shared), plus one step's [rows, P] temporaries.
  double doubles = 7 * S * n + 4 * E * n + 3 * EN * n + src_rows * (n + cfg.T + 1) +
                   (cfg.k.shared ? 4 * Sn * n + 4 * n * n : 0.0) + 6 * n * n + 14 * (S + EN) * P;
  // the pair estimator: expert1 [E S_n, S], expert2 [S, E S_n], router [S_e, S] update sums
  // (Adam: and two moments each), plus one pair-sized temporary
  if (cfg.pairs()) doubles += (cfg.optimizer == DmftOptimizer::adam ? 3.0 : 1.0) * (2 * EN + E) * S + EN * S;
  return 8.0 * doubles * 1.1;
}

Moe3DmftResult solve_moe3_dmft(const Moe3DmftConfig& cfg, const Mat<double>& x, const Vec<double>& y) {
  cfg.validate();
  if (y.size() != x.rows())
    throw ConfigError("dmft: y has " + std::to_string(y.size()) + " rows, x has " + std::to_string(x.rows()));
  const int R = cfg.replicates, T = cfg.T, P = static_cast<int>(x.rows());
  const int outer = std::min(R, omp_get_max_threads());
  require_memory(moe3_march_bytes(cfg, P) * outer, "dmft.samples/dmft.expert_samples/dmft.neuron_samples/train.steps",
                 std::to_string(outer) + " replicates at once, S = " + std::to_string(cfg.samples) +
                     ", S_e = " + std::to_string(cfg.expert_samples) + ", S_n = " +
                     std::to_string(cfg.neuron_samples) + ", n = (T+1) P = " + std::to_string((T + 1) * P));
  const Mat<double> XXt = x * x.transpose();
  const std::vector<Moe2Trace> runs = solve_replicates<Moe2Trace>(
      R, outer, [&](int r) { return march_moe3_once(cfg, x, XXt, y, mix_seed(cfg.seed, 3000 + r)); });
  return collect_particle_traces(runs, T);
}

}  // namespace moedmft::dmft
