#include "models/network.hpp"

#include <unsupported/Eigen/SpecialFunctions>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "models/gating.hpp"
#include "models/parallel.hpp"
#include "models/random.hpp"

namespace moedmft {

// ---------------------------------------------------------------------------------------------
// Activations

namespace {

// Splits an elementwise map over threads in contiguous chunks (rows of a row-major matrix
// are contiguous, so any split is cache friendly); small inputs stay on one thread.
template <class T, class Fn>
void parallel_elementwise(const Mat<T>& in, Mat<T>& out, Fn fn) {
  out.resize(in.rows(), in.cols());
  const Eigen::Index n = in.size();
  constexpr Eigen::Index kChunk = 1 << 14;
  const Eigen::Index chunks = (n + kChunk - 1) / kChunk;
  parallel_for(chunks, true, Schedule::static_chunks, [&](long c) {
    const Eigen::Index begin = c * kChunk, len = std::min(kChunk, n - begin);
    Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>> x(in.data() + begin, len);
    Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> y(out.data() + begin, len);
    fn(x, y);
  });
}

}  // namespace

// Eigen's array erf/exp/tanh are vectorised (SpecialFunctions), which matters: the expert
// activations are as many elements as a GEMM operand.
template <class T>
void apply_activation(Activation a, const Mat<T>& pre, Mat<T>& out) {
  switch (a) {
    case Activation::gelu:
      parallel_elementwise(pre, out, [](const auto& x, auto& y) { y = T(0.5) * x * (T(1) + (x * T(M_SQRT1_2)).erf()); });
      break;
    case Activation::tanh:
      parallel_elementwise(pre, out, [](const auto& x, auto& y) { y = x.tanh(); });
      break;
    case Activation::relu:
      parallel_elementwise(pre, out, [](const auto& x, auto& y) { y = x.max(T(0)); });
      break;
    case Activation::identity:
      out = pre;
      break;
  }
}

template <class T>
void activation_derivative(Activation a, const Mat<T>& pre, Mat<T>& out) {
  switch (a) {
    case Activation::gelu:  // d/dx x Phi(x) = Phi(x) + x phi(x)
      parallel_elementwise(pre, out, [](const auto& x, auto& y) {
        const T inv_sqrt_2pi = T(0.5 * M_2_SQRTPI * M_SQRT1_2);
        y = T(0.5) * (T(1) + (x * T(M_SQRT1_2)).erf()) + x * inv_sqrt_2pi * (T(-0.5) * x.square()).exp();
      });
      break;
    case Activation::tanh:
      parallel_elementwise(pre, out, [](const auto& x, auto& y) { y = T(1) - x.tanh().square(); });
      break;
    case Activation::relu:
      parallel_elementwise(pre, out, [](const auto& x, auto& y) { y = (x > T(0)).template cast<T>(); });
      break;
    case Activation::identity:
      out.setOnes(pre.rows(), pre.cols());
      break;
  }
}

// Multiply-adds below which a parallel region costs more than it saves; with other processes on
// the cores, threads spinning at the barrier of a tiny region can cost milliseconds each.
constexpr double kMinParallelWork = 1 << 18;

// Experts ordered by routed-token count, largest first: with dynamic scheduling this keeps
// the threads' loads even when routing is uneven (longest-processing-time-first).
static std::vector<int> experts_by_load(const std::vector<std::vector<int>>& tokens) {
  std::vector<int> order(tokens.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return tokens[a].size() > tokens[b].size(); });
  return order;
}

void select_topk(const double* scores, int M, int K, std::vector<int>& selected) {
  selected.resize(M);
  std::iota(selected.begin(), selected.end(), 0);
  // Larger score first; equal scores keep the lower index first.
  auto better = [scores](int a, int b) { return scores[a] > scores[b] || (scores[a] == scores[b] && a < b); };
  std::partial_sort(selected.begin(), selected.begin() + K, selected.end(), better);
  selected.resize(K);
  std::sort(selected.begin(), selected.end());
}

// ---------------------------------------------------------------------------------------------
// Construction and initialisation

