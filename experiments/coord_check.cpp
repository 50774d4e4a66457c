#include "experiments/coord_check.hpp"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <limits>
#include <map>
#include <sstream>

#include "data/h5/h5.hpp"
#include "experiments/file_guard.hpp"
#include "experiments/progress.hpp"
#include "experiments/trainer.hpp"
#include "models/parallel.hpp"
#include "moedmft_version.hpp"

namespace moedmft {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string float_text(double v) {
  std::ostringstream s;
  s << std::setprecision(17) << v;
  std::string t = s.str();
  if (t.find_first_of(".eEni") == std::string::npos) t += ".0";
  return t;
}
}  // namespace

std::vector<int> default_sizes(const std::string& regime) {
  if (regime == "II") return {128, 256, 512, 1024};
  return {64, 128, 256, 512};  // I; III stays at M <= 32 experts of width 512 (2-core budget)
}

double default_lr(const std::string& optimizer) { return optimizer == "sgd" ? 0.2 : 0.03; }

double coord_lr(const CoordCheckOptions& o) {
  if (o.lr >= 0) return o.lr;
  return default_lr(o.optimizer) * (o.regime != "I" || o.routing == "soft" ? 0.5 : 1.0);
}

LadderPoint ladder_point(const std::string& regime, int n, const std::string& routing) {
  if (regime == "I") return {n, n, 8, routing == "soft" ? 8 : 2};
  const int M = std::max(1, n / 16);
  if (regime == "II") return {n, 16, M, M};
  if (regime == "III") return {n, n, M, M};
  throw ConfigError("--regime: unknown '" + regime + "' (allowed: I, II, III)");
}

std::vector<std::string> ladder_sets(const CoordCheckOptions& o, int n, int seed) {
  const LadderPoint p = ladder_point(o.regime, n, o.routing);
  const bool soft = o.regime != "I" || o.routing == "soft";
  std::vector<std::string> s = {
      "seed=" + std::to_string(seed), "data.seed=7", "data.teacher=\"dense\"", "data.task=\"regression\"",
      "data.P=" + std::to_string(o.batch), "data.P_val=0", "data.D=16", "model.N=" + std::to_string(p.N),
      "model.Ne=" + std::to_string(p.Ne), "model.M=" + std::to_string(p.M),
      std::string("model.routing=\"") + (soft ? "soft" : "topk") + "\"", "model.K=" + std::to_string(p.K),
      string_override("param.table", o.param), string_override("optim.kind", o.optimizer),
      "optim.lr=" + float_text(coord_lr(o)), "train.steps=" + std::to_string(o.steps),
      "train.batch_size=" + std::to_string(o.batch), "train.protocol=\"full_batch\"", "train.diag_every=1",
      "train.probe_size=64", "train.log_every=1000000",
      // readout init constant (not its exponent) shrunk, so that the vanishing f.init ~ n^-1/2
      // does not dominate the output error b_f = f - y at the small sizes (docs/coord_check.md)
      "param.knobs.init.out=" + float_text(o.readout_init_knob)};
  s.insert(s.end(), o.sets.begin(), o.sets.end());
  return s;
}

// ---- fit -----------------------------------------------------------------------------------
double t_quantile_975(int df) {
  static const double table[] = {0,     12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306,
                                 2.262, 2.228,  2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110,
                                 2.101, 2.093,  2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
                                 2.052, 2.048,  2.045, 2.042};
  if (df < 1) return kNaN;
  if (df <= 30) return table[df];
  // Cornish-Fisher expansion around the normal quantile (error < 1e-4 for df > 30)
  const double z = 1.959963984540054, d = df;
  return z + (z * z * z + z) / (4 * d) + (5 * std::pow(z, 5) + 16 * z * z * z + 3 * z) / (96 * d * d);
}

