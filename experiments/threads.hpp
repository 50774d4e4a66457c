// OpenMP threads of every moedmft binary: passive waiting by default and one `--threads/-j`.
#pragma once
#include <CLI/CLI.hpp>

#include <string>

namespace moedmft {

// Call first in main(). OpenMP worker threads spin between parallel regions by default, which on
// a machine shared with other jobs made `train` ~8x slower. libgomp reads OMP_WAIT_POLICY only
// when it loads (before main), so when neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT is set this sets
// OMP_WAIT_POLICY=passive and re-executes /proc/self/exe once with argv unchanged (an env marker
// stops a loop). An explicit user setting always wins; under an MPI launcher nothing is done (the
// launcher owns the process) and docs/cluster.md says to export the variable there.
void ensure_passive_waiting(char** argv);

// The thread count a --threads value asks for: throws ConfigError (exit 2) naming the flag when
// it is below 1.
int checked_threads(long requested);

// `--threads,-j N` on a subcommand: every OpenMP region of the run uses at most N threads (the
// drivers that run several trainings at once run at most N of them). Default: what OpenMP would
// use (OMP_NUM_THREADS, else the cores).
struct ThreadsOption {
  long value = 0;
  CLI::Option* option = nullptr;
  bool given() const { return option && option->count() > 0; }
  // Validates and applies (omp_set_num_threads); returns the count now in effect.
  int apply() const;
};
void add_threads_option(CLI::App& app, ThreadsOption& threads);

// For the benchmarks' positional argv: removes `-j N`, `--threads N` or `--threads=N` and applies it.
void take_threads_arg(int& argc, char** argv);

}  // namespace moedmft
