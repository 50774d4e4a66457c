#include "solver/dmft/references.hpp"

#include <boost/numeric/odeint.hpp>
#include <algorithm>
#include <cmath>

#include "solver/dmft/activation.hpp"

namespace moedmft::dmft {

namespace odeint = boost::numeric::odeint;

InitKernels relu_init_kernels(const Mat<double>& Kx) {
  const int P = static_cast<int>(Kx.rows());
  InitKernels k{Mat<double>(P, P), Mat<double>(P, P), Mat<double>()};
  for (int a = 0; a < P; ++a)
    for (int b = 0; b < P; ++b) {
      const double na = std::sqrt(Kx(a, a)), nb = std::sqrt(Kx(b, b));
      const double c = std::clamp(Kx(a, b) / (na * nb), -1.0, 1.0);
      const double th = std::acos(c);
      k.Phi(a, b) = na * nb * (std::sin(th) + (M_PI - th) * c) / (2.0 * M_PI);
      k.G(a, b) = (M_PI - th) / (2.0 * M_PI);
    }
  k.ntk = k.Phi + Kx.cwiseProduct(k.G);
  return k;
}

// Probabilists' Gauss-Hermite rule (weight exp(-x^2/2)/sqrt(2 pi)) by Golub-Welsch.
static void gauss_hermite(int n, Vec<double>& nodes, Vec<double>& weights) {
  Mat<double> J = Mat<double>::Zero(n, n);
  for (int i = 1; i < n; ++i) J(i, i - 1) = J(i - 1, i) = std::sqrt(double(i));
  Eigen::SelfAdjointEigenSolver<Mat<double>> es(J);
  nodes = es.eigenvalues();
  weights = es.eigenvectors().row(0).transpose().array().square();
}

InitKernels quadrature_init_kernels(Activation phi, const Mat<double>& Kx, int order) {
  const int P = static_cast<int>(Kx.rows());
  Vec<double> x, w;
  gauss_hermite(order, x, w);
  InitKernels k{Mat<double>(P, P), Mat<double>(P, P), Mat<double>()};
  for (int a = 0; a < P; ++a)
    for (int b = 0; b <= a; ++b) {
      // (u_a, u_b) = (l11 x1, l21 x1 + l22 x2)
      const double l11 = std::sqrt(Kx(a, a));
      const double l21 = l11 > 0 ? Kx(a, b) / l11 : 0.0;
      const double l22 = std::sqrt(std::max(Kx(b, b) - l21 * l21, 0.0));
      double sp = 0, sg = 0;
      for (int i = 0; i < order; ++i)
        for (int j = 0; j < order; ++j) {
          const double ua = l11 * x(i), ub = l21 * x(i) + l22 * x(j), ww = w(i) * w(j);
          sp += ww * act(phi, ua) * act(phi, ub);
          sg += ww * act_deriv(phi, ua) * act_deriv(phi, ub);
        }
      k.Phi(a, b) = k.Phi(b, a) = sp;
      k.G(a, b) = k.G(b, a) = sg;
    }
  k.ntk = k.Phi + Kx.cwiseProduct(k.G);
  return k;
}

Mat<double> lazy_trajectory(const Mat<double>& K, const Vec<double>& y, double eta, int T) {
  Mat<double> f(T + 1, y.size());
  Vec<double> cur = Vec<double>::Zero(y.size());
  for (int t = 0; t <= T; ++t) {
    f.row(t) = cur.transpose();
    cur += eta * (K * (y - cur));
  }
  return f;
}

// Observation grid starting at t = 0 (integrate_times starts from the first time given).
static std::vector<double> from_zero(const std::vector<double>& times, bool& prepended) {
  prepended = times.empty() || times.front() != 0.0;
  std::vector<double> grid;
  if (prepended) grid.push_back(0.0);
  grid.insert(grid.end(), times.begin(), times.end());
  return grid;
}

std::vector<double> linear_scalar_flow(double kappa, double gamma0, double y,
                                       const std::vector<double>& times, double tol) {
  using State = std::vector<double>;
  auto rhs = [&](const State& s, State& ds, double) {
    ds[0] = 2.0 * kappa * std::sqrt(1.0 + gamma0 * gamma0 * s[0] * s[0] / kappa) * (y - s[0]);
  };
  State s{0.0};
  std::vector<double> out;
  bool skip = false;
  const std::vector<double> grid = from_zero(times, skip);
  auto obs = [&](const State& st, double) {
    if (skip) skip = false;
    else out.push_back(st[0]);
  };
  odeint::integrate_times(odeint::make_dense_output(tol, tol, odeint::runge_kutta_dopri5<State>()),
                          rhs, s, grid.begin(), grid.end(), 1e-4, obs);
  return out;
}

Mat<double> linear_cov_flow(const Mat<double>& Kx, const Vec<double>& y, double gamma0,
                            const std::vector<double>& times, double tol) {
  using State = std::vector<double>;
  const int P = static_cast<int>(Kx.rows()), n = P + 1;
  auto rhs = [&](const State& s, State& ds, double) {
    const ConstMatMap<double> Sig(s.data(), n, n);
    const Vec<double> delta = y - Sig.col(P).head(P) / gamma0;
    Mat<double> M = Mat<double>::Zero(n, n);
    M.col(P).head(P) = gamma0 * (Kx * delta);
    M.row(P).head(P) = gamma0 * delta.transpose();
    MatMap<double> dS(ds.data(), n, n);
    dS = M * Sig + Sig * M.transpose();
  };
  State s(static_cast<size_t>(n) * n, 0.0);
  MatMap<double> S0(s.data(), n, n);
  S0.topLeftCorner(P, P) = Kx;
  S0(P, P) = 1.0;
  Mat<double> out(times.size(), P);
  int row = 0;
  bool skip = false;
  const std::vector<double> grid = from_zero(times, skip);
  auto obs = [&](const State& st, double) {
    if (skip) {
      skip = false;
      return;
    }
    out.row(row++) = ConstMatMap<double>(st.data(), n, n).col(P).head(P).transpose() / gamma0;
  };
  odeint::integrate_times(odeint::make_dense_output(tol, tol, odeint::runge_kutta_dopri5<State>()),
                          rhs, s, grid.begin(), grid.end(), 1e-4, obs);
  return out;
}

std::vector<Mat<double>> linear_cov_discrete_states(const Mat<double>& Kx, const Vec<double>& y,
                                                    double gamma0, double eta, int T) {
  const int P = static_cast<int>(Kx.rows()), n = P + 1;
  std::vector<Mat<double>> states;
  states.reserve(T + 1);
  Mat<double> Sig = Mat<double>::Zero(n, n);
  Sig.topLeftCorner(P, P) = Kx;
  Sig(P, P) = 1.0;
  for (int t = 0; t <= T; ++t) {
    states.push_back(Sig);
    if (t == T) break;
    const Vec<double> delta = y - Sig.col(P).head(P) / gamma0;
    Mat<double> A = Mat<double>::Identity(n, n);
    A.col(P).head(P) += eta * gamma0 * (Kx * delta);
    A.row(P).head(P) += eta * gamma0 * delta.transpose();
    Sig = A * Sig * A.transpose();
  }
  return states;
}

Mat<double> linear_cov_discrete(const Mat<double>& Kx, const Vec<double>& y, double gamma0,
                                double eta, int T) {
  const std::vector<Mat<double>> states = linear_cov_discrete_states(Kx, y, gamma0, eta, T);
  const int P = static_cast<int>(Kx.rows());
  Mat<double> f(T + 1, P);
  for (int t = 0; t <= T; ++t) f.row(t) = states[t].col(P).head(P).transpose() / gamma0;
  return f;
}

}  // namespace moedmft::dmft
