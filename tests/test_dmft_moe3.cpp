// Regime-III MoE DMFT (solver/dmft/moe3.hpp): readout-only learning under shared initial experts
// is kernel regression on the coherent kernel Gamma^2 c2^2 gbar gbar Phi2 (and not on regime II's
// incoherent E[ghat ghat] Phi2); with independent experts it learns nothing (hagg = 0); a zero,
// frozen router with shared initial experts keeps every expert identical, so the limit is the
// regime-I limit with one expert; the muP/MSSP structure of the init and propagating terms; the
// constants and refusals; finite MSSP networks approaching the limit.
#include <catch2/catch.hpp>
#include <cmath>

#include "experiments/moe_limit.hpp"
#include "experiments/trainer.hpp"
#include "solver/dmft/dmft.hpp"
#include "solver/dmft/moe.hpp"
#include "solver/dmft/moe3.hpp"
#include "solver/dmft/references.hpp"
#include "dmft_moe_support.hpp"

using namespace moedmft;
using namespace moedmft::dmft;

using testing::gate_moment;
using testing::max_z;
using testing::normal_upper_quantile;
using testing::Toy;
using testing::toy_data;

namespace {

Moe3DmftConfig readout_only_config(bool shared) {
  Moe3DmftConfig c;
  c.T = 12;
  c.samples = 4096;
  c.expert_samples = 128;
  c.neuron_samples = 256;
  c.replicates = 6;
  c.seed = 17;
  c.phi = Activation::gelu;
  c.routing = Routing::topk;  // kappa = 1/4: the selected-gate mean is not 1/2
  c.k.kappa = 0.25;
  c.k.sigma_in = 0.4;
  c.k.c_router = 1.5;
  c.k.c_expert1 = 1.2;
  c.k.c_expert2 = 0.9;
  c.k.gate = 2.0;
  c.k.c_out = 0.8;
  c.k.lr_out = 1.0;
  c.k.lr_in = c.k.lr_router = c.k.lr_expert1 = c.k.lr_expert2 = 0.0;
  c.k.nu = 0.25;
  c.k.rho = 1.0;
  c.k.shared = shared;
  return c;
}

// Kernel regression f(t+1) = f(t) + lr_out K (2/P)(y - f(t)) from f(0) = 0; rows t = 0..T.
Mat<double> kernel_regression(const Mat<double>& K, const Vec<double>& y, double lr, int T) {
  const int P = static_cast<int>(y.size());
  Mat<double> f = Mat<double>::Zero(T + 1, P);
  for (int t = 0; t < T; ++t) f.row(t + 1) = f.row(t) + (lr * (2.0 / P) * (K * (y - f.row(t).transpose()))).transpose();
  return f;
}

// The limit's <hagg hagg> at init under shared initial experts, Gamma^2 c2^2 gbar(mu) gbar(nu)
// Phi2(mu, nu) with gbar = E[1(psi >= q*) sigmoid(psi)] (coherent), and regime II's incoherent
// counterpart with E[ghat(psi_mu) ghat(psi_nu)] in place of the product of means.
void hagg_kernels(const Moe3DmftConfig& c, const Mat<double>& x, Mat<double>& coherent, Mat<double>& incoherent) {
  const Mat<double> Phi1 = quadrature_init_kernels(c.phi, c.k.sigma_in * c.k.sigma_in * (x * x.transpose()), 48).Phi;
  const Mat<double> Phi2 = quadrature_init_kernels(c.phi, c.k.c_expert1 * c.k.c_expert1 * Phi1, 48).Phi;
  const Mat<double> Kpsi = c.k.c_router * c.k.c_router * Phi1;
  const int P = static_cast<int>(x.rows());
  Vec<double> thr(P), gbar(P);
  for (int mu = 0; mu < P; ++mu) {
    thr(mu) = std::sqrt(Kpsi(mu, mu)) * normal_upper_quantile(c.k.kappa);
    gbar(mu) = gate_moment(Kpsi(mu, mu), 1.0, 0.0, thr(mu), -1e300) / 0.5;  // E[sigmoid(indep.)] = 1/2
  }
  const double amp = std::pow(c.k.gate * c.k.c_expert2, 2);
  coherent.resize(P, P);
  incoherent.resize(P, P);
  for (int mu = 0; mu < P; ++mu)
    for (int nu = 0; nu <= mu; ++nu) {
      coherent(mu, nu) = coherent(nu, mu) = amp * gbar(mu) * gbar(nu) * Phi2(mu, nu);
      incoherent(mu, nu) = incoherent(nu, mu) =
          amp * gate_moment(Kpsi(mu, mu), Kpsi(nu, nu), Kpsi(mu, nu), thr(mu), thr(nu)) * Phi2(mu, nu);
    }
}

RunConfig regime3_run(const std::string& table, int N, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> sets = {"param.table=\"" + table + "\"", "model.N=" + std::to_string(N),
                                   "model.Ne=" + std::to_string(N), "model.M=" + std::to_string(N / 16),
                                   "model.K=" + std::to_string(N / 16)};
  sets.insert(sets.end(), extra.begin(), extra.end());
  return parse_run_config(R"(
seed = 1
[data]
P = 6
D = 6
hidden = 32
[optim]
lr = 0.005
[train]
steps = 6
protocol = "full_batch"
diag_every = 0
)",
                          sets);
}

}  // namespace

