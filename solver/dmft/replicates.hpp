// How a DMFT solve shares its work over MPI ranks (internal to solver/dmft, plus the hook the
// MPI driver installs). By default one process does everything. Under MPI
// (experiments/mpi_replicates.cpp) either
//  - replicates: rank k of n solves replicates k, k + n, ..., and the packed traces are exchanged
//    so that every rank holds all R of them in replicate order. The statistics are then those of
//    a one-process solve, bit for bit: a replicate's seed depends only on its index; or
//  - samples: every rank marches every replicate, one after another, on its slice of each
//    sample population, and the ranks add their partial averages at every step
//    (solver/dmft/population.hpp): equal to the one-process solve to round-off.
#pragma once
#include <atomic>
#include <exception>
#include <functional>
#include <stdexcept>
#include <vector>

#include "models/types.hpp"
#include "solver/dmft/memory.hpp"
#include "solver/dmft/population.hpp"

namespace moedmft::dmft {

enum class RankSplit { automatic, replicates, samples };

struct ReplicateSplit {
  int rank = 0, ranks = 1;
  // automatic: samples when there are fewer replicates than ranks, else replicates.
  RankSplit mode = RankSplit::automatic;
  RankSum sum;  // the collective sum of the samples split
  // Collective over the ranks. blobs[r] is replicate r's packed trace on the rank that solved it
  // and empty elsewhere; share fills in every blob on every rank. `ok`: this rank's own solves
  // succeeded; the result says whether every rank's did (then nothing was exchanged).
  std::function<bool(std::vector<std::vector<double>>& blobs, bool ok)> share;
};
// The split a command asked for (--mpi-split); kept until the next call.
void set_rank_split_mode(RankSplit mode);
void set_replicate_split(ReplicateSplit split);
const ReplicateSplit& replicate_split();
// Whether a solve of R replicates splits its samples (never in one process).
bool splits_samples(int R);
// Progress of the solves (experiments/progress.hpp draws it; this library knows nothing of it):
// called as each of this process's replicates finishes with (finished, this process's count),
// from the OpenMP worker threads but one call at a time. A throwing callback is ignored.
using ReplicateProgressFn = std::function<void(int done, int total)>;
void set_replicate_progress(ReplicateProgressFn progress);
const ReplicateProgressFn& replicate_progress();
struct ScopedReplicateProgress {
  explicit ScopedReplicateProgress(ReplicateProgressFn progress) { set_replicate_progress(std::move(progress)); }
  ~ScopedReplicateProgress() { set_replicate_progress({}); }
  ScopedReplicateProgress(const ScopedReplicateProgress&) = delete;
  ScopedReplicateProgress& operator=(const ScopedReplicateProgress&) = delete;
};
inline void report_replicate_done(std::atomic<int>& finished, int total) {
  const ReplicateProgressFn& progress = replicate_progress();
  if (!progress) return;
  const int done = ++finished;
#pragma omp critical(moedmft_replicate_progress)
  try {
    progress(done, total);
  } catch (...) {
  }
}

// Rank 0 alone writes files and prints results.
inline bool is_output_rank() { return replicate_split().rank == 0; }

// Flattens a trace's members (its fields(visitor) lists every one) into doubles: each matrix as
// rows, cols, values; each vector as its length, then its elements.
struct TracePacker {
  std::vector<double> data;
  void put(int v) { data.push_back(v); }
  void put(const Mat<double>& m) {
    data.push_back(double(m.rows()));
    data.push_back(double(m.cols()));
    data.insert(data.end(), m.data(), m.data() + m.size());
  }
  void put(const std::vector<double>& v) {
    data.push_back(double(v.size()));
    data.insert(data.end(), v.begin(), v.end());
  }
  template <class T>
  void put(const std::vector<T>& v) {
    data.push_back(double(v.size()));
    for (const T& x : v) put(x);
  }
  template <class... F>
  void operator()(const F&... fields) {
    (put(fields), ...);
  }
};

struct TraceUnpacker {
  const std::vector<double>& data;
  size_t at = 0;
  size_t count() { return size_t(data.at(at++)); }
  void get(int& v) { v = int(data.at(at++)); }
  void get(Mat<double>& m) {
    const Eigen::Index rows = Eigen::Index(count()), cols = Eigen::Index(count());
    if (at + size_t(rows * cols) > data.size()) throw std::runtime_error("dmft: truncated replicate trace");
    m = Eigen::Map<const Mat<double>>(data.data() + at, rows, cols);
    at += size_t(rows * cols);
  }
  void get(std::vector<double>& v) {
    const size_t n = count();
    if (at + n > data.size()) throw std::runtime_error("dmft: truncated replicate trace");
    v.assign(data.begin() + long(at), data.begin() + long(at + n));
    at += n;
  }
  template <class T>
  void get(std::vector<T>& v) {
    v.resize(count());
    for (T& x : v) get(x);
  }
  template <class... F>
  void operator()(F&... fields) {
    (get(fields), ...);
  }
};

// Runs march(r) for this process's replicates on up to `threads` threads (as parallel_replicates;
// pass the same count a one-process solve uses, so that each march sees the same threading) and
// returns all R traces. A failure on any rank throws on every rank: none waits forever.
template <class Trace, class March>
std::vector<Trace> solve_replicates(int R, int threads, March march) {
  const ReplicateSplit& split = replicate_split();
  std::vector<Trace> runs(R);
  std::atomic<int> finished{0};
  if (splits_samples(R)) {
    // MPI is called from this thread alone (MPI_THREAD_FUNNELED): the replicates run in turn.
    const ScopedSampleSplit scope(split.rank, split.ranks, &split.sum);
    for (int r = 0; r < R; ++r) {
      runs[r] = march(r);
      report_replicate_done(finished, R);
    }
    return runs;
  }
  if (split.ranks <= 1 || !split.share) {
    parallel_replicates(R, threads, [&](int r) {
      runs[r] = march(r);
      report_replicate_done(finished, R);
    });
    return runs;
  }
  std::vector<int> mine;
  for (int r = split.rank; r < R; r += split.ranks) mine.push_back(r);
  std::exception_ptr failure;
  try {
    parallel_replicates(int(mine.size()), threads, [&](int i) {
      runs[mine[i]] = march(mine[i]);
      report_replicate_done(finished, int(mine.size()));
    });
  } catch (...) {
    failure = std::current_exception();
  }
  std::vector<std::vector<double>> blobs(R);
  if (!failure)
    for (int r : mine) {
      TracePacker packer;
      runs[r].fields(packer);
      blobs[r] = std::move(packer.data);
    }
  const bool all_ok = split.share(blobs, !failure);
  if (failure) std::rethrow_exception(failure);
  if (!all_ok) throw std::runtime_error("dmft: a replicate solve failed on another MPI rank (its message is above)");
  for (int r = 0; r < R; ++r)
    if (r % split.ranks != split.rank) {
      TraceUnpacker unpacker{blobs[r]};
      runs[r].fields(unpacker);
    }
  return runs;
}

}  // namespace moedmft::dmft
