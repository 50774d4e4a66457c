// Helpers shared by the MoE DMFT tests of both regimes: toy data, z-scores, and the dense L = 3
// deep-linear DMFT that both MoE limits reduce to (identity activations, constant gates).
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "solver/dmft/dmft.hpp"
#include "solver/dmft/moe.hpp"
#include "solver/dmft/references.hpp"
#include "test_support.hpp"

namespace moedmft::testing {

struct Toy {
  Mat<double> x;
  Vec<double> y;
};

inline Toy toy_data(int P, int D, uint64_t seed) {
  Toy t;
  t.x = random_matrix(P, D, seed);
  t.y = random_matrix(P, 1, seed + 1).col(0) * 0.5;
  return t;
}

inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// Standard normal quantile by bisection on the upper tail.
inline double normal_upper_quantile(double tail) {
  double lo = -10, hi = 10;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (0.5 * std::erfc(mid / std::sqrt(2.0)) > tail ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

// E[F_mu(a) F_nu(b)] for (a, b) centred Gaussian with covariance [[kaa, kab], [kab, kbb]], with
// F_mu(x) = 1(x >= thr_mu) sigmoid(x): a trapezoid rule on a fine grid (the indicator rules out
// Gauss-Hermite), a = sa z1, b = sb (r z1 + sqrt(1 - r^2) z2).
inline double gate_moment(double kaa, double kbb, double kab, double thr_a, double thr_b) {
  const int n = 1601;
  const double lim = 8.0, h = 2 * lim / (n - 1);
  const double sa = std::sqrt(kaa), sb = std::sqrt(kbb), r = std::clamp(kab / (sa * sb), -1.0, 1.0);
  const double rc = std::sqrt(std::max(0.0, 1 - r * r));
  auto F = [](double x, double thr) { return x >= thr ? sigmoid(x) : 0.0; };
  auto w = [&](int i) { return (i == 0 || i == n - 1 ? 0.5 : 1.0) * h * std::exp(-0.5 * std::pow(-lim + i * h, 2)) / std::sqrt(2 * M_PI); };
  double total = 0;
  for (int i = 0; i < n; ++i) {
    const double z1 = -lim + i * h, fa = F(sa * z1, thr_a);
    if (fa == 0.0) continue;
    double inner = 0;
    for (int j = 0; j < n; ++j) inner += w(j) * F(sb * (r * z1 + rc * (-lim + j * h)), thr_b);
    total += w(i) * fa * inner;
  }
  return total;
}

// Regime-I config whose only learning is what a test switches on (every LR 0): frozen features.
inline dmft::MoeDmftConfig frozen_config(int M, int T) {
  dmft::MoeDmftConfig c;
  c.T = T;
  c.M = c.K = M;
  c.samples = 2048;
  c.replicates = 6;
  c.seed = 11;
  c.phi = Activation::gelu;
  c.k.sigma_in = 0.3;
  c.k.c_router = 1.0;  // never trained: logits stay exactly 0
  c.k.c_expert1 = 1.2;
  c.k.c_expert2 = 0.8;
  c.k.c_out = 0.9;
  c.k.gate = 1.3;
  c.k.ratio = 0.5;
  return c;
}

// K_hagg = sum_m g_m^2 c2^2 Phi2 with Phi2 the NNGP kernel of the experts' hidden layer
// (Phi1 = <phi(u1) phi(u1)^T>, u1 ~ N(0, sigma_in^2 x x^T); Phi2 likewise on c1^2 Phi1).
inline Mat<double> feature_kernel(const dmft::MoeDmftConfig& c, const Mat<double>& x) {
  const Mat<double> Phi1 = dmft::quadrature_init_kernels(c.phi, c.k.sigma_in * c.k.sigma_in * (x * x.transpose()), 48).Phi;
  const Mat<double> Phi2 = dmft::quadrature_init_kernels(c.phi, c.k.c_expert1 * c.k.c_expert1 * Phi1, 48).Phi;
  const double g = c.k.gate * 0.5;  // sigmoid(0) times the gate factor
  return c.M * g * g * c.k.c_expert2 * c.k.c_expert2 * Phi2;
}

inline double max_z(const Mat<double>& a, const Mat<double>& b, const Mat<double>& err) {
  return ((a - b).cwiseAbs().array() / (err.array() + 1e-12)).maxCoeff();
}

// x -> W_in -> W1 -> W2 -> readout as the dense network of dmft.hpp (h1 = W0 x/sqrt(D),
// h^{l+1} = W^l h^l/sqrt(N), f = w.h3/(gamma0 N), network LR gamma0^2 N eta, loss 0.5 sum (y - f)^2).
// The MoE loss is the mean, so a mapped MoE LR carries P/2: hidden_lr = gamma0^2 eta P / 2.
struct DeepLinearReference {
  static constexpr int P = 4, D = 3, T = 14;
  Toy data = toy_data(P, D, 21);
  dmft::DmftConfig dense;
  dmft::DmftResult ref;
  double hidden_lr = 0, readout_lr = 0;
  DeepLinearReference() {
    dense.T = T;
    dense.L = 3;
    dense.samples = 4096;
    dense.replicates = 6;
    dense.gamma0 = 1.0;
    dense.eta = 0.15;
    dense.phi = Activation::identity;
    dense.seed = 5;
    ref = dmft::solve_dmft(dense, data.x, data.y);
    hidden_lr = dense.gamma0 * dense.gamma0 * dense.eta * P / 2.0;
    readout_lr = dense.eta * P / 2.0;
  }
  // Combined error bars of a solver's f against the reference.
  Mat<double> err(const Mat<double>& f_err) const {
    return (f_err.array().square() + ref.f_err.array().square()).sqrt();
  }
};

// Exact limit of expert2 + readout learning on frozen features with feature kernel Kf: per hagg
// neuron v = (hagg in R^P, z) evolves linearly, hagg += a Kf w z, z += lr_out w^T hagg, with
// w = (2/P)(y - f) and f = Sigma_hz, so Sigma(t+1) = A Sigma A^T from blockdiag(Kf, c_out^2).
// Rows: f(t), t = 0..T.
inline Mat<double> frozen_feature_recursion(const Mat<double>& Kf, const Vec<double>& y, double c_out, double a,
                                            double lr_out, int T) {
  const int P = static_cast<int>(Kf.rows());
  Mat<double> Sigma = Mat<double>::Zero(P + 1, P + 1);
  Sigma.topLeftCorner(P, P) = Kf;
  Sigma(P, P) = c_out * c_out;
  Mat<double> ref(T + 1, P);
  for (int t = 0; t <= T; ++t) {
    const Vec<double> f = Sigma.block(0, P, P, 1);
    ref.row(t) = f.transpose();
    const Vec<double> w = (2.0 / P) * (y - f);
    Mat<double> A = Mat<double>::Identity(P + 1, P + 1);
    A.block(0, P, P, 1) = a * (Kf * w);
    A.block(P, 0, 1, P) = lr_out * w.transpose();
    Sigma = A * Sigma * A.transpose();
  }
  return ref;
}

// Finite networks against a limit by 1/N extrapolation from N and 2N per seed, 2 L(2N) - L(N):
// the same seed draws correlated weights at both widths, so the seed error comes from the paired
// differences. train(N, s) returns seed s's training loss at width N ([T] entries at least).
struct Extrapolation {
  int worst_step = 0;
  double worst_z = 0, extrapolated = 0;
};
template <class Train>
Extrapolation extrapolation_vs_limit(Train train, int N, int seeds, int T, const std::vector<double>& limit,
                                     const std::vector<double>& limit_err) {
  Mat<double> extrap(seeds, T);
  for (int s = 0; s < seeds; ++s) {
    const std::vector<double> small = train(N, s), large = train(2 * N, s);
    for (int t = 0; t < T; ++t) extrap(s, t) = 2.0 * large[t] - small[t];
  }
  const Vec<double> mean = extrap.colwise().mean();
  const Vec<double> var =
      ((extrap.rowwise() - mean.transpose()).array().square().colwise().sum() / (seeds - 1.0) / seeds).matrix();
  Extrapolation out;
  for (int t = 1; t < T; ++t) {
    const double z = std::abs(mean(t) - limit[t]) / std::sqrt(var(t) + limit_err[t] * limit_err[t]);
    if (z > out.worst_z) out = {t, z, mean(t)};
  }
  return out;
}

}  // namespace moedmft::testing
