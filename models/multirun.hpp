// Multi-run training (issue 5, CPU part): R independent runs of one Shape / ModelOptions trained
// as one computation. Each run keeps its own weights, ResolvedParam, seed and OptimizerConfig, and
// steps through exactly the code a CpuEngine runs (MoeNetwork forward/backward + Optimizer), so
// every run reproduces a separate CpuEngine run bit for bit.
//
// What makes it fast for small widths: a small run's GEMMs are too small to split over threads,
// so a single run leaves cores idle (or pays OpenMP fork/join per tiny GEMM). Here the runs are
// cut into blocks that the threads take, and a whole training loop runs inside ONE parallel
// region (no fork/join per step or per GEMM; the network's own parallel regions are nested and
// therefore inactive). A block's runs share one copy of each batch and step after each other on
// it while it is in cache.
//
// Not batched: the input-layer product x @ [W_in^1 ... W_in^R]. It would need a hook in
// MoeNetwork::forward (which computes x @ W_in itself) and, with the default D = 16, is a few
// percent of a step; see docs/multirun.md.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "models/engine.hpp"

namespace moedmft {

// A batch seen by one or more runs (labels may be empty).
template <class T>
struct RunBatch {
  Mat<T> x, y;
  std::vector<int> labels;
};

template <class T>
class MultiRunEngine {
 public:
  // threads: worker threads (0: omp_get_max_threads()); never more than the number of runs.
  explicit MultiRunEngine(int threads = 0);
  MultiRunEngine(const MultiRunEngine&) = delete;
  MultiRunEngine& operator=(const MultiRunEngine&) = delete;

  // Adds a run (already initialised); returns its index. Every run must share the first run's
  // Shape and ModelOptions (ConfigError otherwise); ResolvedParam and optimizer may differ.
  int add_run(MoeNetwork<T> net, const OptimizerConfig& optim);
  int size() const { return int(runs_.size()); }
  int threads() const;

  const MoeNetwork<T>& network(int r) const { return *runs_[r]->net; }
  MoeNetwork<T>& network(int r) { return *runs_[r]->net; }
  // The run's single-run engine (last_gradients(), network()), e.g. for diagnostics.
  TrainingEngine<T>& engine(int r) { return *runs_[r]->engine; }
  bool diverged(int r) const { return runs_[r]->diverged; }
  long diverged_at(int r) const { return runs_[r]->diverged_at; }  // -1 if not diverged
  long steps_taken(int r) const { return runs_[r]->steps; }          // steps attempted (incl. the diverging one)

  // One update of every live run on the same batch. losses[r]: the loss before the update (NaN
  // for runs that had already diverged). f (optional): each run's outputs on the batch.
  // A non-finite loss leaves that run's weights untouched and marks it diverged; later steps
  // skip it, and the other runs are not affected.
  void step(const Mat<T>& x, const Mat<T>& y, const std::vector<int>& labels, std::vector<double>& losses,
            std::vector<Mat<T>>* f = nullptr);
  // One update of every live run, run r on batches[batch_of[r]] (batch_of empty: batches[r]).
  void step(const std::vector<RunBatch<T>>& batches, const std::vector<int>& batch_of, std::vector<double>& losses,
            std::vector<Mat<T>>* f = nullptr);

  // `steps` updates of every run on a shared batch sequence, inside one parallel region. The
  // runs are cut into blocks of consecutive runs (at most runs_per_block(): the runs whose
  // working sets fit in the cache budget together, and at least one block per thread); threads
  // take blocks dynamically, a block's runs step together on each batch, to the last step.
  // batch(step, out) fills the batch of that step (called once per step by every worker thread,
  // concurrently: it must only read shared state). observe(run, step, loss, f) is called after
  // each run's step from the thread that owns the run (f is null unless want_outputs); it must
  // be safe to call concurrently for different runs. Runs stop at their divergence.
  using BatchFn = std::function<void(long step, RunBatch<T>& out)>;
  using ObserveFn = std::function<void(int run, long step, double loss, const Mat<T>* f)>;
  void train(long steps, const BatchFn& batch, const ObserveFn& observe, bool want_outputs = false);
  // Cache budget per thread for train()'s blocks (default 512 KiB); a huge value steps all of a
  // thread's runs together every step.
  void set_cache_budget(long bytes) { cache_budget_ = bytes; }
  int runs_per_block() const;

 private:
  struct Run {
    std::unique_ptr<MoeNetwork<T>> net;
    std::unique_ptr<CpuEngine<T>> engine;
    bool diverged = false;
    long diverged_at = -1;
    long steps = 0;
  };
  bool forks() const;  // whether the run loops open a parallel region
  double step_one(Run& run, const Mat<T>& x, const Mat<T>& y, const std::vector<int>& labels, Mat<T>* f);
  // Steps every live run in parallel through one(run, index, outputs); NaN for diverged runs; the
  // first exception of any run is rethrown after the loop.
  void step_live_runs(std::vector<double>& losses, std::vector<Mat<T>>* f,
                      const std::function<double(Run&, int, Mat<T>*)>& one);

  int threads_;
  long cache_budget_ = 512L << 10;  // bytes per thread (about half a typical L2)
  std::vector<std::unique_ptr<Run>> runs_;
};

extern template class MultiRunEngine<float>;
extern template class MultiRunEngine<double>;

}  // namespace moedmft
