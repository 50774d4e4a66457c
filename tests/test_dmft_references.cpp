// Two-layer DMFT against deterministic references: linear ODEs (Boost.Odeint), initial NNGP
// kernels (closed form / quadrature), lazy limit, structure, validation. Statistical comparisons
// are in units of the replicate standard error (independent solves, dmft.md s.4).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>

#include "models/random.hpp"
#include "solver/dmft/dmft.hpp"
#include "solver/dmft/references.hpp"
#include "test_support.hpp"

using namespace moedmft;
using namespace moedmft::dmft;

namespace {

// max over entries of |a - b| / err (err floored at tiny to avoid 0/0 where both are exact)
double max_z(const Mat<double>& a, const Mat<double>& b, const Mat<double>& err) {
  return ((a - b).cwiseAbs().array() / (err.array() + 1e-300)).maxCoeff();
}

double min_eig(const Mat<double>& m) {
  Eigen::SelfAdjointEigenSolver<Mat<double>> es(0.5 * (m + m.transpose()));
  return es.eigenvalues().minCoeff();
}

}  // namespace

TEST_CASE("dmft linear references agree with each other", "[dmft]") {
  // P = 1: the scalar ODE and the covariance ODE are the same equation.
  const double kappa = 0.625, g0 = 1.3, y = 1.0;
  std::vector<double> times{0.0, 0.25, 0.5, 1.0, 2.0};
  const auto fs = linear_scalar_flow(kappa, g0, y, times);
  Mat<double> K1(1, 1);
  K1(0, 0) = kappa;
  Vec<double> y1(1);
  y1(0) = y;
  const Mat<double> fc = linear_cov_flow(K1, y1, g0, times);
  for (size_t i = 0; i < times.size(); ++i) CHECK(std::abs(fs[i] - fc(i, 0)) < 1e-9);
  // Discrete GD converges to the flow at first order in eta: the gap halves with eta.
  const Mat<double> x = testing::random_matrix(3, 5, 3);
  const Mat<double> Kx = input_kernel(x);
  const Vec<double> yv = testing::random_matrix(3, 1, 4);
  const Mat<double> flow = linear_cov_flow(Kx, yv, g0, {1.0});
  const double e1 = (linear_cov_discrete(Kx, yv, g0, 0.01, 100).row(100) - flow.row(0)).norm();
  const double e2 = (linear_cov_discrete(Kx, yv, g0, 0.005, 200).row(200) - flow.row(0)).norm();
  std::printf("[dmft] discrete vs flow at t=1: %.3e (eta .01), %.3e (eta .005), ratio %.3f\n", e1, e2, e1 / e2);
  CHECK(e1 / e2 == Approx(2.0).margin(0.1));
}

