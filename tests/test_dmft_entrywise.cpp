// Two-layer DMFT under SignGD and Adam (docs/dmft_entrywise.md): the entrywise march with
// u(c) = c is the SGD march; from the same draws it is the width-S network trained by the
// simulator's own Optimizer with the DMFT's per-group LRs and epsilons; readout-only SignGD on
// frozen features follows its deterministic recursion; finite-width ladders converge at 1/N.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "models/optimizer.hpp"
#include "experiments/coord_check.hpp"
#include "models/random.hpp"
#include "solver/dmft/activation.hpp"
#include "solver/dmft/dmft.hpp"
#include "test_support.hpp"

using namespace moedmft;
using namespace moedmft::dmft;
using testing::max_rel;

namespace {

struct Draws {
  Mat<double> W0;  // [N, D]
  Vec<double> w;   // [N]
};

Draws draw(int N, int D, uint64_t seed, double sign = 1.0) {
  Draws d{testing::random_matrix(N, D, seed), sign * testing::random_matrix(N, 1, mix_seed(seed, 1))};
  return d;
}

struct NetRun {
  Mat<double> f;  // [T+1, P]
  Vec<double> loss;
};

// The simulator's optimizer for a DMFT config (SignGD or Adam with its betas) and the s.1 LRs and
// epsilons of the input layer and the readout in a width-N network's own coordinates (input dim D).
OptimizerConfig entrywise_optimizer(const DmftConfig& c) {
  OptimizerConfig oc;
  oc.kind = c.optimizer == DmftOptimizer::adam ? OptimizerKind::adam : OptimizerKind::signgd;
  oc.beta1 = c.beta1;
  oc.beta2 = c.beta2;
  return oc;
}
ResolvedParam entrywise_rates(const DmftConfig& c, int N, int D) {
  const double sD = std::sqrt(double(D)), g0 = c.gamma0;
  ResolvedParam rp;
  rp[Group::in].lr = g0 * c.eta * c.lr_in / sD;
  rp[Group::in].eps = c.eps / (g0 * N * sD);
  rp[Group::out].lr = g0 * c.eta;
  rp[Group::out].eps = c.eps / (g0 * N);
  return rp;
}

// Width-N two-layer network in its own coordinates (W0 std 1, h = W0 x^T / sqrt(D),
// f = w . phi(h) / (gamma0 N)), gradients of 0.5 sum (y - f)^2, stepped by models' Optimizer.
// Per group, LR and epsilon are the DMFT's mapped into these coordinates (dmft_entrywise.md):
// W0: lr = gamma0 eta lr_in / sqrt(D), eps = eps / (gamma0 N sqrt(D)); w: lr = gamma0 eta,
// eps = eps / (gamma0 N).
NetRun train_network(const DmftConfig& c, const Mat<double>& x, const Vec<double>& y, const Draws& d0) {
  const int N = static_cast<int>(d0.W0.rows()), D = static_cast<int>(x.cols()), P = static_cast<int>(x.rows());
  const double sD = std::sqrt(double(D)), g0 = c.gamma0;
  const OptimizerConfig oc = entrywise_optimizer(c);
  const ResolvedParam rp = entrywise_rates(c, N, D);
  Optimizer<double> opt(oc, rp);
  std::vector<ParamTensor<double>> params(kNumGroups);
  std::vector<Vec<double>> grads(kNumGroups);
  params[int(Group::in)].data = Eigen::Map<const Vec<double>>(d0.W0.data(), N * D);
  params[int(Group::out)].data = d0.w;
  NetRun run{Mat<double>(c.T + 1, P), Vec<double>(c.T + 1)};
  for (int t = 0; t <= c.T; ++t) {
    const ConstMatMap<double> W0(params[int(Group::in)].data.data(), N, D);
    const Vec<double>& w = params[int(Group::out)].data;
    const Mat<double> h = (W0 * x.transpose()) / sD;
    Mat<double> ph, dph;
    act_both(c.phi, h, ph, dph);
    const Vec<double> f = ph.transpose() * w / (g0 * N);
    const Vec<double> delta = y - f;
    run.f.row(t) = f.transpose();
    run.loss(t) = 0.5 * delta.squaredNorm();
    if (t == c.T) break;
    const Mat<double> back = (dph.array().colwise() * w.array()).rowwise() * delta.transpose().array();
    const Mat<double> gW0 = -(back * x) / (g0 * N * sD);  // dL/dW0
    grads[int(Group::in)] = Eigen::Map<const Vec<double>>(gW0.data(), N * D);
    grads[int(Group::out)] = -(ph * delta) / (g0 * N);   // dL/dw
    opt.step(params, grads);
  }
  return run;
}

// The tests' common set-up; the Monte Carlo ones pass their T, eta, samples and replicates.
DmftConfig entrywise_config(DmftOptimizer opt, Activation a, int T = 20, double eta = 0.05, int samples = 4096,
                            int replicates = 8) {
  DmftConfig c;
  c.optimizer = opt;
  c.phi = a;
  c.T = T;
  c.gamma0 = 0.8;
  c.eta = eta;
  c.samples = samples;
  c.replicates = replicates;
  c.beta1 = 0.8;
  c.beta2 = 0.95;
  c.eps = 0.3;  // O(1) in normalised units, so the epsilon's width scaling is exercised
  return c;
}

}  // namespace

