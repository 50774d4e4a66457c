// `moedmft sweep`: run a grid (or one shard of it), gather shards, or write Slurm batch scripts.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include "experiments/cli/commands.hpp"
#include "experiments/progress.hpp"
#include "experiments/sweep.hpp"
#include "experiments/threads.hpp"

namespace moedmft::cli {
namespace {

namespace fs = std::filesystem;

struct SweepArgs {
  std::string config, output, shard;
  std::vector<std::string> sets;
  bool dry_run = false, resume = false, quiet = false, gather = false;
  int parallel = -1;
  ThreadsOption threads;
  SlurmOptions slurm;
  const CLI::Option* slurm_flag = nullptr;
  const CLI::Option* cpus_flag = nullptr;
};

void print_points(const SweepSpec& spec, const std::vector<SweepPoint>& points, const SweepShard& shard) {
  long mine = 0;
  for (const auto& p : points) mine += shard.contains(p.index);
  std::cout << points.size() << " points, axes:";
  for (const auto& a : spec.axes) std::cout << " " << a.name << "[" << a.labels.size() << "]";
  if (shard.count > 1) std::cout << "; shard " << shard.text() << " runs " << mine;
  std::cout << "\noutput: " << spec.output << " (points in " << spec.output << ".points/)\n";
  for (const auto& p : points) {
    if (!shard.contains(p.index)) continue;
    std::cout << "  point " << p.index << ":";
    for (size_t a = 0; a < spec.axes.size(); ++a) std::cout << " " << spec.axes[a].name << "=" << spec.axes[a].labels[p.coords[a]];
    std::cout << "\n";
  }
}

int write_slurm(const SweepSpec& spec, SweepArgs& a) {
  SlurmOptions& o = a.slurm;
  o.binary = fs::read_symlink("/proc/self/exe").string();
  o.sweep_file = fs::absolute(a.config).lexically_normal().string();
  o.output = fs::absolute(spec.output).lexically_normal().string();
  o.workdir = fs::current_path().string();
  o.sets = a.sets;
  if (o.dir.empty()) o.dir = spec.output + ".slurm";
  const SlurmScripts s = write_slurm_scripts(spec, o);
  std::cout << s.array << "\n" << s.gather << "\n" << s.submit << "\n";
  if (!a.quiet)
    std::cerr << "moedmft sweep: submit with `bash " << s.submit << "` (an array of " << o.shards
              << " shards, then the gather once all have succeeded)\n";
  return 0;
}

int run(SweepArgs& a) {
  SweepSpec spec = load_sweep_spec(a.config, a.sets);
  if (!a.output.empty()) spec.output = a.output;
  // The new flags are checked here, not by CLI11, so that a bad value exits 2 like any config error.
  if (a.parallel != -1) {
    if (a.parallel < 0 || a.parallel > 1024) throw ConfigError("--parallel: must be in 0..1024 (0 = what OpenMP would use)");
    spec.parallel = a.parallel;
  }
  // -j caps the points trained at once (each trains on one thread), like every thread count.
  if (a.threads.given()) {
    const int j = a.threads.apply();
    spec.parallel = spec.parallel > 0 ? std::min(spec.parallel, j) : j;
  }
  if (a.cpus_flag->count() && (a.slurm.cpus_per_task < 1 || a.slurm.cpus_per_task > 1024))
    throw ConfigError("--cpus-per-task: must be in 1..1024");
  const SweepShard shard = a.shard.empty() ? SweepShard{} : parse_shard(a.shard);
  const bool slurm = a.slurm_flag->count() > 0;
  if (a.gather && (!a.shard.empty() || a.resume || slurm))
    throw ConfigError("--gather: merges the finished shards; it takes no --shard, --resume or --slurm");
  if (slurm && (!a.shard.empty() || a.resume))
    throw ConfigError("--slurm: writes the batch scripts for all shards; it takes no --shard or --resume");
  const std::vector<SweepPoint> points = expand_grid(spec);
  resolve_points(spec, points);  // every point's configuration is checked before anything runs
  if (a.dry_run) {
    print_points(spec, points, shard);
    return 0;
  }
  if (slurm) return write_slurm(spec, a);
  if (a.gather) {
    gather_sweep(spec);
    std::cout << spec.output << "\n";
    return 0;
  }
  SweepOptions options;
  options.resume = a.resume;
  options.shard = shard;
  ProgressLine line("moedmft sweep", 0, "points", !a.quiet);
  if (!a.quiet)
    options.progress = [&line](const SweepProgress& p) {
      line.set_total(p.total);
      line.update(p.done, "", p.skipped);
    };
  const SweepSummary summary = run_sweep(spec, options);
  line.finish();
  if (!a.quiet)
    std::cerr << "moedmft sweep" << (shard.count > 1 ? " --shard " + shard.text() : std::string()) << ": trained "
              << summary.trained << ", resumed " << summary.skipped << ", diverged " << summary.diverged << "\n";
  // A shard's result is its point files; the gathered file comes from `--gather`.
  std::cout << (shard.count > 1 ? spec.output + ".points" : spec.output) << "\n";
  return 0;
}

}  // namespace

std::vector<Command> add_sweep_commands(CLI::App& app) {
  auto a = std::make_shared<SweepArgs>();
  CLI::App* sweep = app.add_subcommand("sweep", "run a grid of training runs into one HDF5 file (resumable, shardable)");
  sweep->add_option("--config,-c", a->config, "sweep TOML (base run config + [[axis]] entries)")->required();
  sweep->add_option("--set,-s", a->sets, "override a key of the base run config (repeatable)");
  sweep->add_option("--output,-o", a->output, "gathered HDF5 file (overrides the sweep's output)");
  sweep->add_flag("--dry-run", a->dry_run, "print the expanded grid (or the shard's points) and check every point");
  sweep->add_flag("--resume", a->resume, "keep the finished points of an interrupted sweep (or shard)");
  sweep->add_flag("--quiet,-q", a->quiet, "no progress output");
  sweep->add_option("--parallel", a->parallel, "points trained at once (overrides the sweep's parallel; 0: what OpenMP would use)");
  add_threads_option(*sweep, a->threads);
  sweep->add_option("--shard", a->shard, "run shard I of N: the points with index % N == I (no gather)");
  sweep->add_flag("--gather", a->gather, "merge the finished shards' points into the gathered file");
  a->slurm_flag =
      sweep->add_option("--slurm", a->slurm.shards, "write Slurm scripts: an array job of N shards and a dependent gather");
  sweep->add_option("--slurm-dir", a->slurm.dir, "where --slurm writes its scripts (default: OUTPUT.slurm)");
  sweep->add_option("--partition", a->slurm.partition, "--slurm: sbatch --partition");
  sweep->add_option("--time", a->slurm.time, "--slurm: sbatch --time (e.g. 02:00:00)");
  sweep->add_option("--account", a->slurm.account, "--slurm: sbatch --account");
  a->cpus_flag = sweep->add_option("--cpus-per-task", a->slurm.cpus_per_task,
                                   "--slurm: sbatch --cpus-per-task (points trained at once per shard)");
  sweep->add_option("--sbatch", a->slurm.extra, "--slurm: one more sbatch option, e.g. --sbatch=--mem=4G (repeatable)");
  return {{sweep, [a]() { return run(*a); }}};
}

}  // namespace moedmft::cli
