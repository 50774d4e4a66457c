#include "experiments/moe_convergence.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>

#include "data/h5/h5.hpp"
#include "experiments/recorder.hpp"
#include "experiments/trainer.hpp"
#include "moedmft_version.hpp"

namespace moedmft {

namespace {

// The run at one ladder width and seed: same document, N and Ne scaled together.
RunConfig ladder_config(const MoeLimitSetup& setup, int N, uint64_t seed) {
  const double ratio = double(setup.run.shape.Ne) / setup.run.shape.N;
  const int Ne = std::max(1, int(std::lround(ratio * N)));
  return parse_run_config(setup.run_toml,
                          {"model.N=" + std::to_string(N), "model.Ne=" + std::to_string(Ne),
                           "seed=" + std::to_string(seed)},
                          "convergence");
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
  ConvergenceResult r;
  r.widths = opt.widths;
  r.seeds = opt.seeds;
  r.steps = setup.run.train.steps;
  const int W = int(r.widths.size()), S = r.seeds, T = r.steps;

  // Same data at every width and seed (the teacher has its own seed).
  RunConfig base = setup.run;
  const RunData data = prepare_data(base, {});
  r.limit = dmft::solve_moe_dmft(setup.dmft, data.train.x, data.train.y.col(0));
  if (opt.progress)
    opt.progress("limit: loss " + std::to_string(r.limit.loss.front()) + " -> " + std::to_string(r.limit.loss[T]));

  r.loss.assign(size_t(W) * S * T, std::numeric_limits<double>::quiet_NaN());
  // Widest first so the long runs start early; each run single-threaded.
  std::vector<std::pair<int, int>> jobs;
  for (int w = W - 1; w >= 0; --w)
    for (int s = 0; s < S; ++s) jobs.push_back({w, s});
  const int saved = omp_get_max_threads();
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t j = 0; j < jobs.size(); ++j) {
    const auto [w, s] = jobs[j];
    omp_set_num_threads(1);
    RunConfig cfg = ladder_config(setup, r.widths[w], setup.run.seed + uint64_t(s));
    cfg.train.diag_every = 0;
    const ResolvedParam p = resolve_run_param(cfg);
    MoeNetwork<double> net = build_network<double>(cfg, p);
    const RunOutcome out = train_run(cfg, data, net);
    for (int t = 0; t < T && t < int(out.train_loss.size()); ++t)
      r.loss[(size_t(w) * S + s) * T + t] = out.train_loss[t];
#pragma omp critical
    if (opt.progress) opt.progress("N=" + std::to_string(r.widths[w]) + " seed " + std::to_string(s) + ": loss " +
                                   std::to_string(out.train_loss.back()));
  }
  omp_set_num_threads(saved);

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

namespace {

void write_common_attrs(hid_t f, const MoeLimitSetup& setup, const std::string& kind) {
  h5::write_attr(f, "/", "kind", kind);
  h5::write_attr(f, "/", "moedmft_version", std::string(MOEDMFT_VERSION));
  h5::write_attr(f, "/", "config_toml", setup.resolved_toml);
  h5::write_attr(f, "/", "seed", int64_t(setup.run.seed));
  h5::write_attr(f, "/", "dmft_seed", int64_t(setup.dmft.seed));
  h5::write_attr(f, "/", "lr", setup.run.resolve.base_lr);
  h5::write_attr(f, "/", "loss_convention", std::string("mean over the P training points of (f - y)^2 (PyTorch mse_loss)"));
  h5::write_attr(f, "/", "time_convention",
                 std::string("step t = full-batch SGD updates taken; loss at step t is measured before update t"));
  ParamTable table;
  const ResolvedParam p = resolve_run_param(setup.run, &table);
  write_param_table(f, "/param", table, p);
  const auto& k = setup.dmft.k;
  const std::pair<const char*, double> consts[] = {
      {"sigma_in", k.sigma_in},   {"lr_in", k.lr_in},           {"c_router", k.c_router},
      {"lr_router", k.lr_router}, {"c_expert1", k.c_expert1},   {"lr_expert1", k.lr_expert1},
      {"c_expert2", k.c_expert2}, {"lr_expert2", k.lr_expert2}, {"c_out", k.c_out},
      {"lr_out", k.lr_out},       {"gate", k.gate},             {"ratio", k.ratio}};
  h5::open_or_create_group(f, "/limit_constants");
  for (const auto& [name, v] : consts) h5::write_attr(f, "/limit_constants", name, v);
}

void axis(hid_t f, const std::string& name, const std::vector<int64_t>& v) {
  h5::write(f, name, v.data(), {hsize_t(v.size())});
  h5::make_scale(f, name, name);
}

std::vector<int64_t> iota(size_t n) {
  std::vector<int64_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = int64_t(i);
  return v;
}

template <class Data>
void put(hid_t f, const std::string& name, const Data* data, const std::vector<hsize_t>& dims,
         const std::vector<std::string>& scales) {
  h5::write(f, name, data, dims);
  for (size_t d = 0; d < scales.size(); ++d) h5::attach_scale(f, name, scales[d], unsigned(d));
}

// The limit's observables under `prefix` (dimension scales must exist at the root).
void put_limit(hid_t f, const std::string& prefix, const dmft::MoeDmftResult& r, int M) {
  const hsize_t T1 = r.f.rows(), P = r.f.cols();
  put(f, prefix + "loss", r.loss.data(), {T1}, {"step"});
  put(f, prefix + "loss_err", r.loss_err.data(), {T1}, {"step"});
  put(f, prefix + "f", r.f.data(), {T1, P}, {"step", "point"});
  put(f, prefix + "f_err", r.f_err.data(), {T1, P}, {"step", "point"});
  // psi and gates are stored [T+1, M*P] with column m*P + mu: exactly [step, expert, point].
  put(f, prefix + "router_logits", r.psi.data(), {T1, hsize_t(M), P}, {"step", "expert", "point"});
  put(f, prefix + "router_logits_err", r.psi_err.data(), {T1, hsize_t(M), P}, {"step", "expert", "point"});
  put(f, prefix + "gates", r.gates.data(), {T1, hsize_t(M), P}, {"step", "expert", "point"});
  put(f, prefix + "load", r.load.data(), {T1, hsize_t(M)}, {"step", "expert"});
  put(f, prefix + "aggregation_rms", r.agg.data(), {T1, 5}, {"step", "term"});
  put(f, prefix + "aggregation_rms_err", r.agg_err.data(), {T1, 5}, {"step", "term"});
  put(f, prefix + "activation_rms", r.rms.data(), {T1, 3}, {"step", "field"});
  put(f, prefix + "activation_rms_err", r.rms_err.data(), {T1, 3}, {"step", "field"});
  auto kernels = [&](const std::string& name, const std::vector<Mat<double>>& k) {
    std::vector<double> flat;
    for (const auto& m : k) flat.insert(flat.end(), m.data(), m.data() + m.size());
    put(f, prefix + name, flat.data(), {T1, P, P}, {"step", "point", "point2"});
  };
  kernels("kernel_h1", r.phi1);
  kernels("kernel_expert_act", r.phi2);
  kernels("kernel_expert_grad", r.g2);
  put(f, prefix + "readout_kernel", r.readout_kernel.data(), {T1, T1}, {"step", "step2"});
}

void limit_axes(hid_t f, size_t T1, size_t P, int M) {
  axis(f, "step", iota(T1));
  axis(f, "step2", iota(T1));
  axis(f, "point", iota(P));
  axis(f, "point2", iota(P));
  axis(f, "expert", iota(size_t(M)));
  h5::write_strings(f, "term", {"hagg", "init", "propagating", "effective", "cross"});
  h5::make_scale(f, "term", "term");
  h5::write_strings(f, "field", {"h1", "expert_act", "expert_out"});
  h5::make_scale(f, "field", "field");
}

template <class Body>
void atomic_write(const std::string& path, Body body) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  if (target.has_parent_path()) fs::create_directories(target.parent_path());
  const std::string partial = path + ".partial";
  {
    h5::File f(partial, h5::Mode::truncate);
    body(f);
  }
  fs::rename(partial, target);
}

}  // namespace

void write_moe_limit(const std::string& path, const MoeLimitSetup& setup, const Mat<double>& x, const Vec<double>& y,
                     const dmft::MoeDmftResult& r) {
  atomic_write(path, [&](h5::File& f) {
    write_common_attrs(f, setup, "dmft_moe");
    const size_t T1 = r.f.rows(), P = r.f.cols();
    limit_axes(f, T1, P, setup.dmft.M);
    axis(f, "feature", iota(size_t(x.cols())));
    axis(f, "replicate", iota(r.f_replicates.size()));
    put_limit(f, "", r, setup.dmft.M);
    put(f, "x", x.data(), {hsize_t(P), hsize_t(x.cols())}, {"point", "feature"});
    put(f, "y", y.data(), {hsize_t(P)}, {"point"});
    std::vector<double> reps;
    for (const auto& l : r.loss_replicates) reps.insert(reps.end(), l.begin(), l.end());
    put(f, "loss_replicates", reps.data(), {hsize_t(r.loss_replicates.size()), hsize_t(T1)}, {"replicate", "step"});
  });
}

void write_convergence(const std::string& path, const MoeLimitSetup& setup, const ConvergenceResult& r) {
  atomic_write(path, [&](h5::File& f) {
    write_common_attrs(f, setup, "dmft_convergence");
    const size_t T1 = r.limit.f.rows(), P = r.limit.f.cols();
    limit_axes(f, T1, P, setup.dmft.M);
    std::vector<int64_t> widths(r.widths.begin(), r.widths.end());
    axis(f, "width", widths);
    axis(f, "seed", iota(size_t(r.seeds)));
    axis(f, "train_step", iota(size_t(r.steps)));
    put(f, "finite_loss", r.loss.data(), {hsize_t(r.widths.size()), hsize_t(r.seeds), hsize_t(r.steps)},
        {"width", "seed", "train_step"});
    put_limit(f, "limit_", r.limit, setup.dmft.M);
    const hsize_t W = r.widths.size();
    put(f, "gap", r.gap.data(), {W}, {"width"});
    put(f, "gap_err", r.gap_err.data(), {W}, {"width"});
    put(f, "spread", r.spread.data(), {W}, {"width"});
    std::vector<uint8_t> used(r.in_gap_fit.begin(), r.in_gap_fit.end());
    put(f, "in_gap_fit", used.data(), {W}, {"width"});
    auto fit_attrs = [&](const std::string& name, const SlopeFit& s) {
      h5::write_attr(f, "/", name + "_slope", s.valid ? s.slope : std::numeric_limits<double>::quiet_NaN());
      h5::write_attr(f, "/", name + "_slope_lo", s.valid ? s.lo : std::numeric_limits<double>::quiet_NaN());
      h5::write_attr(f, "/", name + "_slope_hi", s.valid ? s.hi : std::numeric_limits<double>::quiet_NaN());
      h5::write_attr(f, "/", name + "_fit_points", int64_t(s.samples));
    };
    fit_attrs("gap", r.gap_fit);
    fit_attrs("spread", r.spread_fit);
    h5::write_attr(f, "/", "solver_error", r.solver_error);
  });
}

}  // namespace moedmft
