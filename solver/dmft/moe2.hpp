// Regime-II DMFT of the MLP-MoE: N, M, K -> infinity with nu = M/N and kappa = K/M fixed, the
// expert width Ne fixed (and kept exact). Full-batch SGD on the simulator's mean-squared loss.
// Derivation and every scale factor: docs/dmft_moe_regime2.md.
//
// Three populations: residual neurons of h1 (S samples), experts as exchangeable particles (S_e
// samples, each with its router logit and its Ne hidden neurons), and residual neurons of hagg
// (S samples, with the readout). The router, expert1 and expert2 matrices are hidden-to-hidden
// between infinite populations, so each carries Gaussian sources, forward and backward response
// terms and update terms; sums over experts are particle averages (softmax/renormalisation
// normalisers and the top-K threshold included: top-K selects the kappa S_e largest particle
// logits per token, the empirical kappa-quantile of the logit law).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "models/parameterization.hpp"
#include "models/types.hpp"
#include "solver/dmft/moe.hpp"

namespace moedmft::dmft {

// The constants every particle limit (regimes II and III) shares, multipliers folded into
// effective weights. Gamma is the O(1) gate scale: g_m = (Gamma / M) ghat_m, ghat = gate_fn(psi)
// (divided by the particle mean of the selected gate_fn values when the gates are normalised).
struct StreamConstants {
  double sigma_in = 1, lr_in = 0;       // s_in sigma_in; s_in^2 eta_in / N
  double c_router = 1, lr_router = 0;   // sqrt(N) s_r sigma_r; s_r^2 eta_r
  double c_expert1 = 1;                 // sqrt(N) s_1 sigma_1
  double c_out = 0, lr_out = 0;         // N s_out sigma_out; N s_out^2 eta_out
  double gate = 1;                      // Gamma
  double nu = 1.0 / 16;                 // M / N
  double kappa = 1;                     // K / M
  std::string vanishing;                // terms absent from the limit, with their power of N
  // SignGD/Adam (regime II; docs/dmft_moe_regime2.md section 8): each lr_* is then the field's
  // step per unit direction, and the epsilons are in the units of the march's O(1) entries.
  double eps_in = 0, eps_router = 0, eps_out = 0;
};

// Fills the shared constants from a resolved table at one shape (normalised = softmax gates or
// renormalisation, whose normaliser already carries the 1/M).
void fill_stream_constants(const ResolvedParam& p, const Shape& shape, bool normalised, StreamConstants& k,
                           bool entrywise = false);

// The limit rule of both particle regimes (moe.hpp apply_limit_rule) on constants resolved at
// the shape (a) and at the doubled ladder (b): the gate scale must stay put, then the shared
// constants and the regime's `own` (pointers into a, values in b) stay, vanish or are refused.
void apply_stream_limit_rule(const std::string& table, const char* regime, const char* ladder, bool normalised,
                             StreamConstants& a, const StreamConstants& b, const std::vector<LimitConstant>& own,
                             bool keep_vanishing);

// A particle regime's constants: `limit` (a limitN_constants function, called with
// entrywise = inputs.adam_like) resolved at the shape and at the doubled ladder `wide`, then the
// limit rule on the shared constants and the regime's expert1 LR and expert2 init/LR, which both
// regimes' constants carry. entrywise_ok: the regime has a SignGD/Adam limit.
template <class Limit>
auto particle_limit_constants(const ParamTable& table, const Shape& shape, const Shape& wide, int m_base,
                              const ResolveInputs& inputs, bool normalised, bool keep_vanishing, const char* regime,
                              const char* ladder, Limit limit, bool entrywise_ok = false) {
  if (inputs.adam_like && !entrywise_ok)
    throw ConfigError(std::string("optim.kind: the regime-") + regime +
                      " MoE limit is derived for SGD (allowed: \"sgd\")");
  auto a = limit(resolve(table, shape, m_base, inputs), shape, normalised, inputs.adam_like);
  const auto b = limit(resolve(table, wide, m_base, inputs), wide, normalised, inputs.adam_like);
  apply_stream_limit_rule(table.name, regime, ladder, normalised, a, b,
                          {{"expert1 lr", &a.lr_expert1, b.lr_expert1},
                           {"expert2 init_std", &a.c_expert2, b.c_expert2},
                           {"expert2 lr", &a.lr_expert2, b.lr_expert2}},
                          keep_vanishing);
  return a;
}

// Width-independent constants of the regime-II limit.
struct Moe2LimitConstants : StreamConstants {
  double lr_expert1 = 0;                 // s_1^2 eta_1
  double c_expert2 = 0, lr_expert2 = 0;  // Gamma s_2 sigma_2 sqrt(Ne/M); Gamma^2 s_2^2 eta_2 / M^2
  int Ne = 16;                           // expert width (finite, exact)
  double eps_expert1 = 0, eps_expert2 = 0;  // SignGD/Adam (see StreamConstants)
};

// Constants of a resolved table at one shape (normalised = softmax gates or renormalisation;
// entrywise: SignGD's and Adam's).
Moe2LimitConstants limit2_constants(const ResolvedParam& p, const Shape& shape, bool normalised,
                                    bool entrywise = false);

// Resolves the table at the shape and at twice its N, M and K (Ne fixed). A constant may stay
// fixed or vanish (negative power of N: the limit keeps 0, e.g. muP's expert2 init term, unless
// keep_vanishing holds it at its value at `shape`: the limit with that term at the run's size);
// a growing constant throws ConfigError naming the group and the power of N.
Moe2LimitConstants regime2_constants(const ParamTable& table, const Shape& shape, int m_base,
                                     const ResolveInputs& inputs, bool normalised, bool keep_vanishing = false);

// The solver knobs and model options every particle (regime II/III) solve shares.
struct ParticleSolveOptions {
  int T = 50;                 // full-batch steps (outputs at t = 0..T)
  int samples = 2048;         // residual neurons per population (h1 and hagg) and replicate
  int expert_samples = 1024;  // expert particles S_e per replicate
  int replicates = 4;         // independent solves; error bars are their standard error
  uint64_t seed = 1;
  bool antithetic = true;     // pairs with negated readout and backward noise: f(0) = 0 exactly
  double jitter = 1e-9;       // relative pivot floor of the causal Cholesky factors
  Activation phi = Activation::gelu;
  Routing routing = Routing::soft;
  GateFn gate = GateFn::sigmoid;
  bool renormalize = false;
  // SignGD and Adam run the pair estimator (regime II only); pair_estimator also runs it under
  // SGD (a cross-check of the kernel march).
  DmftOptimizer optimizer = DmftOptimizer::sgd;
  double beta1 = 0.9, beta2 = 0.999;
  bool pair_estimator = false;
  bool pairs() const { return pair_estimator || optimizer != DmftOptimizer::sgd; }
  bool normalised() const { return gate == GateFn::softmax || renormalize; }
  int selected_at(double kappa) const;  // kappa S_e: particles selected per token
  // ConfigError naming the field, for the checks both regimes share (nu = M/N, kappa = K/M).
  void validate_common(double nu, double kappa) const;
};

struct Moe2DmftConfig : ParticleSolveOptions {
  Moe2LimitConstants k;
  int selected() const { return selected_at(k.kappa); }
  void validate() const;      // ConfigError naming the field
};

// Bytes one replicate's march holds (the solve holds min(replicates, threads) of them).
double moe2_march_bytes(const Moe2DmftConfig& cfg, int P);

// Every [T+1, ...] output is the replicate mean; *_err its standard error.
struct Moe2DmftResult {
  Mat<double> f, f_err;                   // [T+1, P]
  std::vector<double> loss, loss_err;     // [T+1] mean_mu (f - y)^2
  // logit law per token over the particles: mean, std, and the selection threshold q* (the
  // kappa S_e-th largest logit; NaN for soft routing)
  Mat<double> logit_mean, logit_mean_err, logit_std, logit_std_err, logit_quantile, logit_quantile_err;
  Mat<double> load, load_err;             // [T+1, 3]: particle load mean (= kappa), std, dead fraction
  Mat<double> agg, agg_err;               // [T+1, 5]: RMS of hagg, init, propagating, effective, cross
  Mat<double> rms, rms_err;               // [T+1, 4]: RMS of h1, psi, a (expert act), hagg
  std::vector<Mat<double>> phi1, phi2, gated, g2;  // equal-time [T+1] x [P, P]: <a1 a1>, <a2 a2>,
                                                   // <ghat a2 ghat a2>, <g2 g2> (expert neurons)
  Mat<double> readout_kernel;             // [T+1, T+1]
  std::vector<Mat<double>> f_replicates;
  std::vector<std::vector<double>> loss_replicates;
};

Moe2DmftResult solve_moe2_dmft(const Moe2DmftConfig& cfg, const Mat<double>& x, const Vec<double>& y);

// Particle gates of one step: psi [S_e, P] -> ghat [S_e, P] (0 where not selected) and the
// gate_fn values q (for the backward). Exposed for the test against a finite network's gates.
// K: particles selected per token (selected() of the config; every particle for soft routing).
void particle_gates(const ParticleSolveOptions& cfg, int K, const Mat<double>& psi, Mat<double>& ghat, Mat<double>& q,
                    std::vector<std::vector<int>>& selected);
// dL/dpsi of every particle (in units of -(w/N)) from dL/dghat = -(w/N) chi.
Mat<double> particle_gate_backward(const ParticleSolveOptions& cfg, const Mat<double>& q, const Mat<double>& chi,
                                   const std::vector<std::vector<int>>& selected);

}  // namespace moedmft::dmft
