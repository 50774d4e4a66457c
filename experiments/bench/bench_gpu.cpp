// GPU training-step benchmark (not a test; needs a CUDA device, built only with the CUDA backend).
//
//   moedmft_bench_gpu [all|shapes|sweep] [--tf32] [--config experiments/configs/demo_regime1_mup.toml]
//
// shapes: ms per step and TFLOP/s (matmul FLOPs, counted as bench_train.cpp and
//   scripts/reference/bench_torch.py count them) of the small and large shapes of bench_train.cpp
//   in float32 with Adam and top-K routing, against cuBLAS sgemm measured in the same run.
// sweep: regime I muP (the demo config), 5 widths x 8 LRs x 3 seeds, 200 steps, float64:
//   wall time with the 24 runs of each width batched in one CudaMultiRunEngine, and with the
//   runs one after another through the TrainingEngine (train_run), plus the best LR per width.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "experiments/bench/bench_model.hpp"
#include "experiments/run_config.hpp"
#include "experiments/trainer.hpp"
#include "models/cuda/cuda_engine.hpp"
#include "models/random.hpp"

using namespace moedmft;
using namespace moedmft::bench;

namespace {

using Clock = std::chrono::steady_clock;

#define BENCH_CUDA(expr)                                                                                   \
  do {                                                                                                     \
    const cudaError_t e_ = (expr);                                                                         \
    if (e_ != cudaSuccess)                                                                                 \
      throw std::runtime_error(std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": " #expr ": " +    \
                               cudaGetErrorString(e_));                                                    \
  } while (0)
#define BENCH_CUBLAS(expr)                                                                                 \
  do {                                                                                                     \
    const cublasStatus_t s_ = (expr);                                                                      \
    if (s_ != CUBLAS_STATUS_SUCCESS)                                                                       \
      throw std::runtime_error(std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": " #expr ": " +    \
                               cublasGetStatusString(s_));                                                 \
  } while (0)

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// cuBLAS sgemm n x n x n throughput in TFLOP/s (CUDA events, median of `repeats`).
double cublas_sgemm_tflops(int n, bool tf32, int repeats = 20) {
  float *a, *b, *c;
  const size_t bytes = size_t(n) * n * sizeof(float);
  BENCH_CUDA(cudaMalloc(&a, bytes));
  BENCH_CUDA(cudaMalloc(&b, bytes));
  BENCH_CUDA(cudaMalloc(&c, bytes));
  BENCH_CUDA(cudaMemset(a, 0, bytes));
  BENCH_CUDA(cudaMemset(b, 0, bytes));
  cublasHandle_t h;
  BENCH_CUBLAS(cublasCreate(&h));
  BENCH_CUBLAS(cublasSetMathMode(h, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  cudaEvent_t e0, e1;
  BENCH_CUDA(cudaEventCreate(&e0));
  BENCH_CUDA(cudaEventCreate(&e1));
  const float one = 1.f, zero = 0.f;
  std::vector<double> times;
  for (int r = 0; r < repeats + 3; ++r) {
    BENCH_CUDA(cudaEventRecord(e0));
    BENCH_CUBLAS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a, n, b, n, &zero, c, n));
    BENCH_CUDA(cudaEventRecord(e1));
    BENCH_CUDA(cudaEventSynchronize(e1));
    float ms = 0;
    BENCH_CUDA(cudaEventElapsedTime(&ms, e0, e1));
    if (r >= 3) times.push_back(ms * 1e-3);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cublasDestroy(h);
  cudaFree(a);
  cudaFree(b);
  cudaFree(c);
  return 2.0 * n * n * double(n) / median(times) / 1e12;
}

void bench_shape(const BenchShape& bs, bool tf32) {
  BenchProblem pb = make_bench_problem(bs);
  MoeNetwork<float>& net = pb.net;
  const OptimizerConfig& oc = pb.optim;
  const Mat<float>&x = pb.x, &y = pb.y;
  CudaOptions co;
  co.tf32 = tf32;
  auto engine = make_cuda_engine(net, oc, co);
  // step() returns the loss to the host, so each step ends synchronised and wall time is honest.
  std::vector<double> times;
  double loss = 0;
  for (int r = 0; r < bs.repeats + 10; ++r) {
    const auto t0 = Clock::now();
    loss = engine->step(x, y, {}, nullptr);
    if (r >= 10) times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  const double flops = step_matmul_flops(bs);
  const double sec = median(times);
  std::printf("moedmft_gpu %s ms_per_step=%.4f tflops=%.4f tf32=%d final_loss=%.6g\n", bs.name, sec * 1e3,
              flops / sec / 1e12, int(tf32), loss);
  std::fflush(stdout);
}

void bench_sweep(const std::string& config_path) {
  const std::vector<int> widths = {64, 128, 256, 512, 1024};
  const std::vector<double> lrs = {0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0};
  const std::vector<int> seeds = {1, 2, 3};
  const int steps = 200;
  double batched_total = 0, serial_total = 0;
  for (int width : widths) {
    std::vector<std::string> common = {"model.N=" + std::to_string(width), "model.Ne=" + std::to_string(width),
                                       "train.steps=" + std::to_string(steps), "train.diag_every=0"};
    RunConfig base = load_run_config(config_path, common);
    RunData data = prepare_data(base, common);
    const int B = base.train.batch_size;
    const Mat<double> x_all = data.train.x, y_all = data.train.y;

    std::vector<RunConfig> cfgs;
    std::vector<std::unique_ptr<MoeNetwork<double>>> nets;
    std::vector<MoeNetwork<double>*> ptrs;
    std::vector<OptimizerConfig> optims;
    for (double lr : lrs)
      for (int seed : seeds) {
        std::vector<std::string> ov = common;
        ov.push_back("optim.lr=" + std::to_string(lr));
        ov.push_back("seed=" + std::to_string(seed));
        cfgs.push_back(load_run_config(config_path, ov));
        nets.push_back(std::make_unique<MoeNetwork<double>>(build_network<double>(cfgs.back(), resolve_run_param(cfgs.back()))));
        ptrs.push_back(nets.back().get());
        optims.push_back(cfgs.back().optim);
      }
    const int R = int(ptrs.size());

    // Batched: all R runs of this width in one engine.
    auto t0 = Clock::now();
    std::vector<double> final_loss(R, NAN);
    {
      CudaMultiRunEngine<double> multi(ptrs, optims);
      for (int s = 0; s < steps; ++s) {
        const Mat<double> x = x_all.middleRows(s * B, B), y = y_all.middleRows(s * B, B);
        const std::vector<double> l = multi.step(x, y, {});
        if (s == steps - 1) final_loss = l;
      }
      for (int r = 0; r < R; ++r) multi.network(r);
    }
    const double batched = std::chrono::duration<double>(Clock::now() - t0).count();

    // Serial: the same runs one at a time through train_run (fresh networks, same seeds).
    t0 = Clock::now();
    for (int r = 0; r < R; ++r) {
      MoeNetwork<double> net = build_network<double>(cfgs[r], resolve_run_param(cfgs[r]));
      auto engine = make_cuda_engine(net, optims[r]);
      train_run<double>(cfgs[r], data, *engine);
    }
    const double serial = std::chrono::duration<double>(Clock::now() - t0).count();
    batched_total += batched;
    serial_total += serial;

    int best = 0;
    std::vector<double> mean_loss(lrs.size(), 0);
    for (size_t i = 0; i < lrs.size(); ++i) {
      for (size_t j = 0; j < seeds.size(); ++j) mean_loss[i] += final_loss[i * seeds.size() + j] / seeds.size();
      if (std::isfinite(mean_loss[i]) && (!std::isfinite(mean_loss[best]) || mean_loss[i] < mean_loss[best])) best = int(i);
    }
    std::printf("moedmft_gpu sweep width=%d runs=%d steps=%d batched_s=%.3f serial_s=%.3f best_lr=%g best_loss=%.6g\n",
                width, R, steps, batched, serial, lrs[best], mean_loss[best]);
    std::fflush(stdout);
  }
  std::printf("moedmft_gpu sweep total runs=%zu batched_s=%.3f serial_s=%.3f\n",
              widths.size() * lrs.size() * seeds.size(), batched_total, serial_total);
}

}  // namespace

int main(int argc, char** argv) {
  std::string which = "all", config = "experiments/configs/demo_regime1_mup.toml";
  bool tf32 = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--tf32") tf32 = true;
    else if (a == "--config" && i + 1 < argc) config = argv[++i];
    else which = a;
  }
  std::string why;
  if (!cuda_device_available(&why)) {
    std::printf("moedmft_gpu: no CUDA device (%s); nothing to benchmark\n", why.c_str());
    return 0;
  }
  try {
    std::printf("# device: %s\n", why.c_str());
    std::printf("cublas sgemm n=4096 tflops=%.2f tf32=0\n", cublas_sgemm_tflops(4096, false));
    std::printf("cublas sgemm n=4096 tflops=%.2f tf32=1\n", cublas_sgemm_tflops(4096, true));
    std::printf("cublas sgemm n=1024 tflops=%.2f tf32=%d\n", cublas_sgemm_tflops(1024, tf32), int(tf32));
    const BenchShape small = kSmallShape;
    BenchShape large = kLargeShape;
    large.repeats = 100;  // steps are fast on the GPU
    if (which == "all" || which == "shapes" || which == "small") bench_shape(small, tf32);
    if (which == "all" || which == "shapes" || which == "large") bench_shape(large, tf32);
    if (which == "all" || which == "sweep") bench_sweep(config);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moedmft_bench_gpu: %s\n", e.what());
    return 1;
  }
  return 0;
}
