// `moedmft dmft-moe`: the regime-I, II or III DMFT limit of a training-run configuration, to HDF5.
// `moedmft converge`: finite widths along a ladder against that limit, with fitted rates.
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>

#include "experiments/cli/commands.hpp"
#include "experiments/moe_convergence.hpp"
#include "experiments/mpi_replicates.hpp"
#include "experiments/progress.hpp"
#include "experiments/threads.hpp"
#include "experiments/toml_section.hpp"
#include "experiments/trainer.hpp"
#include "solver/dmft/replicates.hpp"

namespace moedmft::cli {
namespace {

std::vector<int> parse_widths(const std::string& text) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      const int v = std::stoi(item, &used);
      if (used != item.size() || v < 1) throw std::invalid_argument("");
      out.push_back(v);
    } catch (const std::exception&) {
      throw ConfigError("--widths: '" + item + "' is not a positive integer (expected e.g. 16,32,64)");
    }
  }
  return out;
}

std::string slope_text(const SlopeFit& s) {
  if (!s.valid) return "n/a (fewer than 3 usable widths)";
  std::ostringstream o;
  o << std::fixed << std::setprecision(3) << s.slope << " [" << s.lo << ", " << s.hi << "] (" << s.samples
    << " widths)";
  return o.str();
}

}  // namespace

std::vector<Command> add_moe_limit_commands(CLI::App& app) {
  struct Args {
    std::string config, output, regime, widths = "16,32,64,128,256,512";
    std::vector<std::string> sets;
    int seeds = 4;
    bool quiet = false;
    ThreadsOption threads;
    MpiSplitOption split;
  };
  auto a = std::make_shared<Args>();
  auto b = std::make_shared<Args>();
  CLI::App* lim = app.add_subcommand("dmft-moe", "regime-I/II/III DMFT limit of an MoE training config (full-batch SGD, SignGD or Adam), to HDF5");
  lim->add_option("--config,-c", a->config, "run TOML (as for train) plus an optional [dmft] section")->required();
  lim->add_option("--set,-s", a->sets, "override a key, e.g. --set dmft.samples=2048 (repeatable)");
  lim->add_option("--output,-o", a->output, "output HDF5 file (default: the config's output with _limit)");
  lim->add_flag("--quiet,-q", a->quiet, "no summary");
  add_threads_option(*lim, a->threads);
  add_mpi_split_option(*lim, a->split);
  lim->add_option("--regime", a->regime, "I, II, III or auto (default: the [dmft] regime key, else auto)");
  CLI::App* conv = app.add_subcommand("converge", "finite-width MoE runs along a width ladder against the regime-I/II/III DMFT limit");
  conv->add_option("--config,-c", b->config, "run TOML (as for train) plus an optional [dmft] section")->required();
  conv->add_option("--set,-s", b->sets, "override a key (repeatable)");
  conv->add_option("--widths,-w", b->widths, "comma-separated N ladder (Ne/N kept from the config)");
  conv->add_option("--seeds", b->seeds, "seeds per width (>= 2)");
  conv->add_option("--output,-o", b->output, "output HDF5 file (default: the config's output with _convergence)");
  conv->add_flag("--quiet,-q", b->quiet, "no progress lines");
  add_threads_option(*conv, b->threads);
  conv->add_option("--regime", b->regime, "I, II, III or auto (default: the [dmft] regime key, else auto)");
  // --regime is one more override of the document
  auto overrides = [](const Args& x) {
    std::vector<std::string> sets = x.sets;
    if (!x.regime.empty()) sets.push_back(string_override("dmft.regime", x.regime));
    return sets;
  };

  auto out_name = [](const Args& x, const MoeLimitSetup& s, const std::string& suffix) {
    if (!x.output.empty()) return x.output;
    std::string o = s.run.output;
    const auto dot = o.rfind(".h5");
    return (dot == std::string::npos ? o : o.substr(0, dot)) + suffix + ".h5";
  };
  return {{lim,
           [a, out_name, overrides]() {
             a->threads.apply();
             a->split.apply();
             const MoeLimitSetup s =
                 read_moe_limit_config(read_config_text(a->config, "--config"), overrides(*a), a->config);
             RunConfig run = s.run;
             const RunData data = prepare_data(run, {});
             const Vec<double> y = data.train.y.col(0);
             const std::string path = out_name(*a, s, "_limit");
             ProgressLine line("moedmft dmft-moe", 0, "replicates", !a->quiet && dmft::is_output_rank());
             const dmft::ScopedReplicateProgress scope(line.counter());
             const MoeLimitSolution lim = solve_moe_limit(s, data.train.x, y);
             line.finish();
             if (!dmft::is_output_rank()) return 0;  // MPI: rank 0 writes
             write_moe_limit(path, s, data.train.x, y, lim);
             if (!a->quiet)
               std::cerr << "moedmft dmft-moe: regime " << regime_name(s.regime) << ", " << s.run.param_table
                         << " M=" << s.run.shape.M << " K=" << s.run.shape.K << " P=" << data.train.size()
                         << " T=" << s.run.train.steps << ": loss " << lim.loss.front() << " -> " << lim.loss.back()
                         << " +- " << lim.loss_err.back() << "\n";
             std::cout << path << "\n";
             return 0;
           }},
          {conv, [b, out_name, overrides]() {
             b->threads.apply();
             const MoeLimitSetup s =
                 read_moe_limit_config(read_config_text(b->config, "--config"), overrides(*b), b->config);
             ConvergenceOptions o;
             o.widths = parse_widths(b->widths);
             o.seeds = b->seeds;
             o.progress = !b->quiet;
             const ConvergenceResult r = run_convergence(s, o);
             const std::string path = out_name(*b, s, "_convergence");
             write_convergence(path, s, r);
             std::cout << "     N        gap    gap_err     spread  in_fit\n";
             for (size_t w = 0; w < r.widths.size(); ++w)
               std::cout << std::setw(6) << r.widths[w] << std::scientific << std::setprecision(3) << std::setw(11)
                         << r.gap[w] << std::setw(11) << r.gap_err[w] << std::setw(11) << r.spread[w]
                         << std::defaultfloat << std::setw(8) << (r.in_gap_fit[w] ? "yes" : "no") << "\n";
             std::cout << "solver error (RMS over steps): " << std::scientific << std::setprecision(3) << r.solver_error
                       << std::defaultfloat << "\n";
             std::cout << "gap    ~ N^slope: " << slope_text(r.gap_fit) << "   (theory -1)\n";
             std::cout << "spread ~ N^slope: " << slope_text(r.spread_fit) << "   (theory -0.5)\n";
             std::cout << path << "\n";
             return 0;
           }}};
}

}  // namespace moedmft::cli
