// Regime-II MoE DMFT (solver/dmft/moe2.hpp): exact references where learning is confined to layers
// whose limit closes (readout-only learning = kernel regression on a kernel integrated over the
// expert law independently; expert2 + readout on frozen features = the exact linear covariance
// recursion; a zero router with linear experts = the dense deep-linear DMFT), the
// particle gates against a finite network's gates, the muP/MSSP structure of the init term
// (including the finite-M slope of muP's), the constants and refusals, and finite networks
// approaching the limit.
#include <catch2/catch.hpp>
#include <cmath>

#include "experiments/moe_limit.hpp"
#include "experiments/trainer.hpp"
#include "models/gating.hpp"
#include "solver/dmft/dmft.hpp"
#include "solver/dmft/moe2.hpp"
#include "solver/dmft/references.hpp"
#include "dmft_moe_support.hpp"

using namespace moedmft;
using namespace moedmft::dmft;

using testing::max_z;
using testing::Toy;
using testing::toy_data;
using testing::gate_moment;
using testing::normal_upper_quantile;

namespace {

Moe2DmftConfig readout_only_config(bool topk) {
  Moe2DmftConfig c;
  c.T = 12;
  c.samples = 4096;
  c.expert_samples = 2048;
  c.replicates = 6;
  c.seed = 13;
  c.phi = Activation::gelu;
  c.k.sigma_in = 0.4;
  c.k.c_router = 1.5;  // random logits of order 1, as under muP/MSSP in regime II
  c.k.c_expert1 = 1.2;
  c.k.c_expert2 = 0.9;
  c.k.c_out = 0.8;
  c.k.lr_out = topk ? 1.0 : 4.0;  // the soft kernel is smaller
  c.k.nu = 0.25;
  c.k.Ne = 3;
  if (topk) {
    c.routing = Routing::topk;
    c.k.kappa = 0.25;
    c.renormalize = true;  // divides by the particle mean of the selected gates
  }
  return c;
}

// <hagg hagg> of the limit at init: c2^2 E[ghat(psi_mu) ghat(psi_nu)] Phi2(mu, nu), with psi and
// the expert fields independent Gaussians (covariances c_r^2 Phi1 and c1^2 Phi1), ghat = sigmoid
// (times the top-K indicator at the kappa-quantile, divided by its mean when renormalised).
Mat<double> limiting_hagg_kernel(const Moe2DmftConfig& c, const Mat<double>& x) {
  const Mat<double> Phi1 = quadrature_init_kernels(c.phi, c.k.sigma_in * c.k.sigma_in * (x * x.transpose()), 48).Phi;
  const Mat<double> Phi2 = quadrature_init_kernels(c.phi, c.k.c_expert1 * c.k.c_expert1 * Phi1, 48).Phi;
  const Mat<double> Kpsi = c.k.c_router * c.k.c_router * Phi1;
  const int P = static_cast<int>(x.rows());
  const bool topk = c.routing == Routing::topk;
  Vec<double> thr(P), norm = Vec<double>::Ones(P);
  for (int mu = 0; mu < P; ++mu) {
    thr(mu) = topk ? std::sqrt(Kpsi(mu, mu)) * normal_upper_quantile(c.k.kappa) : -1e300;
    // the normaliser E[F(psi_mu)]: against an independent b without threshold the moment is
    // E[F(a)] E[sigmoid(b)], and E[sigmoid(b)] = 1/2
    if (c.renormalize) norm(mu) = gate_moment(Kpsi(mu, mu), 1.0, 0.0, thr(mu), -1e300) / 0.5;
  }
  Mat<double> K(P, P);
  for (int mu = 0; mu < P; ++mu)
    for (int nu = 0; nu <= mu; ++nu)
      K(mu, nu) = K(nu, mu) = c.k.c_expert2 * c.k.c_expert2 * Phi2(mu, nu) *
                              gate_moment(Kpsi(mu, mu), Kpsi(nu, nu), Kpsi(mu, nu), thr(mu), thr(nu)) /
                              (norm(mu) * norm(nu));
  return K;
}

RunConfig regime2_run(const std::string& table, int N, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> sets = {"param.table=\"" + table + "\"", "model.N=" + std::to_string(N),
                                   "model.M=" + std::to_string(N / 16), "model.K=" + std::to_string(N / 16)};
  sets.insert(sets.end(), extra.begin(), extra.end());
  return parse_run_config(R"(
seed = 1
[data]
P = 6
D = 6
hidden = 32
[model]
Ne = 16
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

TEST_CASE("moe2 dmft: readout-only learning is kernel regression on the expert-law kernel", "[dmft][moe][moe2]") {
  const Toy d = toy_data(5, 4, 3);
  for (bool topk : {false, true}) {
    const Moe2DmftConfig c = readout_only_config(topk);
    const Moe2DmftResult r = solve_moe2_dmft(c, d.x, d.y);
    const Mat<double> K = limiting_hagg_kernel(c, d.x);
    const Mat<double> ref = lazy_trajectory(K, d.y, 2.0 * c.k.lr_out / 5, c.T);
    INFO((topk ? "top-K, renormalised" : "soft") << ": max z " << max_z(r.f, ref, r.f_err));
    CHECK(max_z(r.f, ref, r.f_err) < 4.5);
    CHECK(r.f.row(0).cwiseAbs().maxCoeff() < 1e-14);  // antithetic readout pairs
    CHECK(r.loss[c.T] < 0.6 * r.loss[0]);
    // the equal-time gated kernel at init is the same integral (finite-S_e error ~ 3 %)
    INFO("gated kernel at init\n" << r.gated[0] * c.k.c_expert2 * c.k.c_expert2 << "\nintegral\n" << K);
    CHECK((r.gated[0] * c.k.c_expert2 * c.k.c_expert2 - K).cwiseAbs().maxCoeff() < 0.05 * K.cwiseAbs().maxCoeff());
    if (topk) {
      // every token selects kappa S_e particles, so the particle load averages kappa exactly
      CHECK(r.load(0, 0) == Approx(0.25));
      CHECK(std::isfinite(r.logit_quantile(0, 0)));
    }
  }
}

TEST_CASE("moe2 dmft: expert2 + readout on frozen features follow the exact linear covariance recursion",
          "[dmft][moe][moe2]") {
  // With h1, router and expert1 frozen, the gated features a~ are frozen and independent of the
  // expert2 noise, so per hagg neuron v = (hagg in R^P, z) evolves linearly:
  // hagg += lr2 nu Ne Phi~ w z, z += lr_out w^T hagg, Sigma(0) = blockdiag(c2^2 Phi~, c_out^2).
  const Toy d = toy_data(5, 4, 7);
  Moe2DmftConfig c = readout_only_config(true);
  c.k.lr_out = 0.8;
  c.k.lr_expert2 = 1.5;
  // The frozen h1 makes the h1 -> expert forward-response estimates E_h1[rho a1] pure noise of
  // order S^-1/2; it inflates the expert fields' variance by O(n/S), a 3% drift by step 12 at
  // S = 4096 (max z 7.6). At 16384 it is below the error bars.
  c.samples = 16384;
  const Moe2DmftResult r = solve_moe2_dmft(c, d.x, d.y);
  const Mat<double> ref = testing::frozen_feature_recursion(
      limiting_hagg_kernel(c, d.x), d.y, c.k.c_out,
      c.k.lr_expert2 * c.k.nu * c.k.Ne / (c.k.c_expert2 * c.k.c_expert2), c.k.lr_out, c.T);
  WARN("frozen features vs recursion: max z " << max_z(r.f, ref, r.f_err));
  CHECK(max_z(r.f, ref, r.f_err) < 4.5);
  // without expert2 learning the same run is slower: the update term is really exercised
  Moe2DmftConfig lazy = c;
  lazy.k.lr_expert2 = 0.0;
  CHECK(solve_moe2_dmft(lazy, d.x, d.y).loss[c.T] > r.loss[c.T] * 1.05);
}

TEST_CASE("moe2 dmft: a zero router with linear experts equals the dense deep-linear DMFT", "[dmft][moe][moe2]") {
  // Zero, frozen router: ghat = sigmoid(0) = 1/2 for every particle. With linear experts and
  // M Ne = N (nu Ne = 1) the network is the dense L = 3 chain x -> W_in -> W1 -> W2 -> readout of
  // dmft.hpp; c2 = 2 and lr2 = 4 lr undo the 1/2 of the gate on the forward and backward sides.
  const testing::DeepLinearReference dl;
  const int P = dl.P, D = dl.D, T = dl.T;
  const Toy& d = dl.data;
  const DmftResult& ref = dl.ref;

  Moe2DmftConfig c;
  c.T = T;
  c.samples = 4096;
  c.expert_samples = 2048;
  c.replicates = 6;
  c.seed = 9;
  c.phi = Activation::identity;
  const double lr = dl.hidden_lr;
  c.k.sigma_in = 1.0 / std::sqrt(double(D));
  c.k.lr_in = lr / D;
  c.k.c_router = 0.0;
  c.k.c_expert1 = 1.0;
  c.k.lr_expert1 = lr;
  c.k.c_expert2 = 2.0;
  c.k.lr_expert2 = 4.0 * lr;
  c.k.c_out = 1.0 / dl.dense.gamma0;
  c.k.lr_out = dl.readout_lr;
  c.k.nu = 0.5;
  c.k.Ne = 2;
  const Moe2DmftResult r = solve_moe2_dmft(c, d.x, d.y);
  const Mat<double> err = dl.err(r.f_err);
  INFO("max z " << max_z(r.f, ref.f, err));
  CHECK(max_z(r.f, ref.f, err) < 4.5);
  CHECK(r.loss[T] == Approx(2.0 * ref.loss[T] / P).epsilon(0.1));
  // sensitive: without the hidden layers' learning the trajectory leaves those error bars
  Moe2DmftConfig frozen = c;
  frozen.k.lr_expert1 = frozen.k.lr_expert2 = 0.0;
  CHECK(max_z(solve_moe2_dmft(frozen, d.x, d.y).f, ref.f, err) > 10.0);
}

TEST_CASE("moe2 dmft: particle gates with S_e = M equal a finite network's gates", "[dmft][moe][moe2]") {
  // Same logits, the particle rules (kappa-quantile selection, normaliser as a particle mean,
  // Gamma / M) must give the finite network's gates exactly, and dL/dpsi likewise.
  for (const char* gate : {"\"sigmoid\"", "\"softmax\""}) {
    for (bool renorm : {false, true}) {
      const std::string table = std::string(gate) == "\"softmax\"" || renorm ? "mssp-I-sgd" : "mssp-II-sgd";
      RunConfig run = regime2_run(table, 256,
                                  {"model.routing=\"topk\"", "model.K=4", "model.gate=" + std::string(gate),
                                   std::string("model.renormalize=") + (renorm ? "true" : "false")});
      const ResolvedParam p = resolve_run_param(run);
      MoeNetwork<double> net = build_network<double>(run, p);
      const Mat<double> x = testing::random_matrix(6, run.shape.D, 4);
      ForwardCache<double> cache;
      net.forward(x, cache);
      const BlockCache<double>& bc = cache.blocks[0];
      Moe2DmftConfig c;
      c.expert_samples = run.shape.M;
      c.routing = Routing::topk;
      c.gate = run.model.gate;
      c.renormalize = renorm;
      c.k = limit2_constants(p, run.shape, c.normalised());
      c.k.kappa = double(run.shape.K) / run.shape.M;
      Mat<double> ghat, q;
      std::vector<std::vector<int>> sel;
      particle_gates(c, c.selected(), Mat<double>(bc.psi.transpose()), ghat, q, sel);
      const Mat<double> g = ghat.transpose() * (c.k.gate / run.shape.M);
      INFO("gate " << gate << " renormalize " << renorm);
      CHECK((g - bc.gates).cwiseAbs().maxCoeff() < 1e-12 * bc.gates.cwiseAbs().maxCoeff());
      CHECK(bc.gates.cwiseAbs().maxCoeff() > 0.0);
      // backward: the network's gate_backward over the token's K selected against the particles'
      const Mat<double> chi = testing::random_matrix(run.shape.M, 6, 8);
      const Mat<double> dpsi = particle_gate_backward(c, q, chi, sel);
      for (int mu = 0; mu < 6; ++mu) {
        std::vector<double> qs, dg, out(sel[mu].size());
        for (int m : sel[mu]) {
          qs.push_back(bc.gate_raw(mu, m));
          dg.push_back(chi(m, mu) * run.shape.M / c.k.gate);  // dL/dg = (M / Gamma) dL/dghat
        }
        gate_backward(c.gate, renorm, p.gate_factor * p.aggregation * p.residual_multiplier, qs.data(), dg.data(),
                      int(qs.size()), out.data());
        for (size_t j = 0; j < out.size(); ++j) CHECK(dpsi(sel[mu][j], mu) == Approx(out[j]).margin(1e-12));
      }
    }
  }
}

TEST_CASE("moe2 dmft: MSSP keeps the init term of hagg, muP loses it at rate M^-1/2", "[dmft][moe][moe2]") {
  Moe2DmftConfig mssp, mup;
  mssp.samples = mup.samples = 1024;
  mssp.expert_samples = mup.expert_samples = 512;
  mssp.replicates = mup.replicates = 4;
  // muP with its 1/N readout law: with the built-in zero readout the limit does not move (below)
  const RunConfig mssp_run = regime2_run("mssp-II-sgd", 256),
                  mup_run = regime2_run("mup-II-sgd", 256, {"param.readout_init=\"law\""});
  fill_moe2_limit_config(mssp_run, mssp);
  fill_moe2_limit_config(mup_run, mup);
  // MSSP: expert2 init variance M/Ne with the 1/M gate factor: Gamma = 8, c2 = Gamma
  CHECK(mssp.k.gate == Approx(8.0));
  CHECK(mssp.k.c_expert2 == Approx(8.0));
  CHECK(mssp.k.vanishing.empty());
  CHECK(mup.k.c_expert2 == 0.0);
  CHECK_THAT(mup.k.vanishing, Catch::Contains("expert2 init_std ~ N^-0.5"));
  RunConfig run = mssp_run;
  const RunData data = prepare_data(run, {});
  const Vec<double> y = data.train.y.col(0);
  const Moe2DmftResult a = solve_moe2_dmft(mssp, data.train.x, y), b = solve_moe2_dmft(mup, data.train.x, y);
  CHECK(a.agg(0, 1) > 0.5);                    // init term O(1) under MSSP ...
  CHECK(a.agg(0, 1) == Approx(a.agg(0, 0)));   // ... and all of hagg at t = 0
  CHECK(b.agg.col(1).cwiseAbs().maxCoeff() == 0.0);  // absent from the muP limit
  CHECK(b.agg(0, 0) == 0.0);
  CHECK(b.agg(mup.T, 3) > 0.0);  // muP's hagg is built by the effective term alone
  // With the zero readout (the built-in muP) the limit starts at a saddle: hagg = 0 and w = 0
  // give each other no gradient, so nothing moves; finite networks leave it through hagg's
  // M^-1/2 init term.
  Moe2DmftConfig zero = mup;
  fill_moe2_limit_config(regime2_run("mup-II-sgd", 256), zero);
  CHECK(zero.k.c_out == 0.0);
  const Moe2DmftResult z = solve_moe2_dmft(zero, data.train.x, y);
  CHECK(z.agg.cwiseAbs().maxCoeff() == 0.0);
  CHECK(z.loss[zero.T] == z.loss[0]);
  CHECK(a.loss[mssp.T] < 0.9 * a.loss[0]);
  // Finite muP networks: hagg(0) is the init term, RMS c2(N) sqrt(mean_mu <ghat^2 a2^2>) with
  // c2(N) = Gamma sigma_2 sqrt(Ne/M) = 8/sqrt(M): the coordinate check's slope of -1/2.
  const double gated = std::sqrt(b.gated[0].diagonal().mean());
  std::vector<double> logN, logRms;
  for (int N : {128, 512, 2048}) {
    RunConfig cfg = regime2_run("mup-II-sgd", N);
    const ResolvedParam p = resolve_run_param(cfg);
    const double c2 = limit2_constants(p, cfg.shape, false).c_expert2;
    double ms = 0;
    for (int seed = 0; seed < 3; ++seed) {
      MoeNetwork<double> net = build_network<double>(cfg, p);
      net.initialize(100 + seed);
      ForwardCache<double> cache;
      net.forward(data.train.x, cache);
      ms += cache.blocks[0].aggregated.squaredNorm() / double(cache.blocks[0].aggregated.size()) / 3;
    }
    INFO("N = " << N << ": finite init RMS " << std::sqrt(ms) << ", predicted " << c2 * gated);
    CHECK(std::sqrt(ms) == Approx(c2 * gated).epsilon(0.1));
    logN.push_back(std::log(double(N)));
    logRms.push_back(std::log(std::sqrt(ms)));
  }
  const double slope = (logRms[2] - logRms[0]) / (logN[2] - logN[0]);
  CHECK(slope == Approx(-0.5).margin(0.08));
}

TEST_CASE("moe2 dmft: constants, tables without a regime-II limit, memory refusal", "[dmft][moe][moe2]") {
  Moe2DmftConfig c;
  fill_moe2_limit_config(regime2_run("mup-II-sgd", 256), c);
  CHECK(c.k.c_out == 0.0);  // the built-in muP readout starts at zero
  fill_moe2_limit_config(regime2_run("mup-II-sgd", 256, {"param.readout_init=\"law\""}), c);
  CHECK(c.k.c_out == Approx(std::sqrt(128.0)));  // readout std sqrt(128)/N
  CHECK(c.k.c_router == Approx(1.0));
  CHECK(c.k.c_expert1 == Approx(1.0));
  CHECK(c.k.nu == Approx(1.0 / 16));
  CHECK(c.k.lr_expert2 == Approx(0.005));  // Gamma^2 eta_2 / M^2 with eta_2 ~ N M
  CHECK(c.k.Ne == 16);
  Moe2DmftConfig kept;  // the vanishing muP init constant held at this size: 8/sqrt(M), M = 16
  fill_moe2_limit_config(regime2_run("mup-II-sgd", 256), kept, true);
  CHECK(kept.k.c_expert2 == Approx(2.0));
  CHECK(kept.k.vanishing == c.k.vanishing);
  CHECK_THROWS_WITH(fill_moe2_limit_config(regime2_run("sp", 256), c),
                    Catch::Contains("no regime-II DMFT limit") && Catch::Contains("N^"));
  CHECK_THROWS_WITH(fill_moe2_limit_config(regime2_run("mup-I-sgd", 256), c), Catch::Contains("regime-II"));
  CHECK_THROWS_WITH(fill_moe2_limit_config(regime2_run("mup-II-sgd", 256, {"model.gate=\"softmax\""}), c),
                    Catch::Contains("gate scale") && Catch::Contains("gate_exponent = 0"));
  CHECK_THROWS_WITH(fill_moe2_limit_config(regime2_run("mup-II-sgd", 256, {"optim.kind=\"adamw\""}), c),
                    Catch::Contains("optim.kind"));
  // auto picks regime II for a regime-II table; a bad regime name is refused
  const std::string doc = R"(
[data]
P = 4
[model]
N = 256
Ne = 16
M = 16
K = 16
[param]
table = "mssp-II-sgd"
[train]
steps = 3
protocol = "full_batch"
)";
  CHECK(read_moe_limit_config(doc, {}, "test").regime == 2);
  CHECK_THROWS_WITH(read_moe_limit_config(doc, {"dmft.regime=\"IV\""}, "test"), Catch::Contains("dmft.regime"));
  // [dmft] keys are named with their section and the dot, as every other key
  CHECK_THROWS_WITH(read_moe_limit_config(doc, {"dmft.samples=1"}, "test"), Catch::StartsWith("dmft.samples: 1 is out of range"));
  CHECK_THROWS_WITH(read_moe_limit_config(doc, {"dmft.sample=1"}, "test"), Catch::StartsWith("dmft.sample: unknown key"));
  // top-K needs a whole number of selected particles
  CHECK_THROWS_WITH(read_moe_limit_config(doc, {"model.routing=\"topk\"", "model.K=4", "dmft.expert_samples=1022"}, "test"),
                    Catch::Contains("dmft.expert_samples"));
  // memory: refused with the fields named, before anything is allocated (no bad_alloc)
  const Toy d = toy_data(16, 4, 1);
  Moe2DmftConfig huge = c;
  huge.T = 200;
  huge.expert_samples = 1 << 22;
  CHECK_THROWS_WITH(solve_moe2_dmft(huge, d.x, d.y), Catch::Contains("dmft.samples/dmft.expert_samples"));
  MoeDmftConfig huge1;
  huge1.T = 200;
  huge1.samples = 1 << 22;
  CHECK_THROWS_WITH(solve_moe_dmft(huge1, d.x, d.y), Catch::Contains("dmft.samples"));
}

TEST_CASE("moe2 dmft: finite MSSP regime-II networks approach the limit (1/N extrapolation)", "[dmft][moe][moe2]") {
  RunConfig run = regime2_run("mssp-II-sgd", 256, {"train.steps=8", "data.P=8"});
  Moe2DmftConfig c;
  c.samples = 2048;
  c.expert_samples = 1024;
  c.replicates = 6;
  fill_moe2_limit_config(run, c);
  const RunData data = prepare_data(run, {});
  const Moe2DmftResult lim = solve_moe2_dmft(c, data.train.x, data.train.y.col(0));
  const int seeds = 12, T = 8;
  auto train = [&](int N, int s) {
    RunConfig cfg = regime2_run("mssp-II-sgd", N, {"train.steps=8", "data.P=8", "seed=" + std::to_string(100 + s)});
    MoeNetwork<double> net = build_network<double>(cfg, resolve_run_param(cfg));
    return train_run(cfg, data, net).train_loss;
  };
  const double worst_z = testing::extrapolation_vs_limit(train, 512, seeds, T, lim.loss, lim.loss_err).worst_z;
  WARN("regime-II finite-width extrapolation vs limit: worst z = " << worst_z);
  CHECK(worst_z < 4.0);
  CHECK(lim.loss[T - 1] < 0.5 * lim.loss[0]);
}