TEST_CASE("dmft entrywise march with u(c) = c is the SGD march", "[dmft][entrywise]") {
  const Mat<double> x = testing::random_matrix(4, 6, 61);
  const Vec<double> y = testing::random_matrix(4, 1, 62);
  DmftConfig c = entrywise_config(DmftOptimizer::sgd, Activation::tanh);
  c.lr_in = 0.7;
  const Draws d = draw(64, 6, 63);
  const Trace a = march_two_layer_entrywise(c, x, y, d.W0, d.w);
  const Trace b = march_two_layer(c, input_kernel(x), y, (d.W0 * x.transpose()) / std::sqrt(6.0), d.w);
  std::printf("[dmft] entrywise(sgd) vs SGD march: rel %.2e\n", max_rel(a.f, b.f));
  CHECK(max_rel(a.f, b.f) < 1e-12);
  CHECK((a.f.row(c.T) - a.f.row(0)).norm() > 0.1);
}

TEST_CASE("dmft SignGD and Adam marches are the width-S network trained by the simulator's optimizer", "[dmft][entrywise]") {
  const int P = 4, D = 6, S = 64;
  const Mat<double> x = testing::random_matrix(P, D, 64);
  const Vec<double> y = testing::random_matrix(P, 1, 65);
  for (DmftOptimizer o : {DmftOptimizer::signgd, DmftOptimizer::adam})
    for (Activation a : {Activation::tanh, Activation::gelu, Activation::relu}) {
      DmftConfig c = entrywise_config(o, a);
      const Draws d = draw(S, D, 66 + int(a));
      const Trace tr = march_two_layer_entrywise(c, x, y, d.W0, d.w);
      const NetRun net = train_network(c, x, y, d);
      const double rel = max_rel(tr.f, net.f);
      std::printf("[dmft] %s %s march vs network: rel %.2e, |f(T)-f(0)| %.3f\n",
                  o == DmftOptimizer::adam ? "adam" : "signgd", to_string(a), rel,
                  (net.f.row(c.T) - net.f.row(0)).norm());
      CHECK(rel < 1e-12);
      CHECK((net.f.row(c.T) - net.f.row(0)).norm() > 0.1);
    }
}

