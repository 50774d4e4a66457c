// The replicate split that the MPI driver installs (solver/dmft/replicates.hpp), emulated in one
// process: a rank marches only its own replicates, the others' traces arrive packed, and the
// solve then equals the one-process solve bit for bit. The real MPI exchange is
// tests/check_mpi_dmft.sh.
#include <catch2/catch.hpp>

#include <map>
#include <stdexcept>

#include "solver/dmft/dmft.hpp"
#include "solver/dmft/replicates.hpp"
#include "test_support.hpp"

using namespace moedmft;
using namespace moedmft::dmft;
using Catch::Matchers::Contains;

namespace {

// Restores the one-process split when a test case ends, whatever happened.
struct SplitScope {
  SplitScope(int rank, int ranks, std::function<bool(std::vector<std::vector<double>>&, bool)> share) {
    ReplicateSplit split;
    split.rank = rank;
    split.ranks = ranks;
    split.share = std::move(share);
    set_replicate_split(std::move(split));
  }
  ~SplitScope() { set_replicate_split({}); }
};

Trace synthetic(int r) {
  Trace t;
  t.f = testing::random_matrix(3, 2, 10 + r);
  t.loss = {1.0 * r, 2.0, 3.0};
  t.Phi = {{testing::random_matrix(2, 2, 20 + r)}, {testing::random_matrix(2, 2, 30 + r), Mat<double>()}};
  t.ntk0 = testing::random_matrix(2, 2, 40 + r);
  t.iterations = 7 + r;
  return t;
}

std::vector<double> packed(Trace t) {
  TracePacker p;
  t.fields(p);
  return p.data;
}

}  // namespace

TEST_CASE("a rank marches only its replicates and receives the others packed", "[dmft][replicates]") {
  std::vector<int> marched;
  const SplitScope scope(1, 2, [](std::vector<std::vector<double>>& blobs, bool ok) {
                            REQUIRE(ok);
                            for (size_t r = 0; r < blobs.size(); ++r) {
                              CHECK(blobs[r].empty() == (r % 2 == 0));  // only rank 1's own are filled
                              if (r % 2 == 0) blobs[r] = packed(synthetic(int(r)));
                            }
                            return true;
                          });
  const std::vector<Trace> runs = solve_replicates<Trace>(5, 1, [&](int r) {
    marched.push_back(r);
    return synthetic(r);
  });
  CHECK(marched == std::vector<int>{1, 3});
  REQUIRE(runs.size() == 5);
  for (int r = 0; r < 5; ++r) CHECK(packed(runs[r]) == packed(synthetic(r)));
  CHECK(runs[2].Phi[1][1].size() == 0);
  CHECK(runs[4].iterations == 11);
}

TEST_CASE("a failed replicate on any rank fails the solve on every rank", "[dmft][replicates]") {
  bool told_failure = false;
  {
    const SplitScope scope(0, 2, [&](std::vector<std::vector<double>>&, bool ok) {
                              told_failure = !ok;
                              return false;
                            });
    auto throws_here = [](int) -> Trace { throw std::runtime_error("march failed here"); };
    CHECK_THROWS_WITH(solve_replicates<Trace>(3, 1, throws_here), "march failed here");
    CHECK(told_failure);  // the other ranks learn of it instead of waiting for this rank's traces
    CHECK_THROWS_WITH(solve_replicates<Trace>(3, 1, synthetic), Contains("failed on another MPI rank"));
  }
}

TEST_CASE("two emulated ranks give the one-process DMFT solve bit for bit", "[dmft][replicates]") {
  DmftConfig cfg;
  cfg.T = 5;
  cfg.samples = 64;
  cfg.replicates = 3;
  const Mat<double> x = testing::random_matrix(4, 3, 5), y = testing::random_matrix(4, 1, 6);
  const DmftResult one = solve_dmft(cfg, x, y);

  // Rank 0's own traces, recorded (what it would broadcast), then rank 1's solve receiving them.
  std::map<size_t, std::vector<double>> from_rank0;
  {
    const SplitScope scope(0, 2, [&](std::vector<std::vector<double>>& blobs, bool) {
                              for (size_t r = 0; r < blobs.size(); r += 2) from_rank0[r] = blobs[r];
                              for (size_t r = 1; r < blobs.size(); r += 2) blobs[r] = blobs[0];  // any shape
                              return true;
                            });
    solve_dmft(cfg, x, y);
  }
  const SplitScope scope(1, 2, [&](std::vector<std::vector<double>>& blobs, bool) {
                            for (const auto& [r, blob] : from_rank0) blobs[r] = blob;
                            return true;
                          });
  const DmftResult two = solve_dmft(cfg, x, y);
  REQUIRE(from_rank0.size() == 2);
  CHECK(two.f == one.f);
  CHECK(two.f_err == one.f_err);
  CHECK(two.loss == one.loss);
  CHECK(two.ntk0 == one.ntk0);
  CHECK(two.Phi[0][cfg.T] == one.Phi[0][cfg.T]);
  CHECK(two.G_err[0][2] == one.G_err[0][2]);
  for (int r = 0; r < 3; ++r) CHECK(two.f_replicates[r] == one.f_replicates[r]);
}

TEST_CASE("a replicate that throws on one of several threads fails the solve and not the process", "[dmft][replicates]") {
  // One bad_alloc among eight replicates on two threads: rethrown after the parallel loop.
  auto one_fails = [](int r) -> Trace {
    if (r == 5) throw std::bad_alloc();
    Trace t;
    t.loss.assign(1, double(r));
    return t;
  };
  CHECK_THROWS_AS(solve_replicates<Trace>(8, 2, one_fails), std::bad_alloc);
  auto fine = [](int r) -> Trace {
    Trace t;
    t.loss.assign(1, double(r));
    return t;
  };
  const std::vector<Trace> traces = solve_replicates<Trace>(8, 2, fine);
  REQUIRE(traces.size() == 8);
  for (int r = 0; r < 8; ++r) CHECK(traces[r].loss[0] == r);
}