TEST_CASE("moe3 dmft: readout-only learning with shared initial experts is regression on the coherent kernel",
          "[dmft][moe][moe3]") {
  const Toy d = toy_data(5, 4, 3);
  const Moe3DmftConfig c = readout_only_config(true);
  Mat<double> coherent, incoherent;
  hagg_kernels(c, d.x, coherent, incoherent);
  const Moe3DmftResult r = solve_moe3_dmft(c, d.x, d.y);
  const Mat<double> expect = kernel_regression(coherent, d.y, c.k.lr_out, c.T);
  const Mat<double> wrong = kernel_regression(incoherent, d.y, c.k.lr_out, c.T);
  const Mat<double> err = r.f_err.bottomRows(c.T).array() + 1e-4 * d.y.cwiseAbs().maxCoeff();
  const double z = max_z(r.f.bottomRows(c.T), expect.bottomRows(c.T), err);
  const double z_wrong = max_z(r.f.bottomRows(c.T), wrong.bottomRows(c.T), err);
  INFO("coherent z = " << z << ", incoherent z = " << z_wrong);
  CHECK(z < 4.5);
  CHECK(z_wrong > 20.0);  // the experts' init terms add coherently: not regime II's kernel
  // with nothing but the readout learning, hagg is the init term alone
  CHECK(r.agg(c.T, 1) == Approx(r.agg(c.T, 0)).epsilon(1e-6));
  CHECK(r.agg(c.T, 3) == 0.0);
}

TEST_CASE("moe3 dmft: independent experts' init terms are absent, so readout-only learning does nothing",
          "[dmft][moe][moe3]") {
  const Toy d = toy_data(5, 4, 3);
  Moe3DmftConfig c = readout_only_config(false);
  c.replicates = 2;
  const Moe3DmftResult r = solve_moe3_dmft(c, d.x, d.y);
  CHECK(r.f.cwiseAbs().maxCoeff() < 1e-12);  // round-off of antithetic cancellations only
  CHECK(r.agg.cwiseAbs().maxCoeff() < 1e-12);
  CHECK(r.loss.back() == Approx(d.y.squaredNorm() / 5).epsilon(1e-12));
}

