// Internal interface between the host adapters (cuda_engine.cpp, compiled by the C++ compiler
// with Eigen) and the device code (device_moe.cu, compiled by nvcc). Plain C++: no Eigen and no
// CUDA headers, so neither side needs the other's toolchain. Not part of the public API; use
// models/cuda/cuda_engine.hpp.
#pragma once
#include <array>
#include <memory>
#include <string>
#include <vector>

namespace moedmft::cuda_detail {

inline constexpr int kGroups = 6;  // in, router, expert1, expert2, out, bias (as Group)
enum GroupIndex { kIn = 0, kRouter, kExpert1, kExpert2, kOut, kBias };

struct DeviceShape {
  int R = 1;  // runs trained together
  int D = 0, N = 0, Ne = 0, M = 0, K = 0, L = 1, C = 1;
  int routing = 0;     // 0 soft, 1 topk                       (as Routing)
  int gate = 0;        // 0 sigmoid, 1 softmax, 2 linear       (as GateFn)
  int selection = 0;   // 0 logits, 1 biased_sigmoid           (as Selection)
  int activation = 0;  // 0 gelu, 1 tanh, 2 relu, 3 identity   (as Activation)
  int loss = 0;        // 0 mse, 1 cross_entropy               (as LossKind)
  bool renormalize = false, residual = false;
  int optimizer = 0;   // 0 sgd, 1 adam, 2 adamw, 3 signgd     (as OptimizerKind)
  bool tf32 = false;   // TF32 tensor cores for float32 matmuls
  int device = 0;
};

// Per-run constants of the forward and backward pass.
struct RunConstants {
  std::array<double, kGroups> multiplier{};
  double gate_factor = 1, aggregation = 1, residual_multiplier = 1;
};

// Per-run, per-group optimizer values of one step (already scheduled and bias corrected).
struct StepHyper {
  double lr = 0, wd = 0, eps = 0, beta1 = 0, beta2 = 0, step_size = 0, root2 = 1;
};

template <class T>
class DeviceMoe {
 public:
  DeviceMoe(const DeviceShape& shape, const std::vector<RunConstants>& constants);
  ~DeviceMoe();
  DeviceMoe(const DeviceMoe&) = delete;
  DeviceMoe& operator=(const DeviceMoe&) = delete;

  // Elements of one run's tensor of group g (host layout, [L?][...] row-major).
  long group_size(int g) const;
  void upload(int g, int run, const T* host);
  void download(int g, int run, T* host) const;
  void download_grad(int g, int run, T* host) const;

  // Forward and loss for all runs. x is [B,D] (shared) or [R,B,D]; y is [B,C] or [R,B,C];
  // labels (may be null) are [B] or [R,B]. Writes the R losses; f (may be null) gets [R,B,C].
  void forward_loss(int B, const T* x, bool x_shared, const T* y, bool y_shared, const int* labels,
                    bool labels_shared, double* losses, T* f);
  // Gradients of the last forward for every run (kept on the device).
  void backward();
  // One optimizer step from the current gradients for the runs with active[r] != 0; hyper is
  // [R][kGroups]. bias_rate (R values) non-empty applies Jiang load balancing to the router bias.
  void update(const std::vector<char>& active, const std::vector<StepHyper>& hyper,
              const std::vector<double>& bias_rate);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

bool device_available(std::string* why);

extern template class DeviceMoe<float>;
extern template class DeviceMoe<double>;

}  // namespace moedmft::cuda_detail
