// Deterministic DMFT of linear networks (method exact, docs/dmft.md "Exact linear solvers").
// L = 1: the discrete-GD covariance recursion of references.cpp; L >= 2: the causal sweep on an
// orthonormal basis of the Gaussian sources (deep.cpp, march_linear_basis).
#include "solver/dmft/dmft.hpp"
#include "solver/dmft/references.hpp"

namespace moedmft::dmft {

Trace solve_exact(const DmftConfig& cfg, const Mat<double>& Kx, const Vec<double>& y) {
  if (cfg.L >= 2) return march_linear_basis(cfg, Kx, y);
  // v = (h, z): with phi = identity, Phi = Sigma_hh and g = z, so G = Sigma_zz 1 1^T.
  const int P = static_cast<int>(Kx.rows()), T = cfg.T;
  const std::vector<Mat<double>> Sig = linear_cov_discrete_states(Kx, y, cfg.gamma0, cfg.eta, T);
  Trace tr;
  tr.f.resize(T + 1, P);
  tr.loss.resize(T + 1);
  tr.Phi.assign(1, std::vector<Mat<double>>(T + 1));
  tr.G = tr.Phi;
  for (int t = 0; t <= T; ++t) {
    const Vec<double> f = Sig[t].col(P).head(P) / cfg.gamma0;
    tr.f.row(t) = f.transpose();
    tr.loss[t] = 0.5 * (y - f).squaredNorm();
    tr.Phi[0][t] = Sig[t].topLeftCorner(P, P);
    tr.G[0][t] = Mat<double>::Constant(P, P, Sig[t](P, P));
  }
  tr.ntk0 = tr.Phi[0][0] + Kx.cwiseProduct(tr.G[0][0]);
  // The recursion is equal-time only; the two-time kernels come from the basis march, which the
  // tests show equal to the recursion to round-off.
  if (cfg.two_time_kernels) {
    Trace b = march_linear_basis(cfg, Kx, y);
    tr.Phi_two = std::move(b.Phi_two);
    tr.G_two = std::move(b.G_two);
  }
  return tr;
}

}  // namespace moedmft::dmft
