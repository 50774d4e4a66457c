// The C++ network against the independent PyTorch reference (scripts/reference/): outputs,
// loss, every gradient, and 10 SGD and 10 Adam steps, in float64 to 1e-10 relative.
#include <catch2/catch.hpp>

#include <filesystem>

#include "data/h5/h5.hpp"
#include "models/checkpoint.hpp"
#include "models/network.hpp"
#include "models/optimizer.hpp"

using namespace moedmft;

namespace {

const std::array<Group, 5> kTrained = {Group::in, Group::router, Group::expert1, Group::expert2, Group::out};

struct Fixture {
  Shape shape;
  ModelOptions options;
  ResolvedParam param;
  Mat<double> x, y;
};

Mat<double> read_matrix(hid_t f, const std::string& path) {
  std::vector<hsize_t> dims;
  const std::vector<double> v = h5::read_double(f, path, &dims);
  REQUIRE(dims.size() == 2);
  return Eigen::Map<const Mat<double>>(v.data(), Eigen::Index(dims[0]), Eigen::Index(dims[1]));
}

Fixture read_fixture(const h5::File& f) {
  Fixture fx;
  auto i = [&](const char* n) { return int(h5::read_attr_int64(f, "/", n)); };
  auto d = [&](const char* n) { return h5::read_attr_double(f, "/", n); };
  auto s = [&](const char* n) { return h5::read_attr_string(f, "/", n); };
  fx.shape.D = i("D"); fx.shape.N = i("N"); fx.shape.Ne = i("Ne"); fx.shape.M = i("M");
  fx.shape.K = i("K"); fx.shape.L = i("L"); fx.shape.C = i("C");
  fx.options.routing = parse_routing(s("routing"));
  fx.options.gate = parse_gate(s("gate"));
  fx.options.activation = parse_activation(s("activation"));
  fx.options.loss = parse_loss(s("loss"));
  fx.options.renormalize = i("renormalize") != 0;
  fx.options.residual = i("residual") != 0;
  fx.param.gate_factor = d("gate_factor");
  fx.param.aggregation = d("aggregation");
  fx.param.residual_multiplier = d("residual_multiplier");
  const char* mult[] = {"s_in", "s_router", "s_expert1", "s_expert2", "s_out"};
  for (int k = 0; k < 5; ++k) fx.param[kTrained[k]].multiplier = d(mult[k]);
  fx.x = read_matrix(f, "batch/x");
  fx.y = read_matrix(f, "batch/y");
  return fx;
}

double rel_diff(const Vec<double>& a, const Vec<double>& b) { return (a - b).norm() / std::max(b.norm(), 1e-300); }

void run_steps(const h5::File& f, const Fixture& base, OptimizerKind kind, const std::string& group) {
  Fixture fx = base;
  const std::vector<double> lr = h5::read_double(f, group + "/lr");
  std::vector<double> eps(5, 1e-8);
  if (kind == OptimizerKind::adam) eps = h5::read_double(f, group + "/eps");
  for (int k = 0; k < 5; ++k) {
    fx.param[kTrained[k]].lr = lr[k];
    fx.param[kTrained[k]].eps = eps[k];
  }
  MoeNetwork<double> net(fx.shape, fx.options, fx.param);
  load_weights(f.id(), "weights", net);
  OptimizerConfig cfg;
  cfg.kind = kind;
  cfg.beta1 = h5::read_attr_double(f, "/", "beta1");
  cfg.beta2 = h5::read_attr_double(f, "/", "beta2");
  Optimizer<double> opt(cfg, fx.param);
  const std::vector<double> expected = h5::read_double(f, group + "/losses");
  std::vector<Vec<double>> grads;
  for (size_t step = 0; step < expected.size(); ++step) {
    const double loss = net.loss_and_gradients(fx.x, fx.y, {}, grads);
    INFO(group << " step " << step);
    CHECK(std::abs(loss - expected[step]) <= 1e-10 * std::abs(expected[step]));
    opt.step(net.params(), grads);
  }
  MoeNetwork<double> reference(fx.shape, fx.options, fx.param);
  load_weights(f.id(), group + "/final_weights", reference);
  for (Group g : kTrained) {
    INFO(group << " final " << group_name(g));
    CHECK(rel_diff(net.param_tensor(g).data, reference.param_tensor(g).data) < 1e-10);
  }
}

}  // namespace

TEST_CASE("network matches the PyTorch reference fixtures", "[fixtures]") {
  const std::filesystem::path dir = std::filesystem::path(MOEDMFT_SOURCE_DIR) / "tests" / "fixtures";
  int cases = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".h5") continue;
    ++cases;
    DYNAMIC_SECTION(entry.path().filename().string()) {
      h5::File f(entry.path().string(), h5::Mode::read);
      const Fixture fx = read_fixture(f);
      MoeNetwork<double> net(fx.shape, fx.options, fx.param);
      load_weights(f.id(), "weights", net);
      ForwardCache<double> cache;
      std::vector<Vec<double>> grads;
      const double loss = net.loss_and_gradients(fx.x, fx.y, {}, grads, &cache);
      const Mat<double> f_ref = read_matrix(f, "f");
      CHECK((cache.f - f_ref).norm() <= 1e-10 * f_ref.norm());
      const double loss_ref = h5::read_double(f, "loss")[0];
      CHECK(std::abs(loss - loss_ref) <= 1e-10 * std::abs(loss_ref));
      for (Group g : kTrained) {
        INFO("gradient " << group_name(g));
        const std::vector<double> ref = h5::read_double(f, std::string("grads/") + net.param_tensor(g).name);
        CHECK(rel_diff(grads[int(g)], Eigen::Map<const Vec<double>>(ref.data(), Eigen::Index(ref.size()))) < 1e-10);
      }
      run_steps(f, fx, OptimizerKind::sgd, "sgd");
      run_steps(f, fx, OptimizerKind::adam, "adam");
    }
  }
  CHECK(cases >= 5);
}
