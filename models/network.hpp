// The MLP-MoE network of model.md section 2 on the CPU: forward, hand-written backward,
// soft and top-K routing with gather/scatter so that experts only see their routed tokens.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "models/parameterization.hpp"
#include "models/types.hpp"

namespace moedmft {

// One weight tensor per parameter group; blocks are stacked along a leading L axis.
template <class T>
struct ParamTensor {
  std::string name;        // checkpoint name (w_in, w_router, w_expert1, w_expert2, w_out, b_router)
  Group group;
  std::vector<int> dims;   // row-major, as stored (leading L axis dropped when L == 1)
  Vec<T> data;
};

// Everything the backward pass and the diagnostics need from one block's forward pass.
template <class T>
struct BlockCache {
  Mat<T> input;     // [B,N] block input
  Mat<T> psi;       // [B,M] router logits
  Mat<T> gate_raw;  // [B,M] gate_fn values before renormalisation (0 where unselected)
  Mat<T> gates;     // [B,M] final gates g (0 where unselected)
  std::vector<int> selection;            // [B*K] selected experts per token, ascending
  std::vector<int> slot;                 // [B*K] row of token t's j-th choice in that expert's lists
  std::vector<std::vector<int>> tokens;  // per expert: routed token rows (all rows for soft)
  std::vector<Mat<T>> routed_input;      // per expert [b_m,N] gathered block input (top-K only)
  std::vector<Mat<T>> pre;   // per expert [b_m,Ne] pre-activation
  std::vector<Mat<T>> act;   // per expert [b_m,Ne] a_m
  std::vector<Mat<T>> out;   // per expert [b_m,N]  o_m
  Mat<T> aggregated;         // [B,N] hagg = aggregation * sum_m g_m o_m
  Mat<T> output;             // [B,N] block output
};

template <class T>
struct ForwardCache {
  Mat<T> x;        // [B,D]
  Mat<T> pre_in;   // [B,N] pre-activation of the input layer
  Mat<T> h1;       // [B,N]
  std::vector<BlockCache<T>> blocks;
  Mat<T> f;        // [B,C]
};

template <class T>
class MoeNetwork {
 public:
  MoeNetwork(const Shape& shape, const ModelOptions& options, const ResolvedParam& param);

  const Shape& shape() const { return shape_; }
  const ModelOptions& options() const { return options_; }
  const ResolvedParam& param() const { return param_; }
  void set_param(const ResolvedParam& p) { param_ = p; }

  // Draw weights with the resolved init stds (zero init and shared experts honoured).
  void initialize(uint64_t seed);

  std::vector<ParamTensor<T>>& params() { return params_; }
  const std::vector<ParamTensor<T>>& params() const { return params_; }
  ParamTensor<T>& param_tensor(Group g) { return params_[static_cast<int>(g)]; }
  const ParamTensor<T>& param_tensor(Group g) const { return params_[static_cast<int>(g)]; }

  // Views into the stacked storage.
  ConstMatMap<T> w_in() const;
  ConstMatMap<T> w_out() const;
  ConstMatMap<T> w_router(int block) const;
  ConstMatMap<T> w_expert1(int block, int expert) const;
  ConstMatMap<T> w_expert2(int block, int expert) const;
  const T* router_bias(int block) const;

  void forward(const Mat<T>& x, ForwardCache<T>& cache) const;
  // Loss of cache.f against y (labels used for cross-entropy); writes dL/df into dloss_df.
  double loss(const ForwardCache<T>& cache, const Mat<T>& y, const std::vector<int>& labels,
              Mat<T>* dloss_df) const;
  // Gradients of the loss with respect to every group (same layout as params(); the
  // router-bias entry is always zero: the bias receives no gradient).
  // block_output_grads (optional) receives dL/d(output of block l) for every block.
  void backward(const ForwardCache<T>& cache, const Mat<T>& dloss_df, std::vector<Vec<T>>& grads,
                std::vector<Mat<T>>* block_output_grads = nullptr) const;
  // Convenience: forward + loss + backward.
  double loss_and_gradients(const Mat<T>& x, const Mat<T>& y, const std::vector<int>& labels,
                            std::vector<Vec<T>>& grads, ForwardCache<T>* cache = nullptr) const;

  // Jiang et al. balancing: b <- b - rate * (load - kappa) from the last forward's routing.
  void update_router_bias(const ForwardCache<T>& cache, double rate);

 private:
  void forward_block(int block, const Mat<T>& input, BlockCache<T>& bc) const;
  void route(int block, BlockCache<T>& bc) const;
  void backward_block(int block, const BlockCache<T>& bc, const Mat<T>& d_output, Mat<T>& d_input,
                      std::vector<Vec<T>>& grads) const;

  Shape shape_;
  ModelOptions options_;
  ResolvedParam param_;
  std::vector<ParamTensor<T>> params_;
};

// Elementwise activation and derivative (gelu is the exact erf form).
template <class T>
void apply_activation(Activation a, const Mat<T>& pre, Mat<T>& out);
template <class T>
void activation_derivative(Activation a, const Mat<T>& pre, Mat<T>& out);

// Top-K of one row of scores: indices of the K largest, ties to the lower index, ascending.
void select_topk(const double* scores, int M, int K, std::vector<int>& selected);

extern template class MoeNetwork<float>;
extern template class MoeNetwork<double>;

}  // namespace moedmft
