// Sweep analysis on a synthetic sweep file with a known loss landscape.
#include <catch2/catch.hpp>

#include <cmath>

#include "data/h5/h5.hpp"
#include "experiments/analyze.hpp"
#include "test_support.hpp"

using namespace moedmft;

namespace {

// Loss(group, size, lr, seed, step): a parabola in log2(lr) whose minimum sits at grid index
// `centre(group, size)`, plus 1/size, plus a seed offset; group 2 diverges at its best LR for the
// largest size.
void write_synthetic_sweep(const std::string& path) {
  const std::vector<std::string> groups = {"stable", "drifting", "unstable"};
  const std::vector<double> sizes = {64, 128, 256}, lrs = {0.01, 0.02, 0.04, 0.08, 0.16, 0.32}, seeds = {1, 2, 3};
  const size_t T = 10;
  std::vector<double> loss;
  for (size_t g = 0; g < groups.size(); ++g)
    for (size_t s = 0; s < sizes.size(); ++s)
      for (size_t j = 0; j < lrs.size(); ++j)
        for (size_t r = 0; r < seeds.size(); ++r)
          for (size_t t = 0; t < T; ++t) {
            const double centre = g == 1 ? 1.0 + double(s) : 3.0;  // "drifting" moves one step per size
            double v = 0.1 * (double(j) - centre) * (double(j) - centre) + 1.0 / sizes[s] + 0.001 * double(r);
            if (g == 2 && s == 2 && j == 3) v = NAN;
            loss.push_back(v);
          }
  h5::File f(path, h5::Mode::truncate);
  h5::write_attr(f, "/", "kind", std::string("sweep"));
  h5::write_attr(f, "/", "axes", std::string("parameterization,size,lr,seed"));
  h5::write_strings(f, "parameterization", groups);
  h5::write(f, "size", sizes.data(), {3});
  h5::write(f, "lr", lrs.data(), {6});
  h5::write(f, "seed", seeds.data(), {3});
  h5::write(f, "train_loss", loss.data(), {3, 3, 6, 3, T});
}

}  // namespace

TEST_CASE("sweep analysis finds the optima, the drift and the monotonicity verdicts", "[analyze]") {
  const testing::Scratch dir("analyze");
  const std::string path = dir.file("sweep.h5");
  write_synthetic_sweep(path);
  AnalyzeOptions options;
  const std::vector<GroupAnalysis> groups = analyze_sweep(path, options);
  REQUIRE(groups.size() == 3);

  const GroupAnalysis& stable = groups[0];
  CHECK(stable.label == "parameterization=stable");
  CHECK(stable.best_lr == std::vector<double>{0.08, 0.08, 0.08});
  CHECK(stable.drift == 0.0);
  CHECK(stable.verdict == "transfers");  // interval +-2 sqrt(1/6) = +-0.82 steps within +-1
  CHECK(stable.drift_hi == Approx(2 * std::sqrt(1.0 / 6)));
  CHECK(stable.transfers);
  CHECK(stable.monotonic);  // 1/size decreases at the fixed optimum
  CHECK(stable.loss[0][3] == Approx(1.0 / 64 + 0.001));  // seed mean of offsets 0, 1, 2 (x 0.001)
  CHECK(stable.loss_err[0][3] == Approx(0.001 / std::sqrt(3.0)));

  const GroupAnalysis& drifting = groups[1];
  CHECK(drifting.best_index == std::vector<double>{1, 2, 3});
  CHECK(drifting.drift == 2.0);
  CHECK(drifting.verdict == "drifts");  // [1.18, 2.82] excludes 0
  CHECK(!drifting.transfers);
  CHECK(drifting.transferred_lr == 0.02);
  CHECK(!drifting.monotonic);  // at lr 0.02 the loss rises as the optimum moves away

  const GroupAnalysis& unstable = groups[2];
  CHECK(unstable.best_index == std::vector<double>{3, 3, 2});  // lr index 3 diverged at size 256
  // the largest size's optimum sits next to the diverged LR: located only on one side
  CHECK(unstable.bracketed == std::vector<int>{1, 1, 0});
  CHECK(unstable.verdict == "not bracketed");
  CHECK(!unstable.transfers);
  CHECK(!unstable.monotonic);
  CHECK(unstable.monotonic_note == "diverged at size 256");

  store_analysis(path, groups, options);
  h5::File f(path, h5::Mode::read);
  CHECK(h5::read_double(f, "analysis/drift") == std::vector<double>{0, 2, -1});
  CHECK(h5::read_double(f, "analysis/transfers") == std::vector<double>{1, 0, 0});
  CHECK(h5::read_strings(f, "analysis/transfer_verdict") ==
        std::vector<std::string>{"transfers", "drifts", "not bracketed"});
  CHECK(h5::dims_of(f, "analysis/final_loss") == std::vector<hsize_t>{3, 3, 6});
  CHECK(h5::read_strings(f, "analysis/group")[1] == "parameterization=drifting");
}

