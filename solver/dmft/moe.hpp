// Regime-I DMFT of the MLP-MoE (N, Ne -> infinity with Ne/N fixed; M, K fixed), full-batch SGD on
// the simulator's mean-squared loss. Derivation, scale factors and the top-K tie rule:
// docs/dmft_moe.md. The limit is stated for the simulator's own network (model.md section 2) with
// one block, no residual and one output, so a finite run and the limit share every constant.
//
// Three single-site populations: residual neurons of h1 (field u1, router weights R = N s_r w_r),
// the hidden neurons of each expert (field u2_m), and the neurons of hagg (fields o_m per expert,
// readout z = N s_out w_out). expert1 and expert2 are hidden-to-hidden, so the march carries the
// forward and backward response terms (Stein estimates against causal Cholesky factors).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "models/parameterization.hpp"
#include "models/types.hpp"
#include "solver/dmft/dmft.hpp"

namespace moedmft::dmft {

// Width-independent constants of the limit; multipliers are folded into effective weights s*W.
struct MoeLimitConstants {
  double sigma_in = 1;                   // init std of s_in w_in: u1(0) ~ N(0, sigma_in^2 x x^T)
  double lr_in = 0;                      // s_in^2 eta_in / N
  double c_router = 0, lr_router = 0;    // N s_r sigma_r (0 with zero init), N s_r^2 eta_r
  double c_expert1 = 1, lr_expert1 = 0;  // sqrt(N) s_1 sigma_1, s_1^2 eta_1
  double c_expert2 = 1, lr_expert2 = 0;  // sqrt(Ne) s_2 sigma_2, s_2^2 eta_2 Ne/N
  double c_out = 0, lr_out = 0;          // N s_out sigma_out (0 with zero init), N s_out^2 eta_out
  double gate = 1;                       // gate factor x aggregation factor x residual multiplier
  double ratio = 1;                      // Ne / N
  // SignGD and Adam (docs/dmft_moe.md section 8): each lr_* above is then the field's step per
  // unit direction (in: s_in eta_in, router: N s_r eta_r, expert1: N s_1 eta_1, expert2:
  // Ne s_2 eta_2, out: N s_out eta_out) and each group's epsilon is taken to the units of the
  // march's O(1) gradient entries (the raw entry is gamma_g times it: in s_in/N, router s_r,
  // expert1 s_1/N, expert2 s_2/N, out s_out). 0 where the table's epsilon vanishes in the limit.
  double eps_in = 0, eps_router = 0, eps_expert1 = 0, eps_expert2 = 0, eps_out = 0;
};

// A group's effective weight s_g W (multiplier folded in): init std s_g sigma_g (0 with zero
// init) and SGD LR s_g^2 eta_g. Both regimes' limit constants are built from these.
inline double effective_std(const ResolvedParam& p, Group g) {
  return p[g].zero_init ? 0.0 : p[g].multiplier * p[g].init_std;
}
inline double effective_lr(const ResolvedParam& p, Group g) { return p[g].multiplier * p[g].multiplier * p[g].lr; }

// The power of 2 by which a constant changed when the ladder doubled (a at the shape, b at twice
// it): 0 when equal to 1e-9, NaN when only one of them is zero.
inline double doubling_power(double a, double b) {
  if (std::abs(a - b) <= 1e-9 * std::max(std::abs(a), std::abs(b))) return 0.0;
  return (a != 0.0 && b != 0.0) ? std::log2(std::abs(b / a)) : NAN;
}

// One constant of a limit: its value at the run's shape and at twice the ladder's size.
struct LimitConstant {
  const char* what;  // "expert2 init_std", for the messages
  double* value;
  double doubled;
};
// An entrywise limit's epsilons (a constant each, at the shape and at the doubled ladder): one
// that stays put is kept, one that falls with N is 0 in the limit (Adam's m / sqrt(v) alone), one
// that grows is refused naming the group (at large width Adam would become SGD with LR lr/eps).
void apply_eps_rule(const std::string& table, const char* regime, const char* ladder,
                    std::vector<LimitConstant> eps);
// The rule on the five groups' epsilons of any regime's constants (a at the shape, b doubled).
template <class Constants>
void apply_eps_rule(const std::string& table, const char* regime, const char* ladder, Constants& a,
                    const Constants& b) {
  apply_eps_rule(table, regime, ladder,
                 {{"in eps", &a.eps_in, b.eps_in},
                  {"router eps", &a.eps_router, b.eps_router},
                  {"expert1 eps", &a.eps_expert1, b.eps_expert1},
                  {"expert2 eps", &a.eps_expert2, b.eps_expert2},
                  {"out eps", &a.eps_out, b.eps_out}});
}

// The rule every particle regime applies: a constant that stays put is kept; one that falls with
// a negative power of N is absent from the limit (set to 0 unless keep_vanishing) and listed in
// the returned "what ~ N^p; ..." record; one that grows (or appears from 0) throws ConfigError
// naming the group and the power.
std::string apply_limit_rule(const std::string& table, const char* regime, const char* ladder,
                             std::vector<LimitConstant>& constants, bool keep_vanishing);

// Constants of a resolved table at one shape: SGD's, or (entrywise) SignGD's and Adam's.
MoeLimitConstants limit_constants(const ResolvedParam& p, const Shape& shape, bool entrywise = false);

// Resolves the table at the given shape and at twice its N and Ne; throws ConfigError naming the
// group and the power of N when a constant moves (the table has no regime-I limit, e.g. SP).
// inputs.adam_like: the SignGD/Adam constants (the table's Adam LRs and epsilons).
MoeLimitConstants regime1_constants(const ParamTable& table, const Shape& shape, int m_base,
                                    const ResolveInputs& inputs);

struct MoeDmftConfig {
  int T = 50;                // full-batch steps (outputs at t = 0..T)
  int samples = 1024;        // per population and replicate
  int replicates = 4;        // independent solves; error bars are their standard error
  uint64_t seed = 1;
  bool antithetic = true;    // pairs with negated readout/router/backward noise: f(0) = psi(0) = 0
  double jitter = 1e-9;      // relative pivot floor of the causal Cholesky factors
  Activation phi = Activation::gelu;
  int M = 8, K = 8;
  Routing routing = Routing::soft;
  GateFn gate = GateFn::sigmoid;
  bool renormalize = false;
  MoeLimitConstants k;
  // SignGD and Adam march the pair estimator (docs/dmft_moe.md section 8): the S x S update
  // matrices of expert1 and expert2. pair_estimator also runs it under SGD (a cross-check of the
  // kernel march).
  DmftOptimizer optimizer = DmftOptimizer::sgd;
  double beta1 = 0.9, beta2 = 0.999;
  bool pair_estimator = false;
  bool pairs() const { return pair_estimator || optimizer != DmftOptimizer::sgd; }
  void validate() const;     // ConfigError naming the field
};

// Every [T+1, ...] output is the replicate mean; *_err its standard error.
struct MoeDmftResult {
  Mat<double> f, f_err;                          // [T+1, P]
  std::vector<double> loss, loss_err;            // [T+1] mean_mu (f - y)^2 (PyTorch mse_loss)
  Mat<double> psi, psi_err;                      // [T+1, M*P] router logits, column m*P + mu
  Mat<double> gates;                             // [T+1, M*P]
  Mat<double> load;                              // [T+1, M] fraction of tokens routed to m
  // RMS (over tokens and neurons) of hagg and its four terms: init, propagating, effective, cross.
  Mat<double> agg, agg_err;                      // [T+1, 5]
  Mat<double> rms, rms_err;                      // [T+1, 3]: RMS of h1, a (experts), o (experts)
  std::vector<Mat<double>> phi1, phi2, g2;       // equal-time kernels [T+1] x [P, P] (experts: mean over m)
  Mat<double> readout_kernel;                    // [T+1, T+1] <z(t) z(s)>
  std::vector<Mat<double>> f_replicates;         // [R] each [T+1, P]
  std::vector<std::vector<double>> loss_replicates;
};

// x [P, D], y [P]: the full training set.
MoeDmftResult solve_moe_dmft(const MoeDmftConfig& cfg, const Mat<double>& x, const Vec<double>& y);

}  // namespace moedmft::dmft
