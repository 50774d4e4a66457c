// Two-layer (L = 1) DMFT: a population of S (u, z) samples marched forward in time; replicate
// driver and input validation shared with the deep solver.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "models/random.hpp"
#include "solver/dmft/activation.hpp"
#include "solver/dmft/causal.hpp"
#include "solver/dmft/dmft.hpp"
#include "solver/dmft/entrywise.hpp"
#include "solver/dmft/population.hpp"
#include "solver/dmft/replicates.hpp"

namespace moedmft::dmft {

void DmftConfig::validate() const {
  auto need = [](bool ok, const std::string& msg) {
    if (!ok) throw ConfigError(msg);
  };
  need(P >= 0, "dmft.P: must be >= 0 (0 = number of rows of x)");
  need(T >= 0, "dmft.T: must be >= 0");
  need(L >= 1, "dmft.L: must be >= 1");
  need(samples >= 2, "dmft.samples: must be >= 2");
  need(!antithetic || samples % 2 == 0, "dmft.samples: must be even with antithetic pairs");
  need(replicates >= 1, "dmft.replicates: must be >= 1");
  need(std::isfinite(gamma0) && gamma0 > 0.0, "dmft.gamma0: must be > 0");
  need(std::isfinite(eta) && eta > 0.0, "dmft.eta: must be > 0");
  need(max_iter >= 1, "dmft.max_iter: must be >= 1");
  need(damping > 0.0 && damping <= 1.0, "dmft.damping: must be in (0, 1]");
  need(tol > 0.0, "dmft.tol: must be > 0");
  need(jitter >= 0.0, "dmft.jitter: must be >= 0");
  need(beta1 >= 0.0 && beta1 < 1.0, "dmft.beta1: must lie in [0, 1)");
  need(beta2 >= 0.0 && beta2 < 1.0, "dmft.beta2: must lie in [0, 1)");
  need(std::isfinite(eps) && eps >= 0.0, "dmft.eps: must be >= 0");
  need(std::isfinite(lr_in) && lr_in >= 0.0, "dmft.lr_in: must be >= 0");
  need(method != DeepMethod::exact || phi == Activation::identity,
       std::string("dmft.method: 'exact' needs dmft.activation = identity (got ") + to_string(phi) + ")");
  need(method != DeepMethod::exact || optimizer == DmftOptimizer::sgd,
       "dmft.method: 'exact' needs dmft.optimizer = sgd (an entrywise optimizer is not linear)");
  need(L == 1 || method != DeepMethod::fixed_point || optimizer == DmftOptimizer::sgd,
       "dmft.method: 'fixed_point' needs dmft.optimizer = sgd (signgd and adam: method sweep)");
}

Mat<double> input_kernel(const Mat<double>& x) {
  return (x * x.transpose()) / static_cast<double>(x.cols());
}

Mat<double> sample_fields(const Mat<double>& C, int S, uint64_t seed, bool antithetic, Vec<double>* z) {
  const int P = static_cast<int>(C.rows());
  const Mat<double> Lf = psd_cholesky(C);
  Rng rng(seed);
  Mat<double> xi(S, P);
  if (z) z->resize(S);
  for (int i = 0; i < S; ++i) {
    if (antithetic && (i % 2 == 1)) {  // partner: same field, opposite readout
      xi.row(i) = xi.row(i - 1);
      if (z) (*z)(i) = -(*z)(i - 1);
      continue;
    }
    for (int m = 0; m < P; ++m) xi(i, m) = rng.normal();
    if (z) (*z)(i) = rng.normal();
  }
  return xi * Lf.transpose();
}

namespace {

// Observation of a two-layer population at step t (f, loss, kernels, histories), shared by the
// SGD and the entrywise marches.
struct TwoLayerRecord {
  const DmftConfig& cfg;
  const Mat<double>& Kx;
  const Vec<double>& y;
  Population pop;  // this process's samples of all S
  int P;
  Trace tr;
  Mat<double> hist_a, hist_g;

