// Training diagnostics: column bookkeeping, exact zeros at initialisation, the aggregation and
// backward decompositions adding up to the network's real forward and backward signals, the
// coordinate checks against hand computations, and the router statistics.
#include <catch2/catch.hpp>

#include <cmath>
#include <set>

#include "models/diagnostics.hpp"
#include "models/optimizer.hpp"
#include "models/random.hpp"
#include "test_support.hpp"

using namespace moedmft;

namespace {

ResolvedParam diag_param(double router_multiplier = 0.7) { return testing::test_param(router_multiplier); }

using testing::random_matrix;

struct Config {
  const char* name;
  Routing routing;
  GateFn gate;
  bool renormalize, residual;
  Activation activation;
  int M, K, L;
  double router_multiplier = 0.7;
};

Shape shape_of(const Config& c) {
  Shape s;
  s.D = 5; s.N = 6; s.Ne = 7; s.M = c.M; s.K = c.K; s.L = c.L; s.C = 2;
  return s;
}
ModelOptions options_of(const Config& c) {
  ModelOptions o;
  o.routing = c.routing; o.gate = c.gate; o.renormalize = c.renormalize; o.residual = c.residual;
  o.activation = c.activation;
  return o;
}

template <class T = double>
MoeNetwork<T> make_net(const Config& c) {
  MoeNetwork<T> net(shape_of(c), options_of(c), diag_param(c.router_multiplier));
  net.initialize(17);
  return net;
}

template <class T = double>
DiagnosticsProbe<T> make_probe(const MoeNetwork<T>& net) {
  const Shape& s = net.shape();
  return DiagnosticsProbe<T>(net, random_matrix<T>(12, s.D, 101), random_matrix<T>(12, s.C, 102), {});
}

// A few SGD steps on batches that are not the probe batch.
void train(MoeNetwork<double>& net, int steps) {
  Optimizer<double> opt(OptimizerConfig{}, net.param());
  std::vector<Vec<double>> grads;
  for (int i = 0; i < steps; ++i) {
    const Mat<double> x = random_matrix(16, net.shape().D, 200 + i), y = random_matrix(16, net.shape().C, 300 + i);
    REQUIRE(std::isfinite(net.loss_and_gradients(x, y, {}, grads)));
    opt.step(net.params(), grads);
  }
}

double value(const DiagnosticsProbe<double>& probe, const std::vector<double>& row, const std::string& name) {
  const int i = probe.column(name);
  INFO("column " << name);
  REQUIRE(i >= 0);
  return row[i];
}

double rms(const Mat<double>& m) { return std::sqrt(m.squaredNorm() / double(m.size())); }

// max |a - b| relative to max |b|.
double rel_err(const Mat<double>& a, const Mat<double>& b) {
  return (a - b).cwiseAbs().maxCoeff() / std::max(b.cwiseAbs().maxCoeff(), 1e-300);
}

const std::vector<Config> kConfigs = {
    {"soft sigmoid gelu", Routing::soft, GateFn::sigmoid, false, false, Activation::gelu, 4, 4, 1},
    {"top-K sigmoid residual depth 2", Routing::topk, GateFn::sigmoid, false, true, Activation::gelu, 5, 2, 2},
    {"top-K softmax renorm tanh", Routing::topk, GateFn::softmax, true, false, Activation::tanh, 4, 2, 1},
    {"soft sigmoid renorm residual", Routing::soft, GateFn::sigmoid, true, true, Activation::gelu, 3, 3, 2},
};

}  // namespace

TEST_CASE("diagnostics names are unique and match the measured row", "[diagnostics]") {
  for (const Config& cfg : kConfigs) {
    DYNAMIC_SECTION(cfg.name) {
      const MoeNetwork<double> net = make_net(cfg);
      const auto probe = make_probe(net);
      const auto row = probe.measure(net, nullptr);
      CHECK(row.size() == probe.names().size());
      CHECK(std::set<std::string>(probe.names().begin(), probe.names().end()).size() == probe.names().size());
      const std::string last = "b" + std::to_string(cfg.L - 1) + "/";
      for (const std::string n : {"loss/probe", "rms/h1", "rms/f", "weight_rms/router", "grad_rms/expert2",
                                  "coord/prop/in", "coord/eff/out", "b0/rms/psi", "b0/agg/cross", "b0/back/w1",
                                  "b0/router/dead_experts"})
        CHECK(probe.column(n) >= 0);
      CHECK(probe.column(last + "load/e" + std::to_string(cfg.M - 1)) >= 0);
      CHECK(probe.column("weight_rms/bias") == -1);
    }
  }
}