TEST_CASE("dmft Adam with beta1 = beta2 = eps = 0 is SignGD", "[dmft][entrywise]") {
  // m_hat / sqrt(v_hat) = c / |c| = sign(c): the two marches take the same steps (observed equal
  // to 3e-16, not bitwise).
  const Mat<double> x = testing::random_matrix(3, 5, 67);
  const Vec<double> y = testing::random_matrix(3, 1, 68);
  DmftConfig c = entrywise_config(DmftOptimizer::signgd, Activation::tanh);
  const Draws d = draw(256, 5, 69);
  const Trace s = march_two_layer_entrywise(c, x, y, d.W0, d.w);
  c.optimizer = DmftOptimizer::adam;
  c.beta1 = c.beta2 = c.eps = 0.0;
  const Trace a = march_two_layer_entrywise(c, x, y, d.W0, d.w);
  c.eps = 1e-3;  // and the comparison can fail
  const Trace b = march_two_layer_entrywise(c, x, y, d.W0, d.w);
  std::printf("[dmft] adam(0,0,0) vs signgd: max |diff| %.3e; with eps = 1e-3: %.3e\n",
              (s.f - a.f).cwiseAbs().maxCoeff(), (s.f - b.f).cwiseAbs().maxCoeff());
  CHECK((s.f - a.f).cwiseAbs().maxCoeff() < 1e-14);
  CHECK((s.f - b.f).cwiseAbs().maxCoeff() > 1e-6);
}

TEST_CASE("dmft readout-only SignGD on frozen features follows its deterministic recursion", "[dmft][entrywise]") {
  // Frozen u ~ N(0, K^x), readouts z += gamma0 eta sign(u . Delta), so
  // f(t+1) = f(t) + eta <u sign(u . Delta)> = f(t) + eta sqrt(2/pi) K^x Delta / sqrt(Delta^T K^x Delta)
  // for phi = identity, and f(t+1) = f(t) + eta sqrt(kappa / (2 pi)) sign(Delta) for relu, P = 1.
  struct Case { Activation a; int P; };
  for (Case k : {Case{Activation::identity, 3}, Case{Activation::relu, 1}}) {
    const Mat<double> x = testing::random_matrix(k.P, 5, 70 + k.P);
    const Vec<double> y = 2.0 * testing::random_matrix(k.P, 1, 72 + k.P);
    const Mat<double> Kx = input_kernel(x);
    DmftConfig c = entrywise_config(DmftOptimizer::signgd, k.a, 12, 0.1, 4096, 16);
    c.lr_in = 0.0;
    const DmftResult r = solve_dmft(c, x, y);
    Mat<double> ref(c.T + 1, k.P);
    Vec<double> f = Vec<double>::Zero(k.P);
    for (int t = 0; t <= c.T; ++t) {
      ref.row(t) = f.transpose();
      const Vec<double> delta = y - f;
      if (k.a == Activation::identity)
        f += c.eta * std::sqrt(2.0 / M_PI) * (Kx * delta) / std::sqrt(delta.dot(Kx * delta));
      else
        f(0) += c.eta * std::sqrt(Kx(0, 0) / (2.0 * M_PI)) * (delta(0) > 0 ? 1.0 : -1.0);
    }
    double z = 0;
    for (int t = 1; t <= c.T; ++t)
      for (int m = 0; m < k.P; ++m) z = std::max(z, std::abs(r.f(t, m) - ref(t, m)) / r.f_err(t, m));
    const double err = r.f_err.bottomRows(1).maxCoeff(), moved = (ref.row(c.T) - ref.row(0)).norm();
    std::printf("[dmft] frozen-feature SignGD %s P=%d: max z %.2f, f(T) err %.1e, moved %.3f\n",
                to_string(k.a), k.P, z, err, moved);
    CHECK(z < 3.5);
    CHECK(moved > 30 * err);
  }
}

