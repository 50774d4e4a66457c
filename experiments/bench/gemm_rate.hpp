// The machine's square sgemm rate, the ceiling the benchmarks divide by, measured in the same run.
#pragma once
#include <algorithm>
#include <chrono>
#include <vector>

#include "models/types.hpp"

extern "C" void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                       const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
                       const float* beta, float* c, const int* ldc);

namespace moedmft::bench {

// Median seconds of `repeats` calls of fn after one warm-up call.
template <class Fn>
double median_seconds(int repeats, Fn&& fn) {
  std::vector<double> times;
  for (int r = 0; r < repeats + 1; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    if (r) times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

inline double openblas_sgemm_gflops(int n, int repeats) {
  std::vector<float> a(size_t(n) * n, 0.5f), b(size_t(n) * n, 0.25f), c(size_t(n) * n, 0.f);
  const float one = 1.f, zero = 0.f;
  const double s = median_seconds(repeats, [&] {
    sgemm_("N", "N", &n, &n, &n, &one, a.data(), &n, b.data(), &n, &zero, c.data(), &n);
  });
  return 2.0 * n * n * double(n) / s / 1e9;
}

// The same square product through Eigen (the simulator's GEMMs): on CPUs where OpenBLAS picks an
// AVX2 kernel but Eigen is built for AVX-512, Eigen is the faster of the two.
inline double eigen_sgemm_gflops(int n, int repeats) {
  const Mat<float> a = Mat<float>::Constant(n, n, 0.5f), b = Mat<float>::Constant(n, n, 0.25f);
  Mat<float> c(n, n);
  const double s = median_seconds(repeats, [&] { c.noalias() = a * b; });
  return 2.0 * n * n * double(n) / s / 1e9;
}

}  // namespace moedmft::bench
