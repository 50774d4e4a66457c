// Exact (deterministic) linear DMFT, method exact: the two-layer covariance recursion, the deep
// sweep on the orthonormal source basis against closed forms (first step, lazy limit), the
// Monte Carlo sweep, and the refusals.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "solver/dmft/dmft.hpp"
#include "solver/dmft/references.hpp"
#include "test_support.hpp"

using namespace moedmft;
using namespace moedmft::dmft;
using testing::max_rel;

namespace {

DmftConfig exact_config(int L, int T, double gamma0, double eta) {
  DmftConfig cfg;
  cfg.L = L;
  cfg.T = T;
  cfg.gamma0 = gamma0;
  cfg.eta = eta;
  cfg.phi = Activation::identity;
  cfg.method = DeepMethod::exact;
  return cfg;
}

}  // namespace

TEST_CASE("dmft exact two-layer solve is the covariance recursion, and so is the basis march", "[dmft][exact]") {
  const Mat<double> x = testing::random_matrix(3, 5, 41);
  const Vec<double> y = testing::random_matrix(3, 1, 42);
  const Mat<double> Kx = input_kernel(x);
  DmftConfig cfg = exact_config(1, 30, 1.3, 0.05);
  cfg.two_time_kernels = true;
  const DmftResult r = solve_dmft(cfg, x, y);
  const Mat<double> ref = linear_cov_discrete(Kx, y, cfg.gamma0, cfg.eta, cfg.T);
  const auto Sig = linear_cov_discrete_states(Kx, y, cfg.gamma0, cfg.eta, cfg.T);
  CHECK(max_rel(r.f, ref) < 1e-14);
  CHECK(r.f_err.cwiseAbs().maxCoeff() == 0.0);
  CHECK(r.f_replicates.size() == 1);
  CHECK((r.f.row(cfg.T) - r.f.row(0)).norm() > 0.5);  // it moves
  // The source-basis march (the L >= 2 machinery run at L = 1) is an independent construction.
  const Trace b = march_linear_basis(cfg, Kx, y);
  const double ef = max_rel(b.f, ref);
  double ek = 0;
  for (int t = 0; t <= cfg.T; ++t) {
    ek = std::max(ek, max_rel(b.Phi[0][t], Sig[t].topLeftCorner(3, 3)));
    ek = std::max(ek, max_rel(b.G[0][t], Mat<double>::Constant(3, 3, Sig[t](3, 3))));
    ek = std::max(ek, max_rel(r.Phi_two[0].block(3 * t, 3 * t, 3, 3), Sig[t].topLeftCorner(3, 3)));
  }
  std::printf("[dmft] exact L=1: basis march vs recursion: f %.2e, kernels %.2e\n", ef, ek);
  CHECK(ef < 1e-12);
  CHECK(ek < 1e-12);
}

TEST_CASE("dmft exact deep solve takes the first GD step eta (L+lr_in) K^x y", "[dmft][exact]") {
  // At init every Phi^l = K^x and G^l = 1 for phi = identity, so K(0) = (L+1) K^x, and f(0) = 0;
  // the products of first-step updates average to zero at infinite width (dmft.md, exact section).
  const Mat<double> x = testing::random_matrix(3, 4, 43);
  const Vec<double> y = testing::random_matrix(3, 1, 44);
  const Mat<double> Kx = input_kernel(x);
  for (int L : {2, 3}) {
    const DmftConfig cfg = exact_config(L, 1, 1.7, 0.3);
    const DmftResult r = solve_dmft(cfg, x, y);
    const Vec<double> f1 = (L + 1) * cfg.eta * (Kx * y);
    const double e0 = r.f.row(0).cwiseAbs().maxCoeff();
    const double e1 = (r.f.row(1).transpose() - f1).cwiseAbs().maxCoeff() / f1.cwiseAbs().maxCoeff();
    std::printf("[dmft] exact L=%d first step: |f(0)| %.2e, rel error of f(1) %.2e\n", L, e0, e1);
    CHECK(e0 < 1e-14);
    CHECK(e1 < 1e-12);
    CHECK((r.ntk0 - (L + 1) * Kx).cwiseAbs().maxCoeff() < 1e-12);
    {  // the input-layer multiplier scales only W^0's share: f(1) = eta (L + lr_in) K^x y
      DmftConfig slow = cfg;
      slow.lr_in = 0.4;
      const Vec<double> fs = solve_dmft(slow, x, y).f.row(1).transpose();
      const Vec<double> want = (L + 0.4) * cfg.eta * (Kx * y);
      const double es = (fs - want).cwiseAbs().maxCoeff() / want.cwiseAbs().maxCoeff();
      std::printf("[dmft] exact L=%d first step with lr_in = 0.4: rel error %.2e\n", L, es);
      CHECK(es < 1e-12);
    }
    if (L == 2) {  // can fail: without the responses the A term (a third of f(1)) is lost
      DmftConfig bad = cfg;
      bad.responses = false;
      const Vec<double> fb = solve_dmft(bad, x, y).f.row(1).transpose();
      std::printf("[dmft] exact L=2 first step without responses: f(1) / (eta K^x y) = %.4f\n",
                  fb(0) / (cfg.eta * (Kx * y))(0));
      CHECK((fb - 2 * cfg.eta * (Kx * y)).cwiseAbs().maxCoeff() < 1e-12 * f1.cwiseAbs().maxCoeff());
    }
  }
}

