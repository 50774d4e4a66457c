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

}  // namespace moedmft::dmft
