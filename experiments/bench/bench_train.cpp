// Training-step benchmark (not a test): ms per step and achieved GFLOP/s for the foundation
// issue's small and large shapes in float32, with OpenBLAS sgemm measured in the same run as
// the ceiling. FLOPs count matmuls only, as scripts/reference/bench_torch.py does.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "models/engine.hpp"
#include "models/random.hpp"

extern "C" void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                       const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
                       const float* beta, float* c, const int* ldc);

using namespace moedmft;

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double openblas_sgemm_gflops(int n, int repeats) {
  std::vector<float> a(size_t(n) * n, 0.5f), b(size_t(n) * n, 0.25f), c(size_t(n) * n, 0.f);
  const float one = 1.f, zero = 0.f;
  std::vector<double> times;
  for (int r = 0; r < repeats + 1; ++r) {
    const auto t0 = Clock::now();
    sgemm_("N", "N", &n, &n, &n, &one, a.data(), &n, b.data(), &n, &zero, c.data(), &n);
    if (r) times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return 2.0 * n * n * double(n) / median(times) / 1e9;
}

struct BenchShape {
  const char* name;
  int D, N, Ne, M, K, B;
  int repeats;
};

void bench(const BenchShape& bs, FILE* out) {
  Shape s;
  s.D = bs.D; s.N = bs.N; s.Ne = bs.Ne; s.M = bs.M; s.K = bs.K; s.C = 1;
  ModelOptions o;
  o.routing = Routing::topk;
  ResolvedParam p;
  for (int g = 0; g < kNumGroups; ++g) {
    p.groups[g].init_std = 1.0 / std::sqrt(double(g == 0 ? s.D : s.N));
    p.groups[g].lr = 1e-3;
    p.groups[g].eps = 1e-8;
  }
  MoeNetwork<float> net(s, o, p);
  net.initialize(1);
  Rng rng(2);
  Mat<float> x(bs.B, s.D), y(bs.B, 1);
  for (int i = 0; i < x.size(); ++i) x.data()[i] = float(rng.normal());
  for (int i = 0; i < y.size(); ++i) y.data()[i] = float(rng.normal());
  OptimizerConfig oc;
  oc.kind = OptimizerKind::adam;
  CpuEngine<float> engine(net, oc);  // the training path `moedmft train` uses
  std::vector<double> times;
  for (int r = 0; r < bs.repeats + 3; ++r) {
    const auto t0 = Clock::now();
    engine.step(x, y, {}, nullptr);
    if (r >= 3) times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  // Forward matmul FLOPs; backward doubles all but the input layer (weight gradient only).
  const double B = bs.B, routed = B * s.K;
  const double in = 2 * B * s.D * s.N, router = 2 * B * s.N * s.M, experts = 2 * routed * s.N * s.Ne * 2,
               readout = 2 * B * s.N * s.C;
  const double flops = (in + router + experts + readout) + (in + 2 * (router + experts + readout));
  const double sec = median(times);
  std::fprintf(out, "moedmft %s ms_per_step=%.4f gflops=%.2f threads=%d\n", bs.name, sec * 1e3, flops / sec / 1e9,
               omp_get_max_threads());
  std::fflush(out);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string which = argc > 1 ? argv[1] : "all";
  const BenchShape small{"small", 256, 128, 128, 8, 2, 50, 400};
  const BenchShape large{"large", 1024, 1024, 1024, 8, 2, 512, 15};
  std::printf("openblas sgemm n=1024 gflops=%.2f\n", openblas_sgemm_gflops(1024, 10));
  if (which == "all" || which == "small") bench(small, stdout);
  if (which == "all" || which == "large") bench(large, stdout);
  return 0;
}
