#include "experiments/moe_convergence.hpp"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cmath>
#include <exception>
#include <limits>

#include "experiments/progress.hpp"
#include "experiments/trainer.hpp"
#include "models/parallel.hpp"
#include "solver/dmft/replicates.hpp"

namespace moedmft {

namespace {

// The run at one ladder width and seed: same document, with N and Ne scaled together (regime I)
// or N, M and K scaled together at fixed Ne (regime II).
RunConfig ladder_config(const MoeLimitSetup& setup, int N, uint64_t seed) {
  const Shape& base = setup.run.shape;
  std::vector<std::string> sets = {"model.N=" + std::to_string(N), "seed=" + std::to_string(seed)};
  auto scaled = [&](int v, const char* what) {
    const double x = double(v) * N / base.N;
    if (std::abs(x - std::lround(x)) > 1e-9 || x < 1)
      throw ConfigError(std::string("--widths: N = ") + std::to_string(N) + " gives a non-integer " + what + " = " +
                        std::to_string(x) + " (the ladder keeps " + what + "/N fixed)");
    return std::to_string(std::lround(x));
  };
  if (setup.regime == 2 || setup.regime == 3) {
    sets.push_back("model.M=" + scaled(base.M, "M"));
    sets.push_back("model.K=" + scaled(base.K, "K"));
  }
  if (setup.regime == 1 || setup.regime == 3) {
    const double ratio = double(base.Ne) / base.N;
    sets.push_back("model.Ne=" + std::to_string(std::max(1, int(std::lround(ratio * N)))));
  }
  return parse_run_config(setup.run_toml, sets, "convergence");
}

double rms(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return v.empty() ? 0.0 : std::sqrt(s / v.size());
}

}  // namespace

ConvergenceResult run_convergence(const MoeLimitSetup& setup, const ConvergenceOptions& opt) {
  if (opt.widths.size() < 3) throw ConfigError("--widths: need at least 3 widths for a slope");
  if (opt.seeds < 2) throw ConfigError("--seeds: need at least 2 seeds for the spread");
  for (int N : opt.widths)
    if (N < 1) throw ConfigError("--widths: widths must be >= 1");
  // refuse a bad or too large ladder before the limit and the training
  for (int N : opt.widths) {
    const RunConfig cfg = ladder_config(setup, N, 0);
    try {
      require_run_memory(cfg);
    } catch (const ConfigError& e) {
      throw ConfigError("--widths: width " + std::to_string(N) + ": " + e.what());
    }
  }
  ConvergenceResult r;
  r.widths = opt.widths;
  r.seeds = opt.seeds;
  r.steps = setup.run.train.steps;
  const int W = int(r.widths.size()), S = r.seeds, T = r.steps;

  // Same data at every width and seed (the teacher has its own seed).
  RunConfig base = setup.run;
  const RunData data = prepare_data(base, {});
  {
    ProgressLine line("moedmft converge: limit", 0, "replicates", opt.progress);
    const dmft::ScopedReplicateProgress scope(line.counter());
    r.limit = solve_moe_limit(setup, data.train.x, data.train.y.col(0));
    char loss[64];
    std::snprintf(loss, sizeof loss, "loss %.6g -> %.6g", r.limit.loss.front(), r.limit.loss[T]);
    line.finish(loss);
  }

  r.loss.assign(size_t(W) * S * T, std::numeric_limits<double>::quiet_NaN());
  // Widest first so the long runs start early; each run single-threaded.
  std::vector<std::pair<int, int>> jobs;
  for (int w = W - 1; w >= 0; --w)
    for (int s = 0; s < S; ++s) jobs.push_back({w, s});
  const int saved = omp_get_max_threads();
  ProgressLine line("moedmft converge: widths", long(jobs.size()), "runs", opt.progress);
  std::atomic<long> done{0};
  FirstFailure failure;
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t j = 0; j < jobs.size(); ++j) {
    const auto [w, s] = jobs[j];
    omp_set_num_threads(1);
    failure.run([&] {
      RunConfig cfg = ladder_config(setup, r.widths[w], setup.run.seed + uint64_t(s));
      cfg.train.diag_every = 0;
      const ResolvedParam p = resolve_run_param(cfg);
      MoeNetwork<double> net = build_network<double>(cfg, p);
      const RunOutcome out = train_run(cfg, data, net);
      for (int t = 0; t < T && t < int(out.train_loss.size()); ++t)
        r.loss[(size_t(w) * S + s) * T + t] = out.train_loss[t];
      line.update(++done, "last: N=" + std::to_string(r.widths[w]) + " seed " + std::to_string(s));
    });
  }
  omp_set_num_threads(saved);
  failure.rethrow();
  line.finish("");

  std::vector<double> err_t(T);
  for (int t = 0; t < T; ++t) err_t[t] = r.limit.loss_err[t];
  r.solver_error = rms(err_t);
  std::vector<double> n_fit, gap_fit, n_all, spread_all;
  for (int w = 0; w < W; ++w) {
    std::vector<double> d(T), sd(T), se(T);
    for (int t = 0; t < T; ++t) {
      double m = 0, v = 0;
      for (int s = 0; s < S; ++s) m += r.loss[(size_t(w) * S + s) * T + t] / S;
      for (int s = 0; s < S; ++s) v += std::pow(r.loss[(size_t(w) * S + s) * T + t] - m, 2) / (S - 1);
      d[t] = m - r.limit.loss[t];
      sd[t] = std::sqrt(v);
      se[t] = std::sqrt(v / S + err_t[t] * err_t[t]);
    }
    r.gap.push_back(rms(d));
    r.gap_err.push_back(rms(se));
    r.spread.push_back(rms(sd));
    const bool use = std::isfinite(r.gap[w]) && r.gap[w] > 2.0 * r.gap_err[w];
    r.in_gap_fit.push_back(use);
    if (use) {
      n_fit.push_back(r.widths[w]);
      gap_fit.push_back(r.gap[w]);
    }
    n_all.push_back(r.widths[w]);
    spread_all.push_back(r.spread[w]);
  }
  r.gap_fit = fit_slope(n_fit, gap_fit);
  r.spread_fit = fit_slope(n_all, spread_all);
  return r;
}

}  // namespace moedmft