TEST_CASE("dmft finite-width SignGD and Adam networks converge to the limit at rate 1/N", "[dmft][entrywise]") {
  // Networks in their own coordinates with the mapped per-group LRs and epsilons (an epsilon not
  // scaled as 1/N would converge elsewhere). Per width: mean over antithetic seed pairs. Checks:
  // the Richardson extrapolation 2 f_2N - f_N of the two widest agrees with the limit, and the
  // seed-mean loss gap <L_N(T)> - L_inf(T) falls like N^-1 (log-log fit with its 95% interval).
  const int P = 3, D = 4, pairs = 1200;
  const Mat<double> x = testing::random_matrix(P, D, 81);
  const Vec<double> y = testing::random_matrix(P, 1, 82);
  const std::vector<double> widths{8, 16, 32, 64};
  for (DmftOptimizer o : {DmftOptimizer::signgd, DmftOptimizer::adam}) {
    DmftConfig c = entrywise_config(o, Activation::tanh, 15, 0.1, 16384, 32);
    c.gamma0 = 1.0;
    const DmftResult lim = solve_dmft(c, x, y);
    std::vector<Vec<double>> fmean, ferr;
    std::vector<double> gap, gap_err;
    for (double N : widths) {
      Vec<double> s = Vec<double>::Zero(P), s2 = s;
      double l = 0, l2 = 0;
      for (int p = 0; p < pairs; ++p) {
        const uint64_t seed = mix_seed(9000 + uint64_t(N), uint64_t(p));
        const NetRun a = train_network(c, x, y, draw(int(N), D, seed, 1.0));
        const NetRun b = train_network(c, x, y, draw(int(N), D, seed, -1.0));
        const Vec<double> f = 0.5 * (a.f.row(c.T) + b.f.row(c.T)).transpose();
        const double loss = 0.5 * (a.loss(c.T) + b.loss(c.T));
        s += f;
        s2 += f.cwiseProduct(f);
        l += loss;
        l2 += loss * loss;
      }
      fmean.push_back(s / pairs);
      ferr.push_back(((s2 / pairs - fmean.back().cwiseProduct(fmean.back())).cwiseMax(0.0) / (pairs - 1)).cwiseSqrt());
      const double lm = l / pairs;
      gap.push_back(lm - lim.loss[c.T]);
      gap_err.push_back(std::hypot(std::sqrt(std::max(l2 / pairs - lm * lm, 0.0) / (pairs - 1)), lim.loss_err[c.T]));
    }
    const size_t k = widths.size() - 1;
    double z = 0;
    for (int m = 0; m < P; ++m) {
      const double ext = 2 * fmean[k](m) - fmean[k - 1](m);
      const double e = std::sqrt(4 * ferr[k](m) * ferr[k](m) + ferr[k - 1](m) * ferr[k - 1](m) +
                                 lim.f_err(c.T, m) * lim.f_err(c.T, m));
      z = std::max(z, std::abs(ext - lim.f(c.T, m)) / e);
    }
    const SlopeFit fit = fit_slope(widths, gap);
    std::printf("[dmft] %s ladder: loss gap", o == DmftOptimizer::adam ? "adam" : "signgd");
    for (size_t i = 0; i < widths.size(); ++i) std::printf(" N=%g %.2e+-%.1e", widths[i], gap[i], gap_err[i]);
    std::printf("; slope %.3f [%.3f, %.3f]; Richardson f(T) max z %.2f; L_inf(T) %.4f+-%.1e, L(0) %.4f\n", fit.slope,
                fit.lo, fit.hi, z, lim.loss[c.T], lim.loss_err[c.T], lim.loss[0]);
    CHECK(z < 3.5);
    REQUIRE(fit.valid);
    CHECK(fit.lo < -1.0);
    CHECK(fit.hi > -1.0);
    CHECK(fit.hi < -0.5);  // and the interval is narrow enough to say the gap closes
    for (size_t i = 0; i < widths.size(); ++i) CHECK(gap[i] > 2 * gap_err[i]);
  }
}

// ---- L >= 2: the pair estimator (docs/dmft_entrywise.md s.2 and s.5)

