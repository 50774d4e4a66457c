// What a training loop needs from a backend, so that drivers (train, sweeps) are written once.
// CpuEngine runs MoeNetwork + Optimizer in place. A device backend (issue 5) keeps its weights on
// the device, implements step(), and refreshes a host MoeNetwork only when network() is called
// (checkpoints and diagnostics, at their cadence).
#pragma once
#include <cmath>
#include <vector>

#include "models/network.hpp"
#include "models/optimizer.hpp"

namespace moedmft {

template <class T>
class TrainingEngine {
 public:
  virtual ~TrainingEngine() = default;
  // One update on a batch. Returns the loss before the update and, if f is given, the outputs.
  // A non-finite loss leaves the weights untouched (the caller records the divergence).
  virtual double step(const Mat<T>& x, const Mat<T>& y, const std::vector<int>& labels, Mat<T>* f) = 0;
  // Gradients of the last successful step, in the layout of MoeNetwork::params().
  virtual const std::vector<Vec<T>>& last_gradients() = 0;
  // Host view of the current weights.
  virtual const MoeNetwork<T>& network() = 0;
};

template <class T>
class CpuEngine final : public TrainingEngine<T> {
 public:
  CpuEngine(MoeNetwork<T>& net, const OptimizerConfig& optim)
      : net_(net), opt_(optim, net.param()), balance_(net.options().selection == Selection::biased_sigmoid) {}

  double step(const Mat<T>& x, const Mat<T>& y, const std::vector<int>& labels, Mat<T>* f) override {
    net_.forward(x, cache_);
    const double loss = net_.loss(cache_, y, labels, &df_);
    if (f) *f = cache_.f;
    if (!std::isfinite(loss)) return loss;
    net_.backward(cache_, df_, grads_);
    opt_.step(net_.params(), grads_);
    if (balance_) net_.update_router_bias(cache_, net_.param()[Group::bias].lr);
    return loss;
  }
  const std::vector<Vec<T>>& last_gradients() override { return grads_; }
  const MoeNetwork<T>& network() override { return net_; }

 private:
  MoeNetwork<T>& net_;
  Optimizer<T> opt_;
  bool balance_;
  ForwardCache<T> cache_;
  Mat<T> df_;
  std::vector<Vec<T>> grads_;
};

}  // namespace moedmft
