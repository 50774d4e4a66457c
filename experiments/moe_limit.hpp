// The regime-I DMFT limit of a training-run configuration (solver/dmft/moe.hpp): one TOML file
// holds the run (model, param, optim, train, data, exactly as `moedmft train` reads it) plus a
// [dmft] section with the solver's knobs, so a finite run and its limit share every constant.
#pragma once
#include <string>
#include <vector>

#include "experiments/run_config.hpp"
#include "solver/dmft/moe.hpp"

namespace moedmft {

struct MoeLimitSetup {
  RunConfig run;             // the finite-width run (its N, Ne fix the ratio Ne/N)
  dmft::MoeDmftConfig dmft;  // solver knobs; constants filled by moe_limit_config
  std::string run_toml;      // the run part of the document (after overrides), for re-parsing
  std::string resolved_toml; // everything, as resolved, recorded in outputs
};

// Reads run + [dmft] (keys: samples, replicates, seed, jitter, antithetic). Overrides may target
// either part ("dmft.samples=2048", "model.N=64"). Throws ConfigError naming the field.
MoeLimitSetup read_moe_limit_config(const std::string& text, const std::vector<std::string>& overrides,
                                    const std::string& origin);

// Checks that the run has a regime-I limit the solver implements (full-batch SGD with a constant
// schedule, MSE with one output, one block without residual, logit selection, no weight decay,
// a muP/MSSP-type table) and fills the solver's constants, T = train.steps, and model options.
void fill_moe_limit_config(const RunConfig& run, dmft::MoeDmftConfig& dmft);

}  // namespace moedmft
