// Subcommand groups of the moedmft CLI. Each registers its options on the app and returns a
// runner that main() calls when that subcommand was chosen.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <vector>

namespace moedmft::cli {

struct Command {
  CLI::App* app;
  std::function<int()> run;
};

// experiments/sweep: `sweep` (grids, shards, gather, Slurm scripts).
std::vector<Command> add_sweep_commands(CLI::App& app);

// solver/scaling: `exponents` and `diagnose`.
std::vector<Command> add_scaling_commands(CLI::App& app);
// solver/dmft: `dmft`.
std::vector<Command> add_dmft_commands(CLI::App& app);
// Parses the dense `dmft` configuration's defaults (what config --explain records).
void read_dmft_defaults();

// `config --explain`: every key of the run, dmft-moe and dense dmft configurations with its
// meaning, type, default and allowed range, as text or as the Markdown of docs/config_reference.md.
std::string config_reference(bool markdown);

// solver/dmft MoE limit: `dmft-moe` and `converge`.
std::vector<Command> add_moe_limit_commands(CLI::App& app);

// experiments/coord_check: `coord-check`.
std::vector<Command> add_coord_check_commands(CLI::App& app);

}  // namespace moedmft::cli
