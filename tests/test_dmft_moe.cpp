// Regime-I MoE DMFT (solver/dmft/moe.hpp): exact references where learning is confined to layers
// whose limit closes (kernel regression on nested NNGP kernels; the linear covariance recursion
// of expert2 + readout on frozen features), structure (exact zeros, top-K tie rule), constants of
// the built-in tables, and finite-width networks converging to the limit.
#include <catch2/catch.hpp>
#include <cmath>

#include "experiments/moe_limit.hpp"
#include "experiments/trainer.hpp"
#include "solver/dmft/dmft.hpp"
#include "solver/dmft/moe.hpp"
#include "solver/dmft/references.hpp"
#include "dmft_moe_support.hpp"

using namespace moedmft;
using namespace moedmft::dmft;

namespace {

using testing::feature_kernel;
using testing::frozen_config;
using testing::max_z;
using testing::Toy;
using testing::toy_data;

}  // namespace

TEST_CASE("moe dmft: readout-only learning is kernel regression on the nested NNGP kernel", "[dmft][moe]") {
  const Toy d = toy_data(6, 5, 3);
  MoeDmftConfig c = frozen_config(3, 16);
  c.k.lr_out = 1.0;
  const MoeDmftResult r = solve_moe_dmft(c, d.x, d.y);
  const Mat<double> K = feature_kernel(c, d.x);
  const int P = 6;
  const Mat<double> ref = lazy_trajectory(K, d.y, 2.0 * c.k.lr_out / P, c.T);
  INFO("max z " << max_z(r.f, ref, r.f_err));
  CHECK(max_z(r.f, ref, r.f_err) < 4.5);
  CHECK(r.f.row(0).cwiseAbs().maxCoeff() < 1e-14);  // antithetic readout pairs
  // the trajectory really moves (not a trivially passing comparison)
  CHECK(r.loss[c.T] < 0.5 * r.loss[0]);
  // logits of a never-trained router are exactly zero; soft routing loads every expert
  CHECK(r.psi.cwiseAbs().maxCoeff() == 0.0);
  CHECK(r.load.minCoeff() == Approx(1.0));
}

TEST_CASE("moe dmft: expert2 + readout on frozen features match the exact linear covariance recursion",
          "[dmft][moe]") {
  const Toy d = toy_data(5, 4, 7);
  MoeDmftConfig c = frozen_config(2, 16);
  c.k.lr_out = 0.8;
  c.k.lr_expert2 = 1.0;
  const MoeDmftResult r = solve_moe_dmft(c, d.x, d.y);
  // Per hagg neuron the state (o, z) evolves linearly: o += (lr2 / c2^2) Kf w z.
  const Mat<double> ref = testing::frozen_feature_recursion(
      feature_kernel(c, d.x), d.y, c.k.c_out, c.k.lr_expert2 / (c.k.c_expert2 * c.k.c_expert2), c.k.lr_out, c.T);
  INFO("max z " << max_z(r.f, ref, r.f_err));
  CHECK(max_z(r.f, ref, r.f_err) < 4.5);
  CHECK(r.loss[c.T] < 0.7 * r.loss[0]);
  // Without expert2 learning the same run is slower: the expert2 term is really exercised.
  MoeDmftConfig lazy = c;
  lazy.k.lr_expert2 = 0.0;
  CHECK(solve_moe_dmft(lazy, d.x, d.y).loss[c.T] > r.loss[c.T] * 1.05);
}

