// Multi-run training: R runs batched through MultiRunEngine equal R separate CpuEngine runs
// (losses and final weights), divergence stays inside its run, and a sweep trains the same
// points with batch_runs on and off.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>

#include "data/h5/h5.hpp"
#include "experiments/sweep.hpp"
#include "models/multirun.hpp"
#include "test_support.hpp"

using namespace moedmft;

namespace {

template <class T>
double rel_diff(double a, double b) {
  if (a == b) return 0;
  return std::abs(a - b) / std::max({std::abs(a), std::abs(b), 1e-30});
}

template <class T>
double max_rel_weights(const MoeNetwork<T>& a, const MoeNetwork<T>& b) {
  double worst = 0;
  for (int g = 0; g < kNumGroups; ++g) {
    const Vec<T>& x = a.params()[g].data;
    const Vec<T>& y = b.params()[g].data;
    REQUIRE(x.size() == y.size());
    const double scale = std::max(1e-30, double(x.template cast<double>().cwiseAbs().maxCoeff()));
    worst = std::max(worst, (x - y).template cast<double>().cwiseAbs().maxCoeff() / scale);
  }
  return worst;
}

// Bitwise equality that treats NaN entries as equal (diverged runs keep NaN weights).
bool same_values(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
  return true;
}

struct Case {
  Shape shape;
  ModelOptions options;
};

// Random small shape; soft or top-K routing.
Case random_case(Rng& rng, bool topk) {
  Case c;
  auto pick = [&rng](int lo, int hi) { return lo + int(rng.uniform() * (hi - lo + 1)) % (hi - lo + 1); };
  c.shape.D = pick(3, 9);
  c.shape.N = pick(4, 14);
  c.shape.Ne = pick(3, 12);
  c.shape.M = pick(2, 5);
  c.shape.K = topk ? pick(1, c.shape.M) : c.shape.M;
  c.shape.L = pick(1, 2);
  c.shape.C = pick(1, 2);
  c.options.routing = topk ? Routing::topk : Routing::soft;
  c.options.residual = c.shape.L > 1;
  return c;
}

// Each run: its own parameterization constants, LR scale, seed and optimizer settings.
ResolvedParam run_param(int r) {
  ResolvedParam p = testing::test_param(0.5 + 0.1 * r);
  for (int g = 0; g < kNumGroups; ++g) p.groups[g].lr *= 0.05 * (1 + 0.3 * r);
  p.gate_factor = 0.6 + 0.05 * r;
  return p;
}

template <class T>
void check_batched_equals_separate(OptimizerKind kind, bool topk, uint64_t seed, double tol) {
  Rng rng(seed);
  const Case c = random_case(rng, topk);
  const int R = 3, B = 7, steps = 10;
  OptimizerConfig oc;
  oc.kind = kind;
  MultiRunEngine<T> multi(2);
  std::vector<MoeNetwork<T>> separate;
  std::vector<OptimizerConfig> ocs;
  for (int r = 0; r < R; ++r) {
    MoeNetwork<T> net(c.shape, c.options, run_param(r));
    net.initialize(seed * 10 + r);
    OptimizerConfig o = oc;
    o.beta1 = 0.9 - 0.05 * r;
    ocs.push_back(o);
    separate.push_back(net);
    multi.add_run(std::move(net), o);
  }
  std::vector<std::unique_ptr<CpuEngine<T>>> engines;
  for (int r = 0; r < R; ++r) engines.push_back(std::make_unique<CpuEngine<T>>(separate[r], ocs[r]));

  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    const Mat<T> x = testing::random_matrix<T>(B, c.shape.D, seed * 1000 + s);
    const Mat<T> y = testing::random_matrix<T>(B, c.shape.C, seed * 2000 + s);
    if (s % 2 == 0) {
      multi.step(x, y, {}, losses);
    } else {  // every other step: each run its own batch
      std::vector<RunBatch<T>> batches(R);
      for (int r = 0; r < R; ++r) batches[r] = {x * T(1 + 0.1 * r), y, {}};
      multi.step(batches, {}, losses);
    }
    for (int r = 0; r < R; ++r) {
      const Mat<T> xr = s % 2 == 0 ? x : Mat<T>(x * T(1 + 0.1 * r));
      const double expected = engines[r]->step(xr, y, {}, nullptr);
      INFO("step " << s << " run " << r);
      if (std::isfinite(expected))
        CHECK(rel_diff<T>(losses[r], expected) <= tol);
      else  // diverged in both (the batched run is then skipped and reports NaN)
        CHECK(!std::isfinite(losses[r]));
    }
  }
  for (int r = 0; r < R; ++r) CHECK(max_rel_weights(multi.network(r), separate[r]) <= tol);
}

}  // namespace

