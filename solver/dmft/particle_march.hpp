// Internal to solver/dmft: the pieces the regime-II and regime-III particle marches share
// (moe2_march.cpp, moe3_march.cpp). Histories are [rows, n] with n = (T+1) P, time-major.
#pragma once
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "models/random.hpp"
#include "solver/dmft/activation.hpp"
#include "solver/dmft/causal.hpp"
#include "solver/dmft/entrywise.hpp"
#include "solver/dmft/moe2_march.hpp"
#include "solver/dmft/noise.hpp"
#include "solver/dmft/population.hpp"

namespace moedmft::dmft {

// Rows of a per-particle [E, P] matrix repeated for each of the particle's `per` neurons.
inline Mat<double> per_neuron(const Mat<double>& per_particle, int per) {
  Mat<double> out(per_particle.rows() * per, per_particle.cols());
  for (Eigen::Index m = 0; m < per_particle.rows(); ++m)
    out.middleRows(m * per, per).rowwise() = per_particle.row(m);
  return out;
}

// V(s, mu) = sum_nu Kern(row0 + mu, s P + nu) w(s P + nu), s < k: a kernel row folded with the
// per-token error weights of each earlier step.
inline Mat<double> fold(const Mat<double>& kern, int row0, const Vec<double>& w, int k, int P) {
  Mat<double> V(k, P);
  for (int s = 0; s < k; ++s) V.row(s) = (kern.block(row0, s * P, P, P) * w.segment(s * P, P)).transpose();
  return V;
}

// Symmetric square root factor B (B B^T = C) of a small covariance, negative eigenvalues clamped.
inline Mat<double> psd_factor(const Mat<double>& C) {
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(Eigen::MatrixXd(0.5 * (C + C.transpose())));
  const Eigen::VectorXd d = es.eigenvalues().cwiseMax(0.0).cwiseSqrt();
  return Mat<double>(es.eigenvectors() * d.asDiagonal());
}

// Kernel row of step k from the new block Fk [rows, P] of history H, averaged over the population
// `pop` the rows are (part of), written into K (both triangles); grown into its causal factor
// when L is given.
inline void kernel_row(const Mat<double>& Fk, const Mat<double>& H, const Population& pop, int K0, int P, Mat<double>& K,
                       CausalChol* L, double jitter) {
  const Mat<double> Crow = pop.mean(Fk.transpose() * H.leftCols(K0 + P));
  K.block(K0, 0, P, K0 + P) = Crow;
  K.block(0, K0, K0 + P, P) = Crow.transpose();
  if (L) L->extend(Crow, K0, P, jitter);
}

// The Gaussian part of an init term W^T v, where the history's source through the same matrix
// is L zeta: the regression on that source's noise plus an independent residual. Cv = <v x>
// against the history x that L factors, V = <v v> (v has `rows` samples); zeta [S, n] holds the
// rows of `pop` this process has.
inline Mat<double> regression_on_source(const CausalChol& L, const Mat<double>& zeta, const Population& pop,
                                        const Mat<double>& v, const Mat<double>& Cv, int k, int P, uint64_t seed) {
  const int n1 = k * P + P;
  Mat<double> Ct = Cv.transpose();  // [n1, P]
  for (int j = 0; j < n1; ++j)
    if (L.dead[j]) Ct.row(j).setZero();
  Mat<double> betaT = L.L.topLeftCorner(n1, n1).triangularView<Eigen::Lower>().solve(Ct);
  for (int j = 0; j < n1; ++j)
    if (L.dead[j]) betaT.row(j).setZero();
  const Mat<double> V = (v.transpose() * v) / double(v.rows());
  Rng rng(mix_seed(seed, 7000 + uint64_t(k)));
  const Mat<double> eps = pop.mine(white(pop.S, P, rng, false, false));
  return zeta.leftCols(n1) * betaT + eps * psd_factor(V - betaT.transpose() * betaT).transpose();
}

// Logit law per token (mean, std, selection threshold) and the particles' load statistics.
inline void record_logits(Moe2Trace& tr, int k, bool topk, const Mat<double>& psi,
                          const std::vector<std::vector<int>>& sel) {
  const int E = static_cast<int>(psi.rows()), P = static_cast<int>(psi.cols());
  Vec<double> load = Vec<double>::Zero(E);
  for (int mu = 0; mu < P; ++mu) {
    const auto col = psi.col(mu);
    const double mean = col.mean();
    tr.logit_mean(k, mu) = mean;
    tr.logit_std(k, mu) = std::sqrt((col.array() - mean).square().sum() / std::max(1, E - 1));
    double thr = std::numeric_limits<double>::infinity();
    for (int m : sel[mu]) {
      thr = std::min(thr, psi(m, mu));
      load(m) += 1.0 / P;
    }
    tr.logit_quantile(k, mu) = topk ? thr : std::numeric_limits<double>::quiet_NaN();
  }
  const double lm = load.mean();
  tr.load.row(k) << lm, std::sqrt((load.array() - lm).square().sum() / std::max(1, E - 1)),
      (load.array() == 0.0).cast<double>().mean();
}

// The trace's outputs sized for T+1 steps and P points.
inline void allocate_trace(Moe2Trace& tr, int T, int P) {
  tr = Moe2Trace{};
  tr.f.resize(T + 1, P);
  tr.loss.resize(T + 1);
  for (Mat<double>* m : {&tr.logit_mean, &tr.logit_std, &tr.logit_quantile}) m->setZero(T + 1, P);
  tr.load.setZero(T + 1, 3);
  tr.agg.setZero(T + 1, 5);
  tr.rms.setZero(T + 1, 4);
  tr.phi1.assign(T + 1, Mat<double>());
  tr.phi2 = tr.gated = tr.g2 = tr.phi1;
}

// The populations every particle march (regimes II and III) has, and the steps that act on them
// alone: the residual neurons of h1 (with the router's backward noise), the experts' router
// logits, and the residual neurons of hagg with the readout. Each march derives from it and adds
// its expert neurons (docs/dmft_moe_regime2.md and _regime3.md, section 3).
struct ParticleStream {
  const ParticleSolveOptions& opt;
  const StreamConstants& cs;
  const Mat<double>& XXt;
  const Vec<double>& y;
  // The neurons of h1 and hagg (S of them, this process's rows; the only populations split over
  // ranks) and the particles (E routers; every rank holds all of them).
  const Population pop, routers;
  const int S, E, P, T, n;  // S: the neuron rows this process holds
  uint64_t seed = 0;

