// CUDA backend (issue 5) against the CPU simulator: forward, loss, every gradient, optimizer steps
// and batched multi-run training. Compiled in every build; without the CUDA backend
// (MOEDMFT_HAVE_CUDA undefined) or without a device, each test warns that it is skipped and
// passes. No CUDA headers here: the backend is used through models/cuda/cuda_engine.hpp.
// The per-token routing functions the kernels run (models/cuda/routing_rows.hpp) are plain C++
// and are checked against the CPU network in every build, device or not.
#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "models/cuda/routing_rows.hpp"  // host/device routing functions: plain C++
#include "models/cuda/rowmajor_gemm.hpp"  // the row-major -> cuBLAS argument mapping: plain C++
#include "models/engine.hpp"
#include "models/network.hpp"
#include "test_support.hpp"
#ifdef MOEDMFT_HAVE_CUDA
#include "models/cuda/cuda_engine.hpp"
#endif

using namespace moedmft;
using moedmft::testing::random_matrix;
using moedmft::testing::test_param;

namespace {

// True when the CUDA tests can run; otherwise records a WARN saying why they are skipped.
bool cuda_ready() {
#ifndef MOEDMFT_HAVE_CUDA
  WARN("CUDA test skipped: built without the CUDA backend (no nvcc, or MOEDMFT_WITH_CUDA=OFF)");
  return false;
#else
  std::string why;
  if (!cuda_device_available(&why)) {
    WARN("CUDA test skipped: no usable CUDA device (" + why + ")");
    return false;
  }
  return true;
#endif
}

template <class T>
Mat<T> random_rows(int rows, int cols, uint64_t seed, double scale) {
  Mat<T> m = random_matrix<T>(rows, cols, seed);
  return m * T(scale);
}

// The kernels' routing row by row against the CPU forward pass (selection, gate_raw, gates).
template <class T>
void check_route_rows(Routing routing, GateFn gate, bool renormalize, Selection selection, int M, int K) {
  INFO("routing " << to_string(routing) << " gate " << to_string(gate) << " renormalize " << renormalize
                  << " selection " << to_string(selection) << " M " << M << " K " << K);
  Shape s;
  s.D = 5;
  s.N = 9;
  s.Ne = 4;
  s.M = M;
  s.K = K;
  s.L = 2;
  ModelOptions o;
  o.routing = routing;
  o.gate = gate;
  o.renormalize = renormalize;
  o.selection = selection;
  o.residual = true;
  MoeNetwork<T> net(s, o, test_param());
  net.initialize(3);
  auto& bias = net.params()[int(Group::bias)].data;
  bias = random_rows<T>(int(bias.size()), 1, 9, 0.3);
  ForwardCache<T> cache;
  net.forward(random_matrix<T>(40, s.D, 4), cache);
  const T c = T(net.param().gate_factor);
  std::vector<T> psi(M), raw(M), gates(M);
  std::vector<int> sel(K);
  for (int l = 0; l < s.L; ++l) {
    const auto& bc = cache.blocks[l];
    for (int t = 0; t < bc.psi.rows(); ++t) {
      for (int m = 0; m < M; ++m) psi[m] = bc.psi(t, m);  // already scaled: s_r = 1 below
      cuda_detail::route_row<T>(psi.data(), net.router_bias(l), raw.data(), gates.data(), sel.data(), M, K,
                                routing == Routing::topk, selection == Selection::biased_sigmoid, int(gate),
                                renormalize, T(1), c);
      for (int j = 0; j < K; ++j) REQUIRE(sel[j] == bc.selection[size_t(t) * K + j]);
      for (int m = 0; m < M; ++m) {
        CHECK(std::abs(double(raw[m]) - double(bc.gate_raw(t, m))) <= 1e-6 * std::abs(double(bc.gate_raw(t, m))));
        CHECK(std::abs(double(gates[m]) - double(bc.gates(t, m))) <= 1e-6 * std::abs(double(bc.gates(t, m))));
      }
    }
  }
}

#ifdef MOEDMFT_HAVE_CUDA

template <class T>
double tolerance() {
  return std::is_same<T, double>::value ? 1e-10 : 1e-4;
}

// ||a - b|| / ||b|| (absolute when b is zero).
template <class A, class B>
double rel_err(const A& a, const B& b) {
  const double nb = b.template cast<double>().norm();
  const double d = (a.template cast<double>() - b.template cast<double>()).norm();
  return nb > 0 ? d / nb : d;
}

struct Case {
  const char* name;
  Routing routing;
  GateFn gate;
  bool renormalize, residual;
  Activation activation;
  LossKind loss;
  int L, M, K, C;
  Selection selection = Selection::logits;
};

const Case kCases[] = {
    {"soft sigmoid gelu mse", Routing::soft, GateFn::sigmoid, false, false, Activation::gelu, LossKind::mse, 1, 4, 4, 2},
    {"topk sigmoid gelu mse", Routing::topk, GateFn::sigmoid, false, false, Activation::gelu, LossKind::mse, 1, 5, 2, 2},
    {"topk softmax renorm residual L2 tanh", Routing::topk, GateFn::softmax, true, true, Activation::tanh, LossKind::mse,
     2, 6, 3, 1},
    {"soft linear relu cross-entropy L2", Routing::soft, GateFn::linear, false, true, Activation::relu,
     LossKind::cross_entropy, 2, 3, 3, 4},
    {"topk sigmoid renorm identity cross-entropy", Routing::topk, GateFn::sigmoid, true, false, Activation::identity,
     LossKind::cross_entropy, 1, 4, 1, 3},
    {"topk jiang biased-sigmoid selection", Routing::topk, GateFn::sigmoid, false, false, Activation::gelu,
     LossKind::mse, 1, 6, 2, 1, Selection::biased_sigmoid},
};

template <class T>
MoeNetwork<T> make_net(const Case& c, uint64_t seed, double lr_scale = 1.0, double weight_decay = 0.0) {
  Shape s;
  s.D = 7;
  s.N = 24;
  s.Ne = 20;
  s.M = c.M;
  s.K = c.K;
  s.L = c.L;
  s.C = c.C;
  ModelOptions o;
  o.routing = c.routing;
  o.gate = c.gate;
  o.renormalize = c.renormalize;
  o.residual = c.residual;
  o.activation = c.activation;
  o.loss = c.loss;
  o.selection = c.selection;
  ResolvedParam p = test_param();
  for (auto& g : p.groups) {
    g.lr *= lr_scale;
    g.weight_decay = weight_decay;
  }
  p.groups[int(Group::bias)].lr = 0.01;  // Jiang balancing rate
  MoeNetwork<T> net(s, o, p);
  net.initialize(seed);
  return net;
}

template <class T>
struct Batch {
  Mat<T> x, y;
  std::vector<int> labels;
};

template <class T>
Batch<T> make_batch(const MoeNetwork<T>& net, int B, uint64_t seed) {
  Batch<T> b;
  b.x = random_matrix<T>(B, net.shape().D, seed);
  b.y = random_matrix<T>(B, net.shape().C, seed + 1000);
  if (net.options().loss == LossKind::cross_entropy) {
    for (int t = 0; t < B; ++t) b.labels.push_back(int((seed + 7 * t) % net.shape().C));
  }
  return b;
}

template <class T>
void check_forward_and_gradients(const Case& c) {
  INFO(c.name);
  MoeNetwork<T> cpu = make_net<T>(c, 11), gpu_net = make_net<T>(c, 11);
  const Batch<T> b = make_batch(cpu, 33, 5);
  ForwardCache<T> cache;
  cpu.forward(b.x, cache);
  Mat<T> df;
  const double loss = cpu.loss(cache, b.y, b.labels, &df);
  std::vector<Vec<T>> grads;
  cpu.backward(cache, df, grads);

  OptimizerConfig oc;
  auto engine = make_cuda_engine(gpu_net, oc);
  Mat<T> f;
  const double gpu_loss = engine->step(b.x, b.y, b.labels, &f);
  CHECK(std::abs(gpu_loss - loss) <= tolerance<T>() * std::abs(loss));
  CHECK(rel_err(f, cache.f) <= tolerance<T>());
  const auto& g = engine->last_gradients();
  REQUIRE(g.size() == grads.size());
  for (int k = 0; k < kNumGroups; ++k) {
    INFO("group " << group_name(Group(k)));
    REQUIRE(g[k].size() == grads[k].size());
    CHECK(rel_err(g[k], grads[k]) <= tolerance<T>());
  }
}

template <class T>
void check_training(const Case& c, OptimizerKind kind) {
  INFO(c.name << " with " << to_string(kind));
  const double lr_scale = kind == OptimizerKind::sgd ? 1.0 : 0.02;
  const double wd = kind == OptimizerKind::adamw || kind == OptimizerKind::signgd ? 0.05 : 0.0;
  MoeNetwork<T> cpu_net = make_net<T>(c, 21, lr_scale, wd), gpu_net = make_net<T>(c, 21, lr_scale, wd);
  OptimizerConfig oc;
  oc.kind = kind;
  CpuEngine<T> cpu(cpu_net, oc);
  auto gpu = make_cuda_engine(gpu_net, oc);
  for (int step = 0; step < 10; ++step) {
    const Batch<T> b = make_batch(cpu_net, 16, 100 + step);
    const double lc = cpu.step(b.x, b.y, b.labels, nullptr);
    const double lg = gpu->step(b.x, b.y, b.labels, nullptr);
    INFO("step " << step);
    CHECK(std::abs(lg - lc) <= tolerance<T>() * std::max(1.0, std::abs(lc)));
  }
  const MoeNetwork<T>& after = gpu->network();
  for (int k = 0; k < kNumGroups; ++k) {
    INFO("group " << group_name(Group(k)));
    CHECK(rel_err(after.params()[k].data, cpu_net.params()[k].data) <= tolerance<T>());
  }
}

template <class T>
void check_multirun(const Case& c, OptimizerKind kind) {
  INFO(c.name << " with " << to_string(kind));
  constexpr int R = 3;
  std::vector<MoeNetwork<T>> batched, separate;
  std::vector<OptimizerConfig> ocs(R);
  for (int r = 0; r < R; ++r) {
    const double lr_scale = (kind == OptimizerKind::sgd ? 1.0 : 0.02) * (0.5 + r);
    batched.push_back(make_net<T>(c, 31 + r, lr_scale));
    separate.push_back(make_net<T>(c, 31 + r, lr_scale));
    ResolvedParam p = batched.back().param();  // distinct constants per run
    p.gate_factor *= 1.0 + 0.1 * r;
    p.groups[int(Group::router)].multiplier *= 1.0 - 0.1 * r;
    batched.back().set_param(p);
    separate.back().set_param(p);
    ocs[r].kind = kind;
    ocs[r].beta1 = 0.9 - 0.05 * r;
  }
  std::vector<MoeNetwork<T>*> ptrs;
  for (auto& n : batched) ptrs.push_back(&n);
  CudaMultiRunEngine<T> multi(ptrs, ocs);
  REQUIRE(multi.runs() == R);
  std::vector<std::unique_ptr<TrainingEngine<T>>> engines;
  std::vector<std::unique_ptr<CpuEngine<T>>> cpus;
  std::vector<MoeNetwork<T>> cpu_nets = separate;
  for (int r = 0; r < R; ++r) engines.push_back(make_cuda_engine(separate[r], ocs[r]));
  for (int r = 0; r < R; ++r) cpus.push_back(std::make_unique<CpuEngine<T>>(cpu_nets[r], ocs[r]));
  for (int step = 0; step < 6; ++step) {
    // Per-run batches on even steps, one shared batch on odd steps.
    std::vector<Batch<T>> bs;
    for (int r = 0; r < R; ++r) bs.push_back(make_batch(batched[0], 12, step % 2 ? 500 + step : 200 + 10 * step + r));
    std::vector<double> losses;
    if (step % 2) {
      losses = multi.step(bs[0].x, bs[0].y, bs[0].labels);
    } else {
      std::vector<const Mat<T>*> xs, ys;
      std::vector<const std::vector<int>*> ls;
      for (auto& b : bs) {
        xs.push_back(&b.x);
        ys.push_back(&b.y);
        ls.push_back(&b.labels);
      }
      losses = multi.step(xs, ys, ls);
    }
    for (int r = 0; r < R; ++r) {
      const Batch<T>& b = bs[step % 2 ? 0 : r];
      const double ls = engines[r]->step(b.x, b.y, b.labels, nullptr);
      const double lc = cpus[r]->step(b.x, b.y, b.labels, nullptr);
      INFO("step " << step << " run " << r);
      CHECK(std::abs(losses[r] - ls) <= tolerance<T>() * std::max(1.0, std::abs(ls)));
      CHECK(std::abs(losses[r] - lc) <= tolerance<T>() * std::max(1.0, std::abs(lc)));
    }
  }
  for (int r = 0; r < R; ++r) {
    const MoeNetwork<T>& m = multi.network(r);
    const MoeNetwork<T>& s = engines[r]->network();
    for (int k = 0; k < kNumGroups; ++k) {
      INFO("run " << r << " group " << group_name(Group(k)));
      CHECK(rel_err(m.params()[k].data, s.params()[k].data) <= tolerance<T>());
      CHECK(rel_err(m.params()[k].data, cpu_nets[r].params()[k].data) <= tolerance<T>());
      CHECK(rel_err(multi.gradients(r)[k], engines[r]->last_gradients()[k]) <= tolerance<T>());
    }
  }
}

#endif  // MOEDMFT_HAVE_CUDA

}  // namespace