namespace {

// Width-N network with L = 2 hidden layers in its own coordinates (std-1 weights), trained by the
// simulator's Optimizer with the s.1 per-group LRs and epsilons: W^0 (group in), W^1 (group
// expert1: lr gamma0 eta / sqrt N, eps / (gamma0 N sqrt N)), w (group out). Returns the loss [T+1].
Vec<double> train_deep_network(const DmftConfig& c, const Mat<double>& x, const Vec<double>& y, int N, uint64_t seed,
                               double sign) {
  const int D = static_cast<int>(x.cols());
  const double sD = std::sqrt(double(D)), sN = std::sqrt(double(N)), g0 = c.gamma0;
  const OptimizerConfig oc = entrywise_optimizer(c);
  ResolvedParam rp = entrywise_rates(c, N, D);
  rp[Group::expert1].lr = g0 * c.eta / sN;
  rp[Group::expert1].eps = c.eps / (g0 * N * sN);
  Optimizer<double> opt(oc, rp);
  std::vector<ParamTensor<double>> prm(kNumGroups);
  std::vector<Vec<double>> grads(kNumGroups);
  const int in = int(Group::in), hid = int(Group::expert1), out = int(Group::out);
  prm[in].data = testing::random_matrix(N * D, 1, seed);
  prm[hid].data = testing::random_matrix(N * N, 1, mix_seed(seed, 2));
  prm[out].data = sign * testing::random_matrix(N, 1, mix_seed(seed, 1));
  Vec<double> loss(c.T + 1);
  Mat<double> p1, d1, p2, d2;
  for (int t = 0; t <= c.T; ++t) {
    const ConstMatMap<double> W0(prm[in].data.data(), N, D), W1(prm[hid].data.data(), N, N);
    const Vec<double>& w = prm[out].data;
    act_both(c.phi, Mat<double>((W0 * x.transpose()) / sD), p1, d1);
    act_both(c.phi, Mat<double>((W1 * p1) / sN), p2, d2);
    const Vec<double> delta = y - p2.transpose() * w / (g0 * N);
    loss(t) = 0.5 * delta.squaredNorm();
    if (t == c.T) break;
    const Mat<double> g2 = d2.array().colwise() * w.array();
    const Mat<double> g1 = d1.cwiseProduct(W1.transpose() * g2 / sN);
    const Mat<double> gW0 = -(g1 * delta.asDiagonal() * x) / (g0 * N * sD);
    const Mat<double> gW1 = -(g2 * delta.asDiagonal() * p1.transpose()) / (g0 * N * sN);
    grads[in] = Eigen::Map<const Vec<double>>(gW0.data(), N * D);
    grads[hid] = Eigen::Map<const Vec<double>>(gW1.data(), N * N);
    grads[out] = -(p2 * delta) / (g0 * N);
    opt.step(prm, grads);
  }
  return loss;
}

double max_rel_trace(const Trace& a, const Trace& b) {
  double r = max_rel(a.f, b.f);
  for (size_t l = 0; l < a.Phi.size(); ++l) {
    r = std::max(r, max_rel(a.Phi[l].back(), b.Phi[l].back()));
    r = std::max(r, max_rel(a.G[l].back(), b.G[l].back()));
  }
  return r;
}

}  // namespace

