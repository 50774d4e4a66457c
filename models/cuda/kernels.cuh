// Device math, per-run constant indices and the elementwise/routing/optimizer kernels of the
// MoE training step (device_moe.cu launches them). Gate formulas, the top-K tie rule and token
// order follow models/network.cpp and models/gating.hpp.
#pragma once
#include <cuda_runtime.h>

#include <cmath>

#include "models/cuda/routing_rows.hpp"

namespace moedmft::cuda_detail {
namespace {
__device__ inline float d_exp(float x) { return expf(x); }
__device__ inline double d_exp(double x) { return exp(x); }
__device__ inline float d_erf(float x) { return erff(x); }
__device__ inline double d_erf(double x) { return erf(x); }
__device__ inline float d_tanh(float x) { return tanhf(x); }
__device__ inline double d_tanh(double x) { return tanh(x); }
__device__ inline float d_sqrt(float x) { return sqrtf(x); }
__device__ inline double d_sqrt(double x) { return sqrt(x); }

// Activation ids as in Activation: gelu (exact erf), tanh, relu, identity.
template <class T>
__device__ inline T act_fn(int a, T x) {
  switch (a) {
    case 0: return T(0.5) * x * (T(1) + d_erf(x * T(M_SQRT1_2)));
    case 1: return d_tanh(x);
    case 2: return x > T(0) ? x : T(0);
    default: return x;
  }
}
template <class T>
__device__ inline T act_deriv(int a, T x) {
  switch (a) {
    case 0: {
      const T inv_sqrt_2pi = T(0.5 * M_2_SQRTPI * M_SQRT1_2);
      return T(0.5) * (T(1) + d_erf(x * T(M_SQRT1_2))) + x * inv_sqrt_2pi * d_exp(T(-0.5) * x * x);
    }
    case 1: {
      const T th = d_tanh(x);
      return T(1) - th * th;
    }
    case 2: return x > T(0) ? T(1) : T(0);
    default: return T(1);
  }
}

template <class T>
__device__ inline T warp_sum(T v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  return v;
}
// Sum over the block (blockDim.x a multiple of 32, at most 1024); the result is valid in thread 0.
template <class T>
__device__ inline T block_sum(T v) {
  __shared__ T partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  v = threadIdx.x < warps ? partial[lane] : T(0);
  if (warp == 0) v = warp_sum(v);
  return v;
}

// Per-run constants on the device: kc_* index the [kNumConst][R] array.
enum ConstIndex { kc_in = 0, kc_router, kc_e1, kc_e2, kc_out, kc_gate, kc_agg, kc_res, kc_res_agg, kNumConst };

// ---------------------------------------------------------------------------------------------
// Forward kernels

// pre = scale[run] * pre (in place); out = phi(pre). nb batches of `rows` x `cols` used elements
// each, batch stride bstride; batches-per-run bpr.
template <class T>
__global__ void k_scale_act(T* pre, T* out, long long nb, long long rows, long long cols, long long bstride,
                            int bpr, const T* scale, int act) {
  const long long per = rows * cols, n = nb * per;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const long long b = i / per, off = b * bstride + i % per;
    const T v = scale[b / bpr] * pre[off];
    pre[off] = v;
    out[off] = act_fn(act, v);
  }
}

// tmp = scale[run] * (phi'(pre) * tmp), same indexing as k_scale_act.
template <class T>
__global__ void k_dpre(const T* pre, T* tmp, long long nb, long long rows, long long cols, long long bstride, int bpr,
                       const T* scale, int act) {
  const long long per = rows * cols, n = nb * per;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const long long b = i / per, off = b * bstride + i % per;
    tmp[off] = scale[b / bpr] * (act_deriv(act, pre[off]) * tmp[off]);
  }
}

// One thread per (run, token): scale the logits, select experts, compute gates (routing_rows.hpp).
template <class T>
__global__ void k_route(T* psi, const T* bias, T* graw, T* gates, int* sel, int R, int B, int M, int K, int topk,
                        int biased, int gate, int renormalize, const T* consts) {
  const long long n = (long long)R * B;
  for (long long rt = blockIdx.x * (long long)blockDim.x + threadIdx.x; rt < n; rt += (long long)gridDim.x * blockDim.x) {
    const int r = int(rt / B);
    route_row<T>(psi + rt * M, bias + (long long)r * M, graw + rt * M, gates + rt * M, sel + rt * K, M, K, topk != 0,
                 biased != 0, gate, renormalize != 0, consts[kc_router * R + r], consts[kc_gate * R + r]);
  }
}

