// White-noise draws and small reductions shared by the MoE marches (internal to solver/dmft).
#pragma once
#include <vector>

#include "models/random.hpp"
#include "models/types.hpp"

namespace moedmft::dmft {

// rows x cols standard normals; with antithetic pairs every odd row repeats (or negates) the
// row before it, so paired samples cancel odd moments exactly.
inline Mat<double> white(int rows, int cols, Rng& rng, bool antithetic, bool negate_partner) {
  Mat<double> w(rows, cols);
  for (int i = 0; i < rows; ++i) {
    if (antithetic && i % 2 == 1) {
      w.row(i) = negate_partner ? Mat<double>(-w.row(i - 1)) : Mat<double>(w.row(i - 1));
      continue;
    }
    for (int j = 0; j < cols; ++j) w(i, j) = rng.normal();
  }
  return w;
}

inline double mean_square(const Mat<double>& m) {
  return m.size() ? m.squaredNorm() / static_cast<double>(m.size()) : 0.0;
}

// Replicate mean of get(r), r = 0..R-1, and (if err) its standard error.
template <class Get>
void replicate_stats(int R, Get get, Mat<double>& mean, Mat<double>* err) {
  mean = get(0);
  for (int r = 1; r < R; ++r) mean += get(r);
  mean /= R;
  if (!err) return;
  err->setZero(mean.rows(), mean.cols());
  if (R < 2) return;
  for (int r = 0; r < R; ++r) err->array() += (get(r) - mean).array().square();
  *err = (err->array() / (R - 1.0) / R).sqrt();
}

// The replicate mean and error of f and the loss, and the per-replicate trajectories, for any
// trace/result pair with members f, loss (and f_err, loss_err, f_replicates, loss_replicates).
template <class Trace, class Result>
void trajectory_stats(const std::vector<Trace>& runs, Result& out) {
  const int R = static_cast<int>(runs.size()), T1 = static_cast<int>(runs.front().loss.size());
  replicate_stats(R, [&](int r) { return runs[r].f; }, out.f, &out.f_err);
  Mat<double> mean, err;
  replicate_stats(R, [&](int r) { return Mat<double>(Eigen::Map<const Mat<double>>(runs[r].loss.data(), T1, 1)); },
                  mean, &err);
  out.loss.assign(mean.data(), mean.data() + T1);
  out.loss_err.assign(err.data(), err.data() + T1);
  for (const Trace& run : runs) {
    out.f_replicates.push_back(run.f);
    out.loss_replicates.push_back(run.loss);
  }
}

// One replicate of a march: draw the noises from `seed`, allocate the histories, run t = 0..T;
// the trace carries the readout kernel Cz. x [P, D] (the pair estimator's input entries), XXt = x x^T.
template <class March, class Config>
auto march_once(const Config& cfg, const Mat<double>& x, const Mat<double>& XXt, const Vec<double>& y, uint64_t seed) {
  March mm(cfg, XXt, y);
  mm.x = &x;
  mm.draw(seed);
  mm.allocate();
  mm.run();
  mm.tr.cz = mm.Cz;
  return std::move(mm.tr);
}

}  // namespace moedmft::dmft
