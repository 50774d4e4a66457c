// Deep (L >= 2) DMFT under SignGD and Adam: the pair estimator (docs/dmft_entrywise.md s.2).
// The causal sweep of deep.cpp supplies the Gaussian sources and the Stein responses unchanged;
// this file supplies the optimizer's own terms. The input layer is carried as W^0 rows [S, D]
// (h^1 = W^0 x^T / sqrt(D)) and the readouts per sample, both updated entrywise as in the
// two-layer march; each hidden-to-hidden matrix W^l keeps M (S x S; Adam: moments m, v),
// M_ij(t) = sum_{s<t} u(c_ij(s)), c_ij(s) = sum_mu Delta_mu(s) g^{l+1}_{i,mu}(s) phi(h^l_{j,mu}(s)),
// and moves the fields by
//   h^{l+1}_i(t) += gamma0 eta (1/S) sum_j M_ij(t) phi(h^l_j(t)),
//   z^l_j(t)     += gamma0 eta (1/S) sum_i M_ij(t) g^{l+1}_i(t).
// With u(c) = c this is term by term the SGD sweep's gamma0 eta sum_{s<t} Phi^l(t,s) (Delta o g)(s)
// and gamma0 eta sum_{s<t} G^{l+1}(t,s) (Delta o phi)(s), computed from the same population.
#include <cmath>
#include <utility>

#include "solver/dmft/deep_march.hpp"
#include "solver/dmft/dmft.hpp"
#include "solver/dmft/entrywise.hpp"

namespace moedmft::dmft {

namespace {

class EntrywiseTerms final : public DeepTerms {
 public:
  EntrywiseTerms(const DmftConfig& c, const Mat<double>& x, Mat<double> W0)
      : cfg_(c), x_(x), W_(std::move(W0)), rule_(c), step_(c.eta * c.gamma0),
        sD_(std::sqrt(static_cast<double>(x.cols()))), invS_(1.0 / static_cast<double>(W_.rows())) {
    const int S = static_cast<int>(W_.rows()), pairs = c.L - 1;
    M_.assign(pairs, Mat<double>::Zero(S, S));
    m_.assign(pairs, Mat<double>());
    v_.assign(pairs, Mat<double>());
  }
  Mat<double> fields() const { return (W_ * x_.transpose()) / sD_; }

  void forward(int a, const Mat<double>& phi_lo, Mat<double>& h) const override {
    h.noalias() += (step_ * invS_) * (M_[a] * phi_lo);
  }
  void backward(int a, const Mat<double>& g_hi, Mat<double>& z) const override {
    z.noalias() += (step_ * invS_) * (M_[a].transpose() * g_hi);
  }
  void close_step(const std::vector<Mat<double>>& phi, const std::vector<Mat<double>>& g, const Vec<double>& delta,
                  Mat<double>& H1, Vec<double>& zL) override {
    const int L = cfg_.L;
    rule_.begin_step();
    // input entries (neuron i, data coordinate j) and readouts, as march_two_layer_entrywise
    const Mat<double> cW = (g[0] * delta.asDiagonal()) * x_;
    rule_.direction(cW, mW_, vW_, u_);
    W_.noalias() += (step_ * cfg_.lr_in / sD_) * u_;
    H1 = fields();
    const Mat<double> cz = phi[L - 1] * delta;
    rule_.direction(cz, mz_, vz_, u_);
    zL.noalias() += step_ * u_.col(0);
    // hidden pairs: c_ij = sum_mu Delta_mu g^{a+2}_{i,mu} phi(h^{a+1}_{j,mu}), M += u(c)
    for (int a = 0; a + 1 < L; ++a) {
      c_.noalias() = (g[a + 1] * delta.asDiagonal()) * phi[a].transpose();
      rule_.direction(c_, m_[a], v_[a], u_);
      M_[a] += u_;
    }
  }

 private:
  const DmftConfig& cfg_;
  const Mat<double>& x_;
  Mat<double> W_, mW_, vW_, mz_, vz_, c_, u_;
  std::vector<Mat<double>> M_, m_, v_;
  EntrywiseRule rule_;
  double step_, sD_, invS_;
};

}  // namespace

Trace march_deep_entrywise(const DmftConfig& cfg, const Mat<double>& x, const Vec<double>& y, Mat<double> W0,
                           Vec<double> z0, uint64_t noise_seed) {
  if (cfg.L < 2) throw ConfigError("dmft.L: the pair estimator needs L >= 2");
  if (W0.rows() != cfg.samples || W0.cols() != x.cols() || z0.size() != cfg.samples)
    throw ConfigError("dmft.samples: W0 must be [samples, D] and z0 [samples]");
  EntrywiseTerms terms(cfg, x, std::move(W0));
  Mat<double> u1 = terms.fields();
  return march_deep_with(cfg, input_kernel(x), y, std::move(u1), std::move(z0), noise_seed, &terms);
}

}  // namespace moedmft::dmft
