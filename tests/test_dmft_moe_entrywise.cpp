// The regime-I and regime-II MoE limits under SignGD and Adam (docs/dmft_moe.md and
// docs/dmft_moe_regime2.md, section 8): the pair estimator against the kernel march under SGD, a
// closed form (readout-only SignGD on frozen features), Adam's limits (beta = 0, eps -> 0 is
// SignGD), the constants of the built-in Adam tables, and finite-width Adam and SignGD networks
// converging to the limit.
#include <catch2/catch.hpp>
#include <cmath>

#include "experiments/moe_limit.hpp"
#include "experiments/trainer.hpp"
#include "solver/dmft/moe.hpp"
#include "solver/dmft/moe2.hpp"
#include "solver/dmft/moe3.hpp"
#include "dmft_moe_support.hpp"

using namespace moedmft;
using namespace moedmft::dmft;
using testing::max_z;
using testing::Toy;
using testing::toy_data;

namespace {

const char* kRegime1 = R"(
seed = 1
[data]
P = 6
D = 5
hidden = 32
[model]
N = 64
Ne = 64
M = 4
K = 4
[param]
table = "mssp-I-sgd"
[optim]
lr = 0.02
[train]
steps = 8
protocol = "full_batch"
diag_every = 0
)";

MoeDmftConfig regime1(const std::vector<std::string>& sets) {
  MoeDmftConfig c;
  fill_moe_limit_config(parse_run_config(kRegime1, sets), c);
  c.samples = 256;
  c.replicates = 2;
  return c;
}

// Regime II at N = 64: M = K = N/16 experts of width Ne = 16.
const char* kRegime2 = R"(
seed = 1
[data]
P = 6
D = 6
hidden = 32
[model]
N = 64
Ne = 16
M = 4
K = 4
[param]
table = "mssp-II-sgd"
[optim]
lr = 0.005
[train]
steps = 6
protocol = "full_batch"
diag_every = 0
)";

Moe2DmftConfig regime2(const std::vector<std::string>& sets) {
  Moe2DmftConfig c;
  fill_moe2_limit_config(parse_run_config(kRegime2, sets), c);
  c.samples = 256;
  c.expert_samples = 64;
  c.replicates = 2;
  return c;
}

// Regime III: N = Ne, M = K = N/16.
RunConfig regime3_run(int N, const std::vector<std::string>& sets) {
  std::vector<std::string> all = {"model.N=" + std::to_string(N), "model.Ne=" + std::to_string(N),
                                  "model.M=" + std::to_string(N / 16), "model.K=" + std::to_string(N / 16)};
  all.insert(all.end(), sets.begin(), sets.end());
  return parse_run_config(kRegime2, all);
}

double rel_gap(const Mat<double>& a, const Mat<double>& b) {
  return (a - b).cwiseAbs().maxCoeff() / std::max(1e-300, b.cwiseAbs().maxCoeff());
}

// The limit of readout-only SignGD on frozen Gaussian features hagg ~ N(0, K), readouts
// independent of them: z += lr sign(hagg . w), so f(t+1) = f(t) + lr E[sign(h . w) h]
// = f(t) + lr sqrt(2/pi) K w / sqrt(w^T K w), with w = (2/P)(y - f).
Mat<double> signgd_readout_recursion(const Mat<double>& K, const Vec<double>& y, double lr, int T) {
  const int P = static_cast<int>(y.size());
  Mat<double> f = Mat<double>::Zero(T + 1, P);
  for (int t = 0; t < T; ++t) {
    const Vec<double> w = (2.0 / P) * (y - f.row(t).transpose());
    const Vec<double> Kw = K * w;
    f.row(t + 1) = f.row(t) + (lr * std::sqrt(2.0 / M_PI) / std::sqrt(w.dot(Kw))) * Kw.transpose();
  }
  return f;
}

}  // namespace

TEST_CASE("moe entrywise: the pair estimator under SGD is the kernel march", "[dmft][moe][entrywise]") {
  RunConfig run = parse_run_config(kRegime1, {});
  const RunData data = prepare_data(run, {});
  for (const char* routing : {"soft", "topk"}) {
    std::vector<std::string> sets = {"param.readout_init=\"law\""};  // a nonzero readout: every term moves
    if (std::string(routing) == "topk") sets.insert(sets.end(), {"model.routing=\"topk\"", "model.K=2"});
    MoeDmftConfig c = regime1(sets);
    const MoeDmftResult kernel = solve_moe_dmft(c, data.train.x, data.train.y.col(0));
    c.pair_estimator = true;
    const MoeDmftResult pairs = solve_moe_dmft(c, data.train.x, data.train.y.col(0));
    INFO(routing << ": f gap " << rel_gap(pairs.f, kernel.f) << ", agg gap " << rel_gap(pairs.agg, kernel.agg));
    CHECK(rel_gap(pairs.f, kernel.f) < 1e-10);
    CHECK(rel_gap(pairs.psi, kernel.psi) < 1e-9);
    CHECK(rel_gap(pairs.agg, kernel.agg) < 1e-9);
    CHECK(kernel.loss[c.T] < 0.8 * kernel.loss[0]);  // it learns: the comparison is not of constants
  }
}

