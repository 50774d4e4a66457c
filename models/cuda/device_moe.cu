// Device implementation of the MLP-MoE training step for R same-shape runs at once.
//
// Layout. Every weight group is stored on the device as [Lg][R][per] (Lg = L for the block
// groups, 1 for w_in / w_out), so that one block's tensors of all runs (and, for the experts, all
// runs x experts) are equally strided and every matmul is one cuBLAS strided-batched GEMM.
// Activations are [R][B][...]; routed expert activations are [R][M][B][...] with capacity B per
// expert, of which the first `cap` rows (the largest routed count of the step) are computed; rows
// past an expert's own count are zero inputs and zero gradients, so they contribute nothing.
// Soft routing is top-K with K = M: every expert sees every token, in token order.
//
// Per-run constants (multipliers, gate factor, aggregation, residual multiplier) are applied by
// the elementwise kernels, so all GEMMs run with alpha = 1 (the runs of a batch may differ).
// Token order inside an expert's list, the top-K tie rule and the gate formulas follow
// models/network.cpp, so results agree with the CPU to rounding.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "models/cuda/device_moe.hpp"
#include "models/cuda/kernels.cuh"
#include "models/cuda/routing_rows.hpp"
#include "models/cuda/rowmajor_gemm.hpp"

#define MOE_CUDA_CHECK(expr)                                                                            \
  do {                                                                                                  \
    const cudaError_t moe_err_ = (expr);                                                                \
    if (moe_err_ != cudaSuccess)                                                                        \
      throw std::runtime_error(std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": " #expr ": " + \
                               cudaGetErrorString(moe_err_));                                           \
  } while (0)

#define MOE_CUBLAS_CHECK(expr)                                                                          \
  do {                                                                                                  \
    const cublasStatus_t moe_st_ = (expr);                                                              \
    if (moe_st_ != CUBLAS_STATUS_SUCCESS)                                                               \
      throw std::runtime_error(std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": " #expr ": " + \
                               cublasGetStatusString(moe_st_));                                         \
  } while (0)

#define MOE_LAUNCH_CHECK() MOE_CUDA_CHECK(cudaGetLastError())

namespace moedmft::cuda_detail {

namespace {

// ---------------------------------------------------------------------------------------------
// Small helpers

template <class U>
struct DBuf {
  U* p = nullptr;
  size_t n = 0;
  DBuf() = default;
  DBuf(const DBuf&) = delete;
  DBuf& operator=(const DBuf&) = delete;
  DBuf(DBuf&& o) noexcept : p(o.p), n(o.n) { o.p = nullptr; o.n = 0; }
  DBuf& operator=(DBuf&& o) noexcept {
    std::swap(p, o.p);
    std::swap(n, o.n);
    return *this;
  }
  ~DBuf() {
    if (p) cudaFree(p);
  }
  void alloc(size_t count, bool zero = false) {
    if (count > n) {
      if (p) MOE_CUDA_CHECK(cudaFree(p));
      p = nullptr;
      n = 0;
      MOE_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(count, 1) * sizeof(U)));
      n = count;
    }
    if (zero && p) MOE_CUDA_CHECK(cudaMemset(p, 0, n * sizeof(U)));
  }
};

constexpr int kThreads = 256;
inline unsigned grid_for(long long n) {
  const long long b = (n + kThreads - 1) / kThreads;
  return unsigned(std::max<long long>(1, std::min<long long>(b, 65535LL * 32)));
}


// ---------------------------------------------------------------------------------------------
// cuBLAS in row-major terms

template <class T>
struct Blas;
template <>
struct Blas<float> {
  static cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                             const float* alpha, const float* A, int lda, long long sA, const float* B, int ldb,
                             long long sB, const float* beta, float* C, int ldc, long long sC, int batch) {
    return cublasSgemmStridedBatched(h, ta, tb, m, n, k, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch);
  }
};
template <>
struct Blas<double> {
  static cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                             const double* alpha, const double* A, int lda, long long sA, const double* B, int ldb,
                             long long sB, const double* beta, double* C, int ldc, long long sC, int batch) {
    return cublasDgemmStridedBatched(h, ta, tb, m, n, k, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch);
  }
};

}  // namespace

