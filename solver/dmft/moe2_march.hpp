// Internal to solver/dmft: one replicate of the regime-II MoE march (moe2_march.cpp).
#pragma once
#include <cstdint>
#include <vector>

#include "solver/dmft/moe2.hpp"

namespace moedmft::dmft {

struct Moe2Trace {
  Mat<double> f;             // [T+1, P]
  std::vector<double> loss;  // [T+1]
  Mat<double> logit_mean, logit_std, logit_quantile;  // [T+1, P]
  Mat<double> load;          // [T+1, 3]
  Mat<double> agg;           // [T+1, 5]
  Mat<double> rms;           // [T+1, 4]
  std::vector<Mat<double>> phi1, phi2, gated, g2;  // [T+1] x [P, P]
  Mat<double> cz;            // [T+1, T+1]
  // Every member, in order, for packing (solver/dmft/replicates.hpp); keep in step with the struct.
  template <class V>
  void fields(V&& v) {
    v(f, loss, logit_mean, logit_std, logit_quantile, load, agg, rms, phi1, phi2, gated, g2, cz);
  }
};

// x [P, D] the training inputs (the pair estimator's input entries need them), XXt = x x^T.
Moe2Trace march_moe2_once(const Moe2DmftConfig& cfg, const Mat<double>& x, const Mat<double>& XXt, const Vec<double>& y,
                          uint64_t seed);

}  // namespace moedmft::dmft