template <class T>
void check_zero_at_init(const Config& cfg) {
  const MoeNetwork<T> net = make_net<T>(cfg);
  const auto probe = make_probe<T>(net);
  std::vector<BlockTerms<T>> terms;
  const auto row = probe.measure(net, nullptr, &terms);
  const auto& names = probe.names();
  int zero_columns = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& n = names[i];
    const bool update_term = n.find("/eff/") != std::string::npos || n.find("/prop/") != std::string::npos ||
                             n.find("agg/prop") != std::string::npos || n.find("agg/eff") != std::string::npos ||
                             n.find("agg/cross") != std::string::npos || n.find("back/w") != std::string::npos ||
                             n.find("back/cross") != std::string::npos;
    if (!update_term) continue;
    INFO("column " << n);
    CHECK(row[i] == 0.0);
    ++zero_columns;
  }
  CHECK(zero_columns == 4 + cfg.L * 12);
  ForwardCache<T> c;
  net.forward(probe.probe_x(), c);
  for (int l = 0; l < cfg.L; ++l) {
    const std::string b = "b" + std::to_string(l) + "/";
    const double hagg = row[probe.column(b + "rms/hagg")];
    CHECK(hagg > 0);
    CHECK(row[probe.column(b + "agg/init")] == Approx(hagg).epsilon(std::is_same<T, float>::value ? 1e-5 : 1e-12));
    CHECK(row[probe.column(b + "back/init")] > 0);
    const Mat<double> sum = terms[l].agg_init.template cast<double>();
    CHECK(rel_err(sum, c.blocks[l].aggregated.template cast<double>()) < (std::is_same<T, float>::value ? 1e-5 : 1e-12));
    for (const Mat<T>* t : {&terms[l].agg_prop, &terms[l].agg_eff, &terms[l].agg_cross, &terms[l].back_w2,
                            &terms[l].back_w1, &terms[l].back_cross})
      CHECK(t->cwiseAbs().maxCoeff() == T(0));
  }
  for (const char* g : {"in", "router", "expert1", "expert2", "out"})
    CHECK(std::isnan(row[probe.column(std::string("grad_rms/") + g)]));
}

TEST_CASE("at initialisation every update term is exactly zero and agg/init is hagg", "[diagnostics]") {
  for (const Config& cfg : kConfigs) {
    DYNAMIC_SECTION(cfg.name << " double") { check_zero_at_init<double>(cfg); }
    DYNAMIC_SECTION(cfg.name << " float") { check_zero_at_init<float>(cfg); }
  }
}

