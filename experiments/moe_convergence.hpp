// Finite width -> MoE DMFT: trains the simulator along the regime's ladder (regime I: Ne/N fixed;
// regime II: M/N and K/M fixed, Ne fixed; same data, full batch) over several seeds, solves the
// limit for the same configuration, and fits the seed-mean gap ||loss_N - loss_inf|| and the seed spread against N (expected N^-1 and N^-1/2).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "experiments/coord_check.hpp"
#include "experiments/moe_limit.hpp"

namespace moedmft {

struct ConvergenceOptions {
  std::vector<int> widths = {16, 32, 64, 128, 256, 512};
  int seeds = 4;
  bool progress = false;  // a progress line (experiments/progress.hpp): the limit's replicates, then the runs
};

struct ConvergenceResult {
  std::vector<int> widths;
  int seeds = 0, steps = 0;
  std::vector<double> loss;     // [widths, seeds, steps] finite-width training loss (NaN if diverged)
  MoeLimitSolution limit;       // loss has steps + 1 entries; the first `steps` are compared
  // Per width, RMS over steps: gap of the seed mean to the limit, its error (seeds and solver),
  // and the seed standard deviation.
  std::vector<double> gap, gap_err, spread;
  std::vector<char> in_gap_fit;  // width used in the gap fit (gap above 2x its error)
  double solver_error = 0;       // RMS over steps of the limit's loss error bar
  SlopeFit gap_fit, spread_fit;
};

ConvergenceResult run_convergence(const MoeLimitSetup& setup, const ConvergenceOptions& options);

// HDF5 with dimensions width, seed, step (docs/dmft_moe.md lists the variables).
void write_convergence(const std::string& path, const MoeLimitSetup& setup, const ConvergenceResult& r);

// The limit alone, same conventions (dimensions step, point, term, field, point2, step2, plus
// expert in regime I and load_stat in regime II).
void write_moe_limit(const std::string& path, const MoeLimitSetup& setup, const Mat<double>& x,
                     const Vec<double>& y, const MoeLimitSolution& limit);

}  // namespace moedmft