TEST_CASE("dmft exact deep solve follows the lazy NTK trajectory as gamma0 -> 0", "[dmft][exact]") {
  const Mat<double> x = testing::random_matrix(3, 4, 45);
  const Vec<double> y = testing::random_matrix(3, 1, 46);
  const Mat<double> Kx = input_kernel(x);
  const int L = 2, T = 6;
  const double eta = 0.1, g = 1e-3;
  DmftConfig cfg = exact_config(L, T, g, eta);
  const Mat<double> f1 = solve_dmft(cfg, x, y).f;
  cfg.gamma0 = 2 * g;
  const Mat<double> f2 = solve_dmft(cfg, x, y).f;
  const Mat<double> lazy = lazy_trajectory((L + 1) * Kx, y, eta, T);
  // f(gamma0) = f_lazy + c gamma0^2 + O(gamma0^4): the deviation quadruples when gamma0 doubles,
  // and the Richardson combination removes it.
  const double d1 = (f1 - lazy).norm(), d2 = (f2 - lazy).norm();
  const double rich = max_rel((4 * f1 - f2) / 3, lazy);
  std::printf("[dmft] exact L=2 lazy limit: dev %.3e (gamma0 %.0e), %.3e (x2), ratio %.4f, Richardson rel %.2e\n",
              d1, g, d2, d2 / d1, rich);
  CHECK(d2 / d1 == Approx(4.0).margin(0.01));
  CHECK(rich < 1e-11);
}

TEST_CASE("dmft exact deep solve agrees with the Monte Carlo sweep in error bars", "[dmft][exact]") {
  const Mat<double> x = testing::random_matrix(2, 3, 47);
  const Vec<double> y = testing::random_matrix(2, 1, 48);
  DmftConfig cfg = exact_config(2, 8, 1.0, 0.2);
  const DmftResult ex = solve_dmft(cfg, x, y);
  cfg.method = DeepMethod::sweep;
  cfg.samples = 4096;
  cfg.replicates = 8;
  const DmftResult mc = solve_dmft(cfg, x, y);
  const Mat<double> lazy = lazy_trajectory(3 * input_kernel(x), y, cfg.eta, cfg.T);
  double z = 0, zk = 0, zlazy = 0;
  for (int t = 1; t <= cfg.T; ++t)
    for (int m = 0; m < 2; ++m) {
      z = std::max(z, std::abs(ex.f(t, m) - mc.f(t, m)) / mc.f_err(t, m));
      zlazy = std::max(zlazy, std::abs(lazy(t, m) - mc.f(t, m)) / mc.f_err(t, m));
    }
  using Kernels = std::vector<std::vector<Mat<double>>>;
  auto zkern = [&](const Kernels& a, const Kernels& b, const Kernels& e) {
    double out = 0;
    for (int l = 0; l < 2; ++l)
      out = std::max(out, ((a[l][cfg.T] - b[l][cfg.T]).cwiseAbs().array() / e[l][cfg.T].array()).maxCoeff());
    return out;
  };
  zk = std::max(zkern(ex.Phi, mc.Phi, mc.Phi_err), zkern(ex.G, mc.G, mc.G_err));
  std::printf("[dmft] exact vs MC sweep (L=2 identity): max z f %.2f, kernels(T) %.2f; lazy vs MC %.1f\n", z, zk, zlazy);
  CHECK(z < 3.5);
  CHECK(zk < 3.5);
  CHECK(zlazy > 10);  // feature learning is resolved: the comparison is not the lazy one
}

TEST_CASE("dmft exact and entrywise configurations are refused where they do not apply", "[dmft][exact]") {
  const Mat<double> x = testing::random_matrix(2, 3, 49);
  const Vec<double> y = testing::random_matrix(2, 1, 50);
  DmftConfig cfg = exact_config(2, 4, 1.0, 0.1);
  cfg.phi = Activation::tanh;
  CHECK_THROWS_WITH(solve_dmft(cfg, x, y), Catch::Contains("dmft.method") && Catch::Contains("identity"));
  cfg = exact_config(1, 4, 1.0, 0.1);
  cfg.optimizer = DmftOptimizer::adam;
  CHECK_THROWS_WITH(solve_dmft(cfg, x, y), Catch::Contains("dmft.method"));
  cfg = DmftConfig{};
  cfg.beta2 = 1.0;
  CHECK_THROWS_WITH(solve_dmft(cfg, x, y), Catch::Contains("dmft.beta2"));
  cfg = DmftConfig{};
  cfg.lr_in = -1.0;
  CHECK_THROWS_WITH(solve_dmft(cfg, x, y), Catch::Contains("dmft.lr_in"));
}
