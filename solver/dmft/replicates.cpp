#include "solver/dmft/replicates.hpp"

#include "models/types.hpp"

namespace moedmft::dmft {

namespace {
ReplicateSplit& current() {
  // Set once at start-up on the thread that runs the solves (main; one thread per emulated rank
  // in tests/test_dmft_samples_split.cpp) and read there: worker threads see one process.
  thread_local ReplicateSplit split;
  return split;
}
ReplicateProgressFn& progress_hook() {
  static ReplicateProgressFn progress;  // set around a solve by its caller, read by the solve
  return progress;
}
// The split of the solve in progress, per thread: set and read on the thread that calls MPI (and
// per emulated rank in tests/test_dmft_samples_split.cpp).
struct ActiveSampleSplit {
  int rank = 0, ranks = 1;
  const RankSum* sum = nullptr;
};
ActiveSampleSplit& active() {
  thread_local ActiveSampleSplit split;
  return split;
}
}  // namespace

void set_replicate_progress(ReplicateProgressFn progress) { progress_hook() = std::move(progress); }
const ReplicateProgressFn& replicate_progress() { return progress_hook(); }

void set_replicate_split(ReplicateSplit split) { current() = std::move(split); }
void set_rank_split_mode(RankSplit mode) { current().mode = mode; }
const ReplicateSplit& replicate_split() { return current(); }

bool splits_samples(int R) {
  const ReplicateSplit& split = current();
  if (split.ranks <= 1 || !split.sum) return false;
  return split.mode == RankSplit::samples || (split.mode == RankSplit::automatic && R < split.ranks);
}

ScopedSampleSplit::ScopedSampleSplit(int rank, int ranks, const RankSum* sum) { active() = {rank, ranks, sum}; }
ScopedSampleSplit::~ScopedSampleSplit() { active() = {}; }

Population population(int S, const std::string& what) {
  Population pop;
  pop.S = pop.rows = S;
  const ActiveSampleSplit& split = active();
  if (split.ranks <= 1 || !split.sum) return pop;
  // Slices of whole antithetic pairs (S is even whenever pairs are used), as even as they go.
  const int pairs = S / 2;
  if (pairs < split.ranks)
    throw ConfigError(what + ": " + std::to_string(S) + " samples cannot be split over " +
                      std::to_string(split.ranks) + " MPI ranks (at least 2 per rank; raise it or use --mpi-split replicates)");
  auto first = [&](int k) { return k == split.ranks ? S : 2 * int((long(pairs) * k) / split.ranks); };
  pop.begin = first(split.rank);
  pop.rows = first(split.rank + 1) - pop.begin;
  pop.sum = split.sum;
  return pop;
}

void refuse_sample_split(const std::string& what) {
  if (active().sum)
    throw ConfigError("--mpi-split: " + what + " cannot split its samples over MPI ranks (use --mpi-split replicates)");
}

}  // namespace moedmft::dmft