template <class T>
MoeNetwork<T>::MoeNetwork(const Shape& shape, const ModelOptions& options, const ResolvedParam& param)
    : shape_(shape), options_(options), param_(param) {
  shape_.validate();
  if (options_.routing == Routing::soft && shape_.K != shape_.M)
    throw ConfigError("model.K: soft routing uses every expert, so K must equal M = " + std::to_string(shape_.M) +
                      " (got " + std::to_string(shape_.K) + ")");
  const int L = shape_.L, N = shape_.N, M = shape_.M, Ne = shape_.Ne;
  auto stacked = [L](std::vector<int> dims) {
    if (L > 1) dims.insert(dims.begin(), L);
    return dims;
  };
  params_.resize(kNumGroups);
  params_[int(Group::in)] = {"w_in", Group::in, {shape_.D, N}, {}};
  params_[int(Group::router)] = {"w_router", Group::router, stacked({N, M}), {}};
  params_[int(Group::expert1)] = {"w_expert1", Group::expert1, stacked({M, N, Ne}), {}};
  params_[int(Group::expert2)] = {"w_expert2", Group::expert2, stacked({M, Ne, N}), {}};
  params_[int(Group::out)] = {"w_out", Group::out, {N, shape_.C}, {}};
  params_[int(Group::bias)] = {"b_router", Group::bias, stacked({M}), {}};
  for (auto& p : params_) {
    const long size = std::accumulate(p.dims.begin(), p.dims.end(), 1L, std::multiplies<long>());
    p.data = Vec<T>::Zero(size);
  }
}

template <class T>
void MoeNetwork<T>::initialize(uint64_t seed) {
  for (int g = 0; g < kNumGroups; ++g) {
    auto& p = params_[g];
    const ResolvedGroup& rg = param_.groups[g];
    if (rg.zero_init || rg.init_std == 0.0 || p.group == Group::bias) {
      p.data.setZero();
      continue;
    }
    // One stream per group: changing one group's init never changes another's draws.
    Rng rng(mix_seed(seed, static_cast<uint64_t>(g)));
    for (Eigen::Index i = 0; i < p.data.size(); ++i) p.data[i] = static_cast<T>(rg.init_std * rng.normal());
  }
  if (param_.shared_experts) {
    const long per1 = long(shape_.N) * shape_.Ne, per2 = per1;
    for (int l = 0; l < shape_.L; ++l)
      for (int m = 1; m < shape_.M; ++m) {
        T* e1 = params_[int(Group::expert1)].data.data() + long(l) * shape_.M * per1;
        T* e2 = params_[int(Group::expert2)].data.data() + long(l) * shape_.M * per2;
        std::copy(e1, e1 + per1, e1 + m * per1);
        std::copy(e2, e2 + per2, e2 + m * per2);
      }
  }
}

template <class T>
ConstMatMap<T> MoeNetwork<T>::w_in() const {
  return ConstMatMap<T>(params_[int(Group::in)].data.data(), shape_.D, shape_.N);
}
template <class T>
ConstMatMap<T> MoeNetwork<T>::w_out() const {
  return ConstMatMap<T>(params_[int(Group::out)].data.data(), shape_.N, shape_.C);
}
template <class T>
ConstMatMap<T> MoeNetwork<T>::w_router(int l) const {
  return ConstMatMap<T>(params_[int(Group::router)].data.data() + long(l) * shape_.N * shape_.M, shape_.N, shape_.M);
}
template <class T>
ConstMatMap<T> MoeNetwork<T>::w_expert1(int l, int m) const {
  const long off = (long(l) * shape_.M + m) * shape_.N * shape_.Ne;
  return ConstMatMap<T>(params_[int(Group::expert1)].data.data() + off, shape_.N, shape_.Ne);
}
template <class T>
ConstMatMap<T> MoeNetwork<T>::w_expert2(int l, int m) const {
  const long off = (long(l) * shape_.M + m) * shape_.N * shape_.Ne;
  return ConstMatMap<T>(params_[int(Group::expert2)].data.data() + off, shape_.Ne, shape_.N);
}
template <class T>
const T* MoeNetwork<T>::router_bias(int l) const {
  return params_[int(Group::bias)].data.data() + long(l) * shape_.M;
}

// ---------------------------------------------------------------------------------------------
// Forward

template <class T>
void MoeNetwork<T>::forward(const Mat<T>& x, ForwardCache<T>& c) const {
  if (x.cols() != shape_.D)
    throw ConfigError("data.x: input dimension " + std::to_string(x.cols()) + " does not match model.D = " +
                      std::to_string(shape_.D));
  c.x = x;
  c.pre_in.noalias() = T(param_[Group::in].multiplier) * (x * w_in());
  apply_activation(options_.activation, c.pre_in, c.h1);
  c.blocks.resize(shape_.L);
  const Mat<T>* h = &c.h1;
  for (int l = 0; l < shape_.L; ++l) {
    forward_block(l, *h, c.blocks[l]);
    h = &c.blocks[l].output;
  }
  c.f.noalias() = *h * w_out();
  c.f *= T(param_[Group::out].multiplier);
}