TEST_CASE("moe entrywise: readout-only SignGD on frozen features follows its closed-form recursion",
          "[dmft][moe][entrywise]") {
  const Toy d = toy_data(6, 5, 3);
  MoeDmftConfig c = testing::frozen_config(3, 16);
  c.optimizer = DmftOptimizer::signgd;
  c.k.lr_out = 0.08;
  const MoeDmftResult r = solve_moe_dmft(c, d.x, d.y);
  const Mat<double> ref = signgd_readout_recursion(testing::feature_kernel(c, d.x), d.y, c.k.lr_out, c.T);
  INFO("max z " << max_z(r.f, ref, r.f_err));
  CHECK(max_z(r.f, ref, r.f_err) < 4.5);
  CHECK(r.loss[c.T] < 0.5 * r.loss[0]);
  // SGD at the same step is another trajectory: the sign really acts
  MoeDmftConfig sgd = c;
  sgd.optimizer = DmftOptimizer::sgd;
  CHECK(max_z(solve_moe_dmft(sgd, d.x, d.y).f, ref, r.f_err) > 10.0);
}

TEST_CASE("moe entrywise: Adam with beta1 = beta2 = 0 and eps -> 0 is SignGD, and large eps is SGD",
          "[dmft][moe][entrywise]") {
  RunConfig run = parse_run_config(kRegime1, {"param.table=\"mssp-I-adam\"", "optim.kind=\"signgd\""});
  const RunData data = prepare_data(run, {});
  const Vec<double> y = data.train.y.col(0);
  MoeDmftConfig sign = regime1({"param.table=\"mssp-I-adam\"", "optim.kind=\"signgd\"", "optim.lr=0.002"});
  MoeDmftConfig adam = sign;
  adam.optimizer = DmftOptimizer::adam;
  adam.beta1 = adam.beta2 = 0.0;
  // eps far below every nonzero |c|: |c| + eps rounds to |c|, and a zero entry (the zero readout's
  // expert2 entries at t = 0) still gets direction 0 as under SignGD
  for (double* e : {&adam.k.eps_in, &adam.k.eps_router, &adam.k.eps_expert1, &adam.k.eps_expert2, &adam.k.eps_out})
    *e = 1e-300;
  const MoeDmftResult a = solve_moe_dmft(adam, data.train.x, y), s = solve_moe_dmft(sign, data.train.x, y);
  // m / sqrt(v) = c / |c| = sign(c): the first steps agree to round-off (the directions differ
  // in the last bit). SignGD's direction is discontinuous, so later such differences flip the
  // sign of entries near 0, O(1/S) each: the trajectories then agree to a few per cent only.
  INFO("adam(0, 0, eps -> 0) vs signgd: rows 0-2 gap " << rel_gap(a.f.topRows(3), s.f.topRows(3)) << ", all rows "
                                                      << rel_gap(a.f, s.f));
  CHECK(rel_gap(a.f.topRows(3), s.f.topRows(3)) < 1e-12);
  CHECK(rel_gap(a.f, s.f) < 0.05);
  CHECK(s.loss[sign.T] < 0.9 * s.loss[0]);
  // eps >> |c|: u = c / eps, so Adam with step lr eps is SGD with LR lr, to O(|c| / eps)
  MoeDmftConfig sgd = regime1({"param.readout_init=\"law\""});
  MoeDmftConfig big = sgd;
  big.optimizer = DmftOptimizer::adam;
  big.beta1 = big.beta2 = 0.0;
  const double eps = 1e7;
  for (double* e : {&big.k.eps_in, &big.k.eps_router, &big.k.eps_expert1, &big.k.eps_expert2, &big.k.eps_out})
    *e = eps;
  for (double* lr : {&big.k.lr_in, &big.k.lr_router, &big.k.lr_expert1, &big.k.lr_expert2, &big.k.lr_out})
    *lr *= eps;
  const MoeDmftResult b = solve_moe_dmft(big, data.train.x, y), g = solve_moe_dmft(sgd, data.train.x, y);
  INFO("large-eps Adam vs SGD: f gap " << rel_gap(b.f, g.f));
  CHECK(rel_gap(b.f, g.f) < 1e-5);
  CHECK(g.loss[sgd.T] < 0.8 * g.loss[0]);
}

