// Gates of one token over its selected experts (model.md section 2) and their backward pass.
// Shared by the network and the MoE DMFT so that both use exactly the same gate algebra.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "models/types.hpp"

namespace moedmft {

// psi: the token's M raw logits; sel: its selected experts (k of them).
// q[j]: gate_fn value of expert sel[j] (softmax over the selected only);
// g[j] = factor * q[j] / norm, norm = sum_j q[j] with renormalisation, else 1.
template <class T>
void gate_values(GateFn gate, bool renormalize, double factor, const T* psi, const std::vector<int>& sel, T* q, T* g) {
  const int k = static_cast<int>(sel.size());
  switch (gate) {
    case GateFn::sigmoid:
      for (int j = 0; j < k; ++j) q[j] = T(1) / (T(1) + std::exp(-psi[sel[j]]));
      break;
    case GateFn::linear:
      for (int j = 0; j < k; ++j) q[j] = psi[sel[j]];
      break;
    case GateFn::softmax: {
      T mx = psi[sel[0]];
      for (int j = 1; j < k; ++j) mx = std::max(mx, psi[sel[j]]);
      T sum = 0;
      for (int j = 0; j < k; ++j) sum += q[j] = std::exp(psi[sel[j]] - mx);
      for (int j = 0; j < k; ++j) q[j] /= sum;
      break;
    }
  }
  T norm = T(1);
  if (renormalize) {
    norm = 0;
    for (int j = 0; j < k; ++j) norm += q[j];
  }
  for (int j = 0; j < k; ++j) g[j] = T(factor) * q[j] / norm;
}

// Backward of gate_values: dg[j] = dL/dg[j] gives dpsi[j] = dL/dpsi[sel[j]] (the selection
// itself has no gradient; unselected logits get none).
template <class T>
void gate_backward(GateFn gate, bool renormalize, double factor, const T* q, const T* dg, int k, T* dpsi) {
  const T c = T(factor);
  T norm = T(1), weighted = T(0);
  if (renormalize) {
    norm = 0;
    for (int j = 0; j < k; ++j) norm += q[j];
    for (int j = 0; j < k; ++j) weighted += dg[j] * q[j];
  }
  std::vector<T> dq(k);
  for (int j = 0; j < k; ++j) dq[j] = renormalize ? c * (dg[j] / norm - weighted / (norm * norm)) : c * dg[j];
  switch (gate) {
    case GateFn::sigmoid:
      for (int j = 0; j < k; ++j) dpsi[j] = dq[j] * q[j] * (T(1) - q[j]);
      break;
    case GateFn::linear:
      for (int j = 0; j < k; ++j) dpsi[j] = dq[j];
      break;
    case GateFn::softmax: {
      T dot = 0;
      for (int j = 0; j < k; ++j) dot += dq[j] * q[j];
      for (int j = 0; j < k; ++j) dpsi[j] = q[j] * (dq[j] - dot);
      break;
    }
  }
}

}  // namespace moedmft
