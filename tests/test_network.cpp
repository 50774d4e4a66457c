// Network correctness: gradients against central finite differences for every group and
// routing mode, and structural identities (one expert == dense MLP, top-K with K=M == soft).
#include <catch2/catch.hpp>

#include "models/network.hpp"
#include "models/optimizer.hpp"
#include "models/random.hpp"
#include "test_support.hpp"

using namespace moedmft;
using moedmft::testing::random_matrix;
using moedmft::testing::test_param;

namespace {



struct Case {
  const char* name;
  Routing routing;
  GateFn gate;
  bool renormalize;
  bool residual;
  Activation activation;
  LossKind loss;
  int M, K, L;
  Selection selection = Selection::logits;
};

// Max over entries of |analytic - numeric|, relative to the largest numeric entry of the group.
double gradient_error(MoeNetwork<double>& net, Group g, const Mat<double>& x, const Mat<double>& y,
                      const std::vector<Vec<double>>& grads) {
  auto& w = net.param_tensor(g).data;
  const double h = 1e-5;
  double max_diff = 0, max_ref = 0;
  for (Eigen::Index i = 0; i < w.size(); ++i) {
    const double saved = w[i];
    ForwardCache<double> c;
    w[i] = saved + h;
    net.forward(x, c);
    const double up = net.loss(c, y, {}, nullptr);
    w[i] = saved - h;
    net.forward(x, c);
    const double down = net.loss(c, y, {}, nullptr);
    w[i] = saved;
    const double numeric = (up - down) / (2 * h);
    max_diff = std::max(max_diff, std::abs(numeric - grads[int(g)][i]));
    max_ref = std::max(max_ref, std::abs(numeric));
  }
  return max_diff / std::max(max_ref, 1e-300);
}

}  // namespace

TEST_CASE("gradients match central finite differences for every group and routing mode", "[network][gradient]") {
  const std::vector<Case> cases = {
      {"soft sigmoid gelu mse", Routing::soft, GateFn::sigmoid, false, false, Activation::gelu, LossKind::mse, 4, 4, 1},
      {"soft softmax tanh ce", Routing::soft, GateFn::softmax, false, false, Activation::tanh, LossKind::cross_entropy, 3, 3, 1},
      {"soft linear renorm gelu", Routing::soft, GateFn::linear, true, true, Activation::gelu, LossKind::mse, 3, 3, 1},
      {"topk sigmoid gelu", Routing::topk, GateFn::sigmoid, false, false, Activation::gelu, LossKind::mse, 5, 2, 1},
      {"topk softmax tanh", Routing::topk, GateFn::softmax, false, false, Activation::tanh, LossKind::mse, 5, 2, 1},
      {"topk sigmoid renorm depth 3", Routing::topk, GateFn::sigmoid, true, true, Activation::gelu, LossKind::mse, 4, 2, 3},
      {"topk linear K=1 identity ce", Routing::topk, GateFn::linear, false, false, Activation::identity, LossKind::cross_entropy, 4, 1, 1},
      {"soft softmax depth 2 no residual", Routing::soft, GateFn::softmax, false, false, Activation::gelu, LossKind::mse, 2, 2, 2},
      {"jiang biased sigmoid selection", Routing::topk, GateFn::sigmoid, false, true, Activation::gelu, LossKind::mse, 4, 2, 1, Selection::biased_sigmoid},
  };
  for (const Case& tc : cases) {
    DYNAMIC_SECTION(tc.name) {
      Shape s;
      s.D = 5; s.N = 6; s.Ne = 7; s.M = tc.M; s.K = tc.K; s.L = tc.L; s.C = 3;
      ModelOptions o;
      o.routing = tc.routing; o.gate = tc.gate; o.renormalize = tc.renormalize; o.residual = tc.residual;
      o.activation = tc.activation; o.loss = tc.loss; o.selection = tc.selection;
      MoeNetwork<double> net(s, o, test_param());
      net.initialize(11);
      if (tc.selection == Selection::biased_sigmoid) {
        auto& b = net.param_tensor(Group::bias).data;
        for (int i = 0; i < b.size(); ++i) b[i] = 0.1 * i;
      }
      const Mat<double> x = random_matrix(9, s.D, 3);
      Mat<double> y = random_matrix(9, s.C, 4);
      if (tc.loss == LossKind::cross_entropy) {
        y.setZero();
        for (int t = 0; t < y.rows(); ++t) y(t, t % s.C) = 1;
      }
      std::vector<Vec<double>> grads;
      net.loss_and_gradients(x, y, {}, grads);
      for (Group g : {Group::in, Group::router, Group::expert1, Group::expert2, Group::out}) {
        INFO("group " << group_name(g));
        CHECK(grads[int(g)].norm() > 0);
        CHECK(gradient_error(net, g, x, y, grads) < 1e-6);
      }
      CHECK(grads[int(Group::bias)].norm() == 0);
    }
  }
}