TEST_CASE("moe entrywise: constants of the built-in Adam tables, and what is refused", "[dmft][moe][entrywise]") {
  MoeDmftConfig c;
  for (const char* table : {"mssp-I-adam", "mup-I-adam"}) {
    fill_moe_limit_config(parse_run_config(kRegime1, {std::string("param.table=\"") + table + "\"", "optim.kind=\"adam\""}), c);
    CHECK(c.optimizer == DmftOptimizer::adam);
    CHECK(c.beta2 == Approx(0.999));
    // the steps per unit direction are O(1) numbers, the same at N = 64 and (checked inside) 128
    for (double lr : {c.k.lr_in, c.k.lr_expert1, c.k.lr_expert2}) CHECK(lr > 0.0);
    for (double e : {c.k.eps_in, c.k.eps_expert1, c.k.eps_expert2, c.k.eps_out}) CHECK((std::isfinite(e) && e >= 0.0));
  }
  // SP has no regime-I limit under Adam either (its router and readout constants grow)
  CHECK_THROWS_WITH(
      fill_moe_limit_config(parse_run_config(kRegime1, {"param.table=\"sp\"", "optim.kind=\"adam\""}), c),
      Catch::Contains("scales as N^"));
  CHECK_THROWS_WITH(
      fill_moe_limit_config(parse_run_config(kRegime1, {"param.table=\"mssp-I-adam\"", "optim.kind=\"adamw\""}), c),
      Catch::Contains("optim.kind: must be \"sgd\", \"signgd\" or \"adam\""));
  MoeDmftConfig adam = regime1({"param.table=\"mssp-I-adam\"", "optim.kind=\"adam\""});
  adam.beta2 = 1.0;
  CHECK_THROWS_WITH(adam.validate(), Catch::Contains("optim.beta2"));
}

TEST_CASE("moe entrywise: finite Adam and SignGD networks approach the limit (1/N extrapolation)",
          "[dmft][moe][entrywise][slow]") {
  for (const char* kind : {"adam", "signgd"}) {
    const std::vector<std::string> sets = {"param.table=\"mssp-I-adam\"", std::string("optim.kind=\"") + kind + "\"",
                                           "optim.lr=0.002", "data.P=8", "data.D=8"};
    RunConfig run = parse_run_config(kRegime1, sets);
    MoeDmftConfig c;
    fill_moe_limit_config(run, c);
    c.samples = 1024;
    c.replicates = 6;
    const RunData data = prepare_data(run, {});
    const MoeDmftResult lim = solve_moe_dmft(c, data.train.x, data.train.y.col(0));
    const int seeds = 12, T = c.T;
    auto train = [&](int N, int s) {
      std::vector<std::string> at = sets;
      at.insert(at.end(), {"model.N=" + std::to_string(N), "model.Ne=" + std::to_string(N), "seed=" + std::to_string(100 + s)});
      RunConfig cfg = parse_run_config(kRegime1, at);
      MoeNetwork<double> net = build_network<double>(cfg, resolve_run_param(cfg));
      return train_run(cfg, data, net).train_loss;
    };
    const testing::Extrapolation e = testing::extrapolation_vs_limit(train, 128, seeds, T, lim.loss, lim.loss_err);
    INFO(kind << ": worst step " << e.worst_step << ": extrapolated " << e.extrapolated << " vs limit "
              << lim.loss[e.worst_step] << " +- " << lim.loss_err[e.worst_step] << " (z = " << e.worst_z << ")");
    WARN(kind << ": finite-width extrapolation vs limit: worst z = " << e.worst_z << " at step " << e.worst_step
              << "; loss " << lim.loss[0] << " -> " << lim.loss[T]);
    CHECK(e.worst_z < 4.0);
    CHECK(lim.loss[T] < 0.7 * lim.loss[0]);
  }
}