TEST_CASE("moe dmft: top-K under MSSP keeps the tie rule and exact zeros", "[dmft][moe]") {
  RunConfig run = parse_run_config(R"(
[data]
P = 6
D = 5
[model]
N = 64
Ne = 64
M = 4
K = 2
routing = "topk"
[param]
table = "mssp-I-sgd"
[optim]
lr = 0.02
[train]
steps = 6
protocol = "full_batch"
)", {});
  MoeDmftConfig c;
  c.samples = 256;
  c.replicates = 2;
  fill_moe_limit_config(run, c);
  CHECK(c.k.c_out == 0.0);
  CHECK(c.k.c_router == 0.0);
  const Toy d = toy_data(6, 5, 5);
  const MoeDmftResult r = solve_moe_dmft(c, d.x, d.y);
  // t = 0: all logits tie at 0, the lower indices win, f = 0 exactly (zero readout)
  CHECK(r.load(0, 0) == Approx(1.0));
  CHECK(r.load(0, 1) == Approx(1.0));
  CHECK(r.load(0, 2) == 0.0);
  CHECK(r.f.row(0).cwiseAbs().maxCoeff() == 0.0);
  CHECK(r.psi.row(0).cwiseAbs().maxCoeff() == 0.0);
  // an expert that has never been selected has received no gradient: its logits stay exactly 0
  for (int m = 0; m < 4; ++m)
    if (r.load.col(m).maxCoeff() == 0.0) CHECK(r.psi.block(0, m * 6, c.T + 1, 6).cwiseAbs().maxCoeff() == 0.0);
  // the selected experts' logits move once the readout has learned (step >= 2)
  CHECK(r.psi.block(2, 0, 1, 12).cwiseAbs().maxCoeff() > 0.0);
  CHECK(r.loss[c.T] < r.loss[0]);
  // every load row sums to K
  for (int t = 0; t <= c.T; ++t) CHECK(r.load.row(t).sum() == Approx(2.0));
}

TEST_CASE("moe dmft: limit constants of the built-in tables, and tables without a limit", "[dmft][moe]") {
  const char* base = R"(
[data]
P = 4
[model]
N = 256
Ne = 128
M = 8
K = 8
[optim]
lr = 0.05
[train]
steps = 3
protocol = "full_batch"
)";
  MoeDmftConfig c;
  fill_moe_limit_config(parse_run_config(base, {"param.table=\"mup-I-sgd\""}), c);
  CHECK(c.k.c_out == 0.0);  // the built-in muP readout starts at zero
  RunConfig mup = parse_run_config(base, {"param.table=\"mup-I-sgd\"", "param.readout_init=\"law\""});
  fill_moe_limit_config(mup, c);
  // readout and router std ~ 1/N around the base N = 128: N sigma = sqrt(128)
  CHECK(c.k.c_out == Approx(std::sqrt(128.0)));
  CHECK(c.k.c_router == Approx(std::sqrt(128.0)));
  CHECK(c.k.c_expert1 == Approx(1.0));
  CHECK(c.k.c_expert2 == Approx(1.0));
  CHECK(c.k.ratio == Approx(0.5));
  RunConfig sp = parse_run_config(base, {"param.table=\"sp\""});
  CHECK_THROWS_WITH(fill_moe_limit_config(sp, c), Catch::Contains("no regime-I DMFT limit"));
  RunConfig online = parse_run_config(base, {"train.protocol=\"online\"", "train.batch_size=2", "train.steps=2"});
  CHECK_THROWS_WITH(fill_moe_limit_config(online, c), Catch::Contains("train.protocol"));
  RunConfig adam = parse_run_config(base, {"optim.kind=\"adamw\""});  // signgd and adam: test_dmft_moe_entrywise.cpp
  CHECK_THROWS_WITH(fill_moe_limit_config(adam, c), Catch::Contains("optim.kind"));
}

