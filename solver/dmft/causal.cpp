#include "solver/dmft/causal.hpp"

#include <algorithm>
#include <cmath>

namespace moedmft::dmft {

Mat<double> psd_cholesky(const Mat<double>& C) {
  const int n = static_cast<int>(C.rows());
  Mat<double> Lf = Mat<double>::Zero(n, n);
  const double floor = 1e-14 * std::max(1.0, C.diagonal().cwiseAbs().maxCoeff());
  for (int j = 0; j < n; ++j) {
    const double d = C(j, j) - Lf.row(j).head(j).squaredNorm();
    if (d <= floor) continue;
    const double ljj = std::sqrt(d);
    Lf(j, j) = ljj;
    for (int i = j + 1; i < n; ++i)
      Lf(i, j) = (C(i, j) - Lf.row(i).head(j).dot(Lf.row(j).head(j))) / ljj;
  }
  return Lf;
}

void CausalChol::init(int n) {
  L = Mat<double>::Zero(n, n);
  dead.assign(n, 0);
}

void CausalChol::extend(const Mat<double>& C, int K0, int P, double rel_floor) {
  if (K0 > 0) {
    // L[K,0:K0] = C[:,0:K0] L00^{-T}  <=>  L00 X^T = C^T
    Mat<double> Xt = L.topLeftCorner(K0, K0).triangularView<Eigen::Lower>().solve(C.leftCols(K0).transpose());
    for (int j = 0; j < K0; ++j)
      if (dead[j]) Xt.row(j).setZero();
    L.block(K0, 0, P, K0) = Xt.transpose();
  }
  Mat<double> Sd = C.middleCols(K0, P);
  if (K0 > 0) Sd.noalias() -= L.block(K0, 0, P, K0) * L.block(K0, 0, P, K0).transpose();
  const double scale = std::max(C.middleCols(K0, P).diagonal().cwiseAbs().maxCoeff(), 1e-300);
  const double floor = rel_floor * scale;
  auto Lkk = L.block(K0, K0, P, P);
  Lkk.setZero();
  for (int j = 0; j < P; ++j) {
    const double d = Sd(j, j) - Lkk.row(j).head(j).squaredNorm();
    if (!(d > floor)) {
      dead[K0 + j] = 1;
      Lkk(j, j) = 1.0;  // column below stays zero
      continue;
    }
    const double ljj = std::sqrt(d);
    Lkk(j, j) = ljj;
    for (int i = j + 1; i < P; ++i) Lkk(i, j) = (Sd(i, j) - Lkk.row(i).head(j).dot(Lkk.row(j).head(j))) / ljj;
  }
}

void CausalChol::whiten_block(const Mat<double>& F, Mat<double>& W, int K0, int P) const {
  Mat<double> R = F.middleCols(K0, P);
  if (K0 > 0) R.noalias() -= W.leftCols(K0) * L.block(K0, 0, P, K0).transpose();
  // W_k L_kk^T = R  <=>  L_kk W_k^T = R^T
  Mat<double> Wt = L.block(K0, K0, P, P).triangularView<Eigen::Lower>().solve(R.transpose());
  for (int j = 0; j < P; ++j)
    if (dead[K0 + j]) Wt.row(j).setZero();
  W.middleCols(K0, P) = Wt.transpose();
}

void CausalChol::kill_dead_noise(Mat<double>& noise, int K0, int P) const {
  for (int j = 0; j < P; ++j)
    if (dead[K0 + j]) noise.col(K0 + j).setZero();
}

Mat<double> CausalChol::sample_block(const Mat<double>& noise, int K0, int P) const {
  return noise.leftCols(K0 + P) * L.block(K0, 0, P, K0 + P).transpose();
}

Mat<double> CausalChol::right_solve_inverse(const Mat<double>& C) const {
  // X L = C  <=>  L^T X^T = C^T; dead components are zero (set before the back substitution,
  // which reads them through the rows of L)
  Mat<double> Ct = C.transpose();
  for (size_t j = 0; j < dead.size(); ++j)
    if (dead[j]) Ct.row(static_cast<Eigen::Index>(j)).setZero();
  Mat<double> Xt = L.transpose().triangularView<Eigen::Upper>().solve(Ct);
  for (size_t j = 0; j < dead.size(); ++j)
    if (dead[j]) Xt.row(static_cast<Eigen::Index>(j)).setZero();
  return Xt.transpose();
}

}  // namespace moedmft::dmft
