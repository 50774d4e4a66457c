// moedmft command line: a thin layer over the experiment drivers.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <sstream>

#include "data/dataset.hpp"
#include "data/h5/h5.hpp"
#include "experiments/analyze.hpp"
#include "experiments/cli/commands.hpp"
#include "experiments/file_guard.hpp"
#include "experiments/mpi_replicates.hpp"
#include "experiments/progress.hpp"
#include "experiments/recorder.hpp"
#include "experiments/run_config.hpp"
#include "experiments/threads.hpp"
#include "experiments/trainer.hpp"
#include "moedmft_version.hpp"

using namespace moedmft;

namespace {

struct TrainArgs {
  std::string config;
  std::vector<std::string> sets;
  std::string output, init_from, init_group, data, save_data;
  bool quiet = false;
  ThreadsOption threads;
};

std::string command_line(int argc, char** argv) {
  std::ostringstream s;
  for (int i = 0; i < argc; ++i) s << (i ? " " : "") << argv[i];
  return s.str();
}

template <class T>
int run_training(RunConfig& cfg, const TrainArgs& args, const std::string& cmdline) {
  RunData data = prepare_data(cfg, args.sets);
  if (!args.save_data.empty())
    write_h5_atomically(args.save_data, [&](h5::File& f) { write_hdf5_dataset(f.id(), data.train); });
  ParamTable table;
  const ResolvedParam resolved = resolve_run_param(cfg, &table);
  MoeNetwork<T> net = build_network<T>(cfg, resolved);
  const MoeNetwork<T> initial = net;

  const Shape& s = cfg.shape;
  if (!args.quiet) {
    std::cerr << "moedmft train: N=" << s.N << " Ne=" << s.Ne << " M=" << s.M << " K=" << s.K << " L=" << s.L
              << " D=" << s.D << " C=" << s.C << ", " << to_string(cfg.optim.kind) << ", " << to_string(cfg.precision)
              << ", seed " << cfg.seed << "\n  data: " << data.train.description << "\n"
              << format_resolved(resolved);
  }
  ProgressLine line("moedmft train", cfg.train.steps, "steps", !args.quiet);
  ProgressFn progress;
  if (!args.quiet)
    progress = [&line](const Progress& p) {
      char detail[64];
      std::snprintf(detail, sizeof detail, "loss %.6e  %.1f steps/s", p.loss, p.steps_per_second);
      line.update(p.step, detail);
    };
  const RunOutcome outcome = train_run(cfg, data, net, progress);
  line.finish();
  RunRecord record{&cfg, &table, &resolved, &outcome, data.train.description, cmdline, ""};
  write_run_file(cfg.output, record, initial, net);
  if (outcome.diverged)
    std::cerr << "moedmft train: loss became non-finite at step " << outcome.diverged_at
              << " (recorded as NaN; the run is marked diverged)\n";
  std::cout << cfg.output << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ensure_passive_waiting(argv);
  const MpiSession mpi(argc, argv);
  CLI::App app{"moedmft: hyperparameter scaling of Mixture-of-Experts networks (simulator, DMFT, scaling calculus)"};
  app.set_version_flag("--version", std::string(MOEDMFT_VERSION));
  // Every option's default is shown in --help (subcommands inherit this).
  app.option_defaults()->always_capture_default();
  app.require_subcommand(1);

  TrainArgs targs;
  CLI::App* train = app.add_subcommand("train", "train one MoE network and write an HDF5 run file");
  train->add_option("--config,-c", targs.config, "TOML run configuration, or a train result (.h5) to re-run (omit for built-in defaults)");
  train->add_option("--set,-s", targs.sets, "override a config key, e.g. --set model.N=256 (repeatable)");
  train->add_option("--output,-o", targs.output, "output HDF5 file (overrides the config's output)");
  train->add_option("--init-from", targs.init_from, "start from the weights in this HDF5 file");
  train->add_option("--init-group", targs.init_group, "group inside --init-from (default: /, weights_init, weights)");
  train->add_option("--data", targs.data, "train on this dataset file (HDF5, MNIST IDX or CIFAR-10 binary)");
  train->add_option("--save-data", targs.save_data, "also write the training set to this HDF5 file");
  train->add_flag("--quiet,-q", targs.quiet, "no progress output");
  add_threads_option(*train, targs.threads);

  std::string config_path;
  std::vector<std::string> config_sets;
  std::string config_output;
  CLI::App* config = app.add_subcommand("config", "print the fully resolved run configuration (every key, with defaults)");
  config->add_option("--config,-c", config_path, "TOML run configuration or a train result (.h5)");
  config->add_option("--set,-s", config_sets, "override a config key (repeatable)");
  config->add_option("--output,-o", config_output, "write the resolved TOML to this file instead of stdout");
  bool config_explain = false, config_markdown = false;
  config->add_flag("--explain", config_explain, "print every key with its meaning, type, default and allowed range");
  config->add_flag("--markdown", config_markdown, "with --explain: as Markdown (docs/config_reference.md)");

  std::string analyze_path, analyze_output;
  AnalyzeOptions analyze_options;
  CLI::App* analyze = app.add_subcommand("analyze", "optimal LR per size, transfer and monotonic-improvement verdicts of a sweep");
  analyze->add_option("file", analyze_path, "gathered sweep file (read only)")->required();
  analyze->add_option("--output,-o", analyze_output,
                      "write a copy of the sweep with the results under /analysis (for plot_sweep.py)");
  analyze->add_option("--lr-axis", analyze_options.lr_axis, "name of the LR axis")->capture_default_str();
  analyze->add_option("--size-axis", analyze_options.size_axis, "name of the size axis")->capture_default_str();
  analyze->add_option("--seed-axis", analyze_options.seed_axis, "name of the seed axis (optional in the file)")->capture_default_str();
  analyze->add_option("--window", analyze_options.window_fraction, "final loss = mean over this last fraction of steps")
      ->check(CLI::Range(0.0, 1.0))->capture_default_str();
  analyze->add_flag("--val", analyze_options.use_val, "use the last validation loss instead of the train loss");
  analyze->add_option("--dmft", analyze_options.dmft_path, "a `moedmft dmft-moe` file: DMFT overlay gap per size");
  analyze->add_option("--tolerance", analyze_options.transfer_tolerance, "allowed drift of the optimum, in LR grid steps")
      ->capture_default_str();

  std::vector<cli::Command> modules = cli::add_sweep_commands(app);
  for (auto& command : cli::add_scaling_commands(app)) modules.push_back(std::move(command));
  for (auto& command : cli::add_coord_check_commands(app)) modules.push_back(std::move(command));
  for (auto& command : cli::add_dmft_commands(app)) modules.push_back(std::move(command));
  for (auto& command : cli::add_moe_limit_commands(app)) modules.push_back(std::move(command));

  std::string show_name, params_output;
  CLI::App* params = app.add_subcommand("params", "list the built-in parameterizations, or print one as TOML");
  params->add_option("name", show_name, "built-in name or TOML file to print");
  params->add_option("--output,-o", params_output, "write the table's TOML to this file instead of stdout");

  // An empty list shows as "=[]" in --help; such defaults say nothing.
  for (CLI::App* sub : app.get_subcommands({}))
    for (CLI::Option* option : sub->get_options())
      if (option->get_default_str() == "[]") option->default_str("");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage error exits 2, like a config error.
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (mpi.ranks() > 1) {
    // Only the DMFT solves know how to share work; anything else would run once per rank and
    // every copy would write the same file.
    const std::string name = app.get_subcommands().front()->get_name();
    std::string refusal;
    if (!mpi.built_with_mpi())
      refusal = "started on " + std::to_string(mpi.ranks()) +
                " MPI ranks, but this build has no MPI (install libopenmpi-dev and rebuild), or run without mpirun";
    else if (name != "dmft" && name != "dmft-moe")
      refusal = name + ": runs in one process; only dmft and dmft-moe spread over MPI ranks (started on " +
                std::to_string(mpi.ranks()) + ")";
    if (!refusal.empty()) {
      if (mpi.rank() == 0) std::cerr << "moedmft: " << refusal << "\n";
      return 2;
    }
  }

  try {
    for (const auto& command : modules)
      if (*command.app) return command.run();
    if (*analyze) {
      const auto groups = analyze_sweep(analyze_path, analyze_options);
      std::cout << format_analysis(groups);
      if (!analyze_output.empty()) {
        copy_with_analysis(analyze_path, analyze_output, groups, analyze_options);
        std::cout << analyze_output << "\n";
      }
      return 0;
    }
    // stdout, or the file -o names
    auto emit = [](const std::string& text, const std::string& output) {
      if (output.empty()) std::cout << text;
      else write_text_atomically(output, text);
    };
    if (*config) {
      if (config_explain)
        emit(cli::config_reference(config_markdown), config_output);
      else
        emit(load_run_config(config_path, config_sets).resolved_toml + "\n", config_output);
      return 0;
    }
    if (*params) {
      if (show_name.empty()) {
        if (!params_output.empty()) throw ConfigError("--output: name the table to write (moedmft params NAME -o FILE)");
        for (const auto& n : builtin_param_names()) std::cout << n << "  " << builtin_param_table(n).description << "\n";
      } else {
        emit(param_table_to_toml(load_param_table(show_name)), params_output);
      }
      return 0;
    }
    targs.threads.apply();
    std::vector<std::string> sets = targs.sets;
    if (!targs.output.empty()) sets.push_back(string_override("output", targs.output));
    if (!targs.init_from.empty()) sets.push_back(string_override("train.init_from", targs.init_from));
    if (!targs.init_group.empty()) sets.push_back(string_override("train.init_group", targs.init_group));
    if (!targs.data.empty()) {
      sets.push_back("data.source=\"file\"");
      sets.push_back(string_override("data.path", targs.data));
    }
    targs.sets = sets;
    RunConfig cfg = load_run_config(targs.config, sets);
    const std::string cmdline = command_line(argc, argv);
    return cfg.precision == Precision::float32 ? run_training<float>(cfg, targs, cmdline)
                                               : run_training<double>(cfg, targs, cmdline);
  } catch (const ConfigError& e) {
    // Every MPI rank reads the same config and meets the same error: rank 0 says it once.
    if (mpi.rank() == 0) std::cerr << "moedmft: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "moedmft: " << e.what() << "\n";
    return 1;
  }
}
