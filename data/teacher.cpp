// Seeded teacher-student data: Gaussian inputs labelled by a random dense or MoE teacher.
//
// Draw order from the single seeded stream: training inputs, teacher weights, training label
// noise, validation inputs, validation label noise. The training set therefore does not
// depend on P_val, and the noise draws are consumed whether or not they are used, so the
// validation inputs do not depend on label_noise either.
#include <algorithm>
#include <cmath>
#include <sstream>
#include <vector>

#include "data/dataset.hpp"
#include "models/memory_budget.hpp"
#include "models/random.hpp"

namespace moedmft {
namespace {

void fill_normal(Mat<double>& m, Rng& rng) {
  for (Eigen::Index i = 0; i < m.rows(); ++i)
    for (Eigen::Index j = 0; j < m.cols(); ++j) m(i, j) = rng.normal();
}

// One two-layer tanh network: y = tanh(x W1 / sqrt(D)) W2 / sqrt(hidden).
struct DenseTeacher {
  Mat<double> w1;  // [D, hidden]
  Mat<double> w2;  // [hidden, C]

  DenseTeacher(int D, int hidden, int C, Rng& rng) : w1(D, hidden), w2(hidden, C) {
    fill_normal(w1, rng);
    fill_normal(w2, rng);
  }

  // Explicit loops (not Eigen products) so the summation order, and hence every bit of
  // the result, is independent of vectorisation and threading.
  void apply(const double* x, double* out) const {
    const Eigen::Index D = w1.rows(), H = w1.cols(), C = w2.cols();
    const double in_scale = 1.0 / std::sqrt(static_cast<double>(D));
    const double out_scale = 1.0 / std::sqrt(static_cast<double>(H));
    for (Eigen::Index c = 0; c < C; ++c) out[c] = 0.0;
    for (Eigen::Index h = 0; h < H; ++h) {
      double pre = 0.0;
      for (Eigen::Index d = 0; d < D; ++d) pre += x[d] * w1(d, h);
      const double act = std::tanh(pre * in_scale);
      for (Eigen::Index c = 0; c < C; ++c) out[c] += act * w2(h, c);
    }
    for (Eigen::Index c = 0; c < C; ++c) out[c] *= out_scale;
  }
};

class Teacher {
 public:
  Teacher(const TeacherConfig& cfg, Rng& rng) : C_(cfg.C) {
    const int n = cfg.kind == TeacherKind::moe ? cfg.experts : 1;
    for (int e = 0; e < n; ++e) experts_.emplace_back(cfg.D, cfg.hidden, cfg.C, rng);
    if (cfg.kind == TeacherKind::moe) {
      router_.resize(cfg.D, cfg.experts);
      fill_normal(router_, rng);
    }
  }

  Mat<double> outputs(const Mat<double>& x) const {
    Mat<double> y = Mat<double>::Zero(x.rows(), C_);
    std::vector<double> one(C_), gates(experts_.size());
    for (Eigen::Index i = 0; i < x.rows(); ++i) {
      const double* xi = x.row(i).data();
      if (router_.size() == 0) {
        experts_[0].apply(xi, y.row(i).data());
        continue;
      }
      softmax_gates(xi, gates);
      for (size_t e = 0; e < experts_.size(); ++e) {
        experts_[e].apply(xi, one.data());
        for (int c = 0; c < C_; ++c) y(i, c) += gates[e] * one[c];
      }
    }
    return y;
  }

 private:
  // softmax(x Wr / sqrt(D)), shifted by the maximum logit for overflow safety.
  void softmax_gates(const double* x, std::vector<double>& g) const {
    const Eigen::Index D = router_.rows(), E = router_.cols();
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));
    double top = -INFINITY;
    for (Eigen::Index e = 0; e < E; ++e) {
      double z = 0.0;
      for (Eigen::Index d = 0; d < D; ++d) z += x[d] * router_(d, e);
      g[e] = z * scale;
      top = std::max(top, g[e]);
    }
    double sum = 0.0;
    for (Eigen::Index e = 0; e < E; ++e) sum += (g[e] = std::exp(g[e] - top));
    for (Eigen::Index e = 0; e < E; ++e) g[e] /= sum;
  }

  int C_;
  std::vector<DenseTeacher> experts_;
  Mat<double> router_;  // [D, experts]; empty for the dense teacher
};

void require(bool ok, const std::string& field, const std::string& rule, const std::string& got) {
  if (!ok) throw ConfigError(field + " must be " + rule + " (got " + got + ")");
}

