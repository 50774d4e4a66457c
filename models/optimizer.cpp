#include "models/optimizer.hpp"

#include <cmath>

#include "models/parallel.hpp"

namespace moedmft {

namespace {
const std::array<std::pair<const char*, OptimizerKind>, 4> kOptimizers = {{{"sgd", OptimizerKind::sgd},
                                                                          {"adam", OptimizerKind::adam},
                                                                          {"adamw", OptimizerKind::adamw},
                                                                          {"signgd", OptimizerKind::signgd}}};
const std::array<std::pair<const char*, ScheduleKind>, 3> kSchedules = {{{"constant", ScheduleKind::constant},
                                                                        {"warmup_cosine", ScheduleKind::warmup_cosine},
                                                                        {"wsd", ScheduleKind::wsd}}};
}  // namespace

OptimizerKind parse_optimizer(const std::string& s) { return parse_choice("optim.kind", s, kOptimizers); }
ScheduleKind parse_schedule(const std::string& s) { return parse_choice("optim.schedule", s, kSchedules); }
const char* to_string(OptimizerKind k) { return choice_name(k, kOptimizers); }
const char* to_string(ScheduleKind k) { return choice_name(k, kSchedules); }

namespace {

// Runs update(i) for every entry, vectorised (omp simd), and split over threads only for large
// groups (should_fork: a one-thread region costs more than a small group's update).
template <class Update>
void update_entries(Eigen::Index n, Update&& update) {
  if (should_fork(n > 65536)) {
#pragma omp parallel for simd schedule(static)
    for (Eigen::Index i = 0; i < n; ++i) update(i);
  } else {
#pragma omp simd
    for (Eigen::Index i = 0; i < n; ++i) update(i);
  }
}

// Restrict pointers and by-value scalars: the form GCC vectorises (sqrt and division included,
// with -fno-math-errno). Decoupled decay is a template parameter so the loop has no branch.
template <class T, bool kDecoupled>
void adam_update(Eigen::Index n, T* __restrict w, const T* __restrict grad, T* __restrict m, T* __restrict v, T lr,
                 T wd, T b1, T b2, T step_size, T root2, T eps) {
  update_entries(n, [=](Eigen::Index i) {
    T gi = grad[i];
    if constexpr (kDecoupled)
      w[i] -= lr * wd * w[i];
    else
      gi += wd * w[i];
    m[i] = b1 * m[i] + (T(1) - b1) * gi;
    v[i] = b2 * v[i] + (T(1) - b2) * gi * gi;
    w[i] -= step_size * m[i] / (std::sqrt(v[i]) / root2 + eps);
  });
}

}  // namespace

double ScheduleConfig::factor(int step) const {
  if (kind == ScheduleKind::constant) return 1.0;
  if (step < warmup_steps) return double(step + 1) / warmup_steps;
  if (kind == ScheduleKind::warmup_cosine) {
    const int span = std::max(1, total_steps - warmup_steps);
    const double progress = std::min(1.0, double(step - warmup_steps) / span);
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + std::cos(M_PI * progress));
  }
  // Warmup-stable-decay: flat, then a linear decay over the last decay_fraction of training.
  const int decay_steps = std::max(1, int(std::lround(decay_fraction * total_steps)));
  const int decay_start = total_steps - decay_steps;
  if (step < decay_start) return 1.0;
  const double progress = std::min(1.0, double(step - decay_start + 1) / decay_steps);
  return 1.0 - (1.0 - min_lr_ratio) * progress;
}

template <class T>
Optimizer<T>::Optimizer(const OptimizerConfig& config, const ResolvedParam& param)
    : config_(config), param_(param), m_(kNumGroups), v_(kNumGroups) {
  if (!(config.beta1 >= 0 && config.beta1 < 1)) throw ConfigError("optim.beta1: must lie in [0, 1)");
  if (!(config.beta2 >= 0 && config.beta2 < 1)) throw ConfigError("optim.beta2: must lie in [0, 1)");
}

template <class T>
void Optimizer<T>::step(std::vector<ParamTensor<T>>& params, const std::vector<Vec<T>>& grads) {
  const double schedule = config_.schedule.factor(t_);
  ++t_;
  const double b1 = config_.beta1, b2 = config_.beta2;
  const double correction1 = 1.0 - std::pow(b1, t_), correction2 = 1.0 - std::pow(b2, t_);
  for (int g = 0; g < kNumGroups; ++g) {
    if (Group(g) == Group::bias) continue;
    const ResolvedGroup& rg = param_.groups[g];
    const T lr = T(rg.lr * schedule), wd = T(rg.weight_decay);
    T* w = params[g].data.data();
    const T* grad = grads[g].data();
    const Eigen::Index n = params[g].data.size();
    switch (config_.kind) {
      case OptimizerKind::sgd:
        update_entries(n, [=](Eigen::Index i) { w[i] -= lr * (grad[i] + wd * w[i]); });
        break;
      case OptimizerKind::signgd:
        update_entries(n, [=](Eigen::Index i) {
          const T s = grad[i] > T(0) ? T(1) : (grad[i] < T(0) ? T(-1) : T(0));
          w[i] -= lr * (s + wd * w[i]);
        });
        break;
      case OptimizerKind::adam:
      case OptimizerKind::adamw: {
        if (m_[g].size() != n) {
          m_[g] = Vec<T>::Zero(n);
          v_[g] = Vec<T>::Zero(n);
        }
        const T step_size = T(double(lr) / correction1), root2 = T(std::sqrt(correction2));
        const T eps = T(rg.eps), tb1 = T(b1), tb2 = T(b2);
        T* m = m_[g].data();
        T* v = v_[g].data();
        if (config_.kind == OptimizerKind::adamw)
          adam_update<T, true>(n, w, grad, m, v, lr, wd, tb1, tb2, step_size, root2, eps);
        else
          adam_update<T, false>(n, w, grad, m, v, lr, wd, tb1, tb2, step_size, root2, eps);
        break;
      }
    }
  }
}

template class Optimizer<float>;
template class Optimizer<double>;

}  // namespace moedmft
