// Multi-run benchmark (not a test): R small runs of one shape trained (a) one after another
// through CpuEngine (the `moedmft train` path), (b) one run per thread as the sweep's single-run
// path does, (c) batched through MultiRunEngine, and (d, e) end to end as a sweep with
// batch_runs off and on (data preparation and point files included).
// Usage: moedmft_bench_multirun [R=24] [steps=200] [float64|float32] [repeats=3] [N=64] [modes=spbae]
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "experiments/bench/gemm_rate.hpp"
#include "experiments/threads.hpp"
#include "experiments/sweep.hpp"
#include "models/multirun.hpp"
#include "models/random.hpp"

using namespace moedmft;

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kD = 16, kM = 8, kK = 2, kB = 32;
int kN = 64, kNe = 64;  // width N = Ne (argument 5)
// Modes to run (argument 6): a subset of "spbae" (sequential, parallel, batched, all-in-one, end to end).
std::string modes = "spbae";
bool want(char m) { return modes.find(m) != std::string::npos; }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

Shape bench_shape() {
  Shape s;
  s.D = kD; s.N = kN; s.Ne = kNe; s.M = kM; s.K = kK; s.C = 1;
  return s;
}

// Matmul FLOPs of one training step (the formula of bench_train.cpp).
double step_flops() {
  const double B = kB, routed = B * kK;
  const double in = 2 * B * kD * kN, router = 2 * B * kN * kM, experts = 2 * routed * kN * kNe * 2, readout = 2 * B * kN;
  return (in + router + experts + readout) + (in + 2 * (router + experts + readout));
}

ResolvedParam run_param(int r) {
  ResolvedParam p;
  for (int g = 0; g < kNumGroups; ++g) {
    p.groups[g].init_std = 1.0 / std::sqrt(double(g == 0 ? kD : kN));
    p.groups[g].lr = 0.01 * (1 + r % 6);
  }
  return p;
}

template <class T>
struct Bench {
  int R, steps;
  Mat<T> x, y;
  Bench(int runs, int n_steps) : R(runs), steps(n_steps) {
    Rng rng(11);
    x.resize(long(steps) * kB, kD);
    y.resize(long(steps) * kB, 1);
    for (long i = 0; i < x.size(); ++i) x.data()[i] = T(rng.normal());
    for (long i = 0; i < y.size(); ++i) y.data()[i] = T(rng.normal());
  }
  MoeNetwork<T> net(int r) const {
    ModelOptions o;
    o.routing = Routing::topk;
    MoeNetwork<T> n(bench_shape(), o, run_param(r));
    n.initialize(100 + r);
    return n;
  }
  // Loop of one run, exactly as train_run steps it; returns the sum of its losses.
  double one_run(int r) const {
    MoeNetwork<T> n = net(r);
    CpuEngine<T> engine(n, OptimizerConfig{});
    double sum = 0;
    for (int s = 0; s < steps; ++s) sum += engine.step(x.middleRows(long(s) * kB, kB), y.middleRows(long(s) * kB, kB), {}, nullptr);
    return sum;
  }
  static double total(const std::vector<double>& sums) {
    double sum = 0;
    for (double v : sums) sum += v;
    return sum;
  }
  double sequential() const {
    std::vector<double> sums(R);
    for (int r = 0; r < R; ++r) sums[r] = one_run(r);
    return total(sums);
  }
  double parallel_sweep_path() const {
    std::vector<double> sums(R);
#pragma omp parallel for schedule(dynamic, 1)
    for (int r = 0; r < R; ++r) sums[r] = one_run(r);
    return total(sums);
  }
  // cache_budget < 0: the engine's default blocking.
  double batched(long cache_budget) const {
    MultiRunEngine<T> engine;
    if (cache_budget >= 0) engine.set_cache_budget(cache_budget);
    for (int r = 0; r < R; ++r) engine.add_run(net(r), OptimizerConfig{});
    std::vector<double> sums(R, 0.0);
    engine.train(
        steps,
        [&](long s, RunBatch<T>& b) {
          b.x = x.middleRows(s * kB, kB);
          b.y = y.middleRows(s * kB, kB);
        },
        [&](int r, long, double loss, const Mat<T>*) { sums[r] += loss; });
    return total(sums);
  }
};

template <class F>
double time_it(int repeats, F&& f, double* result) {
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = Clock::now();
    *result = f();
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return median(t);
}

double machine_sgemm = 0;  // the faster square sgemm of this run (GFLOP/s), the ceiling of every mode

void print(const char* mode, double seconds, double flops, double check, double base) {
  const double rate = flops / seconds / 1e9;
  std::printf("%-26s %9.3f s  %7.2f GFLOP/s  %4.0f%% of sgemm  speedup vs first mode %5.2fx  loss-sum %.17g\n", mode,
              seconds, rate, 100 * rate / machine_sgemm, base / seconds, check);
  std::fflush(stdout);
}

