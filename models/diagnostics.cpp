#include "models/diagnostics.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "models/parallel.hpp"

namespace moedmft {
namespace {

constexpr Group kMatrixGroups[] = {Group::in, Group::router, Group::expert1, Group::expert2, Group::out};

template <class T>
double sumsq(const T* p, Eigen::Index n) {
  double s = 0;
  for (Eigen::Index i = 0; i < n; ++i) s += double(p[i]) * double(p[i]);
  return s;
}
template <class T>
double sumsq(const Mat<T>& m) {
  return sumsq(m.data(), m.size());
}
inline double rms_from(double ss, double count) { return count > 0 ? std::sqrt(ss / count) : 0.0; }
template <class T>
double rms(const Mat<T>& m) {
  return rms_from(sumsq(m), double(m.size()));
}
template <class T>
double rms(const Vec<T>& v) {
  return rms_from(sumsq(v.data(), v.size()), double(v.size()));
}

// Dense expert pre-activation and activation, computed exactly as MoeNetwork's forward does so
// that the probe's a_m(0) and the a_m(t) of measure() agree bitwise when nothing has changed.
template <class T>
void dense_expert(Activation act, const Mat<T>& x, const ConstMatMap<T>& w1, T s1, Mat<T>& pre, Mat<T>& a) {
  pre.noalias() = x * w1;
  pre *= s1;
  apply_activation(act, pre, a);
}

// Threads for the per-expert loops: one for small probes, where a parallel region costs more
// than it saves (and far more when other processes share the cores).
int expert_threads(int M, double work) {
  return work < double(1 << 18) ? 1 : std::max(1, std::min(M, omp_get_max_threads()));
}

// Per-thread accumulators of the expert loop, reduced in thread order (deterministic for a
// fixed thread count).
template <class T>
struct ExpertAcc {
  Mat<T> ai, ap, ae, ax, bi, b2, b1, bx;
  double ss_a = 0, ss_o = 0, eff1 = 0, prop1 = 0, eff2 = 0, prop2 = 0;
  void zero(int P, int N) {
    for (Mat<T>* m : {&ai, &ap, &ae, &ax, &bi, &b2, &b1, &bx}) m->setZero(P, N);
  }
};

}  // namespace

template <class T>
DiagnosticsProbe<T>::DiagnosticsProbe(const MoeNetwork<T>& net, Mat<T> x, Mat<T> y, std::vector<int> labels)
    : shape_(net.shape()), options_(net.options()), x_(std::move(x)), y_(std::move(y)), labels_(std::move(labels)) {
  const int P = int(x_.rows()), L = shape_.L, M = shape_.M;
  if (P == 0) throw ConfigError("diagnostics.probe: the probe batch is empty");
  if (x_.cols() != shape_.D || y_.rows() != P || y_.cols() != shape_.C)
    throw ConfigError("diagnostics.probe: probe x must be [P," + std::to_string(shape_.D) + "] and y [P," +
                      std::to_string(shape_.C) + "]");
  if (!labels_.empty() && int(labels_.size()) != P)
    throw ConfigError("diagnostics.probe: labels must be empty or have one entry per probe row");
  w0_.resize(kNumGroups);
  for (int g = 0; g < kNumGroups; ++g) w0_[g] = net.params()[g].data;

  ForwardCache<T> c;
  net.forward(x_, c);
  readout_in0_ = c.blocks.back().output;
  block_in0_.resize(L);
  act0_.assign(L, std::vector<Mat<T>>(M));
  const T s1 = T(net.param()[Group::expert1].multiplier);
  for (int l = 0; l < L; ++l) {
    block_in0_[l] = c.blocks[l].input;
    FirstFailure failure;
#pragma omp parallel num_threads(expert_threads(M, double(P) * shape_.N * shape_.Ne * M))
    {
      Mat<T> pre;
#pragma omp for schedule(static)
      for (int m = 0; m < M; ++m)
        failure.run([&] { dense_expert(options_.activation, block_in0_[l], net.w_expert1(l, m), s1, pre, act0_[l][m]); });
    }
    failure.rethrow();
  }

  auto& n = names_;
  n = {"loss/probe", "rms/h1", "rms/f"};
  for (Group g : kMatrixGroups) n.push_back(std::string("weight_rms/") + group_name(g));
  for (Group g : kMatrixGroups) n.push_back(std::string("grad_rms/") + group_name(g));
  for (const char* s : {"coord/eff/in", "coord/prop/in", "coord/eff/out", "coord/prop/out"}) n.push_back(s);
  for (int l = 0; l < L; ++l) {
    const std::string b = "b" + std::to_string(l) + "/";
    for (const char* s : {"rms/psi", "rms/a", "rms/o", "rms/hagg", "rms/output", "coord/eff/router",
                          "coord/prop/router", "coord/eff/expert1", "coord/prop/expert1", "coord/eff/expert2",
                          "coord/prop/expert2", "agg/init", "agg/prop", "agg/eff", "agg/cross", "back/init",
                          "back/w2", "back/w1", "back/cross", "router/logit_rms", "router/gate_entropy",
                          "router/max_load_dev", "router/dead_experts"})
      n.push_back(b + s);
    for (int m = 0; m < M; ++m) n.push_back(b + "load/e" + std::to_string(m));
  }
}

template <class T>
int DiagnosticsProbe<T>::column(const std::string& name) const {
  const auto it = std::find(names_.begin(), names_.end(), name);
  return it == names_.end() ? -1 : int(it - names_.begin());
}

template <class T>
std::vector<double> DiagnosticsProbe<T>::measure(const MoeNetwork<T>& net, const std::vector<Vec<T>>* last_grads,
                                                 std::vector<BlockTerms<T>>* terms) const {
  const Shape& s = net.shape();
  if (s.D != shape_.D || s.N != shape_.N || s.Ne != shape_.Ne || s.M != shape_.M || s.K != shape_.K ||
      s.L != shape_.L || s.C != shape_.C)
    throw ConfigError("diagnostics: the network's shape differs from the one the probe was built for");
  const ResolvedParam& rp = net.param();
  const ModelOptions& opt = net.options();
  const int P = int(x_.rows()), D = s.D, N = s.N, Ne = s.Ne, M = s.M, K = s.K, L = s.L, C = s.C;
  const T s_in = T(rp[Group::in].multiplier), s_r = T(rp[Group::router].multiplier);
  const T s1 = T(rp[Group::expert1].multiplier), s2 = T(rp[Group::expert2].multiplier);
  const T s_out = T(rp[Group::out].multiplier), agg = T(rp.aggregation);
  const bool soft = opt.routing == Routing::soft;

  std::vector<double> row;
  row.reserve(names_.size());
  ForwardCache<T> c;
  net.forward(x_, c);
  Mat<T> df;
  const double loss = net.loss(c, y_, labels_, &df);
  std::vector<Vec<T>> probe_grads;
  std::vector<Mat<T>> d_block_out;
  net.backward(c, df, probe_grads, &d_block_out);

  row.push_back(loss);
  row.push_back(rms(c.h1));
  row.push_back(rms(c.f));
  for (Group g : kMatrixGroups) row.push_back(rms(net.params()[int(g)].data));
  for (Group g : kMatrixGroups)
    row.push_back(last_grads ? rms((*last_grads)[int(g)]) : std::numeric_limits<double>::quiet_NaN());

  // Input layer: the input is fixed data, so its propagating update is identically 0.
  {
    const Mat<T> dw = net.w_in() - ConstMatMap<T>(w0_[int(Group::in)].data(), D, N);
    const Mat<T> eff = x_ * dw;
    row.push_back(std::abs(double(s_in)) * rms(eff));
    row.push_back(0.0);
    const ConstMatMap<T> w0(w0_[int(Group::out)].data(), N, C);
    const Mat<T> dwo = net.w_out() - w0;
    const Mat<T>& r = c.blocks.back().output;
    const Mat<T> effo = r * dwo;
    const Mat<T> propo = (r - readout_in0_) * w0;
    row.push_back(std::abs(double(s_out)) * rms(effo));
    row.push_back(std::abs(double(s_out)) * rms(propo));
  }

  if (terms) terms->assign(L, BlockTerms<T>());
  const int nth = expert_threads(M, double(P) * N * Ne * M);
  const long per = long(N) * Ne;
  for (int l = 0; l < L; ++l) {
    const BlockCache<T>& bc = c.blocks[l];
    const Mat<T>& xt = bc.input;
    const Mat<T> dx = xt - block_in0_[l];

    // Router coordinate check.
    const ConstMatMap<T> wr0(w0_[int(Group::router)].data() + long(l) * N * M, N, M);
    const Mat<T> dwr = net.w_router(l) - wr0;
    const Mat<T> r_eff = xt * dwr, r_prop = dx * wr0;

    // d = dL/d(block output) * residual_multiplier * aggregation; s1 s2 folded in once.
    const Mat<T> d = d_block_out[l] * T(rp.residual_multiplier * rp.aggregation * double(s1) * double(s2));

    std::vector<ExpertAcc<T>> acc(nth);
    for (auto& A : acc) A.zero(P, N);  // also covers threads the runtime did not start
    FirstFailure failure;
#pragma omp parallel num_threads(nth)
    {
      ExpertAcc<T>& A = acc[omp_get_thread_num()];
      Mat<T> dw1, dw2, pre, a, da, e1, p1, ti, tp, te, tx, o, dphi, d_o, u0, ud;
      Vec<T> gm;
#pragma omp for schedule(static)
      for (int m = 0; m < M; ++m) {
        if (failure.failed()) continue;
        failure.run([&] {
          const ConstMatMap<T> w1 = net.w_expert1(l, m), w2 = net.w_expert2(l, m);
          const ConstMatMap<T> w10(w0_[int(Group::expert1)].data() + (long(l) * M + m) * per, N, Ne);
          const ConstMatMap<T> w20(w0_[int(Group::expert2)].data() + (long(l) * M + m) * per, Ne, N);
          dw1 = w1 - w10;
          dw2 = w2 - w20;
          dense_expert(opt.activation, xt, w1, s1, pre, a);
          e1.noalias() = xt * dw1;
          p1.noalias() = dx * w10;
          A.eff1 += sumsq(e1);
          A.prop1 += sumsq(p1);
          const Mat<T>& a0 = act0_[l][m];
          da = a - a0;
          // The four forward terms s2 {a0 W2(0), da W2(0), a0 dW2, da dW2}; o = their sum.
          ti.noalias() = a0 * w20;
          tp.noalias() = da * w20;
          te.noalias() = a0 * dw2;
          tx.noalias() = da * dw2;
          ti *= s2;
          tp *= s2;
          te *= s2;
          tx *= s2;
          o = ti + tp + te + tx;
          A.ss_a += sumsq(a);
          A.ss_o += sumsq(o);
          o = te + tx;  // s2 a(t) dW2: effective update of expert2
          A.eff2 += sumsq(o);
          A.prop2 += sumsq(tp);
          gm = bc.gates.col(m);
          if (gm.cwiseAbs().maxCoeff() == T(0)) return;  // never selected: no gated contribution
          A.ai.noalias() += gm.asDiagonal() * ti;
          A.ap.noalias() += gm.asDiagonal() * tp;
          A.ae.noalias() += gm.asDiagonal() * te;
          A.ax.noalias() += gm.asDiagonal() * tx;
          // Backward: dz = phi'(pre) * (s2 d_o W2^T), contribution s1 dz W1^T (s1 s2 are in d).
          d_o.noalias() = gm.asDiagonal() * d;
          activation_derivative(opt.activation, pre, dphi);
          u0.noalias() = d_o * w20.transpose();
          ud.noalias() = d_o * dw2.transpose();
          u0.array() *= dphi.array();
          ud.array() *= dphi.array();
          A.bi.noalias() += u0 * w10.transpose();
          A.b2.noalias() += ud * w10.transpose();
          A.b1.noalias() += u0 * dw1.transpose();
          A.bx.noalias() += ud * dw1.transpose();
        });
      }
    }
    failure.rethrow();
    ExpertAcc<T>& R = acc[0];
    for (int t = 1; t < nth; ++t) {
      const ExpertAcc<T>& A = acc[t];
      R.ai += A.ai, R.ap += A.ap, R.ae += A.ae, R.ax += A.ax;
      R.bi += A.bi, R.b2 += A.b2, R.b1 += A.b1, R.bx += A.bx;
      R.ss_a += A.ss_a, R.ss_o += A.ss_o, R.eff1 += A.eff1, R.prop1 += A.prop1, R.eff2 += A.eff2, R.prop2 += A.prop2;
    }
    for (Mat<T>* t : {&R.ai, &R.ap, &R.ae, &R.ax}) *t *= agg;

    const double n_a = double(M) * P * Ne, n_o = double(M) * P * N;
    row.push_back(rms(bc.psi));
    row.push_back(rms_from(R.ss_a, n_a));
    row.push_back(rms_from(R.ss_o, n_o));
    row.push_back(rms(bc.aggregated));
    row.push_back(rms(bc.output));
    row.push_back(std::abs(double(s_r)) * rms(r_eff));
    row.push_back(std::abs(double(s_r)) * rms(r_prop));
    row.push_back(std::abs(double(s1)) * rms_from(R.eff1, n_a));
    row.push_back(std::abs(double(s1)) * rms_from(R.prop1, n_a));
    row.push_back(rms_from(R.eff2, n_o));
    row.push_back(rms_from(R.prop2, n_o));
    for (const Mat<T>* t : {&R.ai, &R.ap, &R.ae, &R.ax, &R.bi, &R.b2, &R.b1, &R.bx}) row.push_back(rms(*t));

    // Router statistics. Each token's gates are normalised (in absolute value) to sum 1 over its
    // selected experts; a token whose selected gates are all 0 counts as uniform over them.
    std::vector<double> load(M, 0.0);
    double entropy = 0;
    std::vector<int> sel(soft ? M : K);
    for (int t = 0; t < P; ++t) {
      for (size_t j = 0; j < sel.size(); ++j) sel[j] = soft ? int(j) : bc.selection[size_t(t) * K + j];
      double sum = 0;
      for (int m : sel) sum += std::abs(double(bc.gates(t, m)));
      for (int m : sel) {
        const double p = sum > 0 ? std::abs(double(bc.gates(t, m))) / sum : 1.0 / double(sel.size());
        if (p > 0) entropy -= p * std::log(p);
        if (soft) load[m] += p;
      }
    }
    for (int m = 0; m < M; ++m) load[m] = soft ? load[m] * K / P : double(bc.tokens[m].size()) / P;
    const double kappa = soft ? 1.0 : double(K) / M;
    double max_dev = 0;
    int dead = 0;
    for (int m = 0; m < M; ++m) {
      max_dev = std::max(max_dev, std::abs(load[m] - kappa));
      if (soft ? load[m] < 0.01 * kappa : load[m] == 0.0) ++dead;
    }
    row.push_back(rms(bc.psi));
    row.push_back(entropy / P);
    row.push_back(max_dev);
    row.push_back(double(dead));
    for (int m = 0; m < M; ++m) row.push_back(load[m]);

    if (terms) {
      BlockTerms<T>& bt = (*terms)[l];
      bt.agg_init = std::move(R.ai), bt.agg_prop = std::move(R.ap), bt.agg_eff = std::move(R.ae);
      bt.agg_cross = std::move(R.ax), bt.back_init = std::move(R.bi), bt.back_w2 = std::move(R.b2);
      bt.back_w1 = std::move(R.b1), bt.back_cross = std::move(R.bx);
    }
  }
  return row;
}

template class DiagnosticsProbe<float>;
template class DiagnosticsProbe<double>;

}  // namespace moedmft