TEST_CASE("batched runs equal separate CpuEngine runs (float64)", "[multirun]") {
  for (uint64_t seed = 1; seed <= 4; ++seed)
    for (bool topk : {false, true})
      for (OptimizerKind kind : {OptimizerKind::sgd, OptimizerKind::adam}) {
        INFO("seed " << seed << " topk " << topk << " optimizer " << to_string(kind));
        check_batched_equals_separate<double>(kind, topk, seed, 1e-12);
      }
}

TEST_CASE("batched runs equal separate CpuEngine runs (float32)", "[multirun]") {
  for (uint64_t seed = 5; seed <= 7; ++seed)
    for (bool topk : {false, true})
      for (OptimizerKind kind : {OptimizerKind::sgd, OptimizerKind::adam}) {
        INFO("seed " << seed << " topk " << topk << " optimizer " << to_string(kind));
        check_batched_equals_separate<float>(kind, topk, seed, 1e-5);
      }
}

TEST_CASE("a diverging run is recorded and does not disturb the others", "[multirun]") {
  Shape s;
  s.D = 5; s.N = 8; s.Ne = 6; s.M = 4; s.K = 2; s.C = 1;
  ModelOptions o;
  o.routing = Routing::topk;
  OptimizerConfig oc;
  const int R = 4, steps = 30;
  MultiRunEngine<double> multi(2);
  std::vector<MoeNetwork<double>> separate;
  for (int r = 0; r < R; ++r) {
    ResolvedParam p = testing::test_param();
    if (r == 2)
      for (auto& g : p.groups) g.lr = 1e12;  // diverges within a few steps
    MoeNetwork<double> net(s, o, p);
    net.initialize(r + 1);
    separate.push_back(net);
    multi.add_run(std::move(net), oc);
  }
  const Mat<double> x = testing::random_matrix(16, s.D, 3), y = testing::random_matrix(16, 1, 4);
  std::vector<std::vector<double>> seen(R, std::vector<double>(steps, std::nan("")));
  multi.train(
      steps, [&](long, RunBatch<double>& b) { b.x = x; b.y = y; },
      [&](int r, long step, double loss, const Mat<double>*) { seen[r][step] = loss; });
  REQUIRE(multi.diverged(2));
  const long at = multi.diverged_at(2);
  CHECK(at >= 0);
  CHECK(!std::isfinite(seen[2][at]));
  for (long st = at + 1; st < steps; ++st) CHECK(std::isnan(seen[2][st]));  // never stepped again
  for (int r = 0; r < R; ++r) {
    if (r == 2) continue;
    CHECK(!multi.diverged(r));
    CpuEngine<double> engine(separate[r], oc);
    for (int st = 0; st < steps; ++st) CHECK(engine.step(x, y, {}, nullptr) == seen[r][st]);
    CHECK(max_rel_weights(multi.network(r), separate[r]) == 0.0);
  }
}

TEST_CASE("runs with different shapes are refused", "[multirun]") {
  Shape a, b;
  a.N = 8; a.Ne = 8; a.K = a.M; b = a; b.N = 10;
  MultiRunEngine<double> multi;
  multi.add_run(MoeNetwork<double>(a, ModelOptions{}, testing::test_param()), OptimizerConfig{});
  CHECK_THROWS_AS(multi.add_run(MoeNetwork<double>(b, ModelOptions{}, testing::test_param()), OptimizerConfig{}),
                  ConfigError);
}