TEST_CASE("moe dmft: finite MSSP networks approach the limit (1/N extrapolation within error bars)",
          "[dmft][moe][slow]") {
  const char* text = R"(
seed = 1
[data]
P = 8
D = 8
hidden = 32
[model]
N = 64
Ne = 64
M = 4
K = 4
[param]
table = "mssp-I-sgd"
[optim]
lr = 0.01
[train]
steps = 8
protocol = "full_batch"
diag_every = 0
)";
  RunConfig run = parse_run_config(text, {});
  MoeDmftConfig c;
  c.samples = 2048;
  c.replicates = 6;
  fill_moe_limit_config(run, c);
  const RunData data = prepare_data(run, {});
  const MoeDmftResult lim = solve_moe_dmft(c, data.train.x, data.train.y.col(0));
  const int seeds = 12, T = 8;
  auto train = [&](int N, int s) {
    RunConfig cfg = parse_run_config(text, {"model.N=" + std::to_string(N), "model.Ne=" + std::to_string(N),
                                            "seed=" + std::to_string(100 + s)});
    MoeNetwork<double> net = build_network<double>(cfg, resolve_run_param(cfg));
    return train_run(cfg, data, net).train_loss;
  };
  const testing::Extrapolation e = testing::extrapolation_vs_limit(train, 128, seeds, T, lim.loss, lim.loss_err);
  const double worst_z = e.worst_z;
  INFO("worst step " << e.worst_step << ": extrapolated " << e.extrapolated << " vs limit " << lim.loss[e.worst_step]
                     << " +- " << lim.loss_err[e.worst_step] << " (z = " << worst_z << ")");
  WARN("finite-width extrapolation vs limit: worst z = " << worst_z << " at step " << e.worst_step);
  CHECK(worst_z < 4.0);
  CHECK(lim.loss[T - 1] < 0.7 * lim.loss[0]);
}

TEST_CASE("moe dmft: one linear expert with frozen gates equals the dense deep-linear DMFT (responses)",
          "[dmft][moe]") {
  // M = 1, identity activation, constant gate 1: x -> W_in -> W1 -> W2 -> readout is the dense
  // L = 3 network of dmft.hpp (h1 = W0 x/sqrt(D), h^{l+1} = W^l h^l/sqrt(N), f = w.h3/(gamma0 N),
  // network LR gamma0^2 N eta, loss 0.5 sum (y - f)^2). Mapping the constants (the MoE loss is
  // the mean, so its LRs carry P/2): every hidden-to-hidden response term of the MoE march is
  // exercised, and at gamma0 = 1 they move the loss by far more than the error bars.
  const testing::DeepLinearReference dl;
  const int P = dl.P, D = dl.D, T = dl.T;
  const Toy& d = dl.data;
  const DmftResult& ref = dl.ref;

  MoeDmftConfig c;
  c.T = T;
  c.M = c.K = 1;
  c.samples = 4096;
  c.replicates = 6;
  c.seed = 9;
  c.phi = Activation::identity;
  c.k.sigma_in = 1.0 / std::sqrt(double(D));
  c.k.lr_in = dl.hidden_lr / D;
  c.k.c_router = 1.0;  // lr_router = 0: gates stay sigmoid(0) * 2 = 1
  c.k.gate = 2.0;
  c.k.c_expert1 = c.k.c_expert2 = 1.0;
  c.k.lr_expert1 = c.k.lr_expert2 = dl.hidden_lr;
  c.k.c_out = 1.0 / dl.dense.gamma0;
  c.k.lr_out = dl.readout_lr;
  c.k.ratio = 1.0;
  const MoeDmftResult r = solve_moe_dmft(c, d.x, d.y);
  const Mat<double> err = dl.err(r.f_err);
  INFO("max z " << max_z(r.f, ref.f, err));
  CHECK(max_z(r.f, ref.f, err) < 4.5);
  CHECK(r.loss[T] == Approx(2.0 * ref.loss[T] / P).epsilon(0.1));
  // the comparison is sensitive: without feature learning in the hidden layers the trajectory
  // is far outside those error bars
  MoeDmftConfig frozen = c;
  frozen.k.lr_expert1 = frozen.k.lr_expert2 = 0.0;
  CHECK(max_z(solve_moe_dmft(frozen, d.x, d.y).f, ref.f, err) > 10.0);
}
