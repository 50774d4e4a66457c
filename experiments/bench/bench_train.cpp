// Training-step benchmark (not a test): ms per step and achieved GFLOP/s for the foundation
// issue's small and large shapes in float32, with OpenBLAS sgemm measured in the same run as
// the ceiling. FLOPs count matmuls only, as scripts/reference/bench_torch.py does.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "experiments/threads.hpp"
#include "experiments/bench/bench_model.hpp"
#include "experiments/bench/gemm_rate.hpp"
#include "models/engine.hpp"

using namespace moedmft;
using namespace moedmft::bench;

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void run_shape(const BenchShape& bs, FILE* out) {
  BenchProblem pb = make_bench_problem(bs);
  const Mat<float>&x = pb.x, &y = pb.y;
  CpuEngine<float> engine(pb.net, pb.optim);  // the training path `moedmft train` uses
  std::vector<double> times;
  for (int r = 0; r < bs.repeats + 3; ++r) {
    const auto t0 = Clock::now();
    engine.step(x, y, {}, nullptr);
    if (r >= 3) times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  const double flops = step_matmul_flops(bs);
  const double sec = median(times);
  std::fprintf(out, "moedmft %s ms_per_step=%.4f gflops=%.2f threads=%d\n", bs.name, sec * 1e3, flops / sec / 1e9,
               omp_get_max_threads());
  std::fflush(out);
}

}  // namespace

int main(int argc, char** argv) {
  moedmft::ensure_passive_waiting(argv);
  moedmft::take_threads_arg(argc, argv);  // -j N anywhere, as the moedmft subcommands
  const std::string which = argc > 1 ? argv[1] : "all";
  std::printf("openblas sgemm n=1024 gflops=%.2f\n", openblas_sgemm_gflops(1024, 10));
  std::printf("eigen sgemm n=1024 gflops=%.2f\n", eigen_sgemm_gflops(1024, 10));
  if (which == "all" || which == "small") run_shape(kSmallShape, stdout);
  if (which == "all" || which == "large") run_shape(kLargeShape, stdout);
  return 0;
}