TEST_CASE("dmft deep pair estimator with u(c) = c is the SGD deep sweep", "[dmft][entrywise]") {
  // Same draws: W0 rows and readouts, u^1 = W0 x^T / sqrt(D), and the same hidden white noises.
  const int P = 3, D = 5, S = 256;
  const Mat<double> x = testing::random_matrix(P, D, 91);
  const Vec<double> y = testing::random_matrix(P, 1, 92);
  for (int L : {2, 3}) {
    DmftConfig c = entrywise_config(DmftOptimizer::sgd, Activation::tanh, 8, 0.1, S, 1);
    c.L = L;
    c.lr_in = L == 2 ? 1.0 : 0.7;  // the input-layer multiplier enters both paths independently
    Vec<double> z;
    const Mat<double> W = sample_fields(Mat<double>::Identity(D, D), S, 93, true, &z);
    const Trace a = march_deep_entrywise(c, x, y, W, z, 94);
    const Trace b = march_deep(c, input_kernel(x), y, (W * x.transpose()) / std::sqrt(double(D)), z, 94);
    const double rel = max_rel_trace(a, b), moved = (b.f.row(c.T) - b.f.row(0)).norm();
    // round-off floor of the sweep itself: the same SGD sweep from u^1 perturbed by 1e-15 relative
    const Trace b2 = march_deep(c, input_kernel(x), y, (1.0 + 1e-15) * (W * x.transpose()) / std::sqrt(double(D)), z, 94);
    std::printf("[dmft] L=%d f rel %.2e; sweep round-off floor %.2e (f %.2e)\n", L, max_rel(a.f, b.f), max_rel_trace(b2, b), max_rel(b2.f, b.f));
    std::printf("[dmft] L=%d pair estimator(sgd) vs SGD sweep: rel %.2e (f and kernels at T), |f(T)-f(0)| %.3f\n", L,
                rel, moved);
    // The sweep's causal whitening amplifies round-off (innovations of size gamma0 eta): a 1e-15
    // perturbation of u^1 alone moves it by ~5e-9, so the two summation orders agree to that floor.
    CHECK(rel < 1e-6);
    CHECK(moved > 0.1);
    // and the comparison can fail: SignGD moves elsewhere
    c.optimizer = DmftOptimizer::signgd;
    CHECK(max_rel(march_deep_entrywise(c, x, y, W, z, 94).f, b.f) > 1e-3);
  }
}

TEST_CASE("dmft deep Adam with beta1 = beta2 = eps = 0 is deep SignGD", "[dmft][entrywise]") {
  const int P = 3, D = 5, S = 256;
  const Mat<double> x = testing::random_matrix(P, D, 95);
  const Vec<double> y = testing::random_matrix(P, 1, 96);
  DmftConfig c = entrywise_config(DmftOptimizer::signgd, Activation::tanh, 10, 0.05, S, 1);
  c.L = 2;
  Vec<double> z;
  const Mat<double> W = sample_fields(Mat<double>::Identity(D, D), S, 97, true, &z);
  const Trace s = march_deep_entrywise(c, x, y, W, z, 98);
  c.optimizer = DmftOptimizer::adam;
  c.beta1 = c.beta2 = c.eps = 0.0;
  const Trace a = march_deep_entrywise(c, x, y, W, z, 98);
  c.eps = 1e-3;
  const Trace b = march_deep_entrywise(c, x, y, W, z, 98);
  const double d0 = (s.f - a.f).cwiseAbs().maxCoeff(), d1 = (s.f - b.f).cwiseAbs().maxCoeff();
  std::printf("[dmft] L=2 adam(0,0,0) vs signgd: max |diff| %.3e (kernels rel %.2e); with eps = 1e-3: %.3e\n", d0,
              max_rel_trace(a, s), d1);
  CHECK(d0 < 1e-12);
  CHECK(max_rel_trace(a, s) < 1e-12);
  CHECK(d1 > 1e-6);
}

