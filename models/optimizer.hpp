// SGD, Adam, AdamW and SignGD with per-group LR, epsilon and weight decay, and LR schedules.
#pragma once
#include <string>
#include <vector>

#include "models/network.hpp"
#include "models/parameterization.hpp"

namespace moedmft {

enum class OptimizerKind { sgd, adam, adamw, signgd };
enum class ScheduleKind { constant, warmup_cosine, wsd };

OptimizerKind parse_optimizer(const std::string& s);
ScheduleKind parse_schedule(const std::string& s);
const char* to_string(OptimizerKind k);
const char* to_string(ScheduleKind k);
// Adam-type optimizers take the table's Adam LR law; SGD takes the SGD law.
inline bool is_adam_like(OptimizerKind k) { return k != OptimizerKind::sgd; }

struct ScheduleConfig {
  ScheduleKind kind = ScheduleKind::constant;
  int warmup_steps = 0;
  int total_steps = 1;
  double min_lr_ratio = 0.0;   // floor of the decay, relative to the peak
  double decay_fraction = 0.2; // wsd: final fraction of steps that decays linearly
  double factor(int step) const;  // multiplier on every group's LR at 0-based `step`
};

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::sgd;
  double beta1 = 0.9, beta2 = 0.999;
  ScheduleConfig schedule;
};

// Semantics follow PyTorch: SGD and Adam apply weight decay as an L2 term added to the
// gradient; AdamW and SignGD decay decoupled (W -= lr * wd * W). The router bias group
// has no gradient and is skipped (it is updated by the load-balancing rule).
template <class T>
class Optimizer {
 public:
  Optimizer(const OptimizerConfig& config, const ResolvedParam& param);
  void step(std::vector<ParamTensor<T>>& params, const std::vector<Vec<T>>& grads);
  int steps_taken() const { return t_; }
  const OptimizerConfig& config() const { return config_; }
  // Moment buffers, exposed for checkpoints.
  std::vector<Vec<T>>& first_moments() { return m_; }
  std::vector<Vec<T>>& second_moments() { return v_; }
  void set_steps_taken(int t) { t_ = t; }

 private:
  OptimizerConfig config_;
  ResolvedParam param_;
  std::vector<Vec<T>> m_, v_;
  int t_ = 0;
};

extern template class Optimizer<float>;
extern template class Optimizer<double>;

}  // namespace moedmft