void validate_config(const TeacherConfig& c) {
  require(c.P >= 1, "data.P", ">= 1", std::to_string(c.P));
  require(c.P_val >= 0, "data.P_val", ">= 0", std::to_string(c.P_val));
  require(c.D >= 1, "data.D", ">= 1", std::to_string(c.D));
  require(c.C >= 1, "data.C", ">= 1", std::to_string(c.C));
  require(c.hidden >= 1, "data.hidden", ">= 1", std::to_string(c.hidden));
  if (c.kind == TeacherKind::moe) require(c.experts >= 1, "data.experts", ">= 1", std::to_string(c.experts));
  std::ostringstream noise;
  noise << c.label_noise;
  if (c.task == TaskKind::classification)
    require(c.label_noise >= 0.0 && c.label_noise <= 1.0, "data.label_noise",
            "a flip probability in [0, 1] for classification", noise.str());
  else
    require(c.label_noise >= 0.0 && std::isfinite(c.label_noise), "data.label_noise",
            "a finite standard deviation >= 0 for regression", noise.str());
  // Guard the allocations against overflowing int/Eigen::Index arithmetic.
  const double cells = (static_cast<double>(c.P) + c.P_val) * std::max(c.D, c.C);
  require(cells <= 4e9, "data.P", "small enough that (P + P_val) * max(D, C) <= 4e9", std::to_string(c.P));
  // inputs, teacher activations and outputs, targets: float64, with one temporary of each
  const double rows = static_cast<double>(c.P) + c.P_val;
  require_memory(2 * 8 * rows * (double(c.D) + c.hidden + 2.0 * c.C), "data.P/data.P_val/data.D",
                 "the teacher dataset", std::to_string(static_cast<long long>(rows)) + " points of D = " +
                                            std::to_string(c.D) + " inputs");
}

// Turns teacher outputs into targets, consuming a fixed number of draws per point.
Dataset label(const TeacherConfig& cfg, Mat<double> x, const Mat<double>& out, Rng& rng) {
  Dataset ds;
  ds.x = std::move(x);
  const Eigen::Index P = ds.x.rows();
  if (cfg.task == TaskKind::regression) {
    ds.y = out;
    for (Eigen::Index i = 0; i < P; ++i)
      for (int c = 0; c < cfg.C; ++c) ds.y(i, c) += cfg.label_noise * rng.normal();
    return ds;
  }
  const int K = cfg.C == 1 ? 2 : cfg.C;
  ds.num_classes = K;
  ds.labels.resize(P);
  for (Eigen::Index i = 0; i < P; ++i) {
    int cls = 0;
    if (cfg.C == 1) {
      cls = out(i, 0) > 0.0 ? 1 : 0;
    } else {
      for (int c = 1; c < cfg.C; ++c)
        if (out(i, c) > out(i, cls)) cls = c;
    }
    const double u = rng.uniform(), v = rng.uniform();
    if (u < cfg.label_noise) cls = std::min(K - 1, static_cast<int>(v * K));
    ds.labels[i] = cls;
  }
  ds.y = targets_from_labels(ds.labels, K, cfg.C == 1);
  return ds;
}

std::string describe(const TeacherConfig& c) {
  std::ostringstream s;
  s << "teacher " << (c.kind == TeacherKind::moe ? "moe" : "dense") << ' '
    << (c.task == TaskKind::regression ? "regression" : "classification") << " P=" << c.P;
  if (c.P_val > 0) s << " P_val=" << c.P_val;
  s << " D=" << c.D << " C=" << c.C << " hidden=" << c.hidden;
  if (c.kind == TeacherKind::moe) s << " experts=" << c.experts;
  s << " noise=" << c.label_noise << " seed=" << c.seed;
  return s.str();
}

}  // namespace

TrainValSplit make_teacher_dataset(const TeacherConfig& cfg) {
  validate_config(cfg);
  Rng rng(cfg.seed);
  Mat<double> x_train(cfg.P, cfg.D);
  fill_normal(x_train, rng);
  const Teacher teacher(cfg, rng);

  TrainValSplit split;
  const Mat<double> out_train = teacher.outputs(x_train);
  split.train = label(cfg, std::move(x_train), out_train, rng);
  split.train.description = describe(cfg);

  Mat<double> x_val(cfg.P_val, cfg.D);
  fill_normal(x_val, rng);
  const Mat<double> out_val = teacher.outputs(x_val);
  split.val = label(cfg, std::move(x_val), out_val, rng);
  split.val.description = describe(cfg) + " split=val";
  return split;
}

}  // namespace moedmft