  // residual neurons of h1
  Mat<double> U1, A1, X1, PD1, RhoR, Phi1;
  CausalChol LPhi1;
  // particles: router logit histories
  Mat<double> ZetaR, GR, YR, GDR, KGR;
  CausalChol LGR;
  // residual neurons of hagg, with the readout
  Mat<double> Zo, Zh, Zw, Cz;
  Vec<double> Z, Wh;
  CausalChol Lz;
  Moe2Trace tr;
  // Pair estimator (opt.pairs(); docs/dmft_moe_regime2.md section 8): the router's sums of update
  // directions MR [particle m, h1 neuron i] with Adam's moments, the per-neuron groups' moments,
  // and the inputs x (the input layer's entries need them, not only x x^T).
  const Mat<double>* x = nullptr;
  Mat<double> MR, mR, vR;
  EntrywiseSteps steps;

  ParticleStream(const ParticleSolveOptions& o, const StreamConstants& k, const Mat<double>& xxt, const Vec<double>& yy)
      : opt(o), cs(k), XXt(xxt), y(yy), pop(population(o.samples, "dmft.samples")),
        routers(whole_population(o.expert_samples)), S(pop.rows), E(o.expert_samples), P(static_cast<int>(xxt.rows())), T(o.T),
        n((o.T + 1) * static_cast<int>(xxt.rows())), steps(o.optimizer, o.beta1, o.beta2) {
    if (o.pairs()) refuse_sample_split("the particle pair estimator (optim.kind = signgd or adam)");
  }