template <class T>
void MoeNetwork<T>::route(int l, BlockCache<T>& bc) const {
  const int B = int(bc.psi.rows()), M = shape_.M, K = shape_.K;
  const bool topk = options_.routing == Routing::topk;
  bc.gate_raw.setZero(B, M);
  bc.gates.setZero(B, M);
  std::vector<int>& chosen = bc.selection;
  chosen.resize(size_t(B) * K);
  FirstFailure failure;
  struct Scratch {
    std::vector<double> score;
    std::vector<int> sel;
    std::vector<T> q, g;
  };
  auto route_token = [&](Scratch& s, int t) {
    if (failure.failed()) return;
    failure.run([&] {
      s.score.resize(M);
      s.q.resize(K);
      s.g.resize(K);
      const T* psi = bc.psi.row(t).data();
      if (topk) {
        for (int m = 0; m < M; ++m)
          s.score[m] = options_.selection == Selection::biased_sigmoid
                           ? 1.0 / (1.0 + std::exp(-double(psi[m]))) + double(router_bias(l)[m])
                           : double(psi[m]);
        select_topk(s.score.data(), M, K, s.sel);
      } else {
        s.sel.resize(M);
        std::iota(s.sel.begin(), s.sel.end(), 0);
      }
      gate_values(options_.gate, options_.renormalize, param_.gate_factor, psi, s.sel, s.q.data(), s.g.data());
      for (int j = 0; j < K; ++j) {
        bc.gate_raw(t, s.sel[j]) = s.q[j];
        bc.gates(t, s.sel[j]) = s.g[j];
        chosen[size_t(t) * K + j] = s.sel[j];
      }
    });
  };
  if (should_fork(B * M > 4096)) {
#pragma omp parallel
    {
      Scratch s;  // one per thread
#pragma omp for
      for (int t = 0; t < B; ++t) route_token(s, t);
    }
  } else {
    Scratch s;
    for (int t = 0; t < B; ++t) route_token(s, t);
  }
  failure.rethrow();
  bc.tokens.assign(M, {});
  bc.slot.resize(size_t(B) * K);
  for (int t = 0; t < B; ++t)
    for (int j = 0; j < K; ++j) {
      auto& list = bc.tokens[chosen[size_t(t) * K + j]];
      bc.slot[size_t(t) * K + j] = int(list.size());
      list.push_back(t);
    }
}

template <class T>
void MoeNetwork<T>::forward_block(int l, const Mat<T>& input, BlockCache<T>& bc) const {
  const int B = int(input.rows()), M = shape_.M, N = shape_.N;
  const bool soft = options_.routing == Routing::soft;
  const T s1 = T(param_[Group::expert1].multiplier), s2 = T(param_[Group::expert2].multiplier);
  bc.input = input;
  bc.psi.noalias() = input * w_router(l);
  bc.psi *= T(param_[Group::router].multiplier);
  route(l, bc);
  bc.pre.resize(M);
  bc.act.resize(M);
  bc.out.resize(M);
  bc.routed_input.resize(soft ? 0 : M);
  // Experts are independent: one per thread, single-threaded GEMMs inside.
  const std::vector<int> order = experts_by_load(bc.tokens);
  const bool parallel = M > 1 && double(B) * shape_.K * N * shape_.Ne > kMinParallelWork;
  FirstFailure failure;
  parallel_for(M, parallel, Schedule::dynamic_one, [&](long i) {
    if (failure.failed()) return;
    failure.run([&] {
      const int m = order[i];
      const auto& tok = bc.tokens[m];
      if (soft) {
        bc.pre[m].noalias() = s1 * (input * w_expert1(l, m));
      } else {
        Mat<T>& gathered = bc.routed_input[m];
        gathered.resize(Eigen::Index(tok.size()), N);
        for (size_t i = 0; i < tok.size(); ++i) gathered.row(i) = input.row(tok[i]);
        bc.pre[m].noalias() = s1 * (gathered * w_expert1(l, m));
      }
      apply_activation(options_.activation, bc.pre[m], bc.act[m]);
      bc.out[m].noalias() = s2 * (bc.act[m] * w_expert2(l, m));
    });
  });
  failure.rethrow();
  // Combine per token (each output row is owned by one thread): sum over its K choices.
  bc.aggregated.resize(B, N);
  const T agg = T(param_.aggregation);
  const int K = shape_.K;
  parallel_for(B, B * N > 65536, Schedule::static_chunks, [&](long t) {
    auto row = bc.aggregated.row(t);
    row.setZero();
    for (int j = 0; j < K; ++j) {
      const int m = bc.selection[size_t(t) * K + j];
      row += (agg * bc.gates(t, m)) * bc.out[m].row(bc.slot[size_t(t) * K + j]);
    }
  });
  const T r = T(param_.residual_multiplier);
  if (options_.residual)
    bc.output = input + r * bc.aggregated;
  else
    bc.output = r * bc.aggregated;
}