TEST_CASE("after SGD steps the four aggregation terms add up to hagg", "[diagnostics]") {
  for (const Config& cfg : kConfigs) {
    DYNAMIC_SECTION(cfg.name) {
      MoeNetwork<double> net = make_net(cfg);
      const auto probe = make_probe(net);
      const std::vector<Vec<double>> w0 = [&] {
        std::vector<Vec<double>> w;
        for (const auto& p : net.params()) w.push_back(p.data);
        return w;
      }();
      train(net, 5);
      std::vector<BlockTerms<double>> terms;
      const auto row = probe.measure(net, nullptr, &terms);
      ForwardCache<double> c;
      net.forward(probe.probe_x(), c);
      for (int l = 0; l < cfg.L; ++l) {
        INFO("block " << l);
        const BlockTerms<double>& t = terms[l];
        const std::string b = "b" + std::to_string(l) + "/";
        const Mat<double> sum = t.agg_init + t.agg_prop + t.agg_eff + t.agg_cross;
        CHECK(rel_err(sum, c.blocks[l].aggregated) < 1e-12);
        CHECK(value(probe, row, b + "rms/hagg") == Approx(rms(c.blocks[l].aggregated)).epsilon(1e-12));
        CHECK(value(probe, row, b + "agg/init") == Approx(rms(t.agg_init)).epsilon(1e-12));
        CHECK(value(probe, row, b + "agg/prop") == Approx(rms(t.agg_prop)).epsilon(1e-12));
        CHECK(value(probe, row, b + "agg/eff") == Approx(rms(t.agg_eff)).epsilon(1e-12));
        CHECK(value(probe, row, b + "agg/cross") == Approx(rms(t.agg_cross)).epsilon(1e-12));
        for (const char* n : {"agg/init", "agg/prop", "agg/eff", "agg/cross"}) {
          INFO(n);
          CHECK(value(probe, row, b + n) > 0);
        }
      }
      // Independent check of the split: with expert2 reset to W2(0) (the gates of a block do not
      // depend on its own W2), the network's hagg of the FIRST block is exactly init + prop.
      MoeNetwork<double> reset = net;
      reset.param_tensor(Group::expert2).data = w0[int(Group::expert2)];
      reset.forward(probe.probe_x(), c);
      CHECK(rel_err(terms[0].agg_init + terms[0].agg_prop, c.blocks[0].aggregated) < 1e-12);
    }
  }
}

TEST_CASE("the four backward terms add up to the expert-induced backward signal", "[diagnostics]") {
  const std::vector<Config> configs = {
      {"top-K sigmoid residual, router part by hand", Routing::topk, GateFn::sigmoid, false, true, Activation::gelu, 5, 2, 3},
      {"soft sigmoid tanh, router part by hand", Routing::soft, GateFn::sigmoid, false, false, Activation::tanh, 3, 3, 2},
      {"soft softmax renorm, router multiplier 0", Routing::soft, GateFn::softmax, true, true, Activation::gelu, 4, 4, 3, 0.0},
  };
  for (const Config& cfg : configs) {
    DYNAMIC_SECTION(cfg.name) {
      MoeNetwork<double> net = make_net(cfg);
      const auto probe = make_probe(net);
      train(net, 5);
      std::vector<BlockTerms<double>> terms;
      const auto row = probe.measure(net, nullptr, &terms);
      const ResolvedParam& p = net.param();
      ForwardCache<double> c;
      net.forward(probe.probe_x(), c);
      Mat<double> df;
      net.loss(c, random_matrix(12, net.shape().C, 102), {}, &df);
      std::vector<Vec<double>> grads;
      std::vector<Mat<double>> d_out;
      net.backward(c, df, grads, &d_out);
      // dL/d(input of block l) = dL/d(output of block l-1): blocks 1..L-1 can be checked.
      for (int l = 1; l < cfg.L; ++l) {
        INFO("block " << l);
        const BlockCache<double>& bc = c.blocks[l];
        const int B = int(bc.input.rows());
        Mat<double> expert = d_out[l - 1];
        if (cfg.residual) expert -= d_out[l];
        // Router part s_r dpsi Wr^T (sigmoid gates without renormalisation, or s_r = 0).
        if (cfg.router_multiplier != 0.0) {
          REQUIRE(cfg.gate == GateFn::sigmoid);
          REQUIRE(!cfg.renormalize);
          const Mat<double> d_sum = d_out[l] * (p.residual_multiplier * p.aggregation);
          Mat<double> dpsi = Mat<double>::Zero(B, cfg.M);
          for (int m = 0; m < cfg.M; ++m)
            for (size_t i = 0; i < bc.tokens[m].size(); ++i) {
              const int t = bc.tokens[m][i];
              const double q = bc.gate_raw(t, m);
              dpsi(t, m) = p.gate_factor * bc.out[m].row(i).dot(d_sum.row(t)) * q * (1 - q);
            }
          expert -= p[Group::router].multiplier * dpsi * net.w_router(l).transpose();
        }
        const BlockTerms<double>& t = terms[l];
        const Mat<double> sum = t.back_init + t.back_w2 + t.back_w1 + t.back_cross;
        CHECK(expert.cwiseAbs().maxCoeff() > 0);
        CHECK(rel_err(sum, expert) < 1e-10);
        const std::string b = "b" + std::to_string(l) + "/";
        CHECK(value(probe, row, b + "back/init") == Approx(rms(t.back_init)).epsilon(1e-12));
        CHECK(value(probe, row, b + "back/w2") == Approx(rms(t.back_w2)).epsilon(1e-12));
        CHECK(value(probe, row, b + "back/w1") == Approx(rms(t.back_w1)).epsilon(1e-12));
        CHECK(value(probe, row, b + "back/cross") == Approx(rms(t.back_cross)).epsilon(1e-12));
        for (const Mat<double>* m : {&t.back_init, &t.back_w2, &t.back_w1, &t.back_cross})
          CHECK(m->cwiseAbs().maxCoeff() > 0);
      }
      CHECK(value(probe, row, "loss/probe") == Approx(net.loss(c, random_matrix(12, net.shape().C, 102), {}, nullptr)));
    }
  }
}