TEST_CASE("moe3 dmft: a zero router with shared initial experts is the regime-I limit with one expert",
          "[dmft][moe][moe3]") {
  // Every expert starts identical and sees the same gate sigmoid(0) = 1/2, so all stay identical:
  // hagg = Gamma ghat o of one expert whose LRs are the per-expert ones, lr1/Gamma and lr2/Gamma^2
  // in regime I's units (docs/dmft_moe_regime3.md section 6).
  const Toy d = toy_data(4, 3, 11);
  Moe3DmftConfig c;
  c.T = 10;
  c.samples = 4096;
  c.expert_samples = 8;
  c.neuron_samples = 2048;
  c.replicates = 6;
  c.seed = 23;
  c.phi = Activation::tanh;
  c.k = Moe3LimitConstants{};
  c.k.sigma_in = 0.8;
  c.k.lr_in = 0.6;
  c.k.c_router = c.k.lr_router = 0.0;
  c.k.c_expert1 = 1.1;
  c.k.lr_expert1 = 2.0;
  c.k.c_expert2 = 0.9;
  c.k.lr_expert2 = 3.0;
  c.k.c_out = 1.0;  // a random readout: the experts learn from the first step
  c.k.lr_out = 0.5;
  c.k.gate = 2.0;
  c.k.rho = 0.5;
  c.k.shared = true;
  MoeDmftConfig one;
  one.T = c.T;
  one.samples = 4096;
  one.replicates = 6;
  one.seed = 29;
  one.phi = c.phi;
  one.M = one.K = 1;
  one.k.sigma_in = c.k.sigma_in;
  one.k.lr_in = c.k.lr_in;
  one.k.c_router = one.k.lr_router = 0.0;
  one.k.c_expert1 = c.k.c_expert1;
  one.k.lr_expert1 = c.k.lr_expert1 / c.k.gate;
  one.k.c_expert2 = c.k.c_expert2;
  one.k.lr_expert2 = c.k.lr_expert2 / (c.k.gate * c.k.gate);
  one.k.c_out = c.k.c_out;
  one.k.lr_out = c.k.lr_out;
  one.k.gate = c.k.gate;
  one.k.ratio = c.k.rho;
  const Moe3DmftResult r3 = solve_moe3_dmft(c, d.x, d.y);
  auto z_against = [&](const MoeDmftConfig& ref) {
    const MoeDmftResult r1 = solve_moe_dmft(ref, d.x, d.y);
    const Mat<double> err = (r3.f_err.array().square() + r1.f_err.array().square()).sqrt() + 1e-6;
    return max_z(r3.f.bottomRows(c.T), r1.f.bottomRows(c.T), err.bottomRows(c.T));
  };
  const double z = z_against(one);
  MoeDmftConfig off1 = one, off2 = one;
  off1.k.lr_expert1 *= 1.5;
  off2.k.lr_expert2 *= 1.5;
  const double z1 = z_against(off1), z2 = z_against(off2);
  WARN("max z against regime I with M = 1: " << z << "; with expert1 LR x1.5: " << z1 << "; expert2 LR x1.5: " << z2);
  CHECK(z < 4.5);
  CHECK(z1 > 5.0);  // the expert LRs' mapping is resolved by the comparison
  CHECK(z2 > 5.0);
  CHECK(r3.logit_std.cwiseAbs().maxCoeff() == 0.0);  // every particle sees the same logit
  Moe3DmftConfig frozen = c;
  frozen.k.lr_in = frozen.k.lr_expert1 = frozen.k.lr_expert2 = 0.0;
  frozen.replicates = 3;
  const Moe3DmftResult rf = solve_moe3_dmft(frozen, d.x, d.y);
  const MoeDmftResult r1 = solve_moe_dmft(one, d.x, d.y);
  const Mat<double> err = (rf.f_err.array().square() + r1.f_err.array().square()).sqrt() + 1e-6;
  CHECK(max_z(rf.f.bottomRows(c.T), r1.f.bottomRows(c.T), err.bottomRows(c.T)) > 10.0);
}

TEST_CASE("moe3 dmft: muP and MSSP limits differ in the init and propagating terms", "[dmft][moe][moe3]") {
  Moe3DmftConfig mup, mssp;
  // muP with its 1/N readout law (the built-in zero readout: the saddle checked below)
  fill_moe3_limit_config(regime3_run("mup-III-sgd", 256, {"param.readout_init=\"law\""}), mup);
  fill_moe3_limit_config(regime3_run("mssp-III-sgd", 256), mssp);
  CHECK(mssp.k.shared);
  CHECK_FALSE(mup.k.shared);
  CHECK(mssp.k.gate == Approx(8.0));
  CHECK(mssp.k.c_expert2 == Approx(1.0));
  CHECK(mssp.k.c_out == 0.0);
  CHECK(mup.k.c_out == Approx(std::sqrt(128.0)));
  CHECK(mup.k.lr_expert1 == Approx(0.005));
  CHECK(mup.k.lr_expert2 == Approx(0.04));
  CHECK_THAT(mup.k.vanishing, Catch::Contains("independent experts"));
  CHECK(mssp.k.vanishing.empty());
  const Toy d = toy_data(6, 6, 5);
  for (Moe3DmftConfig* c : {&mup, &mssp}) {
    c->samples = 1024;
    c->expert_samples = 16;
    c->neuron_samples = 256;
    c->replicates = 2;
    c->T = 4;
  }
  const Moe3DmftResult a = solve_moe3_dmft(mup, d.x, d.y), b = solve_moe3_dmft(mssp, d.x, d.y);
  // muP: hagg starts at 0 and has no init term at any step; the coherent response of the
  // experts' own W2(0) (the propagating term) and the effective term build it.
  CHECK(a.agg.col(1).cwiseAbs().maxCoeff() == 0.0);
  CHECK(a.agg(0, 0) == 0.0);
  CHECK(a.agg(mup.T, 2) > 1e-4);
  CHECK(a.agg(mup.T, 3) > 1e-4);
  // The built-in muP (zero readout): hagg = 0 and w = 0 give each other no gradient; nothing moves.
  Moe3DmftConfig zero = mup;
  fill_moe3_limit_config(regime3_run("mup-III-sgd", 256), zero);
  CHECK(zero.k.c_out == 0.0);
  const Moe3DmftResult z = solve_moe3_dmft(zero, d.x, d.y);
  CHECK(z.agg.cwiseAbs().maxCoeff() == 0.0);
  CHECK(z.loss[zero.T] == z.loss[0]);
  // MSSP: hagg(0) is the coherent init term, O(1); Gamma c2 sqrt(mean_mu gbar^2 Phi2(mu, mu)) with
  // gbar = 1/2 for soft sigmoid gates on symmetric logits
  const Mat<double> Phi1 =
      quadrature_init_kernels(mssp.phi, mssp.k.sigma_in * mssp.k.sigma_in * (d.x * d.x.transpose()), 48).Phi;
  const Mat<double> Phi2 = quadrature_init_kernels(mssp.phi, Phi1, 48).Phi;
  const double init_rms = 8.0 * 0.5 * std::sqrt(Phi2.diagonal().mean());
  CHECK(b.agg(0, 1) == Approx(init_rms).epsilon(0.1));
  CHECK(b.agg(0, 0) == Approx(b.agg(0, 1)).epsilon(1e-6));
  CHECK(b.f.row(0).cwiseAbs().maxCoeff() == 0.0);  // zero readout
}

