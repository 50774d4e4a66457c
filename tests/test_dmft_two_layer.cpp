// Two-layer DMFT: exact equivalence with a width-S network, linear ODE references, initial
// kernels, lazy limit, structure and validation. Every statistical comparison is in units of
// the solver's replicate error bar.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>

#include "models/random.hpp"
#include "solver/dmft/activation.hpp"
#include "solver/dmft/dmft.hpp"
#include "solver/dmft/references.hpp"
#include "test_support.hpp"

using namespace moedmft;
using namespace moedmft::dmft;

namespace {

Vec<double> random_y(int P, uint64_t seed) {
  Rng rng(seed);
  Vec<double> y(P);
  for (int i = 0; i < P; ++i) y(i) = rng.normal();
  return y;
}

// Width-S two-layer network trained by full-batch GD on L = 0.5 sum (y - f)^2 with
// eta_net = gamma0^2 S eta; explicit weights W0 [S,D], w [S]. Returns f(t) [T+1,P].
Mat<double> train_network(Activation a, const Mat<double>& x, const Vec<double>& y, Mat<double> W0,
                          Vec<double> w, double gamma0, double eta, int T) {
  const int S = static_cast<int>(W0.rows()), P = static_cast<int>(x.rows());
  const double D = static_cast<double>(x.cols()), eta_net = gamma0 * gamma0 * S * eta;
  Mat<double> f(T + 1, P);
  for (int t = 0; t <= T; ++t) {
    const Mat<double> h = (W0 * x.transpose()) / std::sqrt(D);  // [S,P]
    Mat<double> ph(S, P), dph(S, P);
    act_both(a, h, ph, dph);
    const Vec<double> ft = ph.transpose() * w / (gamma0 * S);
    f.row(t) = ft.transpose();
    const Vec<double> delta = y - ft;
    // dL/dw_i = -sum_mu delta_mu phi_i,mu / (gamma0 S)
    const Vec<double> grad_w = -(ph * delta) / (gamma0 * S);
    // dL/dW0_ij = -sum_mu delta_mu w_i phi'_i,mu x_mu,j / (gamma0 S sqrt(D))
    const Mat<double> back = (dph.array().colwise() * w.array()).rowwise() * delta.transpose().array();
    const Mat<double> grad_W0 = -(back * x) / (gamma0 * S * std::sqrt(D));
    w -= eta_net * grad_w;
    W0 -= eta_net * grad_W0;
  }
  return f;
}

}  // namespace

TEST_CASE("dmft two-layer solver reproduces a width-S network bit for bit", "[dmft]") {
  const int P = 5, D = 7, S = 64, T = 40;
  const Mat<double> x = testing::random_matrix(P, D, 11);
  const Vec<double> y = random_y(P, 12);
  for (Activation a : {Activation::gelu, Activation::tanh, Activation::relu, Activation::identity}) {
    Rng rng(mix_seed(99, static_cast<uint64_t>(a)));
    Mat<double> W0(S, D);
    Vec<double> w(S);
    for (int i = 0; i < S; ++i) {
      for (int j = 0; j < D; ++j) W0(i, j) = rng.normal();
      w(i) = rng.normal();
    }
    DmftConfig cfg;
    cfg.T = T;
    cfg.phi = a;
    cfg.gamma0 = 0.8;
    cfg.eta = 0.05;
    const Mat<double> fnet = train_network(a, x, y, W0, w, cfg.gamma0, cfg.eta, T);
    const Mat<double> H0 = (W0 * x.transpose()) / std::sqrt(double(D));
    const Trace tr = march_two_layer(cfg, input_kernel(x), y, H0, w);
    const double rel = (tr.f - fnet).cwiseAbs().maxCoeff() / fnet.cwiseAbs().maxCoeff();
    std::printf("[dmft] network equivalence %s: max rel error %.3e, |f(T)-f(0)| = %.3f\n",
                to_string(a), rel, (fnet.row(T) - fnet.row(0)).norm());
    CHECK(rel < 1e-10);
    CHECK((fnet.row(T) - fnet.row(0)).norm() > 0.1);  // the trajectory actually moves
  }
}
