// Sweeps: a grid of training runs (parameterization x size x LR x seed x any config key), run in
// parallel with progress and resumption, gathered into one HDF5 file with named dimensions.
//
// Crash safety: each finished point is written atomically to its own file under
// "<output>.points/"; a killed sweep keeps every finished point, `--resume` skips them, and the
// gathered file is assembled from the point files (written to ".partial", then renamed).
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

struct SweepProgress {
  long done, total, skipped;
  double elapsed_seconds, eta_seconds;
};

struct SweepOptions {
  bool resume = false;  // keep finished points; without it an existing point directory is an error
  std::function<void(const SweepProgress&)> progress;
};

struct SweepSummary {
  long trained = 0, skipped = 0, diverged = 0;
};

SweepSummary run_sweep(const SweepSpec& spec, const SweepOptions& options);
// Builds the gathered file from the point files (all must exist).
void gather_sweep(const SweepSpec& spec);

}  // namespace moedmft
