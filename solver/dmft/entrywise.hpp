// Entrywise optimizer rules of the DMFT (docs/dmft_entrywise.md): the direction u(c) applied to
// the O(1) normalised gradient entries c of one parameter group (ascent direction: the update is
// +lr u(c)). SGD u = c, SignGD u = sign(c) (sign(0) = 0), Adam u = m_hat / (sqrt(v_hat) + eps)
// with PyTorch's bias corrections, as models/optimizer.cpp. Internal to solver/dmft.
#pragma once
#include <cmath>

#include "solver/dmft/dmft.hpp"

namespace moedmft::dmft {

class EntrywiseRule {
 public:
  explicit EntrywiseRule(const DmftConfig& c) : kind_(c.optimizer), b1_(c.beta1), b2_(c.beta2), eps_(c.eps) {}
  // Groups with their own epsilons pass it to direction().
  EntrywiseRule(DmftOptimizer kind, double beta1, double beta2) : kind_(kind), b1_(beta1), b2_(beta2), eps_(0) {}
  // Call once per optimizer step, before the groups' directions.
  void begin_step() {
    ++t_;
    c1_ = 1.0 - std::pow(b1_, t_);
    r2_ = std::sqrt(1.0 - std::pow(b2_, t_));
  }
  // One group: entries c, its Adam moments m, v (resized to zero on first use), direction u.
  void direction(const Mat<double>& c, Mat<double>& m, Mat<double>& v, Mat<double>& u) const {
    direction(c, m, v, u, eps_);
  }
  void direction(const Mat<double>& c, Mat<double>& m, Mat<double>& v, Mat<double>& u, double eps) const {
    switch (kind_) {
      case DmftOptimizer::sgd:
        u = c;
        return;
      case DmftOptimizer::signgd:
        u = c.unaryExpr([](double e) { return e > 0 ? 1.0 : (e < 0 ? -1.0 : 0.0); });
        return;
      case DmftOptimizer::adam:
        if (m.rows() != c.rows() || m.cols() != c.cols()) {
          m.setZero(c.rows(), c.cols());
          v.setZero(c.rows(), c.cols());
        }
        m = b1_ * m + (1.0 - b1_) * c;
        v = b2_ * v + (1.0 - b2_) * c.cwiseProduct(c);
        u = (m.array() / c1_) / (v.array().sqrt() / r2_ + eps);
        return;
    }
  }

 private:
  DmftOptimizer kind_;
  double b1_, b2_, eps_;
  int t_ = 0;
  double c1_ = 1.0, r2_ = 1.0;
};

// The entrywise steps every MoE march takes (docs/dmft_moe.md section 8): one rule for all groups
// (call begin_step once per step), scratch for the entries and directions, and the moments of the
// per-neuron input and readout groups.
struct EntrywiseSteps {
  EntrywiseRule rule;
  Mat<double> entries, dir, m_in, v_in, m_out, v_out;
  EntrywiseSteps(DmftOptimizer kind, double beta1, double beta2) : rule(kind, beta1, beta2) {}
  void begin_step() { rule.begin_step(); }
  // sum += u(entries) for one group with moments m, v
  void accumulate(Mat<double>& sum, Mat<double>& m, Mat<double>& v, double eps) {
    rule.direction(entries, m, v, dir, eps);
    sum += dir;
  }
  // input layer: entries c_id = sum_mu (g1 o w)_i x_mu,d, so the fields move by lr u(c) x^T
  void input(const Mat<double>& g1w, const Mat<double>& x, double lr, double eps, Mat<double>& u1) {
    entries.noalias() = g1w * x;
    rule.direction(entries, m_in, v_in, dir, eps);
    u1.noalias() += lr * (dir * x.transpose());
  }
  // readout: entries c_i = sum_mu w hagg_i
  void readout(const Mat<double>& hagg, const Vec<double>& w, double lr, double eps, Vec<double>& z) {
    entries.noalias() = hagg * w;
    rule.direction(entries, m_out, v_out, dir, eps);
    z.noalias() += lr * dir.col(0);
  }
};

// One expert matrix pair's sums of update directions in the pair estimator: expert1 M1 [expert
// neuron, h1 neuron], expert2 M2 [hagg neuron, expert neuron], with Adam's moments per pair.
struct ExpertPairs {
  Mat<double> M1, M2, m1, v1, m2, v2;
  void allocate(int expert_neurons, int S) {
    M1.setZero(expert_neurons, S);
    M2.setZero(S, expert_neurons);
  }
  // Step k's entries: expert1 c_ji = sum_mu w g2_j a1_i (gd2 = g2 o w), expert2
  // c_ij = z_i sum_mu w a2_j (a2w: the expert neurons' activations, gated, summed with w; z before
  // its update).
  void update(EntrywiseSteps& s, const Mat<double>& gd2, const Mat<double>& a1k, const Vec<double>& a2w,
              const Vec<double>& z, double eps1, double eps2) {
    s.entries.noalias() = gd2 * a1k.transpose();
    s.accumulate(M1, m1, v1, eps1);
    s.entries.noalias() = z * a2w.transpose();
    s.accumulate(M2, m2, v2, eps2);
  }
};

}  // namespace moedmft::dmft
