// `--mpi-split samples` emulated in one process: one thread per rank, each holding its slice of
// every sample population, the partial averages added through an in-memory collective that, like
// the MPI one, gives every rank the same sums. Each split solve must equal the one-process solve
// to round-off, on both ranks alike. The real MPI run is tests/check_mpi_dmft.sh.
#include <catch2/catch.hpp>
#include <omp.h>

#include <condition_variable>
#include <cstdio>
#include <exception>
#include <mutex>
#include <thread>

#include "experiments/moe_limit.hpp"
#include "experiments/toml_section.hpp"
#include "experiments/trainer.hpp"
#include "solver/dmft/dmft.hpp"
#include "solver/dmft/replicates.hpp"
#include "test_support.hpp"

using namespace moedmft;
using namespace moedmft::dmft;
using Catch::Matchers::Contains;

namespace {

// Sums in rank order once every rank has arrived; a rank that failed breaks the collective so
// the others throw instead of waiting forever.
struct ThreadCollective {
  explicit ThreadCollective(int r) : ranks(r), parts(r) {}
  int ranks;
  std::mutex mutex;
  std::condition_variable wake;
  std::vector<std::vector<double>> parts;
  std::vector<double> total;
  int arrived = 0;
  long round = 0, calls = 0;
  bool broken = false;

  void sum(int rank, double* data, size_t n) {
    std::unique_lock<std::mutex> lock(mutex);
    if (broken) throw std::runtime_error("another emulated rank failed");
    const long mine = round;
    parts[rank].assign(data, data + n);
    if (++arrived == ranks) {
      total = parts[0];
      for (int r = 1; r < ranks; ++r) {
        if (parts[r].size() != n) throw std::runtime_error("ranks disagree on the size of a sum");
        for (size_t i = 0; i < n; ++i) total[i] += parts[r][i];
      }
      arrived = 0;
      ++round;
      ++calls;
      wake.notify_all();
    } else {
      wake.wait(lock, [&] { return round != mine || broken; });
      if (round == mine) throw std::runtime_error("another emulated rank failed");
    }
    std::copy(total.begin(), total.end(), data);
  }
  void fail() {
    std::lock_guard<std::mutex> lock(mutex);
    broken = true;
    wake.notify_all();
  }
};

// Runs solve() on `ranks` threads, each installed as one rank of a samples split; returns every
// rank's result (rethrows the first failure).
template <class Result, class Solve>
std::vector<Result> on_emulated_ranks(int ranks, Solve solve, long* calls = nullptr) {
  ThreadCollective collective(ranks);
  std::vector<Result> results(ranks);
  std::vector<std::exception_ptr> failures(ranks);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < ranks; ++rank)
    threads.emplace_back([&, rank] {
      try {
        omp_set_num_threads(1);
        ReplicateSplit split;
        split.rank = rank;
        split.ranks = ranks;
        split.mode = RankSplit::samples;
        split.sum = [&collective, rank](double* data, size_t n) { collective.sum(rank, data, n); };
        set_replicate_split(std::move(split));
        results[rank] = solve();
        set_replicate_split({});
      } catch (...) {
        failures[rank] = std::current_exception();
        set_replicate_split({});
        collective.fail();
      }
    });
  for (auto& t : threads) t.join();
  for (auto& f : failures)
    if (f) std::rethrow_exception(f);
  if (calls) *calls = collective.calls;
  return results;
}

double rel_gap(const Mat<double>& a, const Mat<double>& b) {
  return (a - b).cwiseAbs().maxCoeff() / std::max(1e-300, b.cwiseAbs().maxCoeff());
}
Mat<double> as_column(const std::vector<double>& v) {
  return Eigen::Map<const Mat<double>>(v.data(), Eigen::Index(v.size()), 1);
}

// tolerance: relative, on f, the loss and the last kernels (the replicate error gets 100x)
void check_dense(const DmftConfig& cfg, int ranks, double tolerance = 1e-10) {
  const Mat<double> x = testing::random_matrix(5, 4, 11), y = testing::random_matrix(5, 1, 12);
  const DmftResult one = solve_dmft(cfg, x, y);
  long calls = 0;
  const auto split = on_emulated_ranks<DmftResult>(ranks, [&] { return solve_dmft(cfg, x, y); }, &calls);
  INFO("L = " << cfg.L << ", " << ranks << " ranks: " << calls << " sums; f gap " << rel_gap(split[0].f, one.f)
              << ", loss gap " << rel_gap(as_column(split[0].loss), as_column(one.loss)));
  CHECK(calls > cfg.T);  // every step's averages went through the collective
  CHECK(rel_gap(split[0].f, one.f) < tolerance);
  CHECK(rel_gap(as_column(split[0].loss), as_column(one.loss)) < tolerance);
  CHECK(rel_gap(split[0].Phi[0][cfg.T], one.Phi[0][cfg.T]) < tolerance);
  CHECK(rel_gap(split[0].G[0][cfg.T], one.G[0][cfg.T]) < tolerance);
  CHECK(rel_gap(split[0].f_err, one.f_err) < 100 * tolerance);
  std::printf("[split] dense L = %d, method %d, optimizer %d, %d ranks: f gap %.2e\n", cfg.L, int(cfg.method),
              int(cfg.optimizer), ranks, rel_gap(split[0].f, one.f));
  for (int r = 1; r < ranks; ++r) CHECK(split[r].f == split[0].f);  // the same sums on every rank
}

