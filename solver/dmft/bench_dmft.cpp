// Benchmark of the DMFT solvers: time per deep causal sweep (L = 2) and per two-layer march at
// n = P (T+1) ~ 2000 and 4000, with achieved GFLOP/s from the flop model below, next to the
// float64 GEMM throughput (Eigen and the linked BLAS dgemm_) measured in the same run.
// Usage: moedmft_bench_dmft [samples=1024] [reps=1]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "models/random.hpp"
#include "solver/dmft/dmft.hpp"

extern "C" void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*,
                       const double*, const int*, const double*, const int*, const double*, double*,
                       const int*);

using namespace moedmft;
using namespace moedmft::dmft;
using Clock = std::chrono::steady_clock;

static double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

static Mat<double> rnd(int r, int c, uint64_t seed) {
  Rng rng(seed);
  Mat<double> m(r, c);
  for (int i = 0; i < r; ++i)
    for (int j = 0; j < c; ++j) m(i, j) = rng.normal();
  return m;
}

int main(int argc, char** argv) {
  const int S = argc > 1 ? std::atoi(argv[1]) : 1024;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 1;
  std::printf("threads %d, samples S = %d\n", omp_get_max_threads(), S);
  // float64 GEMM reference throughput (square, m = 2000)
  {
    const int m = 2000;
    Mat<double> A = rnd(m, m, 1), B = rnd(m, m, 2), C(m, m);
    C.noalias() = A * B;  // warm-up
    auto t0 = Clock::now();
    C.noalias() = A * B;
    const double te = seconds_since(t0);
    const double one = 1.0, zero = 0.0;
    dgemm_("N", "N", &m, &m, &m, &one, B.data(), &m, A.data(), &m, &zero, C.data(), &m);
    t0 = Clock::now();
    dgemm_("N", "N", &m, &m, &m, &one, B.data(), &m, A.data(), &m, &zero, C.data(), &m);
    const double tb = seconds_since(t0);
    std::printf("dgemm %dx%dx%d: Eigen %.1f GFLOP/s, BLAS dgemm_ %.1f GFLOP/s\n", m, m, m,
                2.0 * m * m * m / te * 1e-9, 2.0 * m * m * m / tb * 1e-9);
  }
  struct Size { int P, T; };
  for (Size sz : {Size{20, 99}, Size{40, 99}}) {
    const int n = sz.P * (sz.T + 1);
    const Mat<double> x = rnd(sz.P, 16, 3);
    const Mat<double> y = rnd(sz.P, 1, 4);
    DmftConfig cfg;
    cfg.P = sz.P;
    cfg.T = sz.T;
    cfg.samples = S;
    cfg.replicates = 1;
    cfg.phi = Activation::tanh;
    cfg.eta = 0.05;
    // deep sweep, L = 2: per step and layer pair ~12 GEMMs of 2 S K P flops (K = kP), summed
    // over k: 12 S n^2; growing two causal Cholesky factors ~ 2 n^3 / 3.
    cfg.L = 2;
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {
      auto t0 = Clock::now();
      const DmftResult res = solve_dmft(cfg, x, y);
      best = std::min(best, seconds_since(t0));
      if (!std::isfinite(res.f(cfg.T, 0))) std::printf("non-finite output!\n");
    }
    const double flops = 12.0 * S * double(n) * n + 2.0 * double(n) * n * n / 3.0;
    std::printf("deep sweep L=2  P=%d T=%d n=%d: %.3f s per sweep, %.1f GFLOP/s (model %.2e flop)\n",
                sz.P, sz.T, n, best, flops / best * 1e-9, flops);
    // two-layer march: per step 4 GEMM-like products of ~2 S P^2 flops
    cfg.L = 1;
    cfg.samples = 16 * S;
    auto t0 = Clock::now();
    solve_dmft(cfg, x, y);
    const double t1 = seconds_since(t0);
    const double f1 = 8.0 * cfg.samples * double(sz.P) * sz.P * (sz.T + 1);
    std::printf("two-layer L=1   P=%d T=%d S=%d: %.3f s per solve, %.1f GFLOP/s\n", sz.P, sz.T,
                cfg.samples, t1, f1 / t1 * 1e-9);
  }
  return 0;
}