TEST_CASE("cuda routing rows: selection and gates equal the CPU forward (no device needed)", "[cuda]") {
  static_assert(int(GateFn::sigmoid) == 0 && int(GateFn::softmax) == 1 && int(GateFn::linear) == 2,
                "route_row's gate ids");
  for (GateFn gate : {GateFn::sigmoid, GateFn::softmax, GateFn::linear})
    for (bool renorm : {false, true}) {
      if (gate == GateFn::linear && renorm) continue;  // sums of logits may vanish
      check_route_rows<double>(Routing::topk, gate, renorm, Selection::logits, 6, 2);
      check_route_rows<float>(Routing::topk, gate, renorm, Selection::logits, 5, 3);
      check_route_rows<double>(Routing::soft, gate, renorm, Selection::logits, 4, 4);
    }
  check_route_rows<double>(Routing::topk, GateFn::sigmoid, false, Selection::biased_sigmoid, 7, 3);
  check_route_rows<float>(Routing::topk, GateFn::softmax, true, Selection::biased_sigmoid, 6, 1);
}

TEST_CASE("cuda routing rows: top-K ties go to the lower index, as select_topk (no device needed)", "[cuda]") {
  Rng rng(17);
  for (int trial = 0; trial < 400; ++trial) {
    const int M = 1 + trial % 9, K = 1 + (trial / 9) % M;
    std::vector<double> psi(M), scores(M), raw(M), gates(M);
    for (int m = 0; m < M; ++m) scores[m] = psi[m] = double(int(rng.uniform() * 3));  // many ties
    std::vector<int> expect, sel(K);
    select_topk(scores.data(), M, K, expect);
    cuda_detail::route_row<double>(psi.data(), nullptr, raw.data(), gates.data(), sel.data(), M, K, true, false, 0,
                                   false, 1.0, 1.0);
    INFO("trial " << trial << " M " << M << " K " << K);
    REQUIRE(sel == expect);
  }
  // NaN logits are never preferred over finite ones (a diverged run still routes to K experts).
  std::vector<double> psi = {NAN, 0.5, NAN, -2.0}, raw(4), gates(4);
  std::vector<int> sel(3);
  cuda_detail::route_row<double>(psi.data(), nullptr, raw.data(), gates.data(), sel.data(), 4, 3, true, false, 0, false,
                                 1.0, 1.0);
  CHECK(sel == std::vector<int>{0, 1, 3});
}

