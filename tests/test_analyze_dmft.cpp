// analyze --dmft: the overlay gap of a full-batch sweep against its regime-I limit, recomputed
// here from the raw files.
#include <catch2/catch.hpp>
#include <cmath>

#include "data/h5/h5.hpp"
#include "experiments/analyze.hpp"
#include "experiments/moe_convergence.hpp"
#include "experiments/sweep.hpp"
#include "experiments/trainer.hpp"
#include "test_support.hpp"

using namespace moedmft;

TEST_CASE("analyze --dmft: overlay gap per size of the limit's parameterization", "[analyze][dmft][moe]") {
  testing::Scratch scratch("analyze_dmft");
  const std::string run = R"(
[data]
P = 8
D = 6
seed = 4
[model]
N = 32
Ne = 32
M = 4
K = 4
[param]
table = "mssp-I-sgd"
[optim]
lr = 0.02
[train]
steps = 6
protocol = "full_batch"
diag_every = 0
[dmft]
samples = 512
replicates = 2
)";
  const std::string sweep_path = scratch.file("sweep.h5"), limit_path = scratch.file("limit.h5");
  // The sweep's base is the same document (the [dmft] section is ignored by training runs).
  std::string spec = "output = \"" + sweep_path + "\"\nparallel = 1\n";
  std::string base = run;
  for (std::string::size_type p = 0; (p = base.find("\n[", p)) != std::string::npos; p += 7) base.insert(p + 2, "base.");
  spec += base.substr(0, base.find("[base.dmft]"));
  spec += R"(
[[axis]]
name = "size"
keys = ["model.N", "model.Ne"]
values = [16, 32, 64]
[[axis]]
name = "lr"
key = "optim.lr"
values = [0.005, 0.018]
[[axis]]
name = "seed"
key = "seed"
values = [1, 2]
)";
  const SweepSpec s = parse_sweep_spec(spec, {});
  run_sweep(s, SweepOptions{});

  const MoeLimitSetup setup = read_moe_limit_config(run, {}, "test");
  RunConfig rc = setup.run;
  const RunData data = prepare_data(rc, {});
  const Vec<double> y = data.train.y.col(0);
  const MoeLimitSolution lim = solve_moe_limit(setup, data.train.x, y);
  write_moe_limit(limit_path, setup, data.train.x, y, lim);

  AnalyzeOptions opt;
  opt.dmft_path = limit_path;
  const auto groups = analyze_sweep(sweep_path, opt);
  REQUIRE(groups.size() == 1);
  const GroupAnalysis& g = groups[0];
  CHECK(g.dmft_lr == 0.018);  // the grid LR nearest the limit's 0.02
  REQUIRE(g.dmft_gap.size() == 3);
  // recompute the gap of the middle size from the sweep's trajectories: [size, lr, seed, step]
  h5::File f(sweep_path, h5::Mode::read);
  std::vector<hsize_t> dims;
  const std::vector<double> loss = h5::read_double(f, "train_loss", &dims);
  REQUIRE(dims.size() == 4);
  const size_t T = dims[3];
  double sum = 0;
  for (size_t t = 0; t < T; ++t) {
    const double mean = 0.5 * (loss[((1 * 2 + 1) * 2 + 0) * T + t] + loss[((1 * 2 + 1) * 2 + 1) * T + t]);
    sum += (mean - lim.loss[t]) * (mean - lim.loss[t]);
  }
  CHECK(g.dmft_gap[1] == Approx(std::sqrt(sum / T)).epsilon(1e-12));
  CHECK(g.dmft_gap[2] < g.dmft_gap[0]);  // wider is closer to the limit
  // a non-limit file is refused by name
  opt.dmft_path = sweep_path;
  CHECK_THROWS_WITH(analyze_sweep(sweep_path, opt), Catch::Contains("not a `moedmft dmft-moe` file"));
}
