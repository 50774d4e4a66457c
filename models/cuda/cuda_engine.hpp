// CUDA backend of the simulator (issue 5): the public, CUDA-free interface.
//
// Plain C++ declarations only (no CUDA headers), so code compiled by the host compiler can use
// the backend. The definitions live in the moedmft_cuda library, which CMake builds only when
// nvcc is found (then MOEDMFT_HAVE_CUDA=1 is defined for the targets that link it). Without a
// device, cuda_device_available() returns false and says why; the engines throw.
//
// Semantics equal CpuEngine's (models/engine.hpp): step() returns the loss before the update,
// a non-finite loss leaves the weights untouched, last_gradients() has MoeNetwork::params()'s
// layout, network() copies the device weights back into the host MoeNetwork that was passed in.
// Weights, optimizer moments and activations stay on the device between steps.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/engine.hpp"

namespace moedmft {

struct CudaOptions {
  bool tf32 = false;  // TF32 tensor cores for float32 matmuls (float64 is unaffected)
  int device = 0;     // CUDA device ordinal
};

// True if the CUDA runtime sees a device; otherwise false with the reason in *why. On success
// *why (if given) receives the device name.
bool cuda_device_available(std::string* why = nullptr);

// A device engine for `net` (weights are uploaded now; `net` must outlive the engine).
// Throws std::runtime_error (no device, CUDA errors) or ConfigError (unsupported options).
template <class T>
std::unique_ptr<TrainingEngine<T>> make_cuda_engine(MoeNetwork<T>& net, const OptimizerConfig& optim,
                                                    const CudaOptions& options = {});

// R same-shape runs trained at once: each run has its own weights, resolved parameterization
// (multipliers, LRs, eps, weight decay, gate factor, ...), betas and schedule; the model options
// and the optimizer kind must be equal. Every matmul is one strided-batched GEMM over the runs.
// Results equal R separate CudaEngine runs (to rounding of the GEMM kernels).
template <class T>
class CudaMultiRunEngine {
 public:
  CudaMultiRunEngine(const std::vector<MoeNetwork<T>*>& nets, const std::vector<OptimizerConfig>& optims,
                     const CudaOptions& options = {});
  ~CudaMultiRunEngine();
  CudaMultiRunEngine(const CudaMultiRunEngine&) = delete;
  CudaMultiRunEngine& operator=(const CudaMultiRunEngine&) = delete;

  int runs() const;
  // One update of every run. x, y and labels are shared by all runs (1 entry) or per run
  // (R entries); labels may be empty (then y is used, as on the CPU). Returns the R losses
  // before the update; a run with a non-finite loss is not updated. f (optional) gets the R
  // outputs.
  std::vector<double> step(const std::vector<const Mat<T>*>& x, const std::vector<const Mat<T>*>& y,
                           const std::vector<const std::vector<int>*>& labels, std::vector<Mat<T>>* f = nullptr);
  std::vector<double> step(const Mat<T>& x, const Mat<T>& y, const std::vector<int>& labels = {},
                           std::vector<Mat<T>>* f = nullptr);
  // Gradients of run r's last successful step (MoeNetwork::params() layout).
  const std::vector<Vec<T>>& gradients(int r);
  // Run r's weights, copied back into the MoeNetwork passed to the constructor.
  const MoeNetwork<T>& network(int r);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

extern template class CudaMultiRunEngine<float>;
extern template class CudaMultiRunEngine<double>;

}  // namespace moedmft