SlopeFit fit_slope(const std::vector<double>& n, const std::vector<double>& value) {
  SlopeFit f;
  std::vector<double> x, y;
  for (size_t i = 0; i < n.size() && i < value.size(); ++i)
    if (std::isfinite(value[i]) && value[i] > 0 && n[i] > 0) {
      x.push_back(std::log(n[i]));
      y.push_back(std::log(value[i]));
    }
  f.samples = int(x.size());
  if (f.samples < 3) return f;
  double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) mx += x[i], my += y[i];
  mx /= double(x.size());
  my /= double(x.size());
  double sxx = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); ++i) sxx += (x[i] - mx) * (x[i] - mx), sxy += (x[i] - mx) * (y[i] - my);
  if (sxx <= 1e-12) return f;
  f.slope = sxy / sxx;
  f.intercept = my - f.slope * mx;
  double rss = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double r = y[i] - f.intercept - f.slope * x[i];
    rss += r * r;
  }
  const int df = f.samples - 2;
  f.stderr_ = std::sqrt(rss / df / sxx);
  const double t = t_quantile_975(df);
  f.lo = f.slope - t * f.stderr_;
  f.hi = f.slope + t * f.stderr_;
  f.valid = true;
  return f;
}

// ---- prediction ----------------------------------------------------------------------------
PredictionContext prediction_context(const ParamTable& t, const std::string& regime, const std::string& optimizer,
                                     bool residual) {
  PredictionContext c;
  c.regime = scaling::regime_by_name(regime);
  c.opt = optimizer == "sgd" ? scaling::Optimizer::sgd : scaling::Optimizer::adam;
  c.diagnosis = scaling::diagnose(t, c.regime, c.opt, residual);
  c.at_init = scaling::diagnose(t, c.regime, c.opt, residual, true);
  c.values = scaling::param_values(t, c.opt);
  c.residual = residual;
  for (int g = 0; g < kNumGroups; ++g) c.zero_init[g] = t.groups[g].zero_init;
  c.readout_zero = c.zero_init[static_cast<int>(Group::out)];
  return c;
}

namespace {

Prediction zero_prediction(const std::string& why) {
  Prediction p;
  p.has = p.zero = true;
  p.atoms = why;
  return p;
}

// The max exponent of the named terms; at diag step 0 only terms of kind "init" (and backward
// W0-only terms) exist, everything built from an update is exactly zero.
Prediction max_of(const PredictionContext& ctx, const std::vector<std::string>& names, long step,
                  double shift = 0) {
  Prediction p;
  p.has = true;
  p.zero = true;
  for (const auto& name : names) {
    const scaling::TermValue& t = ctx.diagnosis.term(name);
    p.atoms += (p.atoms.empty() ? "" : ",") + name;
    const bool from_update = t.kind != "init" && t.name != "b_a.init" && t.name != "b_h1.experts_W0_init" &&
                             t.name != "b_psi.init" && t.name != "b_z.init" && t.name != "b_o.gate";
    if (t.zero || (step == 0 && from_update)) continue;
    const double e = t.exponent.to_double() + shift;
    p.exponent = p.zero ? e : std::max(p.exponent, e);
    p.zero = false;
  }
  if (names.size() > 1) p.atoms = "max(" + p.atoms + ")";
  return p;
}

Prediction node_terms(const PredictionContext& ctx, const std::string& node, const std::vector<std::string>& kinds,
                      long step) {
  std::vector<std::string> names;
  for (const auto& t : ctx.diagnosis.terms)
    if (!t.backward && t.node == node && (kinds.empty() || std::find(kinds.begin(), kinds.end(), t.kind) != kinds.end()))
      names.push_back(t.name);
  return max_of(ctx, names, step);
}

double term_exp(const PredictionContext& ctx, const std::string& name, bool* zero) {
  const scaling::TermValue& t = ctx.diagnosis.term(name);
  *zero = t.zero;
  return t.exponent.to_double();
}

}  // namespace

