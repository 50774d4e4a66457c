// Per-token routing of the CUDA backend, as host/device functions: top-K selection, gates and the
// gate Jacobian for one row. device_moe.cu runs them one thread per (run, token); being plain C++
// for the host compiler, tests/test_cuda.cpp checks them against the CPU network without a GPU.
#pragma once
#include <cmath>

#ifdef __CUDACC__
#define MOE_HD __host__ __device__
#else
#define MOE_HD
#endif

namespace moedmft::cuda_detail {

MOE_HD inline float row_exp(float x) { return expf(x); }
MOE_HD inline double row_exp(double x) { return exp(x); }

// psi: the row's M logits, scaled in place by s_r. Writes gate_raw (gate_fn values, renormalised
// or not before the gate factor; 0 where unselected), gates (c * q / norm; 0 where unselected) and
// sel (the K chosen experts, ascending). topk: select by score (logits, or Jiang's
// sigmoid(psi) + bias), larger first, ties to the lower index (select_topk's rule; NaN scores
// last); otherwise every expert (K == M). gate: 0 sigmoid, 1 softmax, 2 linear.
template <class T>
MOE_HD void route_row(T* psi, const T* bias, T* gate_raw, T* gates, int* sel, int M, int K, bool topk, bool biased,
                      int gate, bool renormalize, T s_r, T c) {
  for (int m = 0; m < M; ++m) {
    psi[m] = s_r * psi[m];
    gate_raw[m] = T(0);
    gates[m] = T(0);
  }
  if (topk) {
    // Pass j takes the best expert strictly after pick j-1 in the total order
    // (score descending, index ascending).
    double prev_s = 0;
    int prev_i = -1;
    for (int j = 0; j < K; ++j) {
      int best_i = -1;
      double best_s = 0;
      for (int m = 0; m < M; ++m) {
        double s = biased ? 1.0 / (1.0 + exp(-double(psi[m]))) + double(bias[m]) : double(psi[m]);
        if (s != s) s = -HUGE_VAL;
        if (j > 0 && !(s < prev_s || (s == prev_s && m > prev_i))) continue;
        if (best_i < 0 || s > best_s) {
          best_i = m;
          best_s = s;
        }
      }
      sel[j] = best_i;
      prev_s = best_s;
      prev_i = best_i;
    }
    for (int j = 1; j < K; ++j) {  // ascending expert order
      const int v = sel[j];
      int i = j - 1;
      while (i >= 0 && sel[i] > v) {
        sel[i + 1] = sel[i];
        --i;
      }
      sel[i + 1] = v;
    }
  } else {
    for (int j = 0; j < K; ++j) sel[j] = j;
  }
  switch (gate) {
    case 0:
      for (int j = 0; j < K; ++j) gate_raw[sel[j]] = T(1) / (T(1) + row_exp(-psi[sel[j]]));
      break;
    case 2:
      for (int j = 0; j < K; ++j) gate_raw[sel[j]] = psi[sel[j]];
      break;
    default: {
      T mx = psi[sel[0]];
      for (int j = 1; j < K; ++j) mx = psi[sel[j]] > mx ? psi[sel[j]] : mx;
      T sum = 0;
      for (int j = 0; j < K; ++j) sum += gate_raw[sel[j]] = row_exp(psi[sel[j]] - mx);
      for (int j = 0; j < K; ++j) gate_raw[sel[j]] /= sum;
    }
  }
  T norm = T(1);
  if (renormalize) {
    norm = 0;
    for (int j = 0; j < K; ++j) norm += gate_raw[sel[j]];
  }
  for (int j = 0; j < K; ++j) gates[sel[j]] = c * gate_raw[sel[j]] / norm;
}

// Gate Jacobian of one row: d_psi = s_r * dL/dpsi from dL/dgates (d_gates), the gate_fn values
// q = gate_raw and the selection (0 where unselected; the selection itself has no gradient).
template <class T>
MOE_HD void gate_backward_row(const T* d_gates, const T* q, const int* sel, T* d_psi, int M, int K, int gate,
                              bool renormalize, T c, T s_r) {
  for (int m = 0; m < M; ++m) d_psi[m] = T(0);
  T norm = T(1), weighted = T(0);
  if (renormalize) {
    norm = 0;
    for (int j = 0; j < K; ++j) norm += q[sel[j]];
    for (int j = 0; j < K; ++j) weighted += d_gates[sel[j]] * q[sel[j]];
  }
  auto dq = [&](int j) {
    const T g = d_gates[sel[j]];
    return renormalize ? c * (g / norm - weighted / (norm * norm)) : c * g;
  };
  switch (gate) {
    case 0:
      for (int j = 0; j < K; ++j) {
        const T qj = q[sel[j]];
        d_psi[sel[j]] = s_r * (dq(j) * qj * (T(1) - qj));
      }
      break;
    case 2:
      for (int j = 0; j < K; ++j) d_psi[sel[j]] = s_r * dq(j);
      break;
    default: {
      T dot = 0;
      for (int j = 0; j < K; ++j) dot += dq(j) * q[sel[j]];
      for (int j = 0; j < K; ++j) d_psi[sel[j]] = s_r * (q[sel[j]] * (dq(j) - dot));
    }
  }
}

}  // namespace moedmft::cuda_detail