bool device_available(std::string* why) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    if (why) *why = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky-free error state
    return false;
  }
  if (count == 0) {
    if (why) *why = "no CUDA device";
    return false;
  }
  if (why) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) *why = prop.name;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// DeviceMoe

template <class T>
struct DeviceMoe<T>::Impl {
  struct Block {
    DBuf<T> psi, graw, gates, xg, pre, act, out, output;
    DBuf<int> sel, slot, tok, counts;
    int cap = 0;
  };

  DeviceShape s;
  std::vector<RunConstants> rc;
  cublasHandle_t handle = nullptr;
  std::array<long, kGroups> per{}, lg{};
  std::array<DBuf<T>, kGroups> w, g, m1, v2;
  DBuf<T> consts, hp;
  DBuf<double> rate, loss;
  int B = 0;
  bool x_shared = true;
  DBuf<T> x, y, pre_in, h1, f, dfs;
  DBuf<int> labels;
  bool have_labels = false, labels_shared = true, y_shared = true;
  std::vector<Block> blocks;
  DBuf<T> d_gates, d_psi, d_o, dtmp, dexp, d_h, d_prev;
  bool have_forward = false;

  Impl(const DeviceShape& shape, const std::vector<RunConstants>& constants) : s(shape), rc(constants) {
    if (s.R < 1 || int(rc.size()) != s.R) throw std::runtime_error("cuda: need one RunConstants per run");
    MOE_CUDA_CHECK(cudaSetDevice(s.device));
    MOE_CUBLAS_CHECK(cublasCreate(&handle));
    if constexpr (std::is_same_v<T, float>)
      MOE_CUBLAS_CHECK(cublasSetMathMode(handle, s.tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    const long N = s.N, M = s.M, Ne = s.Ne;
    per = {long(s.D) * N, N * M, M * N * Ne, M * Ne * N, N * s.C, M};
    lg = {1, s.L, s.L, s.L, 1, s.L};
    for (int k = 0; k < kGroups; ++k) {
      const size_t n = size_t(lg[k]) * s.R * per[k];
      w[k].alloc(n, true);
      g[k].alloc(n, true);
      if (s.optimizer == 1 || s.optimizer == 2) {
        m1[k].alloc(n, true);
        v2[k].alloc(n, true);
      }
    }
    std::vector<T> hc(size_t(kNumConst) * s.R);
    for (int r = 0; r < s.R; ++r) {
      const RunConstants& c = rc[r];
      hc[kc_in * s.R + r] = T(c.multiplier[kIn]);
      hc[kc_router * s.R + r] = T(c.multiplier[kRouter]);
      hc[kc_e1 * s.R + r] = T(c.multiplier[kExpert1]);
      hc[kc_e2 * s.R + r] = T(c.multiplier[kExpert2]);
      hc[kc_out * s.R + r] = T(c.multiplier[kOut]);
      hc[kc_gate * s.R + r] = T(c.gate_factor);
      hc[kc_agg * s.R + r] = T(c.aggregation);
      hc[kc_res * s.R + r] = T(c.residual_multiplier);
      hc[kc_res_agg * s.R + r] = T(c.residual_multiplier * c.aggregation);
    }
    consts.alloc(hc.size());
    MOE_CUDA_CHECK(cudaMemcpy(consts.p, hc.data(), hc.size() * sizeof(T), cudaMemcpyHostToDevice));
    hp.alloc(size_t(kGroups) * s.R * kNumHyper);
    rate.alloc(s.R);
    loss.alloc(s.R);
    blocks.resize(s.L);
  }
  ~Impl() {
    if (handle) cublasDestroy(handle);
  }

  const T* cst() const { return consts.p; }
  // Every entry point selects the engine's device (other engines may use other devices).
  void select_device() const { MOE_CUDA_CHECK(cudaSetDevice(s.device)); }

  // Row-major C[m,n] (+)= op(A)[m,k] op(B)[k,n], batched with element strides.
  void gemm(bool ta, bool tb, int m, int n, int k, const T* A, int lda, long long sA, const T* Bm, int ldb,
            long long sB, T* C, int ldc, long long sC, int batch, T beta = T(0)) {
    if (m <= 0 || n <= 0 || k <= 0 || batch <= 0) return;
    const T one = T(1);
    const ColMajorGemm<T> g = rowmajor_gemm(ta, tb, m, n, k, A, lda, sA, Bm, ldb, sB, C, ldc, sC, batch);
    MOE_CUBLAS_CHECK(Blas<T>::gemm(handle, g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                   g.m, g.n, g.k, &one, g.a, g.lda, g.stride_a, g.b, g.ldb, g.stride_b, &beta, g.c,
                                   g.ldc, g.stride_c, g.batch));
  }

  void ensure_batch(int b) {
    if (b == B) return;
    if (b < 1) throw std::runtime_error("cuda: batch size must be at least 1");
    B = b;
    const size_t R = s.R, N = s.N, M = s.M, K = s.K, Ne = s.Ne, C = s.C, Bs = b;
    x.alloc(R * Bs * s.D);
    y.alloc(R * Bs * C);
    labels.alloc(R * Bs);
    pre_in.alloc(R * Bs * N);
    h1.alloc(R * Bs * N);
    f.alloc(R * Bs * C);
    dfs.alloc(R * Bs * C);
    for (Block& bl : blocks) {
      bl.psi.alloc(R * Bs * M);
      bl.graw.alloc(R * Bs * M);
      bl.gates.alloc(R * Bs * M);
      bl.sel.alloc(R * Bs * K);
      bl.slot.alloc(R * Bs * K);
      bl.tok.alloc(R * M * Bs);
      bl.counts.alloc(R * M);
      bl.xg.alloc(R * M * Bs * N);
      bl.pre.alloc(R * M * Bs * Ne);
      bl.act.alloc(R * M * Bs * Ne);
      bl.out.alloc(R * M * Bs * N);
      bl.output.alloc(R * Bs * N);
    }
    d_gates.alloc(R * Bs * M);
    d_psi.alloc(R * Bs * M);
    d_o.alloc(R * M * Bs * N);
    dtmp.alloc(R * M * Bs * Ne);
    dexp.alloc(R * M * Bs * N);
    d_h.alloc(R * Bs * N);
    d_prev.alloc(R * Bs * N);
  }

  void forward_block(int l, const T* input) {
    Block& bl = blocks[l];
    const int R = s.R, N = s.N, M = s.M, K = s.K, Ne = s.Ne;
    const long long BN = (long long)B * N, BNe = (long long)B * Ne;
    gemm(false, false, B, M, N, input, N, BN, w[kRouter].p + (long long)l * R * per[kRouter], M, per[kRouter], bl.psi.p,
         M, (long long)B * M, R);
    const T* bias = w[kBias].p + (long long)l * R * M;
    k_route<T><<<grid_for((long long)R * B), kThreads>>>(bl.psi.p, bias, bl.graw.p, bl.gates.p, bl.sel.p, R, B, M, K,
                                                         s.routing == 1, s.selection == 1, s.gate, s.renormalize, cst());
    MOE_LAUNCH_CHECK();
    k_dispatch<<<grid_for((long long)R * M), kThreads>>>(bl.sel.p, bl.slot.p, bl.tok.p, bl.counts.p, R, B, M, K);
    MOE_LAUNCH_CHECK();
    if (s.routing == 1) {
      std::vector<int> counts(size_t(R) * M);
      MOE_CUDA_CHECK(cudaMemcpy(counts.data(), bl.counts.p, counts.size() * sizeof(int), cudaMemcpyDeviceToHost));
      bl.cap = std::max(1, *std::max_element(counts.begin(), counts.end()));
    } else {
      bl.cap = B;
    }
    const int cap = bl.cap;
    const long long nb = (long long)R * M;
    k_gather<T><<<grid_for(nb * cap * N), kThreads>>>(input, bl.tok.p, bl.counts.p, bl.xg.p, R, M, B, N, cap);
    MOE_LAUNCH_CHECK();
    gemm(false, false, cap, Ne, N, bl.xg.p, N, BN, w[kExpert1].p + (long long)l * R * per[kExpert1], Ne,
         (long long)N * Ne, bl.pre.p, Ne, BNe, int(nb));
    k_scale_act<T><<<grid_for(nb * cap * Ne), kThreads>>>(bl.pre.p, bl.act.p, nb, cap, Ne, BNe, M, cst() + kc_e1 * R,
                                                         s.activation);
    MOE_LAUNCH_CHECK();
    gemm(false, false, cap, N, Ne, bl.act.p, Ne, BNe, w[kExpert2].p + (long long)l * R * per[kExpert2], N,
         (long long)Ne * N, bl.out.p, N, BN, int(nb));
    k_combine<T><<<grid_for((long long)R * BN), kThreads>>>(input, bl.out.p, bl.gates.p, bl.sel.p, bl.slot.p,
                                                           bl.output.p, R, B, M, K, N, s.residual, cst());
    MOE_LAUNCH_CHECK();
  }

  const T* block_input(int l) const { return l == 0 ? h1.p : blocks[l - 1].output.p; }

  void forward_loss(int b, const T* hx, bool xs, const T* hy, bool ys, const int* hl, bool ls, double* losses, T* hf) {
    select_device();
    ensure_batch(b);
    const int R = s.R, D = s.D, N = s.N, C = s.C;
    x_shared = xs;
    y_shared = ys;
    MOE_CUDA_CHECK(cudaMemcpy(x.p, hx, size_t(xs ? 1 : R) * B * D * sizeof(T), cudaMemcpyHostToDevice));
    MOE_CUDA_CHECK(cudaMemcpy(y.p, hy, size_t(ys ? 1 : R) * B * C * sizeof(T), cudaMemcpyHostToDevice));
    have_labels = hl != nullptr;
    labels_shared = ls;
    if (hl) MOE_CUDA_CHECK(cudaMemcpy(labels.p, hl, size_t(ls ? 1 : R) * B * sizeof(int), cudaMemcpyHostToDevice));
    const long long BN = (long long)B * N;
    gemm(false, false, B, N, D, x.p, D, xs ? 0 : (long long)B * D, w[kIn].p, N, per[kIn], pre_in.p, N, BN, R);
    k_scale_act<T><<<grid_for(R * BN), kThreads>>>(pre_in.p, h1.p, R, B, N, BN, 1, cst() + kc_in * R, s.activation);
    MOE_LAUNCH_CHECK();
    for (int l = 0; l < s.L; ++l) forward_block(l, block_input(l));
    const T* hl_out = blocks[s.L - 1].output.p;
    gemm(false, false, B, C, N, hl_out, N, BN, w[kOut].p, C, per[kOut], f.p, C, (long long)B * C, R);
    k_loss<T><<<R, kThreads>>>(f.p, y.p, ys, have_labels ? labels.p : nullptr, ls, dfs.p, loss.p, R, B, C, s.loss,
                               cst());
    MOE_LAUNCH_CHECK();
    MOE_CUDA_CHECK(cudaMemcpy(losses, loss.p, size_t(R) * sizeof(double), cudaMemcpyDeviceToHost));
    if (hf) MOE_CUDA_CHECK(cudaMemcpy(hf, f.p, size_t(R) * B * C * sizeof(T), cudaMemcpyDeviceToHost));
    have_forward = true;
  }

  void backward_block(int l) {
    Block& bl = blocks[l];
    const int R = s.R, N = s.N, M = s.M, K = s.K, Ne = s.Ne, cap = bl.cap;
    const long long BN = (long long)B * N, BNe = (long long)B * Ne, nb = (long long)R * M;
    const T* input = block_input(l);
    T* w1 = w[kExpert1].p + (long long)l * R * per[kExpert1];
    T* w2 = w[kExpert2].p + (long long)l * R * per[kExpert2];
    T* wr = w[kRouter].p + (long long)l * R * per[kRouter];
    k_expert_dout<T><<<unsigned(nb * cap), 128>>>(d_h.p, bl.out.p, bl.gates.p, bl.tok.p, bl.counts.p, d_o.p,
                                                  d_gates.p, R, M, B, N, cap, cst());
    MOE_LAUNCH_CHECK();
    gemm(true, false, Ne, N, cap, bl.act.p, Ne, BNe, d_o.p, N, BN, g[kExpert2].p + (long long)l * R * per[kExpert2], N,
         (long long)Ne * N, int(nb));
    gemm(false, true, cap, Ne, N, d_o.p, N, BN, w2, N, (long long)Ne * N, dtmp.p, Ne, BNe, int(nb));
    k_dpre<T><<<grid_for(nb * cap * Ne), kThreads>>>(bl.pre.p, dtmp.p, nb, cap, Ne, BNe, M, cst() + kc_e1 * R,
                                                    s.activation);
    MOE_LAUNCH_CHECK();
    gemm(true, false, N, Ne, cap, bl.xg.p, N, BN, dtmp.p, Ne, BNe, g[kExpert1].p + (long long)l * R * per[kExpert1],
         Ne, (long long)N * Ne, int(nb));
    gemm(false, true, cap, N, Ne, dtmp.p, Ne, BNe, w1, Ne, (long long)N * Ne, dexp.p, N, BN, int(nb));
    k_scatter_din<T><<<grid_for(R * BN), kThreads>>>(d_h.p, dexp.p, bl.sel.p, bl.slot.p, d_prev.p, R, B, M, K, N,
                                                    s.residual);
    MOE_LAUNCH_CHECK();
    k_gate_backward<T><<<grid_for((long long)R * B), kThreads>>>(d_gates.p, bl.graw.p, bl.sel.p, d_psi.p, R, B, M, K,
                                                                 s.gate, s.renormalize, cst());
    MOE_LAUNCH_CHECK();
    gemm(true, false, N, M, B, input, N, BN, d_psi.p, M, (long long)B * M, g[kRouter].p + (long long)l * R * per[kRouter],
         M, per[kRouter], R);
    gemm(false, true, B, N, M, d_psi.p, M, (long long)B * M, wr, M, per[kRouter], d_prev.p, N, BN, R, T(1));
    std::swap(d_h, d_prev);
  }

  void backward() {
    if (!have_forward) throw std::runtime_error("cuda: backward() called before a forward pass");
    select_device();
    const int R = s.R, D = s.D, N = s.N, C = s.C;
    const long long BN = (long long)B * N;
    const T* hl_out = blocks[s.L - 1].output.p;
    gemm(true, false, N, C, B, hl_out, N, BN, dfs.p, C, (long long)B * C, g[kOut].p, C, per[kOut], R);
    gemm(false, true, B, N, C, dfs.p, C, (long long)B * C, w[kOut].p, C, per[kOut], d_h.p, N, BN, R);
    for (int l = s.L - 1; l >= 0; --l) backward_block(l);
    k_dpre<T><<<grid_for(R * BN), kThreads>>>(pre_in.p, d_h.p, R, B, N, BN, 1, cst() + kc_in * R, s.activation);
    MOE_LAUNCH_CHECK();
    gemm(true, false, D, N, B, x.p, D, x_shared ? 0 : (long long)B * D, d_h.p, N, BN, g[kIn].p, N, per[kIn], R);
  }

  void update(const std::vector<char>& active, const std::vector<StepHyper>& hyper, const std::vector<double>& bias_rate) {
    const int R = s.R;
    if (int(active.size()) != R || int(hyper.size()) != R * kGroups)
      throw std::runtime_error("cuda: update() needs R active flags and R x 6 hyperparameter sets");
    select_device();
    std::vector<T> h(size_t(kGroups) * R * kNumHyper);
    for (int k = 0; k < kGroups; ++k)
      for (int r = 0; r < R; ++r) {
        const StepHyper& sh = hyper[size_t(r) * kGroups + k];
        T* o = h.data() + (size_t(k) * R + r) * kNumHyper;
        o[kh_lr] = T(sh.lr);
        o[kh_wd] = T(sh.wd);
        o[kh_eps] = T(sh.eps);
        o[kh_b1] = T(sh.beta1);
        o[kh_b2] = T(sh.beta2);
        o[kh_step] = T(sh.step_size);
        o[kh_root2] = T(sh.root2);
        o[kh_active] = active[r] ? T(1) : T(0);
      }
    MOE_CUDA_CHECK(cudaMemcpy(hp.p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
    for (int k = 0; k < kGroups; ++k) {
      if (k == kBias) continue;
      const long long n = (long long)lg[k] * R * per[k];
      k_optimizer<T><<<grid_for(n), kThreads>>>(w[k].p, g[k].p, m1[k].p, v2[k].p, n, per[k], R, s.optimizer,
                                                hp.p + (size_t(k) * R) * kNumHyper);
      MOE_LAUNCH_CHECK();
    }
    if (!bias_rate.empty()) {
      if (int(bias_rate.size()) != R) throw std::runtime_error("cuda: update() needs R bias rates");
      MOE_CUDA_CHECK(cudaMemcpy(rate.p, bias_rate.data(), size_t(R) * sizeof(double), cudaMemcpyHostToDevice));
      const double kappa = double(s.K) / s.M;
      for (int l = 0; l < s.L; ++l) {
        k_bias_update<T><<<grid_for((long long)R * s.M), kThreads>>>(w[kBias].p + (long long)l * R * s.M,
                                                                     blocks[l].counts.p, rate.p,
                                                                     hp.p + (size_t(kBias) * R) * kNumHyper, R, s.M, B,
                                                                     kappa);
        MOE_LAUNCH_CHECK();
      }
    }
  }

  // Host [Lg][per] of one run <-> device [Lg][R][per].
  void copy_run(const DBuf<T>& buf, int k, int run, T* host, bool to_host) const {
    if (run < 0 || run >= s.R) throw std::runtime_error("cuda: run index out of range");
    select_device();
    const size_t width = size_t(per[k]) * sizeof(T);
    for (long l = 0; l < lg[k]; ++l) {
      T* dev = buf.p + (size_t(l) * s.R + run) * per[k];
      T* h = host + size_t(l) * per[k];
      if (to_host)
        MOE_CUDA_CHECK(cudaMemcpy(h, dev, width, cudaMemcpyDeviceToHost));
      else
        MOE_CUDA_CHECK(cudaMemcpy(dev, h, width, cudaMemcpyHostToDevice));
    }
  }
};

template <class T>
DeviceMoe<T>::DeviceMoe(const DeviceShape& shape, const std::vector<RunConstants>& constants)
    : impl_(std::make_unique<Impl>(shape, constants)) {}
template <class T>
DeviceMoe<T>::~DeviceMoe() = default;
template <class T>
long DeviceMoe<T>::group_size(int g) const {
  return impl_->lg[g] * impl_->per[g];
}
template <class T>
void DeviceMoe<T>::upload(int g, int run, const T* host) {
  impl_->copy_run(impl_->w[g], g, run, const_cast<T*>(host), false);
}
template <class T>
void DeviceMoe<T>::download(int g, int run, T* host) const {
  impl_->copy_run(impl_->w[g], g, run, host, true);
}
template <class T>
void DeviceMoe<T>::download_grad(int g, int run, T* host) const {
  impl_->copy_run(impl_->g[g], g, run, host, true);
}
template <class T>
void DeviceMoe<T>::forward_loss(int B, const T* x, bool x_shared, const T* y, bool y_shared, const int* labels,
                                bool labels_shared, double* losses, T* f) {
  impl_->forward_loss(B, x, x_shared, y, y_shared, labels, labels_shared, losses, f);
}
template <class T>
void DeviceMoe<T>::backward() {
  impl_->backward();
}
template <class T>
void DeviceMoe<T>::update(const std::vector<char>& active, const std::vector<StepHyper>& hyper,
                          const std::vector<double>& bias_rate) {
  impl_->update(active, hyper, bias_rate);
}

template class DeviceMoe<float>;
template class DeviceMoe<double>;

}  // namespace moedmft::cuda_detail
