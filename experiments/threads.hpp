// OpenMP threads of every moedmft binary: passive waiting by default and one `--threads/-j`.
#pragma once
#include <CLI/CLI.hpp>

#include <string>

namespace moedmft {

// Call first in main(). Two settings that the C runtime reads only when the process starts, so
// this sets what is missing and re-executes /proc/self/exe once with argv unchanged (an env marker
// stops a loop):
//  - OMP_WAIT_POLICY=passive (unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set). OpenMP worker
//    threads spin between parallel regions by default, which on a machine shared with other jobs
//    made `train` ~8x slower.
//  - GLIBC_TUNABLES=kAllocatorTunables (unless GLIBC_TUNABLES is set). The DMFT marches allocate
//    histories and GEMM packing buffers of 1-100 MB; by default glibc maps each one fresh and the
//    first touch of every 4 KiB page faults (about 35% of a regime-II solve in a VM). With this
//    setting, large blocks come from transparent huge pages (THP in madvise mode), and blocks
//    below 256 MiB are reused from the heap instead of being unmapped: regime II 1.9x and the
//    deep sweep 1.2-1.6x faster (docs/dmft.md, "Throughput").
// An explicit user setting always wins; under an MPI launcher nothing is done (the launcher owns
// the process) and docs/cluster.md says to export the variables there.
inline constexpr const char* kAllocatorTunables =
    "glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=1073741824";
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