TEST_CASE("dmft two-layer linear network matches the ODE references in error bars", "[dmft]") {
  struct Case { int P, D; double g0; };
  for (Case c : {Case{1, 4, 1.0}, Case{3, 5, 1.5}}) {
    const Mat<double> x = testing::random_matrix(c.P, c.D, 21 + c.P);
    const Vec<double> y = testing::random_matrix(c.P, 1, 31 + c.P);
    DmftConfig cfg;
    cfg.phi = Activation::identity;
    cfg.gamma0 = c.g0;
    cfg.eta = 1e-3;
    cfg.T = 1000;
    cfg.samples = 4096;
    cfg.replicates = 16;
    cfg.seed = 5;
    const DmftResult r = solve_dmft(cfg, x, y);
    const Mat<double> Kx = input_kernel(x);
    const Mat<double> disc = linear_cov_discrete(Kx, y, c.g0, cfg.eta, cfg.T);
    std::vector<double> times;
    std::vector<int> steps{250, 500, 1000};
    for (int s : steps) times.push_back(s * cfg.eta);
    const Mat<double> flow = linear_cov_flow(Kx, y, c.g0, times);
    if (c.P == 1) {  // the scalar ODE of dmft.md, with kappa = |x|^2 / D
      const auto fs = linear_scalar_flow(Kx(0, 0), c.g0, y(0), times);
      for (size_t i = 0; i < times.size(); ++i) CHECK(std::abs(fs[i] - flow(i, 0)) < 1e-9);
    }
    double zd = 0, zf = 0, moved = 0, rel_err = 0;
    for (size_t i = 0; i < steps.size(); ++i) {
      const int t = steps[i];
      for (int m = 0; m < c.P; ++m) {
        const double e = r.f_err(t, m);
        zd = std::max(zd, std::abs(r.f(t, m) - disc(t, m)) / e);
        zf = std::max(zf, std::abs(r.f(t, m) - flow(i, m)) / e);
        rel_err = std::max(rel_err, e / std::abs(y(m)));
      }
    }
    moved = (r.f.row(cfg.T) - r.f.row(0)).norm() / y.norm();
    std::printf("[dmft] linear P=%d gamma0=%.1f: max |MC-discrete|/err %.2f, max |MC-flow|/err %.2f, "
                "err/|y| <= %.1e, |f(T)|/|y| %.2f\n", c.P, c.g0, zd, zf, rel_err, moved);
    CHECK(zd < 3.0);
    CHECK(zf < 3.0);
    CHECK(rel_err < 2e-2);  // the error bars are small enough for the check to mean something
    CHECK(moved > 0.3);
    CHECK(r.f.row(0).cwiseAbs().maxCoeff() < 1e-12);  // antithetic pairs: f(0) = 0
  }
}

TEST_CASE("dmft initial kernels match NNGP closed forms in error bars", "[dmft]") {
  const Mat<double> x = testing::random_matrix(4, 6, 41);
  const Mat<double> Kx = input_kernel(x);
  // Quadrature sanity: exact for identity, close to the arc-cosine form for relu.
  const InitKernels qi = quadrature_init_kernels(Activation::identity, Kx);
  CHECK((qi.Phi - Kx).cwiseAbs().maxCoeff() < 1e-10);
  CHECK((qi.G.array() - 1.0).abs().maxCoeff() < 1e-10);
  const InitKernels relu = relu_init_kernels(Kx);
  CHECK((quadrature_init_kernels(Activation::relu, Kx, 96).Phi - relu.Phi).cwiseAbs().maxCoeff() < 2e-3);
  for (Activation a : {Activation::relu, Activation::tanh, Activation::gelu}) {
    DmftConfig cfg;
    cfg.phi = a;
    cfg.T = 0;
    cfg.samples = 2048;
    cfg.replicates = 12;
    cfg.seed = 7;
    const DmftResult r = solve_dmft(cfg, x, testing::random_matrix(4, 1, 42));
    const InitKernels k = a == Activation::relu ? relu : quadrature_init_kernels(a, Kx);
    const double zp = max_z(r.Phi[0][0], k.Phi, r.Phi_err[0][0]);
    const double zg = max_z(r.G[0][0], k.G, r.G_err[0][0]);
    const double rel = r.Phi_err[0][0].maxCoeff() / k.Phi.cwiseAbs().maxCoeff();
    std::printf("[dmft] init kernels %s: max z Phi %.2f, max z G %.2f (16 entries each), rel err %.1e\n",
                to_string(a), zp, zg, rel);
    CHECK(zp < 3.5);
    CHECK(zg < 3.5);
    CHECK(rel < 0.03);
    const Mat<double> ntk_err = (r.Phi_err[0][0].array().square() +
                                 (Kx.array() * r.G_err[0][0].array()).square()).sqrt().matrix();
    CHECK(max_z(r.ntk0, k.ntk, ntk_err) < 4.0);  // K(0) = NTK (errors added in quadrature)
  }
}

