// MPI for the DMFT solves: under mpirun (or srun), `moedmft dmft` and `moedmft dmft-moe` spread
// their replicates, or the samples of every replicate, over the ranks (solver/dmft/replicates.hpp)
// and rank 0 alone writes the file.
// Built when CMake finds MPI (MOEDMFT_HAVE_MPI); without it a multi-rank launch is refused, since
// every rank would solve everything and write the same file.
#pragma once
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "solver/dmft/replicates.hpp"

namespace moedmft {

// The rank count and this rank as the launcher announced them in the environment (OpenMPI, PMI,
// PMIx): 1 and 0 if none.
inline int launched_ranks() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
    if (const char* v = std::getenv(name)) return std::max(1, std::atoi(v));
  return 1;
}
inline int launched_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"})
    if (const char* v = std::getenv(name)) return std::max(0, std::atoi(v));
  return 0;
}

// Initialises MPI (only when started by an MPI launcher: a plain run, a test or a Slurm sweep
// shard never touches MPI), installs the replicate split, and finalises at exit.
class MpiSession {
 public:
  MpiSession(int& argc, char**& argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  int rank() const { return rank_; }
  int ranks() const { return ranks_; }
  bool built_with_mpi() const;

 private:
  bool active_ = false;
  int rank_ = 0, ranks_ = 1;
};

// `--mpi-split auto|replicates|samples` on the DMFT commands (ignored in one process).
struct MpiSplitOption {
  std::string value = "auto";
  void apply() const {
    dmft::set_rank_split_mode(value == "samples"      ? dmft::RankSplit::samples
                              : value == "replicates" ? dmft::RankSplit::replicates
                                                      : dmft::RankSplit::automatic);
  }
};
inline void add_mpi_split_option(CLI::App& app, MpiSplitOption& split) {
  app.add_option("--mpi-split", split.value,
                 "under mpirun: spread the replicates (bitwise equal to one process) or every replicate's samples "
                 "(equal to round-off); auto = samples when there are fewer replicates than ranks")
      ->check(CLI::IsMember({"auto", "replicates", "samples"}));
}

#ifndef MOEDMFT_HAVE_MPI
inline MpiSession::MpiSession(int&, char**&) : rank_(launched_rank()), ranks_(launched_ranks()) {}
inline MpiSession::~MpiSession() {}
inline bool MpiSession::built_with_mpi() const { return false; }
#endif

}  // namespace moedmft
