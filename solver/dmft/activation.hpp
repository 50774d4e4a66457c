// Elementwise activations of the DMFT solver (gelu is the exact erf form, as in the network).
#pragma once
#include <cmath>

#include "models/types.hpp"

namespace moedmft::dmft {

inline double act(Activation a, double x) {
  switch (a) {
    case Activation::gelu: return 0.5 * x * (1.0 + std::erf(x * M_SQRT1_2));
    case Activation::tanh: return std::tanh(x);
    case Activation::relu: return x > 0.0 ? x : 0.0;
    case Activation::identity: return x;
  }
  return x;
}

inline double act_deriv(Activation a, double x) {
  switch (a) {
    case Activation::gelu:
      return 0.5 * (1.0 + std::erf(x * M_SQRT1_2)) + x * std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
    case Activation::tanh: {
      const double t = std::tanh(x);
      return 1.0 - t * t;
    }
    case Activation::relu: return x > 0.0 ? 1.0 : 0.0;
    case Activation::identity: return 1.0;
  }
  return 1.0;
}

// out = phi(in), dout = phi'(in), elementwise over equally shaped matrices.
inline void act_both(Activation a, const Mat<double>& in, Mat<double>& out, Mat<double>& dout) {
  out.resize(in.rows(), in.cols());
  dout.resize(in.rows(), in.cols());
  const Eigen::Index n = in.size();
  const double* p = in.data();
  double* o = out.data();
  double* d = dout.data();
  if (a == Activation::tanh) {  // one tanh per element
    for (Eigen::Index i = 0; i < n; ++i) {
      const double t = std::tanh(p[i]);
      o[i] = t;
      d[i] = 1.0 - t * t;
    }
    return;
  }
  if (a == Activation::gelu) {  // one erf and one exp per element
    for (Eigen::Index i = 0; i < n; ++i) {
      const double x = p[i], cdf = 0.5 * (1.0 + std::erf(x * M_SQRT1_2));
      o[i] = x * cdf;
      d[i] = cdf + x * std::exp(-0.5 * x * x) * (0.5 * M_2_SQRTPI * M_SQRT1_2);
    }
    return;
  }
  for (Eigen::Index i = 0; i < n; ++i) {
    o[i] = act(a, p[i]);
    d[i] = act_deriv(a, p[i]);
  }
}

}  // namespace moedmft::dmft