Prediction predict_column(const std::string& column, const PredictionContext& ctx, long diag_step) {
  std::string c = column;
  if (c.size() > 3 && c[0] == 'b' && std::isdigit(static_cast<unsigned char>(c[1]))) c = c.substr(c.find('/') + 1);
  // zero-init readout: the first update reaches only W_out; everything else lags one step
  const bool readout_only = c == "rms/f" || c == "coord/eff/out" || c == "coord/prop/out" || c == "grad_rms/out" ||
                            c == "weight_rms/out";
  const long lagged = ctx.readout_zero && !readout_only ? diag_step - 1 : diag_step;
  if (lagged < 0 && c.rfind("back/", 0) == 0) return zero_prediction("(b_z = 0: readout zero at init)");
  const long step = std::max(0L, lagged);
  if (c.rfind("grad_rms/", 0) == 0 && diag_step > 0 && lagged <= 0)  // gradient taken at b_z = 0
    return zero_prediction("(b_z = 0 at the first step)");
  const std::vector<std::string> prop = {"prop_ind", "prop_ret"};
  static const std::map<std::string, std::string> act = {{"rms/h1", "h1"},   {"rms/f", "f"},       {"rms/psi", "psi"},
                                                         {"rms/a", "a"},     {"rms/o", "o"},       {"rms/hagg", "hagg"},
                                                         {"router/logit_rms", "psi"}};
  if (act.count(c)) return node_terms(ctx, act.at(c), {}, step);
  if (c == "rms/output") return ctx.residual ? Prediction{} : node_terms(ctx, "hagg", {}, step);
  static const std::map<std::string, std::string> coord = {{"in", "h1"},      {"out", "f"},       {"router", "psi"},
                                                           {"expert1", "a"},  {"expert2", "o"}};
  for (const auto& [mat, node] : coord) {
    if (c == "coord/eff/" + mat) return node_terms(ctx, node, {"eff"}, step);
    if (c == "coord/prop/" + mat) {
      // the input is data: coord/prop/in is identically zero
      return mat == "in" ? zero_prediction("(x fixed)") : node_terms(ctx, node, prop, step);
    }
  }
  if (c == "agg/init") return max_of(ctx, {"hagg.init"}, step);
  if (c == "agg/prop") return max_of(ctx, {"hagg.prop_ind", "hagg.prop_ret"}, step);
  if (c == "agg/eff") return max_of(ctx, {"hagg.eff"}, step);
  if (c == "agg/cross") return max_of(ctx, {"hagg.cross"}, step);
  if (c == "back/init") return max_of(ctx, {"b_h1.experts_W0_init"}, step);
  if (c == "back/w2") return max_of(ctx, {"b_h1.experts_W0_upd"}, step);
  if (c == "back/w1" || c == "back/cross") {
    // dW1 times the part of b_a carried by W2(0) (w1) or by dW2 (cross): the calculus' experts_dW
    // uses the whole b_a, so shift by (b_a.part - b_a).
    bool zi = false, zu = false;
    const double ei = term_exp(ctx, "b_a.init", &zi), eu = term_exp(ctx, "b_a.upd", &zu);
    const double ba = zi ? eu : std::max(ei, eu);
    const bool part_zero = c == "back/w1" ? zi : zu;
    Prediction p = max_of(ctx, {"b_h1.experts_dW"}, step, (c == "back/w1" ? ei : eu) - ba);
    p.atoms += c == "back/w1" ? " - b_a + b_a.init" : " - b_a + b_a.upd";
    if (part_zero || step == 0) p.zero = true;
    return p;
  }
  for (int gi = 0; gi < scaling::kMats; ++gi) {
    const auto g = static_cast<Group>(gi);
    const std::string name = group_name(g);
    if (c == "grad_rms/" + name) {
      // the gradient recorded at diag step 1 was taken at init: backward signals from their
      // W0-only parts (propagated sizes, scaling::diagnose(..., at_init))
      const scaling::TermValue& g1 = ctx.at_init.term("grad." + name);
      if (diag_step == 1 && !ctx.readout_zero) {
        if (g1.zero) return zero_prediction("(no backward signal at init)");
        Prediction p;
        p.has = true;
        p.exponent = g1.exponent.to_double();
        p.atoms = "grad." + name + " at init";
        return p;
      }
      Prediction p = max_of(ctx, {"grad." + name}, 1);
      if (diag_step == 0) p.has = false;  // no gradient before the first step
      return p;
    }
    if (c == "weight_rms/" + name) {
      // stored weight entry: max(init std, update entry); update: lr * grad (sgd) or lr (adam)
      Prediction p;
      p.has = true;
      const bool zero_init = ctx.zero_init[gi];
      const double init = ctx.regime.ladder(ctx.values[scaling::sym(scaling::Param::init, g)]).to_double();
      double upd = ctx.regime.ladder(ctx.values[scaling::sym(scaling::Param::lr, g)]).to_double();
      const scaling::Diagnosis& gd = diag_step == 1 && !ctx.readout_zero ? ctx.at_init : ctx.diagnosis;
      if (ctx.opt == scaling::Optimizer::sgd) upd += gd.term("grad." + name).exponent.to_double();
      p.zero = zero_init && step == 0;
      p.exponent = step == 0 ? init : zero_init ? upd : std::max(init, upd);
      p.atoms = "init." + name + (step == 0 ? "" : zero_init ? " -> update" : " vs update");
      return p;
    }
  }
  return Prediction{};
}