TEST_CASE("cuda routing rows: the gate Jacobian equals central differences (no device needed)", "[cuda]") {
  const int M = 6, K = 3;
  const double c = 0.8, s_r = 1.0;
  const std::vector<double> psi0 = {0.3, -1.2, 0.9, 2.1, -0.4, 1.5}, gbar = {0.7, -0.3, 1.1, 0.4, -0.9, 0.25};
  for (int gate : {0, 1, 2})
    for (bool renorm : {false, true}) {
      if (gate == 2 && renorm) continue;
      INFO("gate " << gate << " renormalize " << renorm);
      auto value = [&](const std::vector<double>& p) {
        std::vector<double> ps = p, raw(M), g(M);
        std::vector<int> sel(K);
        cuda_detail::route_row<double>(ps.data(), nullptr, raw.data(), g.data(), sel.data(), M, K, true, false, gate,
                                       renorm, 1.0, c);
        double v = 0;
        for (int m = 0; m < M; ++m) v += gbar[m] * g[m];
        return v;
      };
      std::vector<double> ps = psi0, raw(M), g(M), dpsi(M);
      std::vector<int> sel(K);
      cuda_detail::route_row<double>(ps.data(), nullptr, raw.data(), g.data(), sel.data(), M, K, true, false, gate,
                                     renorm, 1.0, c);
      cuda_detail::gate_backward_row<double>(gbar.data(), raw.data(), sel.data(), dpsi.data(), M, K, gate, renorm, c,
                                             s_r);
      for (int m = 0; m < M; ++m) {
        std::vector<double> up = psi0, dn = psi0;
        up[m] += 1e-6;
        dn[m] -= 1e-6;
        const double fd = (value(up) - value(dn)) / 2e-6;
        INFO("m " << m);
        CHECK(std::abs(dpsi[m] - fd) <= 1e-7 + 1e-6 * std::abs(fd));
      }
    }
}