TEST_CASE("a one-expert soft MoE with gate factor 1 is the dense MLP", "[network]") {
  Shape s;
  s.D = 4; s.N = 8; s.Ne = 5; s.M = 1; s.K = 1; s.C = 2;
  ModelOptions o;
  o.gate = GateFn::softmax;  // one expert: the gate is exactly 1
  ResolvedParam p = test_param();
  p.gate_factor = 1.0;
  p.aggregation = 1.0;
  p.residual_multiplier = 1.0;
  MoeNetwork<double> net(s, o, p);
  net.initialize(5);
  const Mat<double> x = random_matrix(6, s.D, 9);
  ForwardCache<double> c;
  net.forward(x, c);
  auto gelu = [](const Mat<double>& z) {
    return Mat<double>(z.unaryExpr([](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }));
  };
  const Mat<double> h1 = gelu(x * net.w_in() * 1.3);
  const Mat<double> a = gelu(h1 * net.w_expert1(0, 0) * 0.9);
  const Mat<double> f = (a * net.w_expert2(0, 0) * 1.1) * net.w_out() * 0.8;
  CHECK((c.f - f).norm() <= 1e-13 * f.norm());
}

TEST_CASE("top-K routing with K = M equals soft routing", "[network]") {
  for (GateFn gate : {GateFn::sigmoid, GateFn::softmax, GateFn::linear}) {
    Shape s;
    s.D = 5; s.N = 7; s.Ne = 6; s.M = 4; s.K = 4; s.C = 2;
    ModelOptions soft, topk;
    soft.gate = topk.gate = gate;
    topk.routing = Routing::topk;
    MoeNetwork<double> a(s, soft, test_param()), b(s, topk, test_param());
    a.initialize(21);
    b.initialize(21);
    const Mat<double> x = random_matrix(10, s.D, 1), y = random_matrix(10, s.C, 2);
    std::vector<Vec<double>> ga, gb;
    const double la = a.loss_and_gradients(x, y, {}, ga);
    const double lb = b.loss_and_gradients(x, y, {}, gb);
    CHECK(std::abs(la - lb) <= 1e-13 * std::abs(la));
    for (int g = 0; g < kNumGroups; ++g) CHECK((ga[g] - gb[g]).norm() <= 1e-12 * (1 + ga[g].norm()));
  }
}

TEST_CASE("top-K selection keeps the K largest and breaks ties toward the lower index", "[network]") {
  std::vector<int> sel;
  const double scores[] = {0.5, 2.0, 2.0, -1.0, 2.0};
  select_topk(scores, 5, 2, sel);
  CHECK(sel == std::vector<int>{1, 2});
  select_topk(scores, 5, 4, sel);
  CHECK(sel == std::vector<int>{0, 1, 2, 4});
}

TEST_CASE("experts only process their routed tokens", "[network]") {
  Shape s;
  s.D = 3; s.N = 5; s.Ne = 4; s.M = 6; s.K = 2; s.C = 1;
  ModelOptions o;
  o.routing = Routing::topk;
  MoeNetwork<double> net(s, o, test_param());
  net.initialize(2);
  ForwardCache<double> c;
  net.forward(random_matrix(12, s.D, 8), c);
  size_t rows = 0;
  for (int m = 0; m < s.M; ++m) {
    CHECK(c.blocks[0].act[m].rows() == Eigen::Index(c.blocks[0].tokens[m].size()));
    rows += c.blocks[0].tokens[m].size();
  }
  CHECK(rows == size_t(12 * s.K));
}

TEST_CASE("shared initial experts copy expert 0 into every expert", "[network]") {
  Shape s;
  s.D = 3; s.N = 5; s.Ne = 4; s.M = 3; s.K = 3; s.L = 2;
  ResolvedParam p = test_param();
  p.shared_experts = true;
  MoeNetwork<double> net(s, ModelOptions{}, p);
  net.initialize(3);
  for (int l = 0; l < s.L; ++l)
    for (int m = 1; m < s.M; ++m) {
      CHECK(net.w_expert1(l, m) == net.w_expert1(l, 0));
      CHECK(net.w_expert2(l, m) == net.w_expert2(l, 0));
    }
  CHECK(net.w_expert1(0, 0) != net.w_expert1(1, 0));
}