std::string coord_verdict(const Prediction& p, const SlopeFit& f, bool measured_zero, double tol) {
  if (!p.has) return measured_zero ? "zero" : "-";
  if (p.zero) return measured_zero ? "agree" : "disagree";
  if (measured_zero) return "disagree";
  if (!f.valid) return "n/a";
  return (p.exponent >= f.lo - tol && p.exponent <= f.hi + tol) ? "agree" : "disagree";
}

// ---- evaluation and the run ------------------------------------------------------------------
void evaluate_coord_check(CoordCheckResult& r, const PredictionContext& ctx) {
  const size_t S = r.sizes.size(), R = r.seeds.size(), D = r.diag_steps.size(), Q = r.metrics.size();
  r.fits.assign(D * Q, SlopeFit{});
  r.predictions.assign(D * Q, Prediction{});
  r.verdicts.assign(D * Q, "-");
  r.measured_zero.assign(D * Q, 0);
  for (size_t d = 0; d < D; ++d) {
    std::vector<double> amax(Q, 0.0);
    std::map<std::string, double> family;  // sibling columns: same name up to the last '/'
    for (size_t m = 0; m < Q; ++m) {
      for (size_t s = 0; s < S; ++s)
        for (size_t k = 0; k < R; ++k) {
          const double v = r.value(s, k, d, m);
          if (std::isfinite(v)) amax[m] = std::max(amax[m], std::abs(v));
        }
      const std::string fam = r.metrics[m].substr(0, r.metrics[m].rfind('/'));
      family[fam] = std::max(family[fam], amax[m]);
    }
    for (size_t m = 0; m < Q; ++m) {
      std::vector<double> n, v;
      bool any_finite = false;
      for (size_t s = 0; s < S; ++s)
        for (size_t k = 0; k < R; ++k) {
          n.push_back(r.sizes[s]);
          v.push_back(std::abs(r.value(s, k, d, m)));
          any_finite = any_finite || std::isfinite(v.back());
        }
      const std::string fam = r.metrics[m].substr(0, r.metrics[m].rfind('/'));
      const bool zero = any_finite && (amax[m] == 0 || amax[m] <= 1e-9 * family[fam]);
      const size_t i = d * Q + m;
      r.measured_zero[i] = zero;
      if (!zero) r.fits[i] = fit_slope(n, v);
      try {
        r.predictions[i] = predict_column(r.metrics[m], ctx, r.diag_steps[d]);
      } catch (const std::out_of_range&) {
        r.predictions[i] = Prediction{};
      }
      r.verdicts[i] = any_finite ? coord_verdict(r.predictions[i], r.fits[i], zero, r.options.tolerance) : "n/a";
    }
  }
}