TEST_CASE("dmft entrywise optimizers are refused by the fixed point and exact methods", "[dmft][entrywise]") {
  const Mat<double> x = testing::random_matrix(3, 4, 99);
  const Mat<double> y = testing::random_matrix(3, 1, 100);
  DmftConfig c;
  c.L = 2;
  c.T = 2;
  c.samples = 64;
  c.replicates = 1;
  c.optimizer = DmftOptimizer::adam;
  c.method = DeepMethod::fixed_point;
  const std::string fp = testing::config_error([&] { solve_dmft(c, x, y); });
  c.method = DeepMethod::exact;
  c.phi = Activation::identity;
  const std::string ex = testing::config_error([&] { solve_dmft(c, x, y); });
  std::printf("[dmft] refusals: %s | %s\n", fp.c_str(), ex.c_str());
  CHECK(fp == "dmft.method: 'fixed_point' needs dmft.optimizer = sgd (signgd and adam: method sweep)");
  CHECK(ex == "dmft.method: 'exact' needs dmft.optimizer = sgd (an entrywise optimizer is not linear)");
  // The sweep accepts it, and the S x S pair state enters the memory estimate (one-line refusal).
  c.method = DeepMethod::sweep;
  c.phi = Activation::tanh;
  CHECK_NOTHROW(solve_dmft(c, x, y));
  c.samples = 1 << 22;
  const std::string mem = testing::config_error([&] { solve_dmft(c, x, y); });
  CHECK(mem.rfind("dmft.T/dmft.samples/dmft.replicates/data.P: the solve needs about", 0) == 0);
  CHECK(mem.find('\n') == std::string::npos);
  DmftConfig sgd = c;
  sgd.optimizer = DmftOptimizer::sgd;
  CHECK(dmft_cost(c, 3, 4).bytes > 1000 * dmft_cost(sgd, 3, 4).bytes);
}

TEST_CASE("dmft finite-width L = 2 SignGD and Adam networks converge to the pair estimator at rate 1/N", "[dmft][entrywise]") {
  // Real width-N L = 2 networks (s.1 LRs and epsilons, eps = 0.3) vs the pair-estimator limit.
  // Per width: mean loss over antithetic seed pairs; gap <L_N(T)> - L_inf(T) fitted in log-log.
  const int P = 3, D = 4, pairs = 400, T = 10;
  const Mat<double> x = testing::random_matrix(P, D, 101);
  const Vec<double> y = testing::random_matrix(P, 1, 102);
  const std::vector<double> widths{8, 16, 32, 64};
  for (DmftOptimizer o : {DmftOptimizer::signgd, DmftOptimizer::adam}) {
    DmftConfig c = entrywise_config(o, Activation::tanh, T, 0.1, 2048, 16);
    c.gamma0 = 1.0;
    c.L = 2;
    const DmftResult lim = solve_dmft(c, x, y);
    std::vector<double> gap, gap_err;
    for (double N : widths) {
      double l = 0, l2 = 0;
      for (int p = 0; p < pairs; ++p) {
        const uint64_t seed = mix_seed(7000 + uint64_t(N), uint64_t(p));
        const double loss = 0.5 * (train_deep_network(c, x, y, int(N), seed, 1.0)(T) +
                                   train_deep_network(c, x, y, int(N), seed, -1.0)(T));
        l += loss;
        l2 += loss * loss;
      }
      const double lm = l / pairs;
      gap.push_back(lm - lim.loss[T]);
      gap_err.push_back(std::hypot(std::sqrt(std::max(l2 / pairs - lm * lm, 0.0) / (pairs - 1)), lim.loss_err[T]));
    }
    const SlopeFit fit = fit_slope(widths, gap);
    std::printf("[dmft] L=2 %s ladder: loss gap", o == DmftOptimizer::adam ? "adam" : "signgd");
    for (size_t i = 0; i < widths.size(); ++i) std::printf(" N=%g %.2e+-%.1e", widths[i], gap[i], gap_err[i]);
    std::printf("; slope %.3f [%.3f, %.3f]; L_inf(T) %.4f+-%.1e, L(0) %.4f\n", fit.slope, fit.lo, fit.hi, lim.loss[T],
                lim.loss_err[T], lim.loss[0]);
    REQUIRE(fit.valid);
    CHECK(fit.lo < -1.0);
    CHECK(fit.hi > -1.0);
    CHECK(fit.hi < -0.5);
    for (size_t i = 0; i < widths.size(); ++i) CHECK(gap[i] > 2 * gap_err[i]);
  }
}