  TwoLayerRecord(const DmftConfig& c, const Mat<double>& kx, const Vec<double>& yy, int S)
      : cfg(c), Kx(kx), y(yy), pop(population(S, "dmft.samples")), P(static_cast<int>(kx.rows())) {
    tr.f.resize(c.T + 1, P);
    tr.loss.resize(c.T + 1);
    tr.Phi.assign(1, std::vector<Mat<double>>(c.T + 1));
    tr.G.assign(1, std::vector<Mat<double>>(c.T + 1));
    if (c.two_time_kernels) {
      hist_a.resize(pop.rows, static_cast<Eigen::Index>(c.T + 1) * P);
      hist_g.resize(pop.rows, static_cast<Eigen::Index>(c.T + 1) * P);
    }
  }
  // A = phi(h), Gm = g = phi'(h) z [S,P], readouts z [S]: records step t, returns Delta(t).
  Vec<double> observe(int t, const Mat<double>& A, const Mat<double>& Gm, const Vec<double>& z) {
    const Vec<double> f = pop.mean_over(A.transpose() * z, cfg.gamma0 * pop.S);
    tr.f.row(t) = f.transpose();
    tr.loss[t] = 0.5 * (y - f).squaredNorm();
    tr.Phi[0][t] = pop.mean(A.transpose() * A);
    tr.G[0][t] = pop.mean(Gm.transpose() * Gm);
    if (t == 0) tr.ntk0 = tr.Phi[0][0] + Kx.cwiseProduct(tr.G[0][0]);
    if (cfg.two_time_kernels) {
      hist_a.middleCols(static_cast<Eigen::Index>(t) * P, P) = A;
      hist_g.middleCols(static_cast<Eigen::Index>(t) * P, P) = Gm;
    }
    return y - f;
  }
  Trace finish() {
    if (cfg.two_time_kernels) {
      tr.Phi_two.push_back(pop.mean_over(hist_a.transpose() * hist_a, pop.S));
      tr.G_two.push_back(pop.mean_over(hist_g.transpose() * hist_g, pop.S));
    }
    return std::move(tr);
  }
};

}  // namespace

Trace march_two_layer(const DmftConfig& cfg, const Mat<double>& Kx, const Vec<double>& y,
                      Mat<double> H, Vec<double> z) {
  const double step = cfg.eta * cfg.gamma0;
  TwoLayerRecord rec(cfg, Kx, y, static_cast<int>(H.rows()));
  H = rec.pop.mine(std::move(H));
  z = rec.pop.mine(std::move(z));
  Mat<double> A, D, Gm;
  for (int t = 0; t <= cfg.T; ++t) {
    act_both(cfg.phi, H, A, D);
    Gm = (D.array().colwise() * z.array()).matrix();  // g = phi'(h) z
    const Vec<double> delta = rec.observe(t, A, Gm, z);
    if (t == cfg.T) break;
    // h += eta gamma0 lr_in K^x (Delta o g);  z += eta gamma0 phi(h) . Delta  (both from old values)
    const Mat<double> gd = (Gm.array().rowwise() * delta.transpose().array()).matrix();
    H.noalias() += (step * cfg.lr_in) * (gd * Kx);
    z.noalias() += step * (A * delta);
  }
  return rec.finish();
}

Trace march_two_layer_entrywise(const DmftConfig& cfg, const Mat<double>& x, const Vec<double>& y,
                                Mat<double> W, Vec<double> z) {
  const double step = cfg.eta * cfg.gamma0, sD = std::sqrt(static_cast<double>(x.cols()));
  const Mat<double> Kx = input_kernel(x);
  TwoLayerRecord rec(cfg, Kx, y, static_cast<int>(W.rows()));
  W = rec.pop.mine(std::move(W));
  z = rec.pop.mine(std::move(z));
  EntrywiseRule rule(cfg);
  Mat<double> H, A, D, Gm, mW, vW, mz, vz, uW, uz;
  for (int t = 0; t <= cfg.T; ++t) {
    H.noalias() = W * x.transpose() / sD;
    act_both(cfg.phi, H, A, D);
    Gm = (D.array().colwise() * z.array()).matrix();
    const Vec<double> delta = rec.observe(t, A, Gm, z);
    if (t == cfg.T) break;
    // Normalised entries (one neuron and one data coordinate, or one neuron): input
    // c_ij = sum_mu Delta_mu g_i,mu x_mu,j, readout c_i = phi(h_i) . Delta. With u(c) = c this
    // is the SGD march above: dh = (step / D) (Delta o g) x x^T = step (Delta o g) K^x.
    const Mat<double> cW = (Gm * delta.asDiagonal()) * x;
    const Mat<double> cz = A * delta;
    rule.begin_step();
    rule.direction(cW, mW, vW, uW);
    rule.direction(cz, mz, vz, uz);
    W.noalias() += (step * cfg.lr_in / sD) * uW;
    z.noalias() += step * uz.col(0);
  }
  return rec.finish();
}

namespace {

template <class M>
void accumulate(M& sum, M& sq, const M& v, bool first) {
  if (first) {
    sum = v;
    sq = v.cwiseProduct(v);
  } else {
    sum += v;
    sq += v.cwiseProduct(v);
  }
}

// mean and standard error of the mean from sum and sum of squares over R replicates
template <class M>
void finish(M& sum, M& sq, int R) {
  sum /= R;
  if (R < 2) {
    sq.setConstant(std::numeric_limits<double>::quiet_NaN());
    return;
  }
  sq = ((sq / R - sum.cwiseProduct(sum)).cwiseMax(0.0) * (double(R) / (R - 1)) / R).cwiseSqrt();
}

}  // namespace

DmftResult solve_dmft(const DmftConfig& cfg_in, const Mat<double>& x, const Mat<double>& y_in) {
  DmftConfig cfg = cfg_in;
  cfg.validate();
  if (x.rows() < 1 || x.cols() < 1) throw ConfigError("dmft.x: must be a non-empty [P, D] matrix");
  if (cfg.P == 0) cfg.P = static_cast<int>(x.rows());
  if (cfg.P != x.rows()) throw ConfigError("dmft.P: must equal the number of rows of x");
  if (y_in.size() != cfg.P) throw ConfigError("dmft.y: must have P entries");
  require_dmft_memory(cfg, cfg.P, static_cast<int>(x.cols()));
  const Vec<double> y = Eigen::Map<const Vec<double>>(y_in.data(), cfg.P);
  const Mat<double> Kx = input_kernel(x);
  const bool exact = cfg.method == DeepMethod::exact;
  const int R = exact ? 1 : cfg.replicates;
  // Replicates on all threads (each march then runs on one), or spread over MPI ranks.
  const std::vector<Trace> traces = solve_replicates<Trace>(R, std::min(R, omp_get_max_threads()), [&](int r) {
    const uint64_t seed = mix_seed(cfg.seed, static_cast<uint64_t>(r));
    if (exact) return solve_exact(cfg, Kx, y);
    Vec<double> z;
    if (cfg.L > 1 && cfg.optimizer != DmftOptimizer::sgd) {  // the pair estimator, from W0 rows
      Mat<double> W = sample_fields(Mat<double>::Identity(x.cols(), x.cols()), cfg.samples, seed,
                                    cfg.antithetic, &z);
      return march_deep_entrywise(cfg, x, y, std::move(W), std::move(z), seed);
    }
    if (cfg.L > 1) return solve_deep_once(cfg, Kx, y, seed);
    if (cfg.optimizer != DmftOptimizer::sgd) {
      // the population is (W0 rows, readouts): u = W0 x^T / sqrt(D) ~ N(0, K^x) as in the SGD march
      Mat<double> W = sample_fields(Mat<double>::Identity(x.cols(), x.cols()), cfg.samples, seed,
                                    cfg.antithetic, &z);
      return march_two_layer_entrywise(cfg, x, y, std::move(W), std::move(z));
    }
    Mat<double> H = sample_fields(Kx, cfg.samples, seed, cfg.antithetic, &z);
    return march_two_layer(cfg, Kx, y, std::move(H), std::move(z));
  });
  DmftResult res;
  Mat<double> fsq, ntk_sq;
  Vec<double> lsum, lsq;
  const int nl = static_cast<int>(traces[0].Phi.size()), nt = cfg.T + 1;
  res.Phi.assign(nl, std::vector<Mat<double>>(nt));
  res.G = res.Phi_err = res.G_err = res.Phi;
  res.Phi_two.resize(traces[0].Phi_two.size());
  res.G_two.resize(traces[0].G_two.size());
  for (int r = 0; r < R; ++r) {
    const Trace& tr = traces[r];
    const bool first = (r == 0);
    accumulate(res.f, fsq, tr.f, first);
    const Vec<double> l = Eigen::Map<const Vec<double>>(tr.loss.data(), nt);
    accumulate(lsum, lsq, l, first);
    accumulate(res.ntk0, ntk_sq, tr.ntk0, first);
    for (int k = 0; k < nl; ++k)
      for (int t = 0; t < nt; ++t) {
        accumulate(res.Phi[k][t], res.Phi_err[k][t], tr.Phi[k][t], first);
        accumulate(res.G[k][t], res.G_err[k][t], tr.G[k][t], first);
      }
    for (size_t k = 0; k < tr.Phi_two.size(); ++k) {
      if (first) {
        res.Phi_two[k] = tr.Phi_two[k] / R;
        res.G_two[k] = tr.G_two[k] / R;
      } else {
        res.Phi_two[k] += tr.Phi_two[k] / R;
        res.G_two[k] += tr.G_two[k] / R;
      }
    }
    res.f_replicates.push_back(tr.f);
  }
  finish(res.f, fsq, R);
  res.f_err = fsq;
  finish(lsum, lsq, R);
  res.loss.assign(lsum.data(), lsum.data() + nt);
  res.loss_err.assign(lsq.data(), lsq.data() + nt);
  finish(res.ntk0, ntk_sq, R);
  for (int k = 0; k < nl; ++k)
    for (int t = 0; t < nt; ++t) {
      finish(res.Phi[k][t], res.Phi_err[k][t], R);
      finish(res.G[k][t], res.G_err[k][t], R);
    }
  if (exact) {  // deterministic: zero error bars
    res.f_err.setZero();
    std::fill(res.loss_err.begin(), res.loss_err.end(), 0.0);
    for (int k = 0; k < nl; ++k)
      for (int t = 0; t < nt; ++t) {
        res.Phi_err[k][t].setZero();
        res.G_err[k][t].setZero();
      }
  }
  res.history = traces[0].history;
  res.iterations = traces[0].iterations;
  return res;
}

}  // namespace moedmft::dmft
