#include "models/multirun.hpp"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <limits>
#include <string>

#include "models/parallel.hpp"

namespace moedmft {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool same_shape(const Shape& a, const Shape& b) {
  return a.D == b.D && a.N == b.N && a.Ne == b.Ne && a.M == b.M && a.K == b.K && a.L == b.L && a.C == b.C;
}
bool same_options(const ModelOptions& a, const ModelOptions& b) {
  return a.routing == b.routing && a.gate == b.gate && a.selection == b.selection && a.renormalize == b.renormalize &&
         a.residual == b.residual && a.activation == b.activation && a.loss == b.loss && a.m_base == b.m_base;
}
}  // namespace

template <class T>
MultiRunEngine<T>::MultiRunEngine(int threads) : threads_(threads > 0 ? threads : omp_get_max_threads()) {}

template <class T>
int MultiRunEngine<T>::threads() const {
  return std::max(1, std::min(threads_, size()));
}

// A one-thread (or nested) region would not add threads, and it would hide the enclosing team
// from Eigen, which then opens a region of its own around every GEMM (see should_fork).
template <class T>
bool MultiRunEngine<T>::forks() const {
  return threads() > 1 && should_fork(true);
}

template <class T>
int MultiRunEngine<T>::add_run(MoeNetwork<T> net, const OptimizerConfig& optim) {
  if (!runs_.empty()) {
    const MoeNetwork<T>& first = *runs_.front()->net;
    if (!same_shape(first.shape(), net.shape()) || !same_options(first.options(), net.options()))
      throw ConfigError("multirun: run " + std::to_string(runs_.size()) +
                        " has a different model shape or model options than run 0 (batched runs share them)");
  }
  auto run = std::make_unique<Run>();
  run->net = std::make_unique<MoeNetwork<T>>(std::move(net));
  run->engine = std::make_unique<CpuEngine<T>>(*run->net, optim);
  runs_.push_back(std::move(run));
  return int(runs_.size()) - 1;
}

template <class T>
double MultiRunEngine<T>::step_one(Run& run, const Mat<T>& x, const Mat<T>& y, const std::vector<int>& labels,
                                   Mat<T>* f) {
  // Exactly CpuEngine::step: a non-finite loss leaves the weights untouched.
  const double loss = run.engine->step(x, y, labels, f);
  if (!std::isfinite(loss)) {
    run.diverged = true;
    run.diverged_at = run.steps;
  }
  ++run.steps;
  return loss;
}

template <class T>
void MultiRunEngine<T>::step_live_runs(std::vector<double>& losses, std::vector<Mat<T>>* f,
                                       const std::function<double(Run&, int, Mat<T>*)>& one) {
  const int R = size();
  losses.assign(R, kNaN);
  if (f) f->resize(R);
  FirstFailure failure;
  auto step_run = [&](int r) {
    Run& run = *runs_[r];
    if (run.diverged) return;
    failure.run([&] { losses[r] = one(run, r, f ? &(*f)[r] : nullptr); });
  };
  // One group of runs per thread (static), single-threaded GEMMs inside each run.
  if (forks()) {
#pragma omp parallel for schedule(static) num_threads(threads())
    for (int r = 0; r < R; ++r) step_run(r);
  } else {
    for (int r = 0; r < R; ++r) step_run(r);
  }
  failure.rethrow();
}

template <class T>
void MultiRunEngine<T>::step(const Mat<T>& x, const Mat<T>& y, const std::vector<int>& labels,
                             std::vector<double>& losses, std::vector<Mat<T>>* f) {
  step_live_runs(losses, f, [&](Run& run, int, Mat<T>* out) { return step_one(run, x, y, labels, out); });
}

template <class T>
void MultiRunEngine<T>::step(const std::vector<RunBatch<T>>& batches, const std::vector<int>& batch_of,
                             std::vector<double>& losses, std::vector<Mat<T>>* f) {
  if (batch_of.empty() ? int(batches.size()) != size() : int(batch_of.size()) != size())
    throw ConfigError("multirun: need one batch (or one batch index) per run");
  step_live_runs(losses, f, [&](Run& run, int r, Mat<T>* out) {
    const RunBatch<T>& b = batches.at(batch_of.empty() ? r : batch_of[r]);
    return step_one(run, b.x, b.y, b.labels, out);
  });
}

template <class T>
int MultiRunEngine<T>::runs_per_block() const {
  if (runs_.empty()) return 1;
  // Working set of one run's step: weights, gradients and up to two optimizer moments.
  long params = 0;
  for (const auto& p : runs_.front()->net->params()) params += long(p.data.size());
  const double bytes = 4.0 * double(params) * sizeof(T);
  return int(std::clamp(double(cache_budget_) / bytes, 1.0, double(size())));
}

template <class T>
void MultiRunEngine<T>::train(long steps, const BatchFn& batch, const ObserveFn& observe, bool want_outputs) {
  const int R = size();
  if (R == 0) return;
  FirstFailure failure;
  // Blocks of consecutive runs whose working sets fit in cache together (and at least one block
  // per thread). One parallel region for the whole loop: a thread takes the next free block
  // (dynamic, so a thread that gets less of a loaded machine takes fewer blocks) and steps its
  // runs one after another on its own copy of each step's batch, with no barrier between steps.
  // (Stepping all runs on every batch would evict each run's weights between its steps once
  // they outgrow the cache: at N = Ne = 64 one float64 run needs about 2 MB.)
  const int team = threads();
  const int block = std::max(1, std::min(runs_per_block(), (R + team - 1) / team));
  const int blocks = (R + block - 1) / block;
  auto train_block = [&](int k) {
    if (failure.failed()) return;
    const int first = k * block, last = std::min(R, first + block);
    RunBatch<T> b;
    Mat<T> f;
    failure.run([&] {
      for (long s = 0; s < steps && !failure.failed(); ++s) {
        bool live = false;
        for (int r = first; r < last; ++r) live = live || !runs_[r]->diverged;
        if (!live) break;
        batch(s, b);
        for (int r = first; r < last; ++r) {
          Run& run = *runs_[r];
          if (run.diverged) continue;
          const double loss = step_one(run, b.x, b.y, b.labels, want_outputs ? &f : nullptr);
          if (observe) observe(r, s, loss, want_outputs ? &f : nullptr);
        }
      }
    });
  };
  if (forks()) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(team)
    for (int k = 0; k < blocks; ++k) train_block(k);
  } else {
    for (int k = 0; k < blocks; ++k) train_block(k);
  }
  failure.rethrow();
}

template class MultiRunEngine<float>;
template class MultiRunEngine<double>;

}  // namespace moedmft