// One thread per (run, expert): the expert's token list in token order, each choice's slot.
__global__ void k_dispatch(const int* sel, int* slot, int* tok, int* counts, int R, int B, int M, int K) {
  const long long n = (long long)R * M;
  for (long long rm = blockIdx.x * (long long)blockDim.x + threadIdx.x; rm < n; rm += (long long)gridDim.x * blockDim.x) {
    const long long r = rm / M;
    const int m = int(rm % M);
    int cnt = 0;
    for (int t = 0; t < B; ++t) {
      const long long base = (r * B + t) * K;
      for (int j = 0; j < K; ++j)
        if (sel[base + j] == m) {
          slot[base + j] = cnt;
          tok[rm * B + cnt] = t;
          ++cnt;
        }
    }
    counts[rm] = cnt;
  }
}

// Xg[r,m,i,:] = input[r, tok[r,m,i], :] for i < count, 0 for count <= i < cap.
template <class T>
__global__ void k_gather(const T* input, const int* tok, const int* counts, T* xg, int R, int M, int B, int N, int cap) {
  const long long n = (long long)R * M * cap * N;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const long long b = i / ((long long)cap * N);
    const int row = int((i / N) % cap), col = int(i % N);
    const long long r = b / M;
    T v = T(0);
    if (row < counts[b]) v = input[(r * B + tok[b * B + row]) * N + col];
    xg[(b * B + row) * N + col] = v;
  }
}

// output[r,t,:] = (residual ? input : 0) + r_mult * agg * sum_j g_{t,m_j} * s2 * out[r,m_j,slot_j,:]
template <class T>
__global__ void k_combine(const T* input, const T* out, const T* gates, const int* sel, const int* slot, T* output,
                          int R, int B, int M, int K, int N, int residual, const T* consts) {
  const long long n = (long long)R * B * N;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const long long rt = i / N;
    const int col = int(i % N);
    const int r = int(rt / B);
    const T agg = consts[kc_agg * R + r], s2 = consts[kc_e2 * R + r];
    T acc = T(0);
    for (int j = 0; j < K; ++j) {
      const int m = sel[rt * K + j];
      acc += (agg * gates[rt * M + m]) * (s2 * out[(((long long)r * M + m) * B + slot[rt * K + j]) * N + col]);
    }
    T v = consts[kc_res * R + r] * acc;
    if (residual) v = input[i] + v;
    output[i] = v;
  }
}

// One block per run: f *= s_out, loss, dfs = s_out * dL/df.
template <class T>
__global__ void k_loss(T* f, const T* y, int y_shared, const int* labels, int labels_shared, T* dfs, double* loss,
                       int R, int B, int C, int kind, const T* consts) {
  const int r = blockIdx.x;
  if (r >= R) return;
  const T s_out = consts[kc_out * R + r];
  T* fr = f + (long long)r * B * C;
  T* dr = dfs + (long long)r * B * C;
  const T* yr = y + (y_shared ? 0LL : (long long)r * B * C);
  const long long n = (long long)B * C;
  for (long long i = threadIdx.x; i < n; i += blockDim.x) fr[i] = fr[i] * s_out;
  __syncthreads();
  double total = 0;
  if (kind == 0) {
    const T coef = T(2.0 / (double(B) * C));
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
      const T diff = fr[i] - yr[i];
      total += double(diff) * double(diff);
      dr[i] = s_out * (diff * coef);
    }
  } else {
    for (int t = threadIdx.x; t < B; t += blockDim.x) {
      const T* ft = fr + (long long)t * C;
      int label = 0;
      if (labels) {
        label = labels[(labels_shared ? 0LL : (long long)r * B) + t];
      } else {
        const T* yt = yr + (long long)t * C;
        for (int k = 1; k < C; ++k)
          if (yt[k] > yt[label]) label = k;
      }
      double mx = double(ft[0]);
      for (int k = 1; k < C; ++k) mx = double(ft[k]) > mx ? double(ft[k]) : mx;
      double sum = 0;
      for (int k = 0; k < C; ++k) sum += exp(double(ft[k]) - mx);
      total += log(sum) + mx - double(ft[label]);
      for (int k = 0; k < C; ++k) {
        T d = T(exp(double(ft[k]) - mx) / sum / B);
        if (k == label) d -= T(1.0 / B);
        dr[(long long)t * C + k] = s_out * d;
      }
    }
  }
  total = block_sum(total);
  if (threadIdx.x == 0) loss[r] = kind == 0 ? total / (double(B) * C) : total / B;
}

// ---------------------------------------------------------------------------------------------
// Backward kernels

