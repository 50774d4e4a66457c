// Up-front cost of a dense solve (memory and arithmetic), from the sizes alone: solve_dmft
// refuses what does not fit and the CLI warns about long runs before they start.
#include <omp.h>

#include <algorithm>
#include <string>

#include "solver/dmft/dmft.hpp"
#include "solver/dmft/memory.hpp"

namespace moedmft::dmft {

DmftCost dmft_cost(const DmftConfig& cfg, int P, int D) {
  const double p = P, nt = double(cfg.T) + 1, n = nt * p, L = cfg.L;
  const bool exact = cfg.method == DeepMethod::exact;
  const double R = exact ? 1 : cfg.replicates;
  const double concurrent = std::min<double>(R, omp_get_max_threads());
  // What each replicate's trace keeps: f, loss, equal-time kernels (+ two-time kernels).
  double kept = nt * p + nt + 2 * L * nt * p * p + p * p;
  if (cfg.two_time_kernels) kept += 2 * L * n * n;
  double working = 0, flops = 0;
  if (cfg.L >= 2) {
    // Per layer: nine [S, n] histories and noises, about eight [n, n] kernels, responses and
    // causal factors; each step k multiplies [S, kP] by [S, P] a few times.
    const double S = exact ? p + 1 + 2 * (L - 1) * n : cfg.samples;
    const double fixed_point = (!exact && cfg.method == DeepMethod::fixed_point) ? cfg.max_iter : 1;
    working = L * ((exact || fixed_point == 1 ? 9 : 11) * S * n + 8 * n * n);
    flops = fixed_point * L * (8 * S * n * n + n * n * n / 3);
    if (!exact && cfg.optimizer != DmftOptimizer::sgd) {
      // Pair estimator: per hidden-to-hidden matrix M (Adam: also m, v) S x S, plus the entries c
      // and directions u; input rows W0 [S, D] with moments. Per step and matrix c = (g o Delta)
      // phi^T, M phi, M^T g: 6 S^2 P, and the entrywise rule on S^2 entries.
      const double per = cfg.optimizer == DmftOptimizer::adam ? 3 : 1;
      working += ((L - 1) * per + 2) * S * S + 4 * S * double(D);
      flops += nt * ((L - 1) * (6 * S * S * p + 10 * S * S) + 4 * S * double(D) * p);
    }
  } else if (exact) {
    working = nt * (p + 1) * (p + 1) * 2;
    flops = nt * 4 * (p + 1) * (p + 1) * (p + 1);
    if (cfg.two_time_kernels) {
      working += 9 * (p + 1) * n + 8 * n * n;
      flops += 8 * (p + 1) * n * n;
    }
  } else {
    const double S = cfg.samples;
    const bool entrywise = cfg.optimizer != DmftOptimizer::sgd;
    working = 8 * S * p + (entrywise ? 6 * S * double(D) : 0);
    flops = nt * (6 * S * p * p + (entrywise ? 4 * S * double(D) * p : 0));
    if (cfg.two_time_kernels) {
      working += 2 * S * n;
      flops += 4 * S * n * n;
    }
  }
  // The mean and error of every kept field, and the per-replicate outputs.
  double result = 4 * L * nt * p * p + R * nt * p;
  if (cfg.two_time_kernels) result += 2 * L * n * n;
  DmftCost cost;
  cost.bytes = 8 * (R * kept + concurrent * working + result);
  cost.flops = R * flops;
  return cost;
}

void require_dmft_memory(const DmftConfig& cfg, int P, int D) {
  const DmftCost cost = dmft_cost(cfg, P, D);
  std::string fields = "dmft.T/dmft.samples/dmft.replicates/data.P";
  if (cfg.two_time_kernels) fields += "/dmft.two_time_kernels";
  require_memory(cost.bytes, fields,
                 "L = " + std::to_string(cfg.L) + ", " + std::to_string(cfg.T + 1) + " steps of P = " +
                     std::to_string(P) + ", " + std::to_string(cfg.samples) + " samples, " +
                     std::to_string(cfg.replicates) + " replicates");
}

}  // namespace moedmft::dmft