TEST_CASE("moe2 entrywise: the pair estimator under SGD is the kernel march", "[dmft][moe][moe2][entrywise]") {
  RunConfig run = parse_run_config(kRegime2, {});
  const RunData data = prepare_data(run, {});
  for (const char* routing : {"soft", "topk"}) {
    std::vector<std::string> sets;  // MSSP: zero readout, so every other term starts at step 1
    if (std::string(routing) == "topk") sets.push_back("model.routing=\"topk\"");
    if (std::string(routing) == "topk") sets.push_back("model.K=2");
    Moe2DmftConfig c = regime2(sets);
    const Moe2DmftResult kernel = solve_moe2_dmft(c, data.train.x, data.train.y.col(0));
    c.pair_estimator = true;
    const Moe2DmftResult pairs = solve_moe2_dmft(c, data.train.x, data.train.y.col(0));
    INFO(routing << ": f gap " << rel_gap(pairs.f, kernel.f) << ", agg gap " << rel_gap(pairs.agg, kernel.agg)
                 << ", logit gap " << rel_gap(pairs.logit_mean, kernel.logit_mean));
    CHECK(rel_gap(pairs.f, kernel.f) < 1e-9);
    CHECK(rel_gap(pairs.logit_mean, kernel.logit_mean) < 1e-8);
    CHECK(rel_gap(pairs.agg.leftCols(1), kernel.agg.leftCols(1)) < 1e-9);
    INFO("loss " << kernel.loss[0] << " -> " << kernel.loss[c.T - 1]);
    CHECK(std::isfinite(kernel.loss[c.T - 1]));
    if (std::string(routing) == "soft") CHECK(kernel.loss[c.T - 1] < 0.1 * kernel.loss[0]);  // it learns
  }
}

TEST_CASE("moe2 entrywise: Adam with beta = 0 and eps -> 0 starts as SignGD; AdamW is refused",
          "[dmft][moe][moe2][entrywise]") {
  RunConfig run = parse_run_config(kRegime2, {});
  const RunData data = prepare_data(run, {});
  const Vec<double> y = data.train.y.col(0);
  Moe2DmftConfig sign = regime2({"param.table=\"mssp-II-adam\"", "optim.kind=\"signgd\"", "optim.lr=0.002"});
  Moe2DmftConfig adam = sign;
  adam.optimizer = DmftOptimizer::adam;
  adam.beta1 = adam.beta2 = 0.0;
  for (double* e : {&adam.k.eps_in, &adam.k.eps_router, &adam.k.eps_expert1, &adam.k.eps_expert2, &adam.k.eps_out})
    *e = 1e-300;
  const Moe2DmftResult a = solve_moe2_dmft(adam, data.train.x, y), s = solve_moe2_dmft(sign, data.train.x, y);
  INFO("rows 0-2 gap " << rel_gap(a.f.topRows(3), s.f.topRows(3)) << ", all rows " << rel_gap(a.f, s.f));
  CHECK(rel_gap(a.f.topRows(3), s.f.topRows(3)) < 1e-12);
  CHECK(rel_gap(a.f, s.f) < 0.05);
  CHECK(s.loss[sign.T - 1] < 0.9 * s.loss[0]);
  for (double lr : {sign.k.lr_in, sign.k.lr_router, sign.k.lr_expert1, sign.k.lr_expert2}) CHECK(lr > 0.0);
  // AdamW stays refused in every regime
  Moe2DmftConfig c2;
  CHECK_THROWS_WITH(
      fill_moe2_limit_config(parse_run_config(kRegime2, {"param.table=\"mssp-II-adam\"", "optim.kind=\"adamw\""}), c2),
      Catch::Contains("optim.kind: must be \"sgd\", \"signgd\" or \"adam\""));
}

TEST_CASE("moe2 entrywise: finite Adam and SignGD networks approach the limit (1/N extrapolation)",
          "[dmft][moe][moe2][entrywise][slow]") {
  for (const char* kind : {"adam", "signgd"}) {
    const std::vector<std::string> sets = {"param.table=\"mssp-II-adam\"", std::string("optim.kind=\"") + kind + "\"",
                                           "optim.lr=0.002"};
    RunConfig run = parse_run_config(kRegime2, sets);
    Moe2DmftConfig c;
    fill_moe2_limit_config(run, c);
    c.samples = 1024;
    c.expert_samples = 512;
    c.replicates = 6;
    const RunData data = prepare_data(run, {});
    const Moe2DmftResult lim = solve_moe2_dmft(c, data.train.x, data.train.y.col(0));
    const int seeds = 12, T = c.T;
    auto train = [&](int N, int s) {
      std::vector<std::string> at = sets;
      at.insert(at.end(), {"model.N=" + std::to_string(N), "model.M=" + std::to_string(N / 16),
                           "model.K=" + std::to_string(N / 16), "seed=" + std::to_string(100 + s)});
      RunConfig cfg = parse_run_config(kRegime2, at);
      MoeNetwork<double> net = build_network<double>(cfg, resolve_run_param(cfg));
      return train_run(cfg, data, net).train_loss;
    };
    const testing::Extrapolation e = testing::extrapolation_vs_limit(train, 128, seeds, T, lim.loss, lim.loss_err);
    INFO(kind << ": worst step " << e.worst_step << ": extrapolated " << e.extrapolated << " vs limit "
              << lim.loss[e.worst_step] << " +- " << lim.loss_err[e.worst_step] << " (z = " << e.worst_z << ")");
    WARN("regime II " << kind << ": finite-width extrapolation vs limit: worst z = " << e.worst_z << " at step "
                      << e.worst_step << "; loss " << lim.loss[0] << " -> " << lim.loss[T]);
    CHECK(e.worst_z < 4.0);
    CHECK(lim.loss[T - 1] < 0.8 * lim.loss[0]);
  }
}

