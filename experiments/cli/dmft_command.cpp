// `moedmft dmft --config dmft.toml`: the infinite-width (DMFT) training dynamics of a dense network
// on a dataset, written to HDF5 with named dimensions (step, point, point2, layer, replicate, feature).
#include <iostream>
#include <memory>

#include "data/dataset.hpp"
#include "data/h5/h5.hpp"
#include "experiments/file_guard.hpp"
#include "experiments/recorder.hpp"
#include "experiments/run_config.hpp"
#include "experiments/cli/commands.hpp"
#include "experiments/mpi_replicates.hpp"
#include "experiments/progress.hpp"
#include "experiments/threads.hpp"
#include "experiments/toml_section.hpp"
#include "moedmft_version.hpp"
#include "solver/dmft/dmft.hpp"
#include "solver/dmft/replicates.hpp"

namespace moedmft::cli {
namespace {

struct DmftRun {
  dmft::DmftConfig cfg;
  Dataset data;
  std::string output, resolved_toml;
};

dmft::DeepMethod parse_method(const std::string& s) {
  return parse_choice("dmft.method", s,
                      std::array<std::pair<const char*, dmft::DeepMethod>, 3>{{{"sweep", dmft::DeepMethod::sweep},
                                                                               {"fixed_point", dmft::DeepMethod::fixed_point},
                                                                               {"exact", dmft::DeepMethod::exact}}});
}

dmft::DmftOptimizer parse_dmft_optimizer(const std::string& s) {
  return parse_choice("dmft.optimizer", s,
                      std::array<std::pair<const char*, dmft::DmftOptimizer>, 3>{{{"sgd", dmft::DmftOptimizer::sgd},
                                                                                  {"signgd", dmft::DmftOptimizer::signgd},
                                                                                  {"adam", dmft::DmftOptimizer::adam}}});
}

DmftRun read_dmft_config(const std::string& path, const std::vector<std::string>& sets) {
  const std::string text = path.empty() ? std::string() : read_config_text(path, "--config");
  toml::table root = parse_toml(text, path.empty() ? "defaults" : path);
  for (const auto& s : sets) apply_override(root, s);
  DmftRun run;
  Section top(root, "");
  run.output = top.get<std::string>("output", "results/dmft.h5");
  Section d = top.sub("dmft");
  dmft::DmftConfig& c = run.cfg;
  c.T = d.get_int("T", 100, 1, 1 << 20);
  c.L = d.get_int("L", 1, 1, 64);
  c.samples = d.get_int("samples", 4096, 2, 1 << 24);
  c.replicates = d.get_int("replicates", 8, 1, 4096);
  c.gamma0 = d.get_number("gamma0", 1.0, 1e-12, 1e6, "> 0");
  c.eta = d.get_number("eta", 0.1, 1e-12, 1e6, "> 0");
  c.phi = get_enum(d, "activation", "tanh", parse_activation);
  c.seed = uint64_t(d.get<int64_t>("seed", 1));
  c.antithetic = d.get<bool>("antithetic", true);
  c.two_time_kernels = d.get<bool>("two_time_kernels", false);
  c.method = get_enum(d, "method", "sweep", parse_method);
  c.max_iter = d.get_int("max_iter", 60, 1, 100000);
  c.damping = d.get_number("damping", 0.5, 1e-6, 1.0, "0 < damping <= 1");
  c.tol = d.get_number("tol", 1e-4, 0.0, 1.0, "0 .. 1");
  c.optimizer = get_enum(d, "optimizer", "sgd", parse_dmft_optimizer);
  c.beta1 = d.get_number("beta1", 0.9, 0.0, 0.999999999, "0 <= beta1 < 1");
  c.beta2 = d.get_number("beta2", 0.999, 0.0, 0.999999999, "0 <= beta2 < 1");
  c.eps = d.get_number("eps", 1e-8, 0.0, 1e6, ">= 0");
  c.lr_in = d.get_number("lr_in", 1.0, 0.0, 1e6, ">= 0");
  d.finish();

  Section s = top.sub("data");
  const std::string file = s.get<std::string>("path", "");
  TeacherConfig t;
  t.P = s.get_int("P", 16, 1, 1 << 16);
  t.D = s.get_int("D", 16, 1, 1 << 20);
  t.kind = get_enum(s, "teacher", "dense",
                    +[](const std::string& v) {
                      return parse_choice("data.teacher", v,
                                          std::array<std::pair<const char*, TeacherKind>, 2>{
                                              {{"dense", TeacherKind::dense}, {"moe", TeacherKind::moe}}});
                    });
  t.hidden = s.get_int("hidden", 64, 1, 1 << 20);
  t.label_noise = s.get_number("label_noise", 0.0, 0.0, 1e6, ">= 0");
  t.seed = uint64_t(s.get<int64_t>("seed", 1));
  s.finish();
  top.finish();
  if (file.empty()) {
    run.data = make_teacher_dataset(t).train;
  } else {
    run.data = load_dataset_file(file, t.P);
    if (run.data.output_dim() != 1)
      throw ConfigError("data.path: the DMFT solver takes one output; '" + file + "' has " +
                        std::to_string(run.data.output_dim()));
  }
  c.P = run.data.size();
  c.validate();
  std::ostringstream resolved;
  resolved << root;
  run.resolved_toml = resolved.str();
  return run;
}

void write_dmft_file(const DmftRun& run, const dmft::DmftResult& r) {
  write_h5_atomically(run.output, [&](h5::File& f) {
    const hsize_t T1 = r.f.rows(), P = r.f.cols(), L = r.Phi.size(), R = r.f_replicates.size();
    h5::write_attr(f, "/", "kind", std::string("dmft"));
    h5::write_attr(f, "/", "moedmft_version", std::string(MOEDMFT_VERSION));
    h5::write_attr(f, "/", "config_toml", run.resolved_toml);
    h5::write_attr(f, "/", "seed", int64_t(run.cfg.seed));
    h5::write_attr(f, "/", "data_description", run.data.description);
    h5::write_attr(f, "/", "loss_convention", std::string(kLimitLossConvention));
    h5::write_attr(f, "/", "time_convention",
                   std::string("step t = 0..T of full-batch GD; gradient-flow time t * eta; network LR gamma0^2 N eta"));
    h5::write_attr(f, "/", "iterations", int64_t(r.iterations));
    const std::vector<std::pair<std::string, hsize_t>> axes = {
        {"step", T1}, {"step2", T1}, {"point", P}, {"point2", P}, {"layer", L}, {"replicate", R},
        {"feature", hsize_t(run.data.input_dim())}};
    for (const auto& [name, n] : axes) h5::write_index_scale(f, name, n);
    h5::describe(f, "step", "full-batch GD steps taken");
    auto put = [&](const std::string& name, const double* data, std::vector<hsize_t> dims,
                   std::vector<std::string> scales, const std::string& long_name) {
      h5::write(f, name, data, dims);
      h5::attach_scales(f, name, scales);
      h5::describe(f, name, long_name);
    };
    // The solver's L = 0.5 sum_mu (y - f)^2, stored as the mean over the points of (f - y)^2
    // (2 L / P), the convention of dmft-moe, converge and train.
    std::vector<double> loss(r.loss), loss_err(r.loss_err);
    for (size_t t = 0; t < loss.size(); ++t) loss[t] *= 2.0 / double(P), loss_err[t] *= 2.0 / double(P);
    put("f", r.f.data(), {T1, P}, {"step", "point"}, "network output (replicate mean)");
    put("f_err", r.f_err.data(), {T1, P}, {"step", "point"}, "standard error of f over replicates");
    put("loss", loss.data(), {T1}, {"step"}, "training loss (replicate mean)");
    put("loss_err", loss_err.data(), {T1}, {"step"}, "standard error of loss over replicates");
    for (const char* name : {"loss", "loss_err"}) h5::write_attr(f, name, "convention", std::string(kLimitLossConvention));
    put("ntk0", r.ntk0.data(), {P, P}, {"point", "point2"}, "neural tangent kernel at initialisation");
    put("x", run.data.x.data(), {P, hsize_t(run.data.input_dim())}, {"point", "feature"}, "training inputs");
    put("y", run.data.y.data(), {P}, {"point"}, "training targets");
    auto kernels = [&](const std::string& name, const std::vector<std::vector<Mat<double>>>& k, const std::string& what) {
      std::vector<double> flat;
      for (const auto& layer : k) {
        const std::vector<double> part = concatenated(layer);
        flat.insert(flat.end(), part.begin(), part.end());
      }
      put(name, flat.data(), {L, T1, P, P}, {"layer", "step", "point", "point2"}, what);
    };
    kernels("Phi", r.Phi, "feature kernel Phi^l(t) (replicate mean)");
    kernels("G", r.G, "gradient kernel G^l(t) (replicate mean)");
    kernels("Phi_err", r.Phi_err, "standard error of Phi");
    kernels("G_err", r.G_err, "standard error of G");
    const std::vector<double> reps = concatenated(r.f_replicates);
    put("f_replicates", reps.data(), {R, T1, P}, {"replicate", "step", "point"}, "network output of each replicate");
    if (!r.history.empty()) {
      h5::write_index_scale(f, "iteration", r.history.size());
      put("history", r.history.data(), {hsize_t(r.history.size())}, {"iteration"},
          "fixed point: relative change per iteration (replicate 0)");
    }
    // Two-time kernels: the solver's [(T+1)P, (T+1)P] time-major matrices are exactly
    // [step, point, step2, point2] in row-major order.
    auto two_time = [&](const std::string& name, const std::vector<Mat<double>>& k, const std::string& what) {
      const std::vector<double> flat = concatenated(k);
      put(name, flat.data(), {L, T1, P, T1, P}, {"layer", "step", "point", "step2", "point2"}, what);
    };
    if (!r.Phi_two.empty()) {
      two_time("Phi_two", r.Phi_two, "two-time feature kernel Phi^l(t, s) (replicate mean)");
      two_time("G_two", r.G_two, "two-time gradient kernel G^l(t, s) (replicate mean)");
    }
  });
}

}  // namespace

void read_dmft_defaults() { read_dmft_config("", {}); }

std::vector<Command> add_dmft_commands(CLI::App& app) {
  struct Args {
    std::string config, output;
    std::vector<std::string> sets;
    bool quiet = false;
    ThreadsOption threads;
    MpiSplitOption split;
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand("dmft", "infinite-width (DMFT) training dynamics of a dense network, to HDF5");
  sub->add_option("--config,-c", a->config, "TOML with [dmft] and [data] (omit for built-in defaults)");
  sub->add_option("--set,-s", a->sets, "override a key, e.g. --set dmft.gamma0=0.5 (repeatable)");
  sub->add_option("--output,-o", a->output, "output HDF5 file (overrides the config's output)");
  sub->add_flag("--quiet,-q", a->quiet, "no summary");
  add_threads_option(*sub, a->threads);
  add_mpi_split_option(*sub, a->split);
  return {{sub, [a]() {
             a->threads.apply();
             a->split.apply();
             std::vector<std::string> sets = a->sets;
             if (!a->output.empty()) sets.push_back(string_override("output", a->output));
             const DmftRun run = read_dmft_config(a->config, sets);
             dmft::require_dmft_memory(run.cfg, int(run.data.x.rows()), int(run.data.x.cols()));
             const std::string slow = long_run_warning(
                 "moedmft dmft", dmft::dmft_cost(run.cfg, int(run.data.x.rows()), int(run.data.x.cols())).flops,
                 "dmft.T, dmft.samples, dmft.replicates and dmft.L");
             if (!slow.empty() && !a->quiet && dmft::is_output_rank()) std::cerr << slow << "\n";
             ProgressLine line("moedmft dmft", run.cfg.replicates, "replicates",
                               !a->quiet && dmft::is_output_rank());
             const dmft::ScopedReplicateProgress scope(line.counter());
             const dmft::DmftResult r = dmft::solve_dmft(run.cfg, run.data.x, run.data.y);
             line.finish();
             if (!dmft::is_output_rank()) return 0;  // MPI: rank 0 writes
             write_dmft_file(run, r);
             if (!a->quiet)
               std::cerr << "moedmft dmft: P=" << run.cfg.P << " T=" << run.cfg.T << " L=" << run.cfg.L
                         << " gamma0=" << run.cfg.gamma0 << ": loss " << r.loss.front() << " -> " << r.loss.back()
                         << " +- " << r.loss_err.back() << "\n";
             std::cout << run.output << "\n";
             return 0;
           }}};
}

}  // namespace moedmft::cli