SweepSpec sweep_spec(const std::string& output, int R, int steps, bool batch, const std::string& precision) {
  std::string lrs, seeds;
  for (int i = 0; i < 6; ++i) lrs += (i ? ", " : "") + std::to_string(0.01 * (i + 1));
  const int n_seeds = std::max(1, R / 6);
  for (int i = 0; i < n_seeds; ++i) seeds += (i ? ", " : "") + std::to_string(i + 1);
  const std::string text = "output = \"" + output + "\"\nbatch_runs = " + (batch ? "true" : "false") +
                           "\n[base]\nprecision = \"" + precision + "\"\n" +
                           "[base.model]\nD = 16\nN = " + std::to_string(kN) + "\nNe = " + std::to_string(kNe) +
                           "\nM = 8\nK = 2\nrouting = \"topk\"\n"
                           "[base.data]\nP = " + std::to_string(steps * kB) + "\nseed = 7\n"
                           "[base.train]\nsteps = " + std::to_string(steps) + "\nbatch_size = 32\ndiag_every = 0\n"
                           "[[axis]]\nname = \"lr\"\nkey = \"optim.lr\"\nvalues = [" + lrs + "]\n"
                           "[[axis]]\nname = \"seed\"\nkey = \"seed\"\nvalues = [" + seeds + "]\n";
  return parse_sweep_spec(text, {});
}

template <class T>
void run_all(int R, int steps, int repeats, const std::string& precision) {
  const Bench<T> b(R, steps);
  const double flops = step_flops() * R * steps;
  std::printf("R=%d runs, D=%d N=%d Ne=%d M=%d K=%d B=%d, %d steps, SGD, %s, %d threads, median of %d\n", R, kD, kN,
              kNe, kM, kK, kB, steps, precision.c_str(), omp_get_max_threads(), repeats);
  // Every mode trains the same runs on the same batches, so their loss sums must agree bitwise.
  std::vector<double> checks;
  double t_seq = 0;
  auto mode = [&](char key, const char* name, auto&& fn) {
    if (!want(key)) return;
    double check = 0;
    const double t = time_it(repeats, fn, &check);
    if (t_seq == 0) t_seq = t;
    print(name, t, flops, check, t_seq);
    checks.push_back(check);
  };
  mode('s', "sequential (CpuEngine)", [&] { return b.sequential(); });
  mode('p', "parallel sweep path", [&] { return b.parallel_sweep_path(); });
  mode('b', "batched (MultiRunEngine)", [&] { return b.batched(-1); });
  mode('a', "batched, no cache blocks", [&] { return b.batched(1L << 40); });
  bool same = true;
  for (double c : checks) same = same && c == checks.front();
  if (checks.size() > 1) std::printf("losses identical across modes: %s\n", same ? "yes" : "NO");
  if (!want('e')) return;

  // End to end: the sweep driver (teacher data per point or per group, HDF5 point files, gather).
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("moedmft_bench_multirun_" + std::to_string(::getpid()));
  const int sweep_points = 6 * std::max(1, R / 6);
  const double sweep_flops = step_flops() * sweep_points * steps;
  for (bool batch : {false, true}) {
    std::vector<double> t;
    for (int i = 0; i < repeats; ++i) {
      fs::remove_all(dir);
      fs::create_directories(dir);
      const SweepSpec spec = sweep_spec((dir / "s.h5").string(), R, steps, batch, precision);
      const auto t0 = Clock::now();
      run_sweep(spec, {});
      t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
    const double sec = median(t);
    std::printf("%-26s %9.3f s  %7.2f GFLOP/s  %4.0f%% of sgemm  (%d points, end to end)\n",
                batch ? "sweep, batch_runs = true" : "sweep, batch_runs = false", sec, sweep_flops / sec / 1e9,
                100 * sweep_flops / sec / 1e9 / machine_sgemm, sweep_points);
  }
  fs::remove_all(dir);
}

}  // namespace

int main(int argc, char** argv) {
  moedmft::ensure_passive_waiting(argv);
  moedmft::take_threads_arg(argc, argv);  // -j N anywhere, as the moedmft subcommands
  const int R = argc > 1 ? std::atoi(argv[1]) : 24;
  const int steps = argc > 2 ? std::atoi(argv[2]) : 200;
  const std::string precision = argc > 3 ? argv[3] : "float64";
  const int repeats = argc > 4 ? std::atoi(argv[4]) : 3;
  if (argc > 5) kN = kNe = std::atoi(argv[5]);
  if (argc > 6) modes = argv[6];
  if (R < 1 || steps < 1 || repeats < 1 || kN < 1) {
    std::fprintf(stderr, "usage: moedmft_bench_multirun [R>=1] [steps>=1] [float64|float32] [repeats>=1] [N>=1] [modes]\n");
    return 2;
  }
  const double openblas = bench::openblas_sgemm_gflops(1024, 10), eigen = bench::eigen_sgemm_gflops(1024, 10);
  machine_sgemm = std::max(openblas, eigen);
  std::printf("sgemm n=1024: OpenBLAS %.1f GFLOP/s, Eigen %.1f GFLOP/s (the faster is the ceiling below)\n", openblas,
              eigen);
  if (precision == "float32")
    run_all<float>(R, steps, repeats, precision);
  else
    run_all<double>(R, steps, repeats, precision);
  return 0;
}