// ---------------------------------------------------------------------------------------------
// Loss

template <class T>
double MoeNetwork<T>::loss(const ForwardCache<T>& c, const Mat<T>& y, const std::vector<int>& labels,
                           Mat<T>* df) const {
  const Mat<T>& f = c.f;
  const int B = int(f.rows()), C = int(f.cols());
  if (y.rows() != B || y.cols() != C)
    throw ConfigError("data.y: targets are " + std::to_string(y.rows()) + "x" + std::to_string(y.cols()) +
                      " but the network outputs " + std::to_string(B) + "x" + std::to_string(C));
  if (options_.loss == LossKind::mse) {
    const Mat<T> diff = f - y;
    if (df) *df = diff * T(2.0 / (double(B) * C));
    return diff.template cast<double>().squaredNorm() / (double(B) * C);
  }
  if (df) df->resize(B, C);
  double total = 0;
  for (int t = 0; t < B; ++t) {
    int label = 0;
    if (!labels.empty()) {
      label = labels[t];
    } else {
      y.row(t).maxCoeff(&label);
    }
    const double mx = f.row(t).template cast<double>().maxCoeff();
    double sum = 0;
    for (int k = 0; k < C; ++k) sum += std::exp(double(f(t, k)) - mx);
    total += std::log(sum) + mx - double(f(t, label));
    if (df) {
      for (int k = 0; k < C; ++k) (*df)(t, k) = T(std::exp(double(f(t, k)) - mx) / sum / B);
      (*df)(t, label) -= T(1.0 / B);
    }
  }
  return total / B;
}

// ---------------------------------------------------------------------------------------------
// Backward

template <class T>
void MoeNetwork<T>::backward(const ForwardCache<T>& c, const Mat<T>& df, std::vector<Vec<T>>& grads,
                             std::vector<Mat<T>>* block_output_grads) const {
  // Every slice is assigned below (experts without tokens are zeroed there), so no
  // full-size zeroing of the gradient buffers is needed.
  grads.resize(kNumGroups);
  for (int g = 0; g < kNumGroups; ++g) grads[g].resize(params_[g].data.size());
  grads[int(Group::bias)].setZero();
  const Mat<T>& h_last = c.blocks.back().output;
  const T s_out = T(param_[Group::out].multiplier), s_in = T(param_[Group::in].multiplier);
  MatMap<T>(grads[int(Group::out)].data(), shape_.N, shape_.C).noalias() = s_out * (h_last.transpose() * df);
  Mat<T> d_h = s_out * (df * w_out().transpose());
  Mat<T> d_prev;
  if (block_output_grads) block_output_grads->resize(shape_.L);
  for (int l = shape_.L - 1; l >= 0; --l) {
    if (block_output_grads) (*block_output_grads)[l] = d_h;
    backward_block(l, c.blocks[l], d_h, d_prev, grads);
    d_h.swap(d_prev);
  }
  Mat<T> dpre;
  activation_derivative(options_.activation, c.pre_in, dpre);
  dpre.array() *= d_h.array();
  MatMap<T>(grads[int(Group::in)].data(), shape_.D, shape_.N).noalias() = s_in * (c.x.transpose() * dpre);
}