  // The initial h1 fields u1(0) ~ N(0, sigma_in^2 x x^T) and the router's backward noise.
  void draw_h1(Rng& rng) {
    const Mat<double> Lx =
        Eigen::LLT<Mat<double>>(XXt + 1e-12 * XXt.diagonal().maxCoeff() * Mat<double>::Identity(P, P)).matrixL();
    U1 = neurons(P, rng, false) * Lx.transpose() * cs.sigma_in;
    RhoR = neurons(n, rng, true);
  }
  void draw_hagg(Rng& rng) {
    Zo = neurons(n, rng, false);
    Z = neurons(1, rng, true).col(0) * cs.c_out;
  }
  // White noise of all S neurons from the stream, of which this process keeps its rows.
  Mat<double> neurons(int cols, Rng& rng, bool negate_partner) const {
    return pop.mine(white(pop.S, cols, rng, opt.antithetic, negate_partner));
  }

  void allocate_stream() {
    for (Mat<double>* m : {&A1, &X1, &PD1}) m->setZero(S, n);
    for (Mat<double>* m : {&GR, &YR, &GDR}) m->setZero(E, n);
    for (Mat<double>* m : {&Phi1, &KGR}) m->setZero(n, n);
    for (CausalChol* l : {&LPhi1, &LGR}) l->init(n);
    Zh.setZero(S, T + 1);
    Zw.setZero(S, T + 1);
    Cz.setZero(T + 1, T + 1);
    Lz.init(T + 1);
    Wh.setZero(n);
    allocate_trace(tr, T, P);
    if (opt.pairs()) MR.setZero(E, S);
  }

  double S_all() const { return double(pop.S); }

  // h1 at step k: activations, kernel row, whitening; a dead pivot of L_Phi1 kills the columns of
  // every noise sampled through it (the router's and `expert_noise`).
  void h1_forward(int k, Mat<double>& a1k, Mat<double>& d1k, Mat<double>& expert_noise) {
    const int K0 = k * P;
    act_both(opt.phi, U1, a1k, d1k);
    A1.middleCols(K0, P) = a1k;
    kernel_row(a1k, A1, pop, K0, P, Phi1, &LPhi1, opt.jitter);
    LPhi1.kill_dead_noise(ZetaR, K0, P);
    LPhi1.kill_dead_noise(expert_noise, K0, P);
    LPhi1.whiten_block(A1, X1, K0, P);
    tr.phi1[k] = Phi1.block(K0, K0, P, P);
  }
  // Phi1(k, s)^T for s < k, [k P, P]: what the update terms fold with.
  Mat<double> phi1_past(int k) const {
    return k > 0 ? Mat<double>(Phi1.block(k * P, 0, P, k * P).transpose()) : Mat<double>();
  }

  // Router logits of step k: source, forward response, update (regime II/III section 3).
  Mat<double> router_logits(int k, const Mat<double>& a1k, const Mat<double>& past) const {
    const int K0 = k * P;
    Mat<double> psi = cs.c_router * LPhi1.sample_block(ZetaR, K0, P);
    if (k > 0) {
      psi.noalias() +=
          (cs.c_router / std::sqrt(cs.nu)) * (YR.leftCols(K0) * pop.mean_over(RhoR.leftCols(K0).transpose() * a1k, S_all()));
      if (opt.pairs()) psi.noalias() += (cs.lr_router / S) * (MR * a1k);
      else psi.noalias() += cs.lr_router * (GDR.leftCols(K0) * past);
    }
    return psi;
  }

  // Step k's routing: the logits, the particle gates (K selected per token) and the logit law.
  Mat<double> route(int k, const Mat<double>& a1k, const Mat<double>& past, int K, Mat<double>& ghat, Mat<double>& q,
                    std::vector<std::vector<int>>& sel) {
    Mat<double> psi = router_logits(k, a1k, past);
    particle_gates(opt, K, psi, ghat, q, sel);
    record_logits(tr, k, opt.routing == Routing::topk, psi, sel);
    return psi;
  }