TEST_CASE("moe3 entrywise: the pair estimator under SGD is the kernel march, shared and independent experts",
          "[dmft][moe][moe3][entrywise]") {
  // MSSP starts the experts from shared weights; muP's are independent (with its 1/N readout,
  // since its zero-readout limit is a saddle)
  for (const char* table : {"mssp-III-sgd", "mup-III-sgd"}) {
    std::vector<std::string> sets = {std::string("param.table=\"") + table + "\""};
    if (std::string(table) == "mup-III-sgd") sets.push_back("param.readout_init=\"law\"");
    RunConfig run = regime3_run(64, sets);
    const RunData data = prepare_data(run, {});
    Moe3DmftConfig c;
    fill_moe3_limit_config(run, c);
    c.samples = 256;
    c.expert_samples = 8;
    c.neuron_samples = 64;
    c.replicates = 2;
    const Moe3DmftResult kernel = solve_moe3_dmft(c, data.train.x, data.train.y.col(0));
    c.pair_estimator = true;
    const Moe3DmftResult pairs = solve_moe3_dmft(c, data.train.x, data.train.y.col(0));
    INFO(table << ": f gap " << rel_gap(pairs.f, kernel.f) << ", loss " << kernel.loss[0] << " -> "
               << kernel.loss[c.T - 1]);
    CHECK(rel_gap(pairs.f, kernel.f) < 1e-9);
    CHECK(rel_gap(pairs.logit_mean, kernel.logit_mean) < 1e-8);
    CHECK(kernel.loss[c.T - 1] < 0.9 * kernel.loss[0]);
  }
}

TEST_CASE("moe3 entrywise: finite Adam and SignGD networks approach the limit (1/N extrapolation)",
          "[dmft][moe][moe3][entrywise][slow]") {
  for (const char* kind : {"adam", "signgd"}) {
    const std::vector<std::string> sets = {"param.table=\"mssp-III-adam\"", std::string("optim.kind=\"") + kind + "\"",
                                           "optim.lr=0.002", "data.P=8", "train.steps=8"};
    RunConfig run = regime3_run(256, sets);
    Moe3DmftConfig c;
    fill_moe3_limit_config(run, c);
    c.samples = 1024;
    c.expert_samples = 32;
    c.neuron_samples = 512;
    c.replicates = 6;
    const RunData data = prepare_data(run, {});
    const Moe3DmftResult lim = solve_moe3_dmft(c, data.train.x, data.train.y.col(0));
    const int seeds = 10, T = c.T;
    auto train = [&](int N, int s) {
      RunConfig cfg = regime3_run(N, sets);
      cfg.seed = 100 + s;
      MoeNetwork<double> net = build_network<double>(cfg, resolve_run_param(cfg));
      return train_run(cfg, data, net).train_loss;
    };
    const testing::Extrapolation e = testing::extrapolation_vs_limit(train, 256, seeds, T, lim.loss, lim.loss_err);
    INFO(kind << ": worst step " << e.worst_step << ": extrapolated " << e.extrapolated << " vs limit "
              << lim.loss[e.worst_step] << " +- " << lim.loss_err[e.worst_step] << " (z = " << e.worst_z << ")");
    WARN("regime III " << kind << ": finite-width extrapolation vs limit: worst z = " << e.worst_z << " at step "
                       << e.worst_step << "; loss " << lim.loss[0] << " -> " << lim.loss[T - 1]);
    CHECK(e.worst_z < 4.0);
    CHECK(lim.loss[T - 1] < 0.8 * lim.loss[0]);
  }
}