// One block per (run, expert, row < cap): d_gates and the scaled d_o = s2 * scale * g * d_out.
template <class T>
__global__ void k_expert_dout(const T* d_out, const T* out, const T* gates, const int* tok, const int* counts, T* d_o,
                              T* d_gates, int R, int M, int B, int N, int cap, const T* consts) {
  const long long b = blockIdx.x / cap;
  const int row = int(blockIdx.x % cap);
  const long long r = b / M;
  const int m = int(b % M);
  T* dor = d_o + (b * B + row) * N;
  if (row >= counts[b]) {
    for (int n = threadIdx.x; n < N; n += blockDim.x) dor[n] = T(0);
    return;
  }
  const int t = tok[b * B + row];
  const T* orow = out + (b * B + row) * N;
  const T* drow = d_out + (r * B + t) * N;
  T dot = T(0);
  for (int n = threadIdx.x; n < N; n += blockDim.x) dot += orow[n] * drow[n];
  dot = block_sum(dot);
  const T scale = consts[kc_res_agg * R + r], s2 = consts[kc_e2 * R + r];
  const T g = gates[(r * B + t) * M + m];
  if (threadIdx.x == 0) d_gates[(r * B + t) * M + m] = scale * (s2 * dot);
  const T coef = s2 * (scale * g);
  for (int n = threadIdx.x; n < N; n += blockDim.x) dor[n] = coef * drow[n];
}

// d_in[r,t,:] = (residual ? d_out : 0) + sum_j dexp[r,m_j,slot_j,:]
template <class T>
__global__ void k_scatter_din(const T* d_out, const T* dexp, const int* sel, const int* slot, T* d_in, int R, int B,
                              int M, int K, int N, int residual) {
  const long long n = (long long)R * B * N;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const long long rt = i / N;
    const int col = int(i % N);
    const long long r = rt / B;
    T acc = residual ? d_out[i] : T(0);
    for (int j = 0; j < K; ++j) {
      const int m = sel[rt * K + j];
      acc += dexp[((r * M + m) * B + slot[rt * K + j]) * N + col];
    }
    d_in[i] = acc;
  }
}

// One thread per (run, token): gate Jacobian; writes s_router * dL/dpsi (0 where unselected).
template <class T>
__global__ void k_gate_backward(const T* d_gates, const T* graw, const int* sel, T* d_psi, int R, int B, int M, int K,
                                int gate, int renormalize, const T* consts) {
  const long long n = (long long)R * B;
  for (long long rt = blockIdx.x * (long long)blockDim.x + threadIdx.x; rt < n; rt += (long long)gridDim.x * blockDim.x) {
    const int r = int(rt / B);
    gate_backward_row<T>(d_gates + rt * M, graw + rt * M, sel + rt * K, d_psi + rt * M, M, K, gate, renormalize != 0,
                         consts[kc_gate * R + r], consts[kc_router * R + r]);
  }
}

// ---------------------------------------------------------------------------------------------
// Optimizer kernels

enum HyperIndex { kh_lr = 0, kh_wd, kh_eps, kh_b1, kh_b2, kh_step, kh_root2, kh_active, kNumHyper };

// w, g, m, v are one group [Lg][R][per]; hp is this group's [R][kNumHyper].
template <class T>
__global__ void k_optimizer(T* w, const T* grad, T* m1, T* v2, long long n, long long per, int R, int kind, const T* hp) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const int r = int((i / per) % R);
    const T* h = hp + (long long)r * kNumHyper;
    if (h[kh_active] == T(0)) continue;
    const T lr = h[kh_lr], wd = h[kh_wd];
    T gi = grad[i];
    switch (kind) {
      case 0:
        w[i] -= lr * (gi + wd * w[i]);
        break;
      case 3: {
        const T s = gi > T(0) ? T(1) : (gi < T(0) ? T(-1) : T(0));
        w[i] -= lr * (s + wd * w[i]);
        break;
      }
      default: {
        const T b1 = h[kh_b1], b2 = h[kh_b2];
        if (kind == 2)
          w[i] -= lr * wd * w[i];
        else
          gi += wd * w[i];
        m1[i] = b1 * m1[i] + (T(1) - b1) * gi;
        v2[i] = b2 * v2[i] + (T(1) - b2) * gi * gi;
        w[i] -= h[kh_step] * m1[i] / (d_sqrt(v2[i]) / h[kh_root2] + h[kh_eps]);
      }
    }
  }
}

// Jiang et al.: b <- b - rate * (load - K/M), block l's bias [R][M].
template <class T>
__global__ void k_bias_update(T* bias, const int* counts, const double* rate, const T* hp_bias, int R, int M, int B,
                              double kappa) {
  const long long n = (long long)R * M;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    const int r = int(i / M);
    if (hp_bias[(long long)r * kNumHyper + kh_active] == T(0)) continue;
    bias[i] -= T(rate[r] * (double(counts[i]) / B - kappa));
  }
}
}  // namespace
}  // namespace moedmft::cuda_detail
