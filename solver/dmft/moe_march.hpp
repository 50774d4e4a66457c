// Internal to solver/dmft: one replicate of the regime-I MoE march (moe_march.cpp).
#pragma once
#include <cstdint>
#include <vector>

#include "solver/dmft/moe.hpp"

namespace moedmft::dmft {

struct MoeTrace {
  Mat<double> f;              // [T+1, P]
  std::vector<double> loss;   // [T+1]
  Mat<double> psi, gates;     // [T+1, M*P]
  Mat<double> load;           // [T+1, M]
  Mat<double> agg;            // [T+1, 5]
  Mat<double> rms;            // [T+1, 3]
  std::vector<Mat<double>> phi1, phi2, g2;  // [T+1] x [P, P]
  Mat<double> cz;             // [T+1, T+1] <z(t) z(s)>
  // Every member, in order, for packing (solver/dmft/replicates.hpp); keep in step with the struct.
  template <class V>
  void fields(V&& v) {
    v(f, loss, psi, gates, load, agg, rms, phi1, phi2, g2, cz);
  }
};

// x [P, D] the training inputs, XXt = x x^T (their raw inner products).
MoeTrace march_moe_once(const MoeDmftConfig& cfg, const Mat<double>& x, const Mat<double>& XXt, const Vec<double>& y,
                        uint64_t seed);

}  // namespace moedmft::dmft