// cublasDgemmStridedBatched's semantics on the host (column-major, alpha = 1, beta = 0).
static void colmajor_gemm_reference(const cuda_detail::ColMajorGemm<double>& g) {
  for (int b = 0; b < g.batch; ++b) {
    const double* A = g.a + b * g.stride_a;
    const double* B = g.b + b * g.stride_b;
    double* C = g.c + b * g.stride_c;
    for (int i = 0; i < g.m; ++i)
      for (int j = 0; j < g.n; ++j) {
        double acc = 0;
        for (int l = 0; l < g.k; ++l) {
          const double a = g.trans_a ? A[l + size_t(i) * g.lda] : A[i + size_t(l) * g.lda];
          const double bb = g.trans_b ? B[j + size_t(l) * g.ldb] : B[l + size_t(j) * g.ldb];
          acc += a * bb;
        }
        C[i + size_t(j) * g.ldc] = acc;
      }
  }
}

TEST_CASE("cuda: row-major products map onto cuBLAS arguments (no device needed)", "[cuda]") {
  const int m = 5, n = 4, k = 3, batch = 3;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (bool broadcast_a : {false, true}) {
        INFO("ta " << ta << " tb " << tb << " broadcast A " << broadcast_a);
        // Stored row-major: A is [m,k] or, transposed, [k,m]; B is [k,n] or [n,k].
        const int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
        std::vector<Mat<double>> As, Bs;
        std::vector<double> a_all, b_all, c_all(size_t(batch) * m * n, -1);
        for (int b = 0; b < batch; ++b) {
          As.push_back(random_matrix<double>(ar, ac, 10 + b));
          Bs.push_back(random_matrix<double>(br, bc, 20 + b));
          a_all.insert(a_all.end(), As[b].data(), As[b].data() + As[b].size());
          b_all.insert(b_all.end(), Bs[b].data(), Bs[b].data() + Bs[b].size());
        }
        const long long sA = broadcast_a ? 0 : (long long)ar * ac;
        colmajor_gemm_reference(cuda_detail::rowmajor_gemm(ta, tb, m, n, k, a_all.data(), ac, sA, b_all.data(), bc,
                                                           (long long)br * bc, c_all.data(), n, (long long)m * n, batch));
        for (int b = 0; b < batch; ++b) {
          const Mat<double>& A = As[broadcast_a ? 0 : b];
          const Mat<double> opA = ta ? Mat<double>(A.transpose()) : A;
          const Mat<double> opB = tb ? Mat<double>(Bs[b].transpose()) : Bs[b];
          const Mat<double> expect = opA * opB;
          const ConstMatMap<double> got(c_all.data() + size_t(b) * m * n, m, n);
          CHECK((got - expect).norm() <= 1e-12 * expect.norm());
        }
      }
}

