// The regime-I, II and III DMFT limits of a training-run configuration (solver/dmft/moe.hpp,
// moe2.hpp, moe3.hpp): one TOML file
// holds the run (model, param, optim, train, data, exactly as `moedmft train` reads it) plus a
// [dmft] section with the solver's knobs, so a finite run and its limit share every constant.
#pragma once
#include <string>
#include <vector>

#include "experiments/run_config.hpp"
#include "solver/dmft/moe.hpp"
#include "solver/dmft/moe2.hpp"
#include "solver/dmft/moe3.hpp"

namespace moedmft {

struct MoeLimitSetup {
  RunConfig run;             // the finite-width run (its N, Ne fix the ratio Ne/N)
  int regime = 1;            // 1: N ~ Ne (moe.hpp); 2: N ~ M ~ K, Ne fixed (moe2.hpp); 3: all (moe3.hpp)
  dmft::MoeDmftConfig dmft;  // regime-I solver knobs; constants filled by fill_moe_limit_config
  dmft::Moe2DmftConfig dmft2;  // regime-II solver knobs and constants
  dmft::Moe3DmftConfig dmft3;  // regime-III solver knobs and constants
  bool keep_vanishing = false; // regimes II/III: keep O(N^-a) constants at the run's size (dmft.keep_vanishing)
  std::string run_toml;      // the run part of the document (after overrides), for re-parsing
  std::string resolved_toml; // everything, as resolved, recorded in outputs
};

// Reads run + [dmft] (keys: regime = "auto" | "I" | "II" | "III", samples, expert_samples
// (regimes II/III), neuron_samples (regime III), replicates, seed, jitter, antithetic,
// keep_vanishing (regimes II/III)). "auto" takes the regime whose limit the table has (I, then II,
// then III). Overrides may target
// either part ("dmft.samples=2048", "model.N=64"). Throws ConfigError naming the field.
MoeLimitSetup read_moe_limit_config(const std::string& text, const std::vector<std::string>& overrides,
                                    const std::string& origin);

// Checks that the run has a limit the solver implements (full-batch SGD with a constant schedule,
// MSE with one output, one block without residual, logit selection, no weight decay, a
// muP/MSSP-type table of that regime) and fills the solver's constants, T = train.steps, and
// model options.
void fill_moe_limit_config(const RunConfig& run, dmft::MoeDmftConfig& dmft);
void fill_moe2_limit_config(const RunConfig& run, dmft::Moe2DmftConfig& dmft, bool keep_vanishing = false);
void fill_moe3_limit_config(const RunConfig& run, dmft::Moe3DmftConfig& dmft, bool keep_vanishing = false);

// "I", "II" or "III".
const char* regime_name(int regime);

// The solved limit of whichever regime the setup names: that regime's full result, and its loss
// trajectory with error bars (what every consumer of either regime compares against).
struct MoeLimitSolution {
  int regime = 1;
  dmft::MoeDmftResult regime1;   // filled when regime == 1
  dmft::Moe2DmftResult particles;  // filled when regime == 2 or 3 (one result layout)
  std::vector<double> loss, loss_err;                // [T+1]
  std::vector<std::vector<double>> loss_replicates;  // [R][T+1]
};
MoeLimitSolution solve_moe_limit(const MoeLimitSetup& setup, const Mat<double>& x, const Vec<double>& y);

}  // namespace moedmft
