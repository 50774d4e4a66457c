// HDF5 outputs of `dmft-moe` and `converge` (regimes I, II and III): dimension scales so that xarray
// opens every variable with named dimensions, and the run's resolved config, table and limit
// constants as attributes. Files are written under a temporary name and renamed when complete.
#include <algorithm>
#include <limits>

#include "data/h5/h5.hpp"
#include "experiments/file_guard.hpp"
#include "experiments/moe_convergence.hpp"
#include "experiments/recorder.hpp"
#include "moedmft_version.hpp"

namespace moedmft {

namespace {

void write_common_attrs(hid_t f, const MoeLimitSetup& setup, const std::string& kind) {
  h5::write_attr(f, "/", "kind", kind);
  h5::write_attr(f, "/", "moedmft_version", std::string(MOEDMFT_VERSION));
  h5::write_attr(f, "/", "config_toml", setup.resolved_toml);
  h5::write_attr(f, "/", "seed", int64_t(setup.run.seed));
  h5::write_attr(f, "/", "dmft_seed", int64_t(setup.dmft.seed));
  h5::write_attr(f, "/", "lr", setup.run.resolve.base_lr);
  h5::write_attr(f, "/", "loss_convention", std::string(kLimitLossConvention));
  h5::write_attr(f, "/", "time_convention",
                 std::string("step t = full-batch SGD updates taken; loss at step t is measured before update t"));
  ParamTable table;
  const ResolvedParam p = resolve_run_param(setup.run, &table);
  write_param_table(f, "/param", table, p);
  h5::open_or_create_group(f, "/limit_constants");
  h5::write_attr(f, "/limit_constants", "regime", std::string(regime_name(setup.regime)));
  std::vector<std::pair<const char*, double>> consts;
  if (setup.regime == 2) {
    const auto& k = setup.dmft2.k;
    consts = {{"sigma_in", k.sigma_in},   {"lr_in", k.lr_in},           {"c_router", k.c_router},
              {"lr_router", k.lr_router}, {"c_expert1", k.c_expert1},   {"lr_expert1", k.lr_expert1},
              {"c_expert2", k.c_expert2}, {"lr_expert2", k.lr_expert2}, {"c_out", k.c_out},
              {"lr_out", k.lr_out},       {"gate", k.gate},             {"nu", k.nu},
              {"kappa", k.kappa},         {"Ne", double(k.Ne)}};
    h5::write_attr(f, "/limit_constants", "vanishing", k.vanishing.empty() ? std::string("none") : k.vanishing);
    h5::write_attr(f, "/limit_constants", "keep_vanishing", int64_t(setup.keep_vanishing));
    h5::write_attr(f, "/", "expert_samples", int64_t(setup.dmft2.expert_samples));
  } else if (setup.regime == 3) {
    const auto& k = setup.dmft3.k;
    consts = {{"sigma_in", k.sigma_in},   {"lr_in", k.lr_in},           {"c_router", k.c_router},
              {"lr_router", k.lr_router}, {"c_expert1", k.c_expert1},   {"lr_expert1", k.lr_expert1},
              {"c_expert2", k.c_expert2}, {"lr_expert2", k.lr_expert2}, {"c_out", k.c_out},
              {"lr_out", k.lr_out},       {"gate", k.gate},             {"nu", k.nu},
              {"kappa", k.kappa},         {"rho", k.rho},               {"shared", double(k.shared)}};
    h5::write_attr(f, "/limit_constants", "vanishing", k.vanishing.empty() ? std::string("none") : k.vanishing);
    h5::write_attr(f, "/limit_constants", "keep_vanishing", int64_t(setup.keep_vanishing));
    h5::write_attr(f, "/", "expert_samples", int64_t(setup.dmft3.expert_samples));
    h5::write_attr(f, "/", "neuron_samples", int64_t(setup.dmft3.neuron_samples));
  } else {
    const auto& k = setup.dmft.k;
    consts = {{"sigma_in", k.sigma_in},   {"lr_in", k.lr_in},           {"c_router", k.c_router},
              {"lr_router", k.lr_router}, {"c_expert1", k.c_expert1},   {"lr_expert1", k.lr_expert1},
              {"c_expert2", k.c_expert2}, {"lr_expert2", k.lr_expert2}, {"c_out", k.c_out},
              {"lr_out", k.lr_out},       {"gate", k.gate},             {"ratio", k.ratio}};
  }
  for (const auto& [name, v] : consts) h5::write_attr(f, "/limit_constants", name, v);
}

void axis(hid_t f, const std::string& name, const std::vector<int64_t>& v) {
  h5::write(f, name, v.data(), {hsize_t(v.size())});
  h5::make_scale(f, name, name);
}

// long_name "" leaves the variable undescribed (error bars and secondary fields).
template <class Data>
void put(hid_t f, const std::string& name, const Data* data, const std::vector<hsize_t>& dims,
         const std::vector<std::string>& scales, const std::string& long_name = "") {
  h5::write(f, name, data, dims);
  h5::attach_scales(f, name, scales);
  if (!long_name.empty()) h5::describe(f, name, long_name);
}

void put_loss(hid_t f, const std::string& name, const double* data, const std::vector<hsize_t>& dims,
              const std::vector<std::string>& scales, const std::string& long_name) {
  put(f, name, data, dims, scales, long_name);
  h5::write_attr(f, name, "convention", std::string(kLimitLossConvention));
}

void kernels(hid_t f, const std::string& name, const std::vector<Mat<double>>& k, const std::string& long_name) {
  const std::vector<double> flat = concatenated(k);
  put(f, name, flat.data(), {hsize_t(k.size()), hsize_t(k.front().rows()), hsize_t(k.front().cols())},
      {"step", "point", "point2"}, long_name);
}

// The observables both regimes share, under `prefix` (dimension scales must exist at the root).
template <class Result>
void put_common(hid_t f, const std::string& prefix, const Result& r) {
  const hsize_t T1 = r.f.rows(), P = r.f.cols(), fields = r.rms.cols();
  put_loss(f, prefix + "loss", r.loss.data(), {T1}, {"step"}, "infinite-width training loss (replicate mean)");
  put_loss(f, prefix + "loss_err", r.loss_err.data(), {T1}, {"step"}, "standard error of the limit loss");
  put(f, prefix + "f", r.f.data(), {T1, P}, {"step", "point"}, "network output (replicate mean)");
  put(f, prefix + "f_err", r.f_err.data(), {T1, P}, {"step", "point"});
  put(f, prefix + "aggregation_rms", r.agg.data(), {T1, 5}, {"step", "term"}, "RMS of the aggregation terms");
  put(f, prefix + "aggregation_rms_err", r.agg_err.data(), {T1, 5}, {"step", "term"});
  put(f, prefix + "activation_rms", r.rms.data(), {T1, fields}, {"step", "field"}, "RMS of the activations");
  put(f, prefix + "activation_rms_err", r.rms_err.data(), {T1, fields}, {"step", "field"});
  kernels(f, prefix + "kernel_h1", r.phi1, "kernel of the first hidden layer");
  kernels(f, prefix + "kernel_expert_act", r.phi2, "kernel of the expert activations");
  kernels(f, prefix + "kernel_expert_grad", r.g2, "kernel of the expert gradients");
  put(f, prefix + "readout_kernel", r.readout_kernel.data(), {T1, T1}, {"step", "step2"}, "readout two-time kernel");
}

// The limit's observables under `prefix` (dimension scales must exist at the root).
void put_limit(hid_t f, const std::string& prefix, const dmft::MoeDmftResult& r, int M) {
  const hsize_t T1 = r.f.rows(), P = r.f.cols();
  put_common(f, prefix, r);
  // psi and gates are stored [T+1, M*P] with column m*P + mu: exactly [step, expert, point].
  put(f, prefix + "router_logits", r.psi.data(), {T1, hsize_t(M), P}, {"step", "expert", "point"}, "router logits");
  put(f, prefix + "router_logits_err", r.psi_err.data(), {T1, hsize_t(M), P}, {"step", "expert", "point"});
  put(f, prefix + "gates", r.gates.data(), {T1, hsize_t(M), P}, {"step", "expert", "point"}, "router gates");
  put(f, prefix + "load", r.load.data(), {T1, hsize_t(M)}, {"step", "expert"}, "expert load");
}

// The axes both regimes share; regime I adds `expert`.
void shared_axes(hid_t f, size_t T1, size_t P) {
  for (const char* name : {"step", "step2"}) h5::write_index_scale(f, name, T1);
  h5::describe(f, "step", "full-batch updates taken");
  for (const char* name : {"point", "point2"}) h5::write_index_scale(f, name, P);
}

void limit_axes(hid_t f, size_t T1, size_t P, int M) {
  shared_axes(f, T1, P);
  h5::write_index_scale(f, "expert", hsize_t(M));
  h5::write_strings(f, "term", {"hagg", "init", "propagating", "effective", "cross"});
  h5::make_scale(f, "term", "term");
  h5::write_strings(f, "field", {"h1", "expert_act", "expert_out"});
  h5::make_scale(f, "field", "field");
}

// Regime-II observables under `prefix`: no per-expert axis (experts are a particle law).
void put_limit2(hid_t f, const std::string& prefix, const dmft::Moe2DmftResult& r) {
  const hsize_t T1 = r.f.rows(), P = r.f.cols();
  put_common(f, prefix, r);
  const std::pair<const char*, const Mat<double>*> law[] = {
      {"logit_mean", &r.logit_mean}, {"logit_mean_err", &r.logit_mean_err},
      {"logit_std", &r.logit_std},   {"logit_std_err", &r.logit_std_err},
      {"logit_quantile", &r.logit_quantile}, {"logit_quantile_err", &r.logit_quantile_err}};
  for (const auto& [name, m] : law) put(f, prefix + name, m->data(), {T1, P}, {"step", "point"});
  h5::describe(f, prefix + "logit_mean", "mean router logit over the expert law");
  h5::describe(f, prefix + "logit_std", "standard deviation of the router logit over the expert law");
  put(f, prefix + "load_stats", r.load.data(), {T1, 3}, {"step", "load_stat"}, "statistics of the expert load");
  put(f, prefix + "load_stats_err", r.load_err.data(), {T1, 3}, {"step", "load_stat"});
  kernels(f, prefix + "kernel_expert_gated", r.gated, "gated expert kernel");
}

void limit2_axes(hid_t f, size_t T1, size_t P) {
  shared_axes(f, T1, P);
  h5::write_strings(f, "term", {"hagg", "init", "propagating", "effective", "cross"});
  h5::make_scale(f, "term", "term");
  h5::write_strings(f, "field", {"h1", "router_logit", "expert_act", "hagg"});
  h5::make_scale(f, "field", "field");
  h5::write_strings(f, "load_stat", {"mean", "std", "dead_fraction"});
  h5::make_scale(f, "load_stat", "load_stat");
}

// The regime's axes and observables under `prefix`.
void put_solution(hid_t f, const std::string& prefix, const MoeLimitSetup& setup, const MoeLimitSolution& limit) {
  if (limit.regime == 2 || limit.regime == 3) {
    limit2_axes(f, limit.particles.f.rows(), limit.particles.f.cols());
    put_limit2(f, prefix, limit.particles);
  } else {
    limit_axes(f, limit.regime1.f.rows(), limit.regime1.f.cols(), setup.dmft.M);
    put_limit(f, prefix, limit.regime1, setup.dmft.M);
  }
}

}  // namespace

void write_moe_limit(const std::string& path, const MoeLimitSetup& setup, const Mat<double>& x, const Vec<double>& y,
                     const MoeLimitSolution& limit) {
  write_h5_atomically(path, [&](h5::File& f) {
    write_common_attrs(f, setup, "dmft_moe");
    put_solution(f, "", setup, limit);
    const size_t T1 = limit.loss.size(), P = x.rows();
    h5::write_index_scale(f, "feature", hsize_t(x.cols()));
    h5::write_index_scale(f, "replicate", limit.loss_replicates.size());
    put(f, "x", x.data(), {hsize_t(P), hsize_t(x.cols())}, {"point", "feature"}, "training inputs");
    put(f, "y", y.data(), {hsize_t(P)}, {"point"}, "training targets");
    std::vector<double> reps;
    for (const auto& l : limit.loss_replicates) reps.insert(reps.end(), l.begin(), l.end());
    put_loss(f, "loss_replicates", reps.data(), {hsize_t(limit.loss_replicates.size()), hsize_t(T1)},
             {"replicate", "step"}, "infinite-width training loss of each replicate");
  });
}

void write_convergence(const std::string& path, const MoeLimitSetup& setup, const ConvergenceResult& r) {
  write_h5_atomically(path, [&](h5::File& f) {
    write_common_attrs(f, setup, "dmft_convergence");
    put_solution(f, "limit_", setup, r.limit);
    std::vector<int64_t> widths(r.widths.begin(), r.widths.end()), seeds;
    axis(f, "width", widths);
    h5::describe(f, "width", "width N");
    for (int s = 0; s < r.seeds; ++s) seeds.push_back(int64_t(setup.run.seed) + s);  // as run_convergence seeds them
    axis(f, "seed", seeds);
    h5::describe(f, "seed", "seed of the finite-width run");
    // One time axis with the limit (steps 0..T): a finite run records the loss before each of
    // its T updates, so step T is NaN.
    const hsize_t W = r.widths.size(), S = hsize_t(r.seeds), T = hsize_t(r.steps), T1 = T + 1;
    std::vector<double> finite(W * S * T1, std::numeric_limits<double>::quiet_NaN());
    for (hsize_t i = 0; i < W * S; ++i) std::copy_n(r.loss.begin() + i * T, T, finite.begin() + i * T1);
    put_loss(f, "finite_loss", finite.data(), {W, S, T1}, {"width", "seed", "step"},
             "finite-width training loss (NaN at the last step and after a divergence)");
    put(f, "gap", r.gap.data(), {W}, {"width"}, "RMS over steps of the seed-mean loss minus the limit loss");
    put(f, "gap_err", r.gap_err.data(), {W}, {"width"});
    put(f, "spread", r.spread.data(), {W}, {"width"}, "RMS over steps of the seed standard deviation of the loss");
    std::vector<uint8_t> used(r.in_gap_fit.begin(), r.in_gap_fit.end());
    put(f, "in_gap_fit", used.data(), {W}, {"width"}, "width used in the gap slope fit (0/1)");
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