  // The readout's history at step k and its causal factor; dead pivots kill `time_noise` columns.
  void readout_history(int k, Mat<double>& time_noise) {
    Zh.col(k) = Z;
    const Mat<double> Crow = pop.mean_over(Z.transpose() * Zh.leftCols(k + 1), S_all());
    Cz.block(k, 0, 1, k + 1) = Crow;
    Cz.block(0, k, k + 1, 1) = Crow.transpose();
    Lz.extend(Crow, k, 1, opt.jitter);
    Lz.kill_dead_noise(time_noise, k, 1);
    Lz.whiten_block(Zh, Zw, k, 1);
  }

  // Records the particles' router backward gr of step k (history, kernel, factor, whitening).
  void router_backward(int k, const Mat<double>& gr, const Vec<double>& w) {
    const int K0 = k * P;
    GR.middleCols(K0, P) = gr;
    GDR.middleCols(K0, P) = gr.array().rowwise() * w.transpose().array();
    kernel_row(gr, GR, routers, K0, P, KGR, &LGR, opt.jitter);
    LGR.kill_dead_noise(RhoR, K0, P);
    LGR.whiten_block(GR, YR, K0, P);
  }

  // The router's part of the h1 backward at step k: source, equal-time response, update.
  Mat<double> router_back(int k, const Mat<double>& gr) const {
    const int K0 = k * P;
    Mat<double> back = (cs.c_router * std::sqrt(cs.nu)) * LGR.sample_block(RhoR, K0, P);
    back.noalias() +=
        (cs.c_router * cs.nu) * (X1.leftCols(K0 + P) * ((ZetaR.leftCols(K0 + P).transpose() * gr) / double(E)));
    if (k > 0 && opt.pairs()) back.noalias() += (cs.lr_router * cs.nu / E) * (MR.transpose() * gr);
    else if (k > 0) back.noalias() += (cs.lr_router * cs.nu) * (PD1.leftCols(K0) * KGR.block(K0, 0, P, K0).transpose());
    return back;
  }

  // The updates that close step k: the h1 fields (backward `back`) and the readout.
  void close_step(int k, const Mat<double>& a1k, const Mat<double>& d1k, const Mat<double>& back,
                  const Mat<double>& hagg, const Vec<double>& w) {
    PD1.middleCols(k * P, P) = a1k.array().rowwise() * w.transpose().array();
    const Mat<double> g1w = d1k.cwiseProduct(back).array().rowwise() * w.transpose().array();
    if (opt.pairs()) {
      // entries: input c_id = sum_mu w g1_i x_mu,d (the field moves by u(c) x^T); router
      // c_mi = sum_mu w g_r,m a1_i; readout c_i = sum_mu w hagg_i. With u(c) = c: the SGD lines below.
      steps.input(g1w, *x, cs.lr_in, cs.eps_in, U1);
      steps.entries.noalias() = GDR.middleCols(k * P, P) * a1k.transpose();
      steps.accumulate(MR, mR, vR, cs.eps_router);
      steps.readout(hagg, w, cs.lr_out, cs.eps_out, Z);
      return;
    }
    U1.noalias() += cs.lr_in * (g1w * XXt);
    Z.noalias() += cs.lr_out * (hagg * w);
  }

  // f, the loss and the error weights of step k from hagg.
  Vec<double> output(int k, const Mat<double>& hagg) {
    const Vec<double> f = pop.mean_over(hagg.transpose() * Z, S_all());
    const Vec<double> delta = y - f;
    tr.f.row(k) = f.transpose();
    tr.loss[k] = delta.squaredNorm() / P;
    const Vec<double> w = (2.0 / P) * delta;
    Wh.segment(k * P, P) = w;
    return w;
  }
};

// Replicate means and errors of independent traces (both particle regimes' result layout).
Moe2DmftResult collect_particle_traces(const std::vector<Moe2Trace>& runs, int T);

}  // namespace moedmft::dmft
