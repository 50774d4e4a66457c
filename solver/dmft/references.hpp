// Deterministic references for the DMFT solver: closed-form and quadrature NNGP kernels, the lazy
// (gamma0 -> 0) trajectory, and the exact linear two-layer equations (gradient flow through
// Boost.Odeint dopri5, and the exact discrete-GD covariance recursion). Conventions: dmft.hpp.
#pragma once
#include <vector>

#include "models/types.hpp"

namespace moedmft::dmft {

struct InitKernels {
  Mat<double> Phi;  // <phi(u) phi(u)^T>, u ~ N(0, K^x)
  Mat<double> G;    // <phi'(u) phi'(u)^T> (z^2 averages to 1)
  Mat<double> ntk;  // Phi + K^x o G
};

// relu: arc-cosine kernel of degree 1 (Phi) and degree 0 (G), closed form.
InitKernels relu_init_kernels(const Mat<double>& Kx);
// Any activation: 2-d Gauss-Hermite quadrature with `order` nodes per dimension.
InitKernels quadrature_init_kernels(Activation phi, const Mat<double>& Kx, int order = 64);

// Lazy discrete GD: f(t) = (I - (I - eta K)^t) y, t = 0..T, rows [T+1, P].
Mat<double> lazy_trajectory(const Mat<double>& K, const Vec<double>& y, double eta, int T);

// Linear two-layer, P = 1: df/dt = 2 kappa sqrt(1 + gamma0^2 f^2 / kappa) (y - f), f(0) = 0,
// at the given flow times (dopri5, abs/rel tolerance tol).
std::vector<double> linear_scalar_flow(double kappa, double gamma0, double y,
                                       const std::vector<double>& times, double tol = 1e-12);

// Linear two-layer, any P: dSigma/dt = M Sigma + Sigma M^T, M = gamma0 [[0, K^x Delta],[Delta^T, 0]],
// Sigma(0) = blockdiag(K^x, 1), f = Sigma_hz / gamma0. Rows: f at the given times.
Mat<double> linear_cov_flow(const Mat<double>& Kx, const Vec<double>& y, double gamma0,
                            const std::vector<double>& times, double tol = 1e-12);

// The same linear two-layer system under discrete GD (exact infinite-width DMFT of the solver):
// Sigma(t+1) = (I + eta M(t)) Sigma(t) (I + eta M(t))^T. Rows: f(t), t = 0..T.
Mat<double> linear_cov_discrete(const Mat<double>& Kx, const Vec<double>& y, double gamma0,
                                double eta, int T);
// Its states Sigma(t) = <v v^T>, v = (h, z), [P+1, P+1], t = 0..T (f = Sigma(t)[0:P, P] / gamma0).
std::vector<Mat<double>> linear_cov_discrete_states(const Mat<double>& Kx, const Vec<double>& y,
                                                    double gamma0, double eta, int T);

}  // namespace moedmft::dmft