TEST_CASE("a sweep gives the same point files with batch_runs on and off", "[multirun]") {
  const testing::Scratch dir("multirun_sweep");
  auto spec_for = [&](const std::string& name, bool batch, const std::string& extra, int diag_every) {
    std::string text = "output = \"" + dir.file(name) + "\"\nparallel = 2\nbatch_runs = " +
                       (batch ? "true" : "false") + "\n" +
                       "[base.model]\nN = 10\nNe = 8\nM = 4\nK = 2\nrouting = \"topk\"\n"
                       "[base.data]\nP = 400\nseed = 3\n" + extra +
                       "[base.train]\nsteps = 15\nbatch_size = 20\nprobe_size = 8\ndiag_every = " +
                       std::to_string(diag_every) + "\n"
                       "[[axis]]\nname = \"opt\"\nkey = \"optim.kind\"\nvalues = [\"sgd\", \"adam\"]\n"
                       "[[axis]]\nname = \"lr\"\nkey = \"optim.lr\"\nvalues = [0.05, 0.2, 1e9]\n"
                       "[[axis]]\nname = \"seed\"\nkey = \"seed\"\nvalues = [1, 2]\n";
    return parse_sweep_spec(text, {});
  };
  // Regression without diagnostics; classification with diagnostics and validation data.
  for (const bool cls : {false, true}) {
    const std::string extra = cls ? "task = \"classification\"\nC = 3\nP_val = 50\n" : "";
    const int diag_every = cls ? 4 : 0;
    INFO("classification with diagnostics: " << cls);
    const std::string tag = cls ? "cls" : "reg";
    const SweepSpec on = spec_for(tag + "_on.h5", true, extra, diag_every),
                    off = spec_for(tag + "_off.h5", false, extra, diag_every);
    CHECK(on.batch_runs);
    CHECK(!off.batch_runs);
    const SweepSummary a = run_sweep(on, {}), b = run_sweep(off, {});
    CHECK(a.trained == 12);
    CHECK(a.diverged == b.diverged);
    CHECK(a.diverged >= 2);
    for (long p = 0; p < 12; ++p) {
      h5::File fa(point_file(on, p), h5::Mode::read), fb(point_file(off, p), h5::Mode::read);
      const std::vector<double> la = h5::read_double(fa, "metrics/train_loss"), lb = h5::read_double(fb, "metrics/train_loss");
      CHECK(la.size() == 15);
      CHECK(same_values(la, lb));
      for (const char* w : {"weights/w_in", "weights/w_expert1", "weights/w_out"})
        CHECK(same_values(h5::read_double(fa, w), h5::read_double(fb, w)));
      if (cls) {
        CHECK(same_values(h5::read_double(fa, "metrics/train_accuracy"), h5::read_double(fb, "metrics/train_accuracy")));
        for (const char* d : {"diagnostics/values", "diagnostics/val_loss", "diagnostics/val_accuracy"}) {
          const std::vector<double> da = h5::read_double(fa, d);
          CHECK(!da.empty());
          CHECK(same_values(da, h5::read_double(fb, d)));
        }
        CHECK(h5::read_double(fa, "diagnostics/diag_step") == std::vector<double>{0, 4, 8, 12, 15});
      }
      CHECK(h5::read_attr_string(fa, "/", "config_toml") == h5::read_attr_string(fb, "/", "config_toml"));
    }
    h5::File ga(on.output, h5::Mode::read), gb(off.output, h5::Mode::read);
    const std::vector<double> da = h5::read_double(ga, "diverged"), db = h5::read_double(gb, "diverged");
    CHECK(da == db);
  }
}

TEST_CASE("sweep batch_runs must be a boolean", "[multirun]") {
  try {
    parse_sweep_spec("batch_runs = 3\n[[axis]]\nname = \"lr\"\nkey = \"optim.lr\"\nvalues = [0.1]\n", {});
    FAIL("no error");
  } catch (const ConfigError& e) {
    CHECK_THAT(e.what(), Catch::Matchers::StartsWith("batch_runs:"));
  }
}

TEST_CASE("train() gives the same losses whatever the cache blocking", "[multirun]") {
  Shape s;
  s.D = 4; s.N = 6; s.Ne = 5; s.M = 3; s.K = 3; s.C = 2;
  OptimizerConfig adam;
  adam.kind = OptimizerKind::adam;
  const int R = 5, steps = 8;
  const Mat<double> x = testing::random_matrix(steps * 6, s.D, 8), y = testing::random_matrix(steps * 6, s.C, 9);
  auto losses_with = [&](long budget, int threads) {
    MultiRunEngine<double> multi(threads);
    multi.set_cache_budget(budget);
    for (int r = 0; r < R; ++r) {
      MoeNetwork<double> net(s, ModelOptions{}, run_param(r));
      net.initialize(40 + r);
      multi.add_run(std::move(net), adam);
    }
    std::vector<std::vector<double>> seen(R, std::vector<double>(steps));
    multi.train(
        steps,
        [&](long step, RunBatch<double>& b) {
          b.x = x.middleRows(step * 6, 6);
          b.y = y.middleRows(step * 6, 6);
        },
        [&](int r, long step, double loss, const Mat<double>* f) {
          REQUIRE(f != nullptr);
          CHECK(f->rows() == 6);
          seen[r][step] = loss;
        },
        true);
    return seen;
  };
  const auto one_at_a_time = losses_with(1, 2);  // blocks of one run: each run to the end, then the next
  CHECK(losses_with(1L << 40, 2) == one_at_a_time);
  CHECK(losses_with(1L << 40, 1) == one_at_a_time);
  CHECK(losses_with(1, 3) == one_at_a_time);
}