CoordCheckResult run_coord_check(const CoordCheckOptions& opt, bool quiet) {
  CoordCheckResult r;
  r.options = opt;
  r.sizes = opt.sizes.empty() ? default_sizes(opt.regime) : opt.sizes;
  if (r.sizes.size() < 2) throw ConfigError("--sizes: need at least two sizes to fit a slope");
  if (opt.seeds < 1 || opt.steps < 1) throw ConfigError("--seeds, --steps: must be >= 1");
  // lr < 0 (exactly -1) means "the default"; anything else must be a usable LR (NaN used to
  // fall through to the default silently)
  if (opt.lr != -1.0 && !(std::isfinite(opt.lr) && opt.lr > 0.0))
    throw ConfigError("--lr: " + std::to_string(opt.lr) + " is not a learning rate (allowed: a finite number > 0)");
  for (int k = 1; k <= opt.seeds; ++k) r.seeds.push_back(k);
  const ParamTable table = load_param_table(opt.param);
  // Resolve every point first (config errors surface before any training).
  struct Point {
    size_t s, k;
    RunConfig cfg;
    std::vector<std::string> sets;
  };
  std::vector<Point> points;
  for (size_t s = 0; s < r.sizes.size(); ++s)
    for (size_t k = 0; k < r.seeds.size(); ++k) {
      Point p{s, k, {}, ladder_sets(opt, r.sizes[s], r.seeds[k])};
      p.cfg = parse_run_config("", p.sets, "coord-check");
      points.push_back(std::move(p));
    }
  r.config_toml = points.front().cfg.resolved_toml;
  r.table_toml = param_table_to_toml(table);
  const bool residual = points.front().cfg.model.residual;
  const PredictionContext ctx = prediction_context(table, opt.regime, opt.optimizer, residual);
  std::vector<RunOutcome> outcomes(points.size());
  const auto start = std::chrono::steady_clock::now();
  FirstFailure failure;
  std::atomic<int> done{0};
  const int threads = opt.parallel > 0 ? opt.parallel : omp_get_max_threads();
  for (const Point& p : points) {  // refuse before any run starts
    try {
      require_run_memory(p.cfg);
    } catch (const ConfigError& e) {
      throw ConfigError("--sizes: size " + std::to_string(r.sizes[p.s]) + ": " + e.what());
    }
  }
  ProgressLine line("moedmft coord-check", long(points.size()), "runs", !quiet);
  // Largest points first (dynamic schedule); the HDF5 library is not thread-safe, so data
  // preparation (which may read files) is serialised like in the sweep.
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (long j = 0; j < long(points.size()); ++j) {
    if (failure.failed()) continue;
    Point& p = points[points.size() - 1 - size_t(j)];
    failure.run([&] {
      RunData data;
#pragma omp critical(moedmft_hdf5)
      data = prepare_data(p.cfg, p.sets);
      const ResolvedParam resolved = resolve_run_param(p.cfg);
      auto train = [&](auto tag) {
        using T = decltype(tag);
        MoeNetwork<T> net(p.cfg.shape, p.cfg.model, resolved);
        net.initialize(p.cfg.seed);
        outcomes[p.s * r.seeds.size() + p.k] = train_run(p.cfg, data, net);
      };
      if (p.cfg.precision == Precision::float32)
        train(float{});
      else
        train(double{});
      line.update(++done);
    });
  }
  failure.rethrow();
  line.finish();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.diag_steps = outcomes.front().diag_steps;
  // Columns present at every size (regimes II/III: M grows, so only the smallest ladder
  // point's load/e{m} columns are kept).
  for (const auto& name : outcomes.front().diag_names) {
    bool everywhere = true;
    for (const auto& o : outcomes)
      everywhere = everywhere && std::find(o.diag_names.begin(), o.diag_names.end(), name) != o.diag_names.end();
    if (everywhere) r.metrics.push_back(name);
  }
  const size_t D = r.diag_steps.size(), Q = r.metrics.size();
  r.values.assign(r.sizes.size() * r.seeds.size() * D * Q, kNaN);
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const RunOutcome& o = outcomes[i];
    if (o.diverged) ++r.diverged;
    for (size_t m = 0; m < Q; ++m) {
      const size_t col = size_t(std::find(o.diag_names.begin(), o.diag_names.end(), r.metrics[m]) - o.diag_names.begin());
      for (size_t d = 0; d < o.diag_values.size() && d < D; ++d) r.values[(i * D + d) * Q + m] = o.diag_values[d][col];
    }
  }
  evaluate_coord_check(r, ctx);
  return r;
}