TEST_CASE("Jiang bias update moves load toward kappa", "[network]") {
  Shape s;
  s.D = 3; s.N = 5; s.Ne = 4; s.M = 4; s.K = 1; s.C = 1;
  ModelOptions o;
  o.routing = Routing::topk;
  o.selection = Selection::biased_sigmoid;
  MoeNetwork<double> net(s, o, test_param());
  net.initialize(4);
  ForwardCache<double> c;
  net.forward(random_matrix(40, s.D, 5), c);
  std::vector<double> load(s.M);
  for (int m = 0; m < s.M; ++m) load[m] = c.blocks[0].tokens[m].size() / 40.0;
  net.update_router_bias(c, 0.5);
  for (int m = 0; m < s.M; ++m)
    CHECK(net.router_bias(0)[m] == Approx(-0.5 * (load[m] - 0.25)).margin(1e-15));
}

TEST_CASE("float32 forward agrees with float64", "[network]") {
  Shape s;
  s.D = 6; s.N = 16; s.Ne = 12; s.M = 4; s.K = 2; s.C = 2;
  ModelOptions o;
  o.routing = Routing::topk;
  MoeNetwork<double> d(s, o, test_param());
  MoeNetwork<float> f(s, o, test_param());
  d.initialize(9);
  f.initialize(9);
  const Mat<double> x = random_matrix(8, s.D, 6), y = random_matrix(8, s.C, 7);
  std::vector<Vec<double>> gd;
  std::vector<Vec<float>> gf;
  const double ld = d.loss_and_gradients(x, y, {}, gd);
  const double lf = f.loss_and_gradients(x.cast<float>(), y.cast<float>(), {}, gf);
  CHECK(lf == Approx(ld).epsilon(1e-5));
  for (int g = 0; g < kNumGroups - 1; ++g)
    CHECK((gf[g].cast<double>() - gd[g]).norm() <= 1e-4 * gd[g].norm());
}

TEST_CASE("schedules: warmup then cosine to the floor, and warmup-stable-decay", "[optimizer]") {
  ScheduleConfig s;
  s.kind = ScheduleKind::warmup_cosine;
  s.warmup_steps = 4;
  s.total_steps = 20;
  s.min_lr_ratio = 0.1;
  CHECK(s.factor(0) == Approx(0.25));
  CHECK(s.factor(3) == Approx(1.0));
  CHECK(s.factor(4) == Approx(1.0));
  CHECK(s.factor(12) == Approx(0.1 + 0.9 * 0.5));
  CHECK(s.factor(20) == Approx(0.1));
  s.kind = ScheduleKind::wsd;
  s.decay_fraction = 0.25;  // decay over the last 5 steps
  CHECK(s.factor(10) == Approx(1.0));
  CHECK(s.factor(15) == Approx(1.0 - 0.9 * 0.2));
  CHECK(s.factor(19) == Approx(0.1));
}

TEST_CASE("optimizer updates follow their closed forms", "[optimizer]") {
  ResolvedParam p = test_param();
  p[Group::in].weight_decay = 0.1;
  std::vector<ParamTensor<double>> w(kNumGroups);
  std::vector<Vec<double>> g(kNumGroups);
  for (int i = 0; i < kNumGroups; ++i) {
    w[i].data = Vec<double>::Constant(2, 1.0);
    g[i] = Vec<double>::Constant(2, 0.5);
    g[i][1] = -2.0;
  }
  OptimizerConfig cfg;
  const double lr = p[Group::in].lr;
  SECTION("sgd with L2 weight decay") {
    cfg.kind = OptimizerKind::sgd;
    Optimizer<double> opt(cfg, p);
    opt.step(w, g);
    CHECK(w[0].data[0] == Approx(1.0 - lr * (0.5 + 0.1)));
  }
  SECTION("signgd") {
    cfg.kind = OptimizerKind::signgd;
    Optimizer<double> opt(cfg, p);
    opt.step(w, g);
    CHECK(w[1].data[1] == Approx(1.0 + p[Group::router].lr));
  }
  SECTION("adam's first step is a sign step of size lr") {
    cfg.kind = OptimizerKind::adam;
    Optimizer<double> opt(cfg, p);
    opt.step(w, g);
    CHECK(w[2].data[0] == Approx(1.0 - p[Group::expert1].lr).epsilon(1e-6));
    CHECK(w[2].data[1] == Approx(1.0 + p[Group::expert1].lr).epsilon(1e-6));
  }
  SECTION("adamw decays decoupled") {
    cfg.kind = OptimizerKind::adamw;
    Optimizer<double> opt(cfg, p);
    opt.step(w, g);
    CHECK(w[0].data[0] == Approx(1.0 - lr * 0.1 - lr).epsilon(1e-6));
  }
  CHECK(w[5].data[0] == 1.0);  // the bias group never moves through the optimizer
}