TEST_CASE("analysis of a file without the named axes fails naming the axis", "[analyze]") {
  const testing::Scratch dir("analyze_bad");
  const std::string path = dir.file("sweep.h5");
  write_synthetic_sweep(path);
  AnalyzeOptions options;
  options.size_axis = "width";
  CHECK_THROWS_WITH(analyze_sweep(path, options), Catch::Matchers::Contains("no axis named 'width'"));
}

TEST_CASE("analysis verdicts: an optimum at the grid edge is not bracketed, a noisy drift is inconclusive, one size gives none",
          "[analyze]") {
  const testing::Scratch dir("analyze_verdicts");
  // group 0: optimum at the largest LR at every size (grid edge); group 1: per-seed optima spread
  // over the grid so the drift interval covers 0 and 2; one group with one size.
  auto write = [&](const std::string& path, const std::vector<double>& sizes, int mode) {
    const std::vector<double> lrs = {0.01, 0.02, 0.04, 0.08, 0.16, 0.32}, seeds = {1, 2, 3, 4};
    const size_t T = 4;
    std::vector<double> loss;
    for (size_t s = 0; s < sizes.size(); ++s)
      for (size_t j = 0; j < lrs.size(); ++j)
        for (size_t r = 0; r < seeds.size(); ++r)
          for (size_t t = 0; t < T; ++t) {
            double centre = mode == 0 ? 5.0 : 2.0 + ((r % 2) ? 1.5 : -1.0) * double(s);  // seeds disagree
            loss.push_back(0.1 * (double(j) - centre) * (double(j) - centre) + 0.01 * double(r));
          }
    h5::File f(path, h5::Mode::truncate);
    h5::write_attr(f, "/", "kind", std::string("sweep"));
    h5::write_attr(f, "/", "axes", std::string("size,lr,seed"));
    h5::write(f, "size", sizes.data(), {sizes.size()});
    h5::write(f, "lr", lrs.data(), {6});
    h5::write(f, "seed", seeds.data(), {4});
    h5::write(f, "train_loss", loss.data(), {sizes.size(), 6, 4, T});
  };
  AnalyzeOptions options;
  write(dir.file("edge.h5"), {64, 128, 256}, 0);
  const GroupAnalysis edge = analyze_sweep(dir.file("edge.h5"), options).front();
  CHECK(edge.verdict == "not bracketed");
  CHECK(!edge.transfers);
  write(dir.file("noisy.h5"), {64, 128, 256}, 1);
  const GroupAnalysis noisy = analyze_sweep(dir.file("noisy.h5"), options).front();
  INFO("drift " << noisy.drift << " [" << noisy.drift_lo << ", " << noisy.drift_hi << "]");
  CHECK(noisy.drift_lo < 0.0);
  CHECK(noisy.drift_hi > 1.0);
  CHECK(noisy.verdict == "inconclusive");
  write(dir.file("one.h5"), {64}, 1);
  CHECK(analyze_sweep(dir.file("one.h5"), options).front().verdict == "one size");
}

TEST_CASE("analysis refuses a loss series that does not match the axes, or has no steps", "[analyze]") {
  const testing::Scratch dir("analyze_shapes");
  const std::vector<double> sizes = {64, 128}, lrs = {0.1, 0.2, 0.4}, seeds = {1};
  auto write = [&](const std::string& path, hsize_t points, hsize_t T) {
    std::vector<double> loss(points * std::max<hsize_t>(T, 1), 0.5);
    h5::File f(path, h5::Mode::truncate);
    h5::write_attr(f, "/", "kind", std::string("sweep"));
    h5::write_attr(f, "/", "axes", std::string("size,lr,seed"));
    h5::write(f, "size", sizes.data(), {2});
    h5::write(f, "lr", lrs.data(), {3});
    h5::write(f, "seed", seeds.data(), {1});
    h5::write(f, "train_loss", loss.data(), {points, T});
  };
  AnalyzeOptions options;
  write(dir.file("short.h5"), 4, 3);  // the axes span 6 points
  CHECK_THROWS_WITH(analyze_sweep(dir.file("short.h5"), options),
                    Catch::Matchers::Contains("span 6 points but the loss series has 4"));
  write(dir.file("empty.h5"), 6, 0);
  CHECK_THROWS_WITH(analyze_sweep(dir.file("empty.h5"), options), Catch::Matchers::Contains("no steps"));
}
