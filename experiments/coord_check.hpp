// Coordinate check: numerical verification of the scaling calculus (scaling.md, "Numerical
// verification"). Trains a few steps at several sizes along a regime's ladder and several seeds,
// fits the log-log slope of every diagnostics column (model.md section 6) against the ladder
// scale n, and compares it with the exponent the calculus predicts (scaling::diagnose).
#pragma once
#include <array>
#include <string>
#include <vector>

#include "models/parameterization.hpp"
#include "solver/scaling/solve.hpp"

namespace moedmft {

// ---- the ladder ------------------------------------------------------------------------------
struct CoordCheckOptions {
  std::string regime = "I";       // I, II, III
  std::string param = "mup-I-sgd";  // built-in table name or TOML file
  std::string optimizer = "sgd";  // sgd | adam
  std::string routing = "topk";   // topk | soft (regime I only; II and III are soft, K = M)
  std::vector<int> sizes;         // ladder scale n; empty: default_sizes(regime)
  int seeds = 3;                  // init seeds 1..seeds (the data seed is fixed)
  int steps = 3;                  // training steps; diagnostics after every step
  double lr = -1;                 // base LR; < 0: coord_lr's default
  int batch = 256;                // full-batch: P = batch training points
  double readout_init_knob = 0.1; // param.knobs.init.out (constant factor only; 1 = the table as is)
  int parallel = 0;               // threads over points (0: what OpenMP would use)
  double tolerance = 0.15;        // verdict: prediction inside the CI widened by this much
  std::vector<std::string> sets;  // extra --set key=value overrides for every point
  std::string output;             // HDF5 results ("" = none)
};
std::vector<int> default_sizes(const std::string& regime);
double default_lr(const std::string& optimizer);
// The LR a run uses: o.lr, or default_lr, halved for soft routing (regime I soft, regimes II
// and III: all gates active; at the full default the smallest soft ladder point overshoots).
double coord_lr(const CoordCheckOptions& o);

// Shape of the ladder point at scale n: I: N = Ne = n, M = 8, K = 2 (topk) or 8 (soft);
// II: N = n, Ne = 16, M = K = n/16 (soft); III: N = Ne = n, M = K = n/16 (soft).
struct LadderPoint {
  int N, Ne, M, K;
};
LadderPoint ladder_point(const std::string& regime, int n, const std::string& routing);
// The --set overrides of one training run (user sets last, so they win).
std::vector<std::string> ladder_sets(const CoordCheckOptions& o, int n, int seed);

// ---- the fit ---------------------------------------------------------------------------------
// Two-sided 97.5% quantile of Student's t with df degrees of freedom.
double t_quantile_975(int df);

// OLS of log(value) on log(n) over all finite, positive samples, 95% CI from the t-distribution
// with samples - 2 degrees of freedom. valid = false with fewer than 3 usable samples or fewer
// than 2 distinct n.
struct SlopeFit {
  bool valid = false;
  double slope = 0, lo = 0, hi = 0, intercept = 0, stderr_ = 0;
  int samples = 0;
};
SlopeFit fit_slope(const std::vector<double>& n, const std::vector<double>& value);

// ---- the prediction --------------------------------------------------------------------------
// Predicted ladder exponent of a diagnostics column at a diag step (0 = init: only init terms
// exist; >= 1: every term). With a zero-init readout the first step only trains the readout
// (b_z = W_out(0) b_f = 0), so every other column is predicted at diag step - 1. has = false: the column has no counterpart in the calculus.
struct Prediction {
  bool has = false;
  bool zero = false;  // every contributing term is identically zero
  double exponent = 0;
  std::string atoms;  // the calculus terms it comes from ("max(psi.init, psi.eff, ...)")
};
struct PredictionContext {
  scaling::Diagnosis diagnosis;
  scaling::Diagnosis at_init;  // the init state: gradients of the first step (taken at init)
  scaling::Regime regime;
  scaling::ParamValues values{};  // the table's exponent vectors (weight RMS predictions)
  scaling::Optimizer opt = scaling::Optimizer::sgd;
  bool residual = false;
  std::array<bool, kNumGroups> zero_init{};
  bool readout_zero = false;  // zero-init readout: b_z = 0 at init, hidden layers start one step late
};
PredictionContext prediction_context(const ParamTable& t, const std::string& regime, const std::string& optimizer,
                                     bool residual = false);
Prediction predict_column(const std::string& column, const PredictionContext& ctx, long diag_step);

// Verdict of one column: "agree", "disagree", "zero" (measured zero, no prediction), "-" (no
// prediction), "n/a" (nothing to fit, e.g. gradients at init). measured_zero: the column is ~0
// relative to its non-zero siblings.
std::string coord_verdict(const Prediction& p, const SlopeFit& f, bool measured_zero, double tolerance);

// ---- the run ---------------------------------------------------------------------------------
struct CoordCheckResult {
  CoordCheckOptions options;
  std::vector<int> sizes, seeds;
  std::vector<long> diag_steps;
  std::vector<std::string> metrics;
  std::string config_toml, table_toml;  // the first point's resolved config; the table's text
  std::vector<double> values;  // [size, seed, diag_step, metric], NaN where a run diverged
  // per [diag_step, metric]
  std::vector<SlopeFit> fits;
  std::vector<Prediction> predictions;
  std::vector<std::string> verdicts;
  std::vector<int> measured_zero;
  int diverged = 0;
  double seconds = 0;
  double value(size_t s, size_t r, size_t d, size_t m) const {
    return values[((s * seeds.size() + r) * diag_steps.size() + d) * metrics.size() + m];
  }
};

// Fits, predictions and verdicts from the raw values (fills fits, predictions, verdicts).
void evaluate_coord_check(CoordCheckResult& r, const PredictionContext& ctx);
CoordCheckResult run_coord_check(const CoordCheckOptions& o, bool quiet = true);
// `text_attrs`: further string attributes on "/" (the printed table and summary), written in the
// same atomic write.
void write_coord_check(const std::string& path, const CoordCheckResult& r,
                       const std::vector<std::pair<std::string, std::string>>& text_attrs = {});

}  // namespace moedmft