TEST_CASE("cuda: device query answers without throwing", "[cuda]") {
#ifdef MOEDMFT_HAVE_CUDA
  std::string why;
  const bool ok = cuda_device_available(&why);
  INFO("cuda_device_available: " << ok << " (" << why << ")");
  CHECK(!why.empty());
  if (!ok) {
    // Without a device the engine must refuse with an error, never run silently.
    MoeNetwork<double> net = make_net<double>(kCases[0], 1);
    CHECK_THROWS_AS(make_cuda_engine(net, OptimizerConfig{}), std::runtime_error);
  }
#else
  cuda_ready();
#endif
}

TEST_CASE("cuda: forward, loss and every gradient equal the CPU", "[cuda]") {
  if (!cuda_ready()) return;
#ifdef MOEDMFT_HAVE_CUDA
  for (const Case& c : kCases) {
    check_forward_and_gradients<double>(c);
    check_forward_and_gradients<float>(c);
  }
#endif
}

TEST_CASE("cuda: 10 optimizer steps equal the CPU (SGD, Adam, AdamW, SignGD)", "[cuda]") {
  if (!cuda_ready()) return;
#ifdef MOEDMFT_HAVE_CUDA
  for (const Case& c : kCases)
    for (OptimizerKind kind : {OptimizerKind::sgd, OptimizerKind::adam}) {
      check_training<double>(c, kind);
      check_training<float>(c, kind);
    }
  // Decoupled decay and sign updates, with weight decay switched on.
  for (OptimizerKind kind : {OptimizerKind::adamw, OptimizerKind::signgd}) check_training<double>(kCases[1], kind);
#endif
}

TEST_CASE("cuda: batched multi-run equals separate runs", "[cuda]") {
  if (!cuda_ready()) return;
#ifdef MOEDMFT_HAVE_CUDA
  for (int i : {0, 2, 5})
    for (OptimizerKind kind : {OptimizerKind::sgd, OptimizerKind::adam}) {
      check_multirun<double>(kCases[i], kind);
      check_multirun<float>(kCases[i], kind);
    }
#endif
}

TEST_CASE("cuda: batched runs must share shape, options and optimizer kind", "[cuda]") {
  // Validated before the device is touched, so this runs wherever the backend is built.
#ifndef MOEDMFT_HAVE_CUDA
  cuda_ready();
#else
  MoeNetwork<double> a = make_net<double>(kCases[0], 1), b = make_net<double>(kCases[1], 1);
  CHECK_THROWS_AS(CudaMultiRunEngine<double>({&a, &b}, {OptimizerConfig{}}), ConfigError);
  MoeNetwork<double> c = make_net<double>(kCases[0], 2);
  OptimizerConfig sgd, adam;
  adam.kind = OptimizerKind::adam;
  CHECK_THROWS_AS(CudaMultiRunEngine<double>({&a, &c}, {sgd, adam}), ConfigError);
#endif
}