TEST_CASE("coordinate checks match hand computations", "[diagnostics]") {
  const Config cfg = kConfigs[1];  // top-K, residual, depth 2
  MoeNetwork<double> net = make_net(cfg);
  const auto probe = make_probe(net);
  const MoeNetwork<double> init = net;
  ForwardCache<double> c0, c;
  init.forward(probe.probe_x(), c0);
  train(net, 4);
  net.forward(probe.probe_x(), c);
  const auto row = probe.measure(net, nullptr);
  const ResolvedParam& p = net.param();
  const Shape& s = net.shape();
  const double s_r = p[Group::router].multiplier, s1 = p[Group::expert1].multiplier;
  const double s2 = p[Group::expert2].multiplier, s_out = p[Group::out].multiplier;
  for (int l = 0; l < s.L; ++l) {
    INFO("block " << l);
    const std::string b = "b" + std::to_string(l) + "/";
    const Mat<double>& xt = c.blocks[l].input;
    const Mat<double>& x0 = c0.blocks[l].input;
    const Mat<double> wr0 = init.w_router(l);
    CHECK(value(probe, row, b + "coord/eff/router") == Approx(s_r * rms(xt * (net.w_router(l) - wr0))).epsilon(1e-12));
    CHECK(value(probe, row, b + "coord/prop/router") == Approx(s_r * rms((xt - x0) * wr0)).epsilon(1e-12));
    CHECK(value(probe, row, b + "coord/eff/router") > 0);
    CHECK(value(probe, row, b + "coord/prop/router") > 0);
    // Experts, dense over all experts and probe tokens.
    double e1 = 0, p1 = 0, e2 = 0, p2 = 0, ssa = 0;
    for (int m = 0; m < s.M; ++m) {
      const Mat<double> w10 = init.w_expert1(l, m), w20 = init.w_expert2(l, m);
      Mat<double> at, a0;
      apply_activation(net.options().activation, Mat<double>(s1 * xt * net.w_expert1(l, m)), at);
      apply_activation(net.options().activation, Mat<double>(s1 * x0 * w10), a0);
      e1 += (s1 * xt * (net.w_expert1(l, m) - w10)).squaredNorm();
      p1 += (s1 * (xt - x0) * w10).squaredNorm();
      e2 += (s2 * at * (net.w_expert2(l, m) - w20)).squaredNorm();
      p2 += (s2 * (at - a0) * w20).squaredNorm();
      ssa += at.squaredNorm();
    }
    const double na = double(s.M) * xt.rows() * s.Ne, no = double(s.M) * xt.rows() * s.N;
    CHECK(value(probe, row, b + "coord/eff/expert1") == Approx(std::sqrt(e1 / na)).epsilon(1e-12));
    CHECK(value(probe, row, b + "coord/prop/expert1") == Approx(std::sqrt(p1 / na)).epsilon(1e-12));
    CHECK(value(probe, row, b + "coord/eff/expert2") == Approx(std::sqrt(e2 / no)).epsilon(1e-12));
    CHECK(value(probe, row, b + "coord/prop/expert2") == Approx(std::sqrt(p2 / no)).epsilon(1e-12));
    CHECK(value(probe, row, b + "rms/a") == Approx(std::sqrt(ssa / na)).epsilon(1e-12));
    CHECK(value(probe, row, b + "rms/psi") == Approx(rms(c.blocks[l].psi)).epsilon(1e-12));
    CHECK(value(probe, row, b + "router/logit_rms") == Approx(rms(c.blocks[l].psi)).epsilon(1e-12));
  }
  const Mat<double> win0 = init.w_in(), wout0 = init.w_out();
  CHECK(value(probe, row, "coord/eff/in") ==
        Approx(p[Group::in].multiplier * rms(probe.probe_x() * (net.w_in() - win0))).epsilon(1e-12));
  CHECK(value(probe, row, "coord/prop/in") == 0.0);
  const Mat<double>& r = c.blocks.back().output;
  const Mat<double>& r0 = c0.blocks.back().output;
  CHECK(value(probe, row, "coord/eff/out") == Approx(s_out * rms(r * (net.w_out() - wout0))).epsilon(1e-12));
  CHECK(value(probe, row, "coord/prop/out") == Approx(s_out * rms((r - r0) * wout0)).epsilon(1e-12));
  CHECK(value(probe, row, "rms/h1") == Approx(rms(c.h1)).epsilon(1e-12));
  CHECK(value(probe, row, "rms/f") == Approx(rms(c.f)).epsilon(1e-12));
}

