// Helpers shared by the test files: scratch directories, a non-trivial resolved
// parameterization and seeded random matrices.
#pragma once
#include <algorithm>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "models/parameterization.hpp"
#include "models/random.hpp"
#include "models/types.hpp"

namespace moedmft::testing {

// A per-process scratch directory under the build tree (ctest runs test cases in parallel
// processes), removed when the test case ends.
struct Scratch {
  std::filesystem::path dir;
  explicit Scratch(const std::string& tag) {
    dir = std::filesystem::path(MOEDMFT_BINARY_DIR) / "test_scratch" / (tag + "_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
  }
  ~Scratch() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::string file(const std::string& name) const { return (dir / name).string(); }
};

// The ConfigError message from f, or "" when it does not throw ConfigError.
inline std::string config_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

// Appends v as 4 big-endian bytes (the IDX header layout).
inline void put_be32(std::vector<uint8_t>& b, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<uint8_t>(v >> shift));
}

// Distinct, non-unit values for every group so that a misplaced multiplier or LR shows.
inline ResolvedParam test_param(double router_multiplier = 0.7) {
  ResolvedParam p;
  p.name = "test";
  const double stds[kNumGroups] = {0.6, 0.7, 0.5, 0.45, 0.5, 0.0};
  const double mults[kNumGroups] = {1.3, router_multiplier, 0.9, 1.1, 0.8, 1.0};
  for (int g = 0; g < kNumGroups; ++g) {
    p.groups[g].init_std = stds[g];
    p.groups[g].multiplier = mults[g];
    p.groups[g].lr = 0.05 * (g + 1);
    p.groups[g].eps = 1e-8;
  }
  p.gate_factor = 0.75;
  p.aggregation = 1.25;
  p.residual_multiplier = 0.7;
  return p;
}

template <class T = double>
Mat<T> random_matrix(int rows, int cols, uint64_t seed) {
  Rng rng(seed);
  Mat<T> m(rows, cols);
  for (int i = 0; i < m.size(); ++i) m.data()[i] = T(rng.normal());
  return m;
}

// max |a - b| / max |b| (floored away from 0/0).
inline double max_rel(const Mat<double>& a, const Mat<double>& b) {
  return (a - b).cwiseAbs().maxCoeff() / std::max(b.cwiseAbs().maxCoeff(), 1e-300);
}

}  // namespace moedmft::testing