TEST_CASE("dmft lazy limit: deviation from frozen-kernel GD is O(gamma0^2)", "[dmft]") {
  const Mat<double> x = testing::random_matrix(4, 6, 51);
  const Vec<double> y = testing::random_matrix(4, 1, 52);
  std::vector<double> g0s{0.05, 0.1, 0.2}, logd, logg;
  for (double g0 : g0s) {
    DmftConfig cfg;
    cfg.phi = Activation::tanh;
    cfg.gamma0 = g0;
    cfg.eta = 0.2;
    cfg.T = 60;
    cfg.samples = 512;
    cfg.replicates = 1;
    cfg.seed = 8;  // common random numbers across gamma0
    const DmftResult r = solve_dmft(cfg, x, y);
    const Mat<double> lazy = lazy_trajectory(r.ntk0, y, cfg.eta, cfg.T);
    const double dev = (r.f - lazy).cwiseAbs().maxCoeff() / y.cwiseAbs().maxCoeff();
    std::printf("[dmft] lazy gamma0 %.2f: max |f - f_lazy| / max|y| = %.3e\n", g0, dev);
    logd.push_back(std::log(dev));
    logg.push_back(std::log(g0));
  }
  // least-squares slope of log dev against log gamma0
  const double mg = (logg[0] + logg[1] + logg[2]) / 3, md = (logd[0] + logd[1] + logd[2]) / 3;
  double num = 0, den = 0;
  for (int i = 0; i < 3; ++i) {
    num += (logg[i] - mg) * (logd[i] - md);
    den += (logg[i] - mg) * (logg[i] - mg);
  }
  const double slope = num / den;
  std::printf("[dmft] lazy-limit slope %.3f (expected 2)\n", slope);
  CHECK(slope == Approx(2.0).margin(0.1));
  CHECK(std::exp(logd[0]) < 1e-2);
}

TEST_CASE("dmft kernels are symmetric PSD and the two-time diagonal is the equal-time kernel", "[dmft]") {
  const Mat<double> x = testing::random_matrix(3, 4, 61);
  DmftConfig cfg;
  cfg.phi = Activation::gelu;
  cfg.T = 20;
  cfg.samples = 256;
  cfg.replicates = 2;
  cfg.two_time_kernels = true;
  const DmftResult r = solve_dmft(cfg, x, testing::random_matrix(3, 1, 62));
  for (int t = 0; t <= cfg.T; ++t) {
    for (const Mat<double>* m : {&r.Phi[0][t], &r.G[0][t]}) {
      CHECK((*m - m->transpose()).cwiseAbs().maxCoeff() < 1e-12);
      CHECK(min_eig(*m) > -1e-12 * m->cwiseAbs().maxCoeff());
    }
    CHECK((r.Phi_two[0].block(3 * t, 3 * t, 3, 3) - r.Phi[0][t]).cwiseAbs().maxCoeff() < 1e-12);
    CHECK((r.G_two[0].block(3 * t, 3 * t, 3, 3) - r.G[0][t]).cwiseAbs().maxCoeff() < 1e-12);
  }
  CHECK(min_eig(r.Phi_two[0]) > -1e-10);
  CHECK(std::isfinite(r.f_err(cfg.T, 0)));
  CHECK(r.loss.size() == size_t(cfg.T + 1));
}

TEST_CASE("dmft config validation names the field", "[dmft]") {
  const Mat<double> x = testing::random_matrix(3, 4, 71);
  const Mat<double> y = testing::random_matrix(3, 1, 72);
  auto msg = [&](DmftConfig c, const Mat<double>& yy) {
    try {
      solve_dmft(c, x, yy);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  DmftConfig c;
  c.gamma0 = 0;
  CHECK(msg(c, y).find("dmft.gamma0") == 0);
  c = DmftConfig{};
  c.eta = -1;
  CHECK(msg(c, y).find("dmft.eta") == 0);
  c = DmftConfig{};
  c.samples = 7;
  CHECK(msg(c, y).find("dmft.samples") == 0);
  c = DmftConfig{};
  c.L = 0;
  CHECK(msg(c, y).find("dmft.L") == 0);
  CHECK(msg(DmftConfig{}, testing::random_matrix(2, 1, 1)).find("dmft.y") == 0);
}