TEST_CASE("grad RMS columns are NaN without gradients and the gradient RMS with them", "[diagnostics]") {
  MoeNetwork<double> net = make_net(kConfigs[0]);
  const auto probe = make_probe(net);
  std::vector<Vec<double>> grads;
  net.loss_and_gradients(random_matrix(8, 5, 1), random_matrix(8, 2, 2), {}, grads);
  const auto row = probe.measure(net, &grads);
  for (Group g : {Group::in, Group::router, Group::expert1, Group::expert2, Group::out}) {
    const Vec<double>& v = grads[int(g)];
    CHECK(value(probe, row, std::string("grad_rms/") + group_name(g)) == Approx(std::sqrt(v.squaredNorm() / v.size())));
    const Vec<double>& w = net.params()[int(g)].data;
    CHECK(value(probe, row, std::string("weight_rms/") + group_name(g)) == Approx(std::sqrt(w.squaredNorm() / w.size())));
  }
}

namespace {
// Loads, entropy and max deviation by hand from a forward cache.
void check_router_stats(const MoeNetwork<double>& net, const DiagnosticsProbe<double>& probe, int l) {
  const auto row = probe.measure(net, nullptr);
  ForwardCache<double> c;
  net.forward(probe.probe_x(), c);
  const BlockCache<double>& bc = c.blocks[l];
  const Shape& s = net.shape();
  const bool soft = net.options().routing == Routing::soft;
  const int P = int(bc.gates.rows());
  const std::string b = "b" + std::to_string(l) + "/";
  double sum = 0, dev = 0, entropy = 0;
  int dead = 0;
  for (int t = 0; t < P; ++t) {
    const double z = bc.gates.row(t).cwiseAbs().sum();
    for (int m = 0; m < s.M; ++m) {
      const double q = std::abs(bc.gates(t, m)) / z;
      if (q > 0) entropy -= q * std::log(q);
    }
  }
  for (int m = 0; m < s.M; ++m) {
    double load = double(bc.tokens[m].size()) / P;
    if (soft) load = s.K * (bc.gates.col(m).cwiseAbs().array() / bc.gates.cwiseAbs().rowwise().sum().array()).mean();
    const double kappa = soft ? 1.0 : double(s.K) / s.M;
    CHECK(value(probe, row, b + "load/e" + std::to_string(m)) == Approx(load).margin(1e-14));
    sum += value(probe, row, b + "load/e" + std::to_string(m));
    dev = std::max(dev, std::abs(load - kappa));
    dead += soft ? load < 0.01 * kappa : load == 0.0;
  }
  CHECK(sum == Approx(double(s.K)).epsilon(1e-12));
  CHECK(value(probe, row, b + "router/max_load_dev") == Approx(dev).margin(1e-14));
  CHECK(value(probe, row, b + "router/gate_entropy") == Approx(entropy / P).margin(1e-14));
  CHECK(value(probe, row, b + "router/dead_experts") == dead);
}
}  // namespace

