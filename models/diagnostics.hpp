// Training diagnostics of model.md section 6, measured on a fixed probe batch: activation,
// weight and gradient RMS, the refined coordinate check (effective and propagating updates of
// every matrix), the aggregation decomposition init/prop/eff/cross and the same split of the
// expert-induced backward signal into the block input, router statistics and loads.
//
// Conventions: RMS = sqrt(mean of squares over all entries). Expert quantities are DENSE: every
// expert is evaluated on every probe token (unselected experts contribute with gate 0 to the
// gated sums). "Initial" quantities (W_0, the block inputs x_0, the dense activations a_m(0),
// the readout input) are captured once by the constructor on the probe batch.
#pragma once
#include <string>
#include <vector>

#include "models/network.hpp"

namespace moedmft {

// Vector-valued terms of one block on the probe batch, each [P,N].
//   agg_*  : aggregation * sum_m g_m(t) s2 {a_m(0) W2_m(0), da_m W2_m(0), a_m(0) dW2_m, da_m dW2_m};
//            their sum is the block's aggregated output hagg.
//   back_* : s1 dz_m W1_m^T summed over experts, with W2 = W2(0) + dW2 inside dz and
//            W1 = W1(0) + dW1 outside: init (W2(0), W1(0)), w2 (dW2, W1(0)), w1 (W2(0), dW1),
//            cross (dW2, dW1); their sum is the expert-induced part of dL/d(block input).
template <class T>
struct BlockTerms {
  Mat<T> agg_init, agg_prop, agg_eff, agg_cross;
  Mat<T> back_init, back_w2, back_w1, back_cross;
};

template <class T>
class DiagnosticsProbe {
 public:
  // Captures W_0 and, on the probe batch (x, y, labels), the initial block inputs, the dense
  // expert activations of every expert on every probe token, and the readout input.
  // labels may be empty (cross-entropy then takes the argmax of y, as MoeNetwork::loss does).
  DiagnosticsProbe(const MoeNetwork<T>& net_at_init, Mat<T> x, Mat<T> y, std::vector<int> labels);

  // Column names, fixed for the run, in the order of measure().
  const std::vector<std::string>& names() const { return names_; }
  // Index of a column, or -1.
  int column(const std::string& name) const;

  // One row of values at the network's current weights. last_grads: gradients of the last
  // training step (grad RMS columns); nullptr -> those columns are NaN.
  std::vector<double> measure(const MoeNetwork<T>& net, const std::vector<Vec<T>>* last_grads) const {
    return measure(net, last_grads, nullptr);
  }
  // Same, and (if terms != nullptr) the per-block vector terms behind the agg/back columns.
  std::vector<double> measure(const MoeNetwork<T>& net, const std::vector<Vec<T>>* last_grads,
                              std::vector<BlockTerms<T>>* terms) const;

  const Mat<T>& probe_x() const { return x_; }

 private:
  Shape shape_;
  ModelOptions options_;
  Mat<T> x_, y_;
  std::vector<int> labels_;
  std::vector<Vec<T>> w0_;                     // initial weights per group
  std::vector<Mat<T>> block_in0_;              // [L] block inputs x_0 [P,N]
  std::vector<std::vector<Mat<T>>> act0_;      // [L][M] dense a_m(0) [P,Ne]
  Mat<T> readout_in0_;                         // [P,N]
  std::vector<std::string> names_;
};

extern template class DiagnosticsProbe<float>;
extern template class DiagnosticsProbe<double>;

}  // namespace moedmft
