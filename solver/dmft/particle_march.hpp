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
#include "solver/dmft/causal.hpp"
#include "solver/dmft/moe2_march.hpp"
#include "solver/dmft/noise.hpp"

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

// Kernel row of step k from the new block Fk [rows, P] of history H, normalised by `inv`, written
// into K (both triangles); grown into its causal factor when L is given.
inline void kernel_row(const Mat<double>& Fk, const Mat<double>& H, double inv, int K0, int P, Mat<double>& K,
                       CausalChol* L, double jitter) {
  const Mat<double> Crow = (Fk.transpose() * H.leftCols(K0 + P)) * inv;
  K.block(K0, 0, P, K0 + P) = Crow;
  K.block(0, K0, K0 + P, P) = Crow.transpose();
  if (L) L->extend(Crow, K0, P, jitter);
}

// The Gaussian part of an init term W^T v, where the history's source through the same matrix
// is L zeta: the regression on that source's noise plus an independent residual. Cv = <v x>
// against the history x that L factors, V = <v v> (v has `rows` samples); zeta [S, n].
inline Mat<double> regression_on_source(const CausalChol& L, const Mat<double>& zeta, const Mat<double>& v,
                                        const Mat<double>& Cv, int k, int P, uint64_t seed) {
  const int n1 = k * P + P;
  Mat<double> Ct = Cv.transpose();  // [n1, P]
  for (int j = 0; j < n1; ++j)
    if (L.dead[j]) Ct.row(j).setZero();
  Mat<double> betaT = L.L.topLeftCorner(n1, n1).triangularView<Eigen::Lower>().solve(Ct);
  for (int j = 0; j < n1; ++j)
    if (L.dead[j]) betaT.row(j).setZero();
  const Mat<double> V = (v.transpose() * v) / double(v.rows());
  Rng rng(mix_seed(seed, 7000 + uint64_t(k)));
  const Mat<double> eps = white(static_cast<int>(zeta.rows()), P, rng, false, false);
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

// Replicate means and errors of independent traces (both particle regimes' result layout).
Moe2DmftResult collect_particle_traces(const std::vector<Moe2Trace>& runs, int T);

}  // namespace moedmft::dmft
