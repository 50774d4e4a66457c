// Internal to solver/dmft: one replicate of the regime-III MoE march (moe3_march.cpp).
#pragma once
#include <cstdint>

#include "solver/dmft/moe2_march.hpp"
#include "solver/dmft/moe3.hpp"

namespace moedmft::dmft {

// x [P, D] the training inputs (the pair estimator's input entries need them), XXt = x x^T.
Moe2Trace march_moe3_once(const Moe3DmftConfig& cfg, const Mat<double>& x, const Mat<double>& XXt, const Vec<double>& y,
                          uint64_t seed);

}  // namespace moedmft::dmft