template <class T>
void MoeNetwork<T>::backward_block(int l, const BlockCache<T>& bc, const Mat<T>& d_out, Mat<T>& d_in,
                                   std::vector<Vec<T>>& grads) const {
  const int B = int(bc.input.rows()), M = shape_.M, N = shape_.N, Ne = shape_.Ne, K = shape_.K;
  const bool soft = options_.routing == Routing::soft;
  const T s1 = T(param_[Group::expert1].multiplier), s2 = T(param_[Group::expert2].multiplier);
  const T s_r = T(param_[Group::router].multiplier);
  // The residual multiplier and aggregation factor sit in front of sum_m g_m o_m.
  const T scale = T(param_.residual_multiplier * param_.aggregation);
  Mat<T> d_gates = Mat<T>::Zero(B, M);
  std::vector<Mat<T>> d_expert_in(M);
  const long per = long(N) * Ne;
  T* g1 = grads[int(Group::expert1)].data() + long(l) * M * per;
  T* g2 = grads[int(Group::expert2)].data() + long(l) * M * per;

  const std::vector<int> order = experts_by_load(bc.tokens);
  const bool parallel = M > 1 && double(B) * K * N * Ne > kMinParallelWork;
  FirstFailure failure;
  parallel_for(M, parallel, Schedule::dynamic_one, [&](long e) {
    if (failure.failed()) return;
    failure.run([&] {
      const int m = order[e];
      const auto& tok = bc.tokens[m];
      const int bm = int(tok.size());
      if (bm == 0) {
        MatMap<T>(g1 + m * per, N, Ne).setZero();
        MatMap<T>(g2 + m * per, Ne, N).setZero();
        return;
      }
      Mat<T> d_o(bm, N);
      for (int i = 0; i < bm; ++i) {
        const int t = tok[i];
        d_gates(t, m) = scale * bc.out[m].row(i).dot(d_out.row(t));
        d_o.row(i) = (scale * bc.gates(t, m)) * d_out.row(t);
      }
      MatMap<T>(g2 + m * per, Ne, N).noalias() = s2 * (bc.act[m].transpose() * d_o);
      Mat<T> d_pre;
      activation_derivative(options_.activation, bc.pre[m], d_pre);
      d_pre.array() *= (s2 * (d_o * w_expert2(l, m).transpose())).array();
      const Mat<T>& expert_input = soft ? bc.input : bc.routed_input[m];
      MatMap<T>(g1 + m * per, N, Ne).noalias() = s1 * (expert_input.transpose() * d_pre);
      d_expert_in[m].noalias() = s1 * (d_pre * w_expert1(l, m).transpose());
    });
  });
  failure.rethrow();

  d_in.resize(B, N);
  parallel_for(B, B * N > 65536, Schedule::static_chunks, [&](long t) {
    auto row = d_in.row(t);
    if (options_.residual)
      row = d_out.row(t);
    else
      row.setZero();
    for (int j = 0; j < K; ++j) {
      const int m = bc.selection[size_t(t) * K + j];
      row += d_expert_in[m].row(bc.slot[size_t(t) * K + j]);
    }
  });

  // Gate Jacobian, per token over its selected experts (the selection itself has no gradient).
  Mat<T> d_psi = Mat<T>::Zero(B, M);
  std::vector<int> sel;
  std::vector<T> dg(K), q(K), dpsi(K);
  for (int t = 0; t < B; ++t) {
    sel.assign(bc.selection.begin() + size_t(t) * K, bc.selection.begin() + size_t(t + 1) * K);
    for (int j = 0; j < K; ++j) {
      q[j] = bc.gate_raw(t, sel[j]);
      dg[j] = d_gates(t, sel[j]);
    }
    gate_backward(options_.gate, options_.renormalize, param_.gate_factor, q.data(), dg.data(), K, dpsi.data());
    for (int j = 0; j < K; ++j) d_psi(t, sel[j]) = dpsi[j];
  }
  MatMap<T>(grads[int(Group::router)].data() + long(l) * N * M, N, M).noalias() =
      s_r * (bc.input.transpose() * d_psi);
  d_in.noalias() += s_r * (d_psi * w_router(l).transpose());
}

template <class T>
double MoeNetwork<T>::loss_and_gradients(const Mat<T>& x, const Mat<T>& y, const std::vector<int>& labels,
                                         std::vector<Vec<T>>& grads, ForwardCache<T>* cache) const {
  ForwardCache<T> local;
  ForwardCache<T>& c = cache ? *cache : local;
  forward(x, c);
  Mat<T> df;
  const double value = loss(c, y, labels, &df);
  backward(c, df, grads);
  return value;
}

template <class T>
void MoeNetwork<T>::update_router_bias(const ForwardCache<T>& c, double rate) {
  const int M = shape_.M;
  const double kappa = double(shape_.K) / M;
  for (int l = 0; l < shape_.L; ++l) {
    const auto& bc = c.blocks[l];
    const double B = double(bc.input.rows());
    T* b = params_[int(Group::bias)].data.data() + long(l) * M;
    for (int m = 0; m < M; ++m) b[m] -= T(rate * (double(bc.tokens[m].size()) / B - kappa));
  }
}

template void apply_activation<float>(Activation, const Mat<float>&, Mat<float>&);
template void apply_activation<double>(Activation, const Mat<double>&, Mat<double>&);
template void activation_derivative<float>(Activation, const Mat<float>&, Mat<float>&);
template void activation_derivative<double>(Activation, const Mat<double>&, Mat<double>&);
template class MoeNetwork<float>;
template class MoeNetwork<double>;

}  // namespace moedmft
