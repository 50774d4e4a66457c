// Sweeps: a grid of training runs (parameterization x size x LR x seed x any config key), run in
// parallel with progress and resumption, gathered into one HDF5 file with named dimensions.
//
// Crash safety: each finished point is written atomically to its own file under
// "<output>.points/"; a killed sweep keeps every finished point, `--resume` skips them, and the
// gathered file is assembled from the point files (written to a per-process ".partial", then
// renamed).
//
// Clusters: a shard I/N runs the points with index % N == I into the same points directory (a
// shared file system), and gather_sweep merges them once all shards are done (docs/cluster.md).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "experiments/run_config.hpp"

namespace moedmft {

// One axis of the grid. `sets` maps config keys to one TOML value text per coordinate, so one
// axis can move several keys together (a "size" axis setting N and Ne, say).
struct SweepAxis {
  std::string name;                 // dimension name in the output (e.g. "lr")
  std::vector<std::string> labels;  // coordinate values as text (numbers or names)
  bool numeric = true;              // coordinates stored as float64 (else strings)
  std::vector<std::pair<std::string, std::vector<std::string>>> sets;
};

struct SweepSpec {
  std::string base_toml;                 // run configuration every point starts from
  std::vector<std::string> base_sets;    // --set overrides applied to the base
  std::vector<SweepAxis> axes;           // first axis varies slowest
  std::string output = "results/sweep.h5";
  int parallel = 0;                      // points trained at once (0: all cores)
  bool batch_runs = true;                // train points that share a model/data/protocol as one
                                         // multi-run computation (models/multirun.hpp)
  std::string spec_toml;                 // the sweep file as given, recorded in the output
};

struct SweepPoint {
  long index;                       // row-major over the axes
  std::vector<int> coords;          // position along each axis
  std::vector<std::string> sets;    // key=value overrides for this point
};

SweepSpec parse_sweep_spec(const std::string& toml_text, const std::vector<std::string>& base_sets,
                           const std::string& origin = "sweep");
SweepSpec load_sweep_spec(const std::string& path, const std::vector<std::string>& base_sets);

std::vector<SweepPoint> expand_grid(const SweepSpec& spec);
// Resolves every point's configuration (fails early, naming the point, on a bad combination).
std::vector<RunConfig> resolve_points(const SweepSpec& spec, const std::vector<SweepPoint>& points);
std::string point_file(const SweepSpec& spec, long index);

// Digests of the files each point reads besides its configuration: the parameterization table (a
// file's bytes, or a built-in's canonical text), the dataset (data.source = "file") and
// train.init_from. One "key path digest" line per input; recorded in every point file, so that
// --resume and gather refuse points run on different inputs.
std::vector<std::string> input_digests(const std::vector<RunConfig>& configs);

// Throws ConfigError, naming `who` and the file, unless the point file `file` was run with this
// resolved configuration and these input digests.
void check_point_file(const std::string& file, long index, const RunConfig& config, const std::string& inputs,
                      const std::string& who);

// Shard I of N: the points with index % N == I. Every point is in exactly one shard.
struct SweepShard {
  int index = 0, count = 1;
  bool contains(long point) const { return point % count == index; }
  std::string text() const { return std::to_string(index) + "/" + std::to_string(count); }
};
// Parses "I/N" (the --shard flag); a bad value is a ConfigError naming --shard and the range.
SweepShard parse_shard(const std::string& text);

struct SweepProgress {
  long done, total, skipped;
  double elapsed_seconds, eta_seconds;
};

struct SweepOptions {
  bool resume = false;  // keep finished points; without it an existing point of this shard is an error
  SweepShard shard;     // which points this process runs; with more than one shard nothing is gathered
  std::function<void(const SweepProgress&)> progress;
};

struct SweepSummary {
  long trained = 0, skipped = 0, diverged = 0;
};

// Runs this shard's points. Holds "<output>.lock" (exclusively for the whole grid, shared by
// shards) and, for a shard, "<output>.shard-I-of-N.lock": the same points are never run twice at
// once, and a second sweep on the output is refused with the holder's pid.
SweepSummary run_sweep(const SweepSpec& spec, const SweepOptions& options);
// Builds the gathered file from the point files: every point of the grid must be there exactly
// once, run with this resolved configuration and the same input files. Holds "<output>.lock".
void gather_sweep(const SweepSpec& spec);

// `moedmft sweep --slurm N`: batch scripts that run the sweep as a Slurm array job of N shards
// and gather it in a job that depends on all of them (afterok).
struct SlurmOptions {
  int shards = 0;
  std::string dir;                  // where the scripts go
  std::string partition, time, account;
  int cpus_per_task = 0;            // 0: Slurm's default (one CPU per task)
  std::vector<std::string> extra;   // further sbatch options, one #SBATCH line each ("--mem=4G")
  std::string binary;               // absolute path of moedmft
  std::string sweep_file;           // absolute path of the sweep TOML
  std::vector<std::string> sets;    // --set overrides, passed on
  std::string output;               // absolute path of the gathered file
  std::string workdir;              // the jobs' working directory (relative paths in the TOML)
};
struct SlurmScripts {
  std::string array, gather, submit;  // paths written: array.sbatch, gather.sbatch, submit.sh
};
// Throws ConfigError naming the flag on a bad value (e.g. more shards than points).
SlurmScripts write_slurm_scripts(const SweepSpec& spec, const SlurmOptions& options);

}  // namespace moedmft