MoeLimitSolution moe_limit(const std::string& config, const std::vector<std::string>& sets) {
  const std::string path = std::string(MOEDMFT_SOURCE_DIR) + "/experiments/configs/" + config;
  const MoeLimitSetup s = read_moe_limit_config(read_config_text(path, "--config"), sets, path);
  RunConfig run = s.run;
  const RunData data = prepare_data(run, {});
  return solve_moe_limit(s, data.train.x, data.train.y.col(0));
}

void check_moe(const std::string& config, std::vector<std::string> sets) {
  for (const char* s : {"train.steps=5", "data.P=5", "model.M=4", "model.K=4", "dmft.samples=96",
                        "dmft.replicates=2", "dmft.expert_samples=16"})
    sets.insert(sets.begin(), s);
  const MoeLimitSolution one = moe_limit(config, sets);
  long calls = 0;
  const auto split = on_emulated_ranks<MoeLimitSolution>(2, [&] { return moe_limit(config, sets); }, &calls);
  const bool particles = one.regime != 1;
  const Mat<double>& f1 = particles ? one.particles.f : one.regime1.f;
  const Mat<double>& f2 = particles ? split[0].particles.f : split[0].regime1.f;
  const Mat<double>& agg1 = particles ? one.particles.agg : one.regime1.agg;
  const Mat<double>& agg2 = particles ? split[0].particles.agg : split[0].regime1.agg;
  INFO(config << ": " << calls << " sums; f gap " << rel_gap(f2, f1) << ", agg gap " << rel_gap(agg2, agg1));
  CHECK(calls > 5);
  CHECK(rel_gap(f2, f1) < 1e-9);
  CHECK(rel_gap(as_column(split[0].loss), as_column(one.loss)) < 1e-9);
  // agg holds RMS of differences that vanish at t = 0 (src - init): a square root of round-off
  CHECK(rel_gap(agg2, agg1) < 1e-7);
  CHECK(split[1].loss == split[0].loss);
  std::printf("[split] %s: f gap %.2e, agg gap %.2e\n", config.c_str(), rel_gap(f2, f1), rel_gap(agg2, agg1));
}

}  // namespace

TEST_CASE("samples split over emulated ranks: the dense DMFT equals one process to round-off", "[dmft][replicates][split]") {
  DmftConfig cfg;
  cfg.T = 6;
  cfg.samples = 128;
  cfg.replicates = 2;
  cfg.two_time_kernels = true;
  check_dense(cfg, 2);
  check_dense(cfg, 3);  // uneven slices: 128 samples = 64 pairs over 3 ranks
  cfg.optimizer = DmftOptimizer::adam;  // the entrywise two-layer march
  cfg.eps = 1e-3;
  check_dense(cfg, 2);
  cfg.optimizer = DmftOptimizer::sgd;
  cfg.L = 2;
  cfg.T = 4;
  check_dense(cfg, 2);  // causal sweep
  // The fixed point starts from time-constant kernels, which are exactly rank P: its factors'
  // pivots sit at the jitter floor, and there round-off moves f by about 1e-6 (so does any
  // other summation order). The sweep is the production method.
  cfg.method = DeepMethod::fixed_point;
  cfg.max_iter = 6;
  check_dense(cfg, 2, 1e-5);
}

TEST_CASE("samples split over emulated ranks: the MoE limits equal one process to round-off", "[dmft][moe][split]") {
  check_moe("dmft_moe_regime1.toml", {});
  check_moe("dmft_moe_regime2.toml", {"optim.lr=0.001"});
  check_moe("dmft_moe_regime3.toml", {"optim.lr=0.001", "dmft.expert_samples=8", "dmft.neuron_samples=32"});
}

TEST_CASE("samples split: what cannot be split is refused in one line", "[dmft][replicates][split]") {
  const Mat<double> x = testing::random_matrix(4, 3, 1), y = testing::random_matrix(4, 1, 2);
  DmftConfig cfg;
  cfg.T = 2;
  cfg.samples = 2;  // one antithetic pair for two ranks
  CHECK_THROWS_WITH(on_emulated_ranks<DmftResult>(2, [&] { return solve_dmft(cfg, x, y); }),
                    Contains("dmft.samples: 2 samples cannot be split over 2 MPI ranks"));
  cfg.samples = 16;
  cfg.L = 2;
  cfg.optimizer = DmftOptimizer::signgd;
  CHECK_THROWS_WITH(on_emulated_ranks<DmftResult>(2, [&] { return solve_dmft(cfg, x, y); }),
                    Contains("--mpi-split: the pair estimator"));
}
