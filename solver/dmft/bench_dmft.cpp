// Benchmark of the DMFT solvers: time per deep causal sweep (L = 2) and per two-layer march at
// n = P (T+1) ~ 2000 and 4000, and per regime-II MoE solve (P = 16, T = 30, Ne = 16), with achieved
// GFLOP/s from the flop models below, next to the float64 GEMM throughput (Eigen and the linked
// BLAS dgemm_) measured in the same run.
// Usage: moedmft_bench_dmft [samples=1024] [reps=1] [regime2_only=0]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "models/random.hpp"
#include "solver/dmft/dmft.hpp"
#include "solver/dmft/moe2.hpp"

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
  const bool regime2_only = argc > 3 && std::atoi(argv[3]) != 0;
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
  // Regime-II MoE limit: per step the expert-neuron rows (S_e Ne of them) meet the history in
  // ~9 GEMMs of 2 rows n_k P flops, the residual populations in ~12, the router rows in ~6;
  // summed over steps: (9 S_e Ne + 12 S + 6 S_e) n^2 flop.
  for (int Se : {1024, 2048, 4096}) {
    const int P = 16, T = 30, n = P * (T + 1);
    const Mat<double> x = rnd(P, 16, 5) * 0.25;
    const Mat<double> y = rnd(P, 1, 6).col(0);
    Moe2DmftConfig c;
    c.T = T;
    c.samples = 2 * Se;
    c.expert_samples = Se;
    c.replicates = omp_get_max_threads();
    c.k.c_router = c.k.c_expert1 = 1.0;
    c.k.c_expert2 = 8.0;
    c.k.lr_router = c.k.lr_expert1 = c.k.lr_expert2 = 0.005;
    c.k.lr_in = 0.005 / 128;
    c.k.lr_out = 0.64;
    c.k.sigma_in = 0.25;
    c.k.nu = 1.0 / 16;
    c.k.Ne = 16;
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {
      auto t0 = Clock::now();
      const Moe2DmftResult res = solve_moe2_dmft(c, x, y);
      best = std::min(best, seconds_since(t0));
      if (!std::isfinite(res.loss[T])) std::printf("non-finite output!\n");
    }
    const double flops = c.replicates * (9.0 * Se * c.k.Ne + 12.0 * c.samples + 6.0 * Se) * double(n) * n;
    std::printf("regime-II MoE   P=%d T=%d n=%d S=%d S_e=%d Ne=%d x %d replicates: %.3f s per solve, %.1f GFLOP/s, "
                "%.0f MiB per replicate\n",
                P, T, n, c.samples, Se, c.k.Ne, c.replicates, best, flops / best * 1e-9,
                moe2_march_bytes(c, P) / (1024.0 * 1024.0));
  }
  if (regime2_only) return 0;
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