void write_coord_check(const std::string& path, const CoordCheckResult& r,
                       const std::vector<std::pair<std::string, std::string>>& text_attrs) {
  write_h5_atomically(path, [&](h5::File& f) {
    const auto& o = r.options;
    h5::write_attr(f, "/", "kind", std::string("coord_check"));
    h5::write_attr(f, "/", "moedmft_version", std::string(MOEDMFT_VERSION));
    h5::write_attr(f, "/", "config_toml", r.config_toml);
    h5::write_attr(f, "/", "table_toml", r.table_toml);
    for (const auto& [name, text] : text_attrs) h5::write_attr(f, "/", name, text);
    h5::write_attr(f, "/", "regime", o.regime);
    h5::write_attr(f, "/", "param", o.param);
    h5::write_attr(f, "/", "optimizer", o.optimizer);
    h5::write_attr(f, "/", "routing", o.regime == "I" ? o.routing : std::string("soft"));
    h5::write_attr(f, "/", "lr", coord_lr(o));
    h5::write_attr(f, "/", "steps", int64_t(o.steps));
    h5::write_attr(f, "/", "tolerance", o.tolerance);
    h5::write_attr(f, "/", "diverged_runs", int64_t(r.diverged));
    h5::write_attr(f, "/", "fit", std::string("OLS of log|value| on log(n) over all (size, seed) samples; "
                                              "95% CI from Student's t with samples-2 dof"));
    std::string sets;
    for (const auto& s : ladder_sets(o, r.sizes.front(), 1)) sets += s + "\n";
    h5::write_attr(f, "/", "point_sets_first", sets);
    const hsize_t S = r.sizes.size(), R = r.seeds.size(), D = r.diag_steps.size(), Q = r.metrics.size();
    std::vector<int64_t> sizes(r.sizes.begin(), r.sizes.end()), seeds(r.seeds.begin(), r.seeds.end()),
        steps(r.diag_steps.begin(), r.diag_steps.end());
    h5::write(f, "size", sizes.data(), {S});
    h5::make_scale(f, "size", "size");
    h5::write(f, "seed", seeds.data(), {R});
    h5::make_scale(f, "seed", "seed");
    h5::write(f, "diag_step", steps.data(), {D});
    h5::make_scale(f, "diag_step", "diag_step");
    h5::write_strings(f, "metric", r.metrics);
    h5::make_scale(f, "metric", "metric");
    h5::describe(f, "size", "width N of the ladder point");
    h5::describe(f, "diag_step", "updates taken when measured");
    h5::write(f, "values", r.values.data(), {S, R, D, Q});
    h5::attach_scales(f, "values", {"size", "seed", "diag_step", "metric"});
    h5::describe(f, "values", "diagnostics on the probe batch (docs/output_format.md)");
    std::vector<double> slope, lo, hi, pred;
    std::vector<std::string> verdict, atoms;
    for (size_t i = 0; i < D * Q; ++i) {
      const bool ok = r.fits[i].valid && !r.measured_zero[i];
      slope.push_back(ok ? r.fits[i].slope : kNaN);
      lo.push_back(ok ? r.fits[i].lo : kNaN);
      hi.push_back(ok ? r.fits[i].hi : kNaN);
      const Prediction& p = r.predictions[i];
      pred.push_back(p.has && !p.zero ? p.exponent : kNaN);
      verdict.push_back(r.verdicts[i]);
      atoms.push_back(p.has ? (p.zero ? "zero: " : "") + p.atoms : "-");
    }
    std::vector<uint8_t> pzero, mzero;
    for (size_t i = 0; i < D * Q; ++i) {
      pzero.push_back(r.predictions[i].has && r.predictions[i].zero);
      mzero.push_back(uint8_t(r.measured_zero[i]));
    }
    auto put = [&](const std::string& name, auto writer) {
      writer(name);
      h5::attach_scale(f, name, "diag_step", 0);
      h5::attach_scale(f, name, "metric", 1);
    };
    auto dbl = [&](const std::vector<double>& v) { return [&](const std::string& n) { h5::write(f, n, v.data(), {D, Q}); }; };
    auto u8 = [&](const std::vector<uint8_t>& v) { return [&](const std::string& n) { h5::write(f, n, v.data(), {D, Q}); }; };
    put("slope", dbl(slope));
    h5::describe(f, "slope", "fitted exponent of |value| in N");
    put("slope_lo", dbl(lo));
    put("slope_hi", dbl(hi));
    put("predicted", dbl(pred));
    h5::describe(f, "predicted", "predicted exponent of |value| in N");
    put("predicted_zero", u8(pzero));
    put("measured_zero", u8(mzero));
    // verdicts: codes [diag_step, metric] (legend in the attribute) and, for the last step, the
    // strings [metric] (h5::write_strings is 1-D)
    const std::vector<std::string> legend = {"-", "agree", "disagree", "zero", "n/a"};
    std::vector<uint8_t> code;
    for (const auto& v : verdict) code.push_back(uint8_t(std::find(legend.begin(), legend.end(), v) - legend.begin()));
    put("verdict_code", u8(code));
    h5::write_attr(f, "verdict_code", "legend", std::string("0 -, 1 agree, 2 disagree, 3 zero, 4 n/a"));
    h5::describe(f, "verdict_code", "verdict of measured against predicted exponent (legend attribute)");
    const size_t last = (D - 1) * Q;
    h5::write_strings(f, "verdict", std::vector<std::string>(verdict.begin() + long(last), verdict.end()));
    h5::attach_scale(f, "verdict", "metric", 0);
    h5::write_strings(f, "predicted_terms", std::vector<std::string>(atoms.begin() + long(last), atoms.end()));
    h5::attach_scale(f, "predicted_terms", "metric", 0);
    h5::write_attr(f, "verdict", "diag_step", int64_t(r.diag_steps.back()));
  });
}

}  // namespace moedmft