TEST_CASE("router statistics: loads sum to K, one-hot gates have zero entropy, dead experts", "[diagnostics]") {
  SECTION("top-K with K = 1: one-hot gates, entropy exactly 0") {
    Config cfg{"k1", Routing::topk, GateFn::sigmoid, false, false, Activation::gelu, 4, 1, 1};
    const MoeNetwork<double> net = make_net(cfg);
    const auto probe = make_probe(net);
    const auto row = probe.measure(net, nullptr);
    CHECK(value(probe, row, "b0/router/gate_entropy") == 0.0);
    check_router_stats(net, probe, 0);
  }
  SECTION("top-K with K = 2, depth 2") {
    Config cfg{"k2", Routing::topk, GateFn::softmax, false, true, Activation::gelu, 5, 2, 2};
    const MoeNetwork<double> net = make_net(cfg);
    const auto probe = make_probe(net);
    const auto row = probe.measure(net, nullptr);
    CHECK(value(probe, row, "b1/router/gate_entropy") > 0);
    CHECK(value(probe, row, "b1/router/gate_entropy") <= Approx(std::log(2.0)));
    check_router_stats(net, probe, 0);
    check_router_stats(net, probe, 1);
  }
  SECTION("top-K with a biased-away expert: it is dead") {
    Config cfg{"dead", Routing::topk, GateFn::sigmoid, false, false, Activation::gelu, 4, 2, 1};
    Shape s = shape_of(cfg);
    ModelOptions o = options_of(cfg);
    o.selection = Selection::biased_sigmoid;
    MoeNetwork<double> net(s, o, diag_param());
    net.initialize(17);
    net.param_tensor(Group::bias).data[2] = -10.0;
    const auto probe = make_probe(net);
    const auto row = probe.measure(net, nullptr);
    CHECK(value(probe, row, "b0/load/e2") == 0.0);
    CHECK(value(probe, row, "b0/router/dead_experts") >= 1);
    check_router_stats(net, probe, 0);
  }
  SECTION("soft routing: loads sum to M; equal gates give log M entropy and no deviation") {
    Config cfg{"soft", Routing::soft, GateFn::sigmoid, false, false, Activation::gelu, 4, 4, 1};
    check_router_stats(make_net(cfg), make_probe(make_net(cfg)), 0);
    cfg.router_multiplier = 0.0;
    const MoeNetwork<double> net = make_net(cfg);
    const auto probe = make_probe(net);
    const auto row = probe.measure(net, nullptr);
    CHECK(value(probe, row, "b0/router/gate_entropy") == Approx(std::log(4.0)).epsilon(1e-12));
    CHECK(value(probe, row, "b0/router/max_load_dev") == Approx(0.0).margin(1e-12));
    CHECK(value(probe, row, "b0/router/dead_experts") == 0);
  }
  SECTION("soft routing: an expert whose linear gate is 0 is dead") {
    Config cfg{"soft dead", Routing::soft, GateFn::linear, false, false, Activation::gelu, 3, 3, 1};
    MoeNetwork<double> net = make_net(cfg);
    auto& wr = net.param_tensor(Group::router).data;
    for (int i = 0; i < net.shape().N; ++i) wr[i * 3 + 1] = 0.0;  // column 1 of w_router [N,M]
    const auto probe = make_probe(net);
    const auto row = probe.measure(net, nullptr);
    CHECK(value(probe, row, "b0/load/e1") == 0.0);
    CHECK(value(probe, row, "b0/router/dead_experts") == 1);
    check_router_stats(net, probe, 0);
  }
}

TEST_CASE("measure rejects a network of another shape", "[diagnostics]") {
  const MoeNetwork<double> net = make_net(kConfigs[0]);
  const auto probe = make_probe(net);
  Config other = kConfigs[0];
  other.M = other.K = 3;
  CHECK_THROWS_AS(probe.measure(make_net(other), nullptr), ConfigError);
}