TEST_CASE("moe3 dmft: constants, the limit rule and refusals", "[dmft][moe][moe3]") {
  Moe3DmftConfig c;
  CHECK_THROWS_WITH(fill_moe3_limit_config(regime3_run("mssp-II-sgd", 256), c),
                    Catch::Contains("no regime-III DMFT limit") && Catch::Contains("expert2 init_std") &&
                        Catch::Contains("N^0.5"));
  CHECK_THROWS_WITH(fill_moe3_limit_config(regime3_run("sp", 256), c), Catch::Contains("no regime-III DMFT limit"));
  CHECK_THROWS_WITH(fill_moe3_limit_config(regime3_run("mssp-III-adam", 256, {"optim.kind=\"adamw\""}), c),
                    Catch::Contains("optim.kind"));
  CHECK_THROWS_WITH(fill_moe3_limit_config(regime3_run("mssp-III-sgd", 256, {"model.residual=true"}), c),
                    Catch::Contains("model.residual") && Catch::Contains("dmft_moe_regime3.md"));
  const std::string doc = R"(
seed = 1
[data]
P = 6
D = 6
[model]
N = 128
Ne = 128
M = 8
K = 8
[param]
table = "mssp-III-sgd"
[optim]
lr = 0.005
[train]
steps = 4
protocol = "full_batch"
diag_every = 0
)";
  const MoeLimitSetup s = read_moe_limit_config(doc, {}, "test");
  CHECK(s.regime == 3);
  CHECK(s.dmft3.expert_samples == 32);
  CHECK(s.dmft3.neuron_samples == 1024);
  CHECK_THROWS_WITH(read_moe_limit_config(doc, {"dmft.regime=\"IV\""}, "test"), Catch::Contains("I, II, III"));
  CHECK_THROWS_WITH(read_moe_limit_config(doc, {"dmft.neuron_samples=7"}, "test"),
                    Catch::Contains("dmft.neuron_samples"));
  Moe3DmftConfig huge = s.dmft3;
  huge.neuron_samples = 1 << 20;
  huge.expert_samples = 1 << 12;
  const Toy d = toy_data(6, 6, 5);
  CHECK_THROWS_WITH(solve_moe3_dmft(huge, d.x, d.y), Catch::Contains("dmft.neuron_samples"));
}

TEST_CASE("moe3 dmft: finite MSSP networks approach the limit like 1/N", "[dmft][moe][moe3]") {
  // Per-seed 1/N extrapolation 2 L(2N) - L(N) of finite regime-III networks against the limit.
  auto run_at = [](int N) {
    return regime3_run("mssp-III-sgd", N, {"data.P=8", "train.steps=8"});
  };
  RunConfig base = run_at(256);
  const RunData data = prepare_data(base, {});
  Moe3DmftConfig c;
  fill_moe3_limit_config(base, c);
  c.samples = 2048;
  c.expert_samples = 32;
  c.neuron_samples = 1024;
  c.replicates = 6;
  const Moe3DmftResult lim = solve_moe3_dmft(c, data.train.x, data.train.y.col(0));
  const int seeds = 10, T = base.train.steps;
  auto train = [&](int N, int s) {
    RunConfig cfg = run_at(N);
    cfg.seed = 100 + s;
    MoeNetwork<double> net = build_network<double>(cfg, resolve_run_param(cfg));
    return train_run(cfg, data, net).train_loss;
  };
  const double worst = testing::extrapolation_vs_limit(train, 256, seeds, T, lim.loss, lim.loss_err).worst_z;
  WARN("regime-III finite-width extrapolation vs limit: worst z = " << worst);
  CHECK(worst < 4.0);
  CHECK(lim.loss[T - 1] < 0.5 * lim.loss[0]);
}
