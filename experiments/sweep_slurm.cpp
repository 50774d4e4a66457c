// `moedmft sweep --slurm N`: an array job (one task per shard, SLURM_ARRAY_TASK_ID) and a gather
// job submitted with --dependency=afterok on it, by a small submit script (docs/cluster.md).
#include <filesystem>
#include <fstream>
#include <sstream>

#include "experiments/file_guard.hpp"
#include "experiments/sweep.hpp"

namespace moedmft {
namespace fs = std::filesystem;

namespace {

// One shell word: single quotes, with each ' written as '\''.
std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

void write_script(const std::string& path, const std::string& text) {
  write_text_atomically(path, text);
  fs::permissions(path, fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec,
                  fs::perm_options::add);
}

}  // namespace

SlurmScripts write_slurm_scripts(const SweepSpec& spec, const SlurmOptions& o) {
  const long points = long(expand_grid(spec).size());
  if (o.shards < 1 || o.shards > points)
    throw ConfigError("--slurm " + std::to_string(o.shards) + ": the number of shards must be in 1.." +
                      std::to_string(points) + " (the grid has " + std::to_string(points) + " points)");
  if (o.cpus_per_task < 0) throw ConfigError("--cpus-per-task: must be >= 1");
  for (const auto& e : o.extra)
    if (e.rfind("-", 0) != 0 || e.find('\n') != std::string::npos)
      throw ConfigError("--sbatch '" + e + "': give one sbatch option, e.g. --sbatch=--mem=4G");
  fs::create_directories(o.dir);
  const std::string dir = fs::absolute(o.dir).lexically_normal().string();
  const std::string stem = fs::path(o.output).stem().string();

  std::ostringstream common;  // the #SBATCH lines both jobs share
  common << "#SBATCH --chdir=" << o.workdir << "\n";
  if (!o.partition.empty()) common << "#SBATCH --partition=" << o.partition << "\n";
  if (!o.time.empty()) common << "#SBATCH --time=" << o.time << "\n";
  if (!o.account.empty()) common << "#SBATCH --account=" << o.account << "\n";
  for (const auto& e : o.extra) common << "#SBATCH " << e << "\n";
  std::string command = quoted(o.binary) + " sweep -q -c " + quoted(o.sweep_file) + " -o " + quoted(o.output);
  for (const auto& s : o.sets) command += " --set " + quoted(s);

  const std::string n = std::to_string(o.shards);
  std::ostringstream array;
  array << "#!/bin/bash\n"
        << "# Shards of the sweep " << o.sweep_file << ": array task I runs the points with index % " << n
        << " == I\n# into " << o.output << ".points/ (--resume: a requeued task keeps its finished points).\n"
        << "#SBATCH --job-name=moedmft-" << stem << "\n"
        << "#SBATCH --array=0-" << o.shards - 1 << "\n"
        << "#SBATCH --output=" << dir << "/shard-%a.out\n";
  if (o.cpus_per_task > 0) array << "#SBATCH --cpus-per-task=" << o.cpus_per_task << "\n";
  array << common.str() << "set -euo pipefail\n"
        << "export OMP_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\"\n"
        << "exec " << command << " --resume --parallel \"${SLURM_CPUS_PER_TASK:-1}\" --shard \"${SLURM_ARRAY_TASK_ID}/" << n
        << "\"\n";

  std::ostringstream gather;
  gather << "#!/bin/bash\n"
         << "# Gathers the " << n << " shards of " << o.sweep_file << " into " << o.output
         << "\n# (submitted by submit.sh to start once every array task has succeeded).\n"
         << "#SBATCH --job-name=moedmft-" << stem << "-gather\n"
         << "#SBATCH --output=" << dir << "/gather.out\n"
         << common.str() << "set -euo pipefail\n"
         << "exec " << command << " --gather\n";

  std::ostringstream submit;
  submit << "#!/bin/bash\n"
         << "# Submits the array job, then the gather with --dependency=afterok on it. Prints\n"
         << "# \"array=<job id> gather=<job id>\".\n"
         << "set -euo pipefail\n"
         << "cd " << quoted(dir) << "\n"
         << "array=$(sbatch --parsable array.sbatch)\n"
         << "array=${array%%;*}\n"
         << "gather=$(sbatch --parsable --dependency=afterok:\"${array}\" gather.sbatch)\n"
         << "gather=${gather%%;*}\n"
         << "echo \"array=${array} gather=${gather}\"\n";

  SlurmScripts paths{dir + "/array.sbatch", dir + "/gather.sbatch", dir + "/submit.sh"};
  write_script(paths.array, array.str());
  write_script(paths.gather, gather.str());
  write_script(paths.submit, submit.str());
  return paths;
}

}  // namespace moedmft
