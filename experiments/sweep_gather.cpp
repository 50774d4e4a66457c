// Gathers a sweep's point files into one file whose variables carry named dimensions
// (HDF5 dimension scales, readable by xarray through h5netcdf). Layout: docs/sweep_format.md.
#include <filesystem>
#include <limits>
#include <set>
#include <sstream>

#include "data/h5/h5.hpp"
#include "experiments/file_guard.hpp"
#include "experiments/sweep.hpp"
#include "experiments/sweep_internal.hpp"
#include "experiments/toml_section.hpp"
#include "experiments/trainer.hpp"
#include "moedmft_version.hpp"

namespace moedmft {
namespace fs = std::filesystem;

namespace {

struct PointData {
  std::vector<double> train_loss, val_loss, val_accuracy, diag;  // diag: [R, Q_point]
  std::vector<std::string> metrics;
  int64_t diverged = 0, diverged_at = -1;
  double wall_seconds = 0;
  std::string config_toml, input_digests;
};

PointData read_point(const std::string& path) {
  h5::File f(path, h5::Mode::read);
  PointData p;
  p.train_loss = h5::read_double(f, "metrics/train_loss");
  p.diverged = h5::read_attr_int64(f, "/", "diverged");
  p.diverged_at = h5::read_attr_int64(f, "/", "diverged_at");
  p.wall_seconds = h5::read_attr_double(f, "/", "wall_seconds");
  p.config_toml = h5::read_attr_string(f, "/", "config_toml");
  if (h5::has_attr(f, "/", "input_digests")) p.input_digests = h5::read_attr_string(f, "/", "input_digests");
  if (h5::exists(f, "diagnostics/values")) {
    p.metrics = h5::read_strings(f, "diagnostics/metric");
    p.diag = h5::read_double(f, "diagnostics/values");
    p.val_loss = h5::read_double(f, "diagnostics/val_loss");
    if (h5::exists(f, "diagnostics/val_accuracy")) p.val_accuracy = h5::read_double(f, "diagnostics/val_accuracy");
  }
  return p;
}

// Writes `values` with shape axes... + extra dims, attaching the axis scales and then `extra` scales.
template <class V>
void write_variable(hid_t f, const std::string& name, const std::vector<V>& values,
                    const std::vector<hsize_t>& dims, const std::vector<std::string>& scales) {
  h5::write(f, name, values.data(), dims);
  for (size_t d = 0; d < scales.size(); ++d) h5::attach_scale(f, name, "/" + scales[d], unsigned(d));
}

// The first differing line of two digest lists ("key path digest" lines), for the message.
std::string first_difference(const std::string& a, const std::string& b) {
  std::istringstream sa(a), sb(b);
  std::string la, lb;
  while (true) {
    const bool more_a = bool(std::getline(sa, la)), more_b = bool(std::getline(sb, lb));
    if (!more_a && !more_b) return "";
    if (!more_a) la = "(nothing)";
    if (!more_b) lb = "(nothing)";
    if (la != lb) return "now '" + la + "', the point has '" + lb + "'";
  }
}

// Checks that the points directory holds exactly the grid's points: none missing, none from a
// larger grid. Point files are named by index, so none can be there twice.
void check_coverage(const SweepSpec& spec, long total) {
  const fs::path dir(spec.output + ".points");
  if (!fs::is_directory(dir))
    throw ConfigError("sweep --gather: no points directory '" + dir.string() + "'; run the sweep (or its shards) first");
  std::set<long> found;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.size() < 5 || name[0] != 'p' || name.substr(name.size() - 3) != ".h5") continue;
    const std::string digits = name.substr(1, name.size() - 4);
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const long index = std::stol(digits);
    if (index >= total)
      throw ConfigError("sweep --gather: '" + entry.path().string() + "' is not a point of this grid (" +
                        std::to_string(total) + " points); it belongs to another sweep");
    found.insert(index);
  }
  if (long(found.size()) == total) return;
  std::string missing;
  long count = 0;
  for (long i = 0; i < total; ++i)
    if (!found.count(i) && ++count <= 8) missing += (missing.empty() ? "" : ", ") + std::to_string(i);
  throw ConfigError("sweep --gather: " + std::to_string(count) + " of " + std::to_string(total) +
                    " points are missing in '" + dir.string() + "' (" + missing + (count > 8 ? ", ..." : "") +
                    "); run the shards that own them (with --resume)");
}

// The config a point ran with, as the spec resolves it. A data file decides model.D and model.C
// (fit_config_to_data re-resolves with them), so for file sources the spec's config is re-resolved
// with the dims the point recorded; the file's contents are checked by the input digests.
std::string expected_config(const RunConfig& config, const std::string& recorded) {
  if (config.data.source == "teacher") return config.resolved_toml;
  const toml::table t = parse_toml(recorded, "recorded config");
  const auto D = t["model"]["D"].value<int64_t>(), C = t["model"]["C"].value<int64_t>();
  if (!D || !C || (*D == config.shape.D && *C == config.shape.C)) return config.resolved_toml;
  return with_data_dims(config, *D, *C, {}).resolved_toml;
}

}  // namespace

void check_point_file(const std::string& file, long index, const RunConfig& config, const std::string& inputs,
                      const std::string& who) {
  h5::File f(file, h5::Mode::read);
  const std::string where = who + ": point " + std::to_string(index) + " in '" + file + "' ";
  const std::string recorded_config = h5::read_attr_string(f, "/", "config_toml");
  if (recorded_config != expected_config(config, recorded_config))
    throw ConfigError(where + "was run with a different configuration; delete it (or the whole directory) to rerun");
  // Points written before the digests were recorded (older moedmft) count as different inputs.
  const std::string recorded =
      h5::has_attr(f, "/", "input_digests") ? h5::read_attr_string(f, "/", "input_digests") : "";
  if (recorded != inputs)
    throw ConfigError(where + "was run on different input files (" + first_difference(inputs, recorded) +
                      "); delete it (or the whole directory) to rerun");
}

void gather_sweep(const SweepSpec& spec) {
  const fs::path parent = fs::path(spec.output).parent_path();
  if (!parent.empty()) fs::create_directories(parent);  // where the lock file goes
  const FileLock lock(spec.output + ".lock", FileLock::Kind::exclusive, "sweep --gather");
  detail::gather_unlocked(spec);
}

void detail::gather_unlocked(const SweepSpec& spec) {
  const std::vector<SweepPoint> points = expand_grid(spec);
  const std::vector<RunConfig> configs = resolve_points(spec, points);
  const std::vector<std::string> inputs = input_digests(configs);
  check_coverage(spec, long(points.size()));
  std::vector<PointData> data;
  data.reserve(points.size());
  for (const auto& p : points) {
    const std::string file = point_file(spec, p.index);
    check_point_file(file, p.index, configs[p.index], inputs[p.index], "sweep --gather");
    data.push_back(read_point(file));
  }
  const size_t T = data.front().train_loss.size();
  // Diagnostics columns shared by every point (per-expert loads differ when M varies).
  std::vector<std::string> metrics;
  for (const auto& name : data.front().metrics) {
    bool everywhere = true;
    for (const auto& d : data)
      everywhere = everywhere && std::find(d.metrics.begin(), d.metrics.end(), name) != d.metrics.end();
    if (everywhere) metrics.push_back(name);
  }
  const size_t Q = metrics.size(), R = data.front().val_loss.size(), P = points.size();

  std::vector<hsize_t> grid;
  std::vector<std::string> axis_names;
  for (const auto& a : spec.axes) {
    grid.push_back(a.labels.size());
    axis_names.push_back(a.name);
  }
  write_h5_atomically(spec.output, [&](h5::File& f) {
    h5::write_attr(f, "/", "moedmft_version", std::string(MOEDMFT_VERSION));
    h5::write_attr(f, "/", "kind", std::string("sweep"));
    h5::write_attr(f, "/", "sweep_toml", spec.spec_toml);
    h5::write_attr(f, "/", "base_config_toml", data.front().config_toml);
    std::string axes;
    for (const auto& n : axis_names) axes += (axes.empty() ? "" : ",") + n;
    h5::write_attr(f, "/", "axes", axes);
    h5::write_attr(f, "/", "points_dir", spec.output + ".points");

    for (const auto& a : spec.axes) {
      // Integer-valued axes (sizes, seeds) stay integers; others (LRs) are float64.
      bool integral = a.numeric;
      for (const auto& l : a.labels) integral = integral && l.find_first_not_of("+-0123456789") == std::string::npos;
      if (integral) {
        std::vector<int64_t> v;
        for (const auto& l : a.labels) v.push_back(std::stoll(l));
        h5::write(f, "/" + a.name, v.data(), {hsize_t(v.size())});
      } else if (a.numeric) {
        std::vector<double> v;
        for (const auto& l : a.labels) v.push_back(std::stod(l));
        h5::write(f, "/" + a.name, v.data(), {hsize_t(v.size())});
      } else {
        h5::write_strings(f, "/" + a.name, a.labels);
      }
      h5::make_scale(f, "/" + a.name, a.name);
    }
    h5::write_index_scale(f, "/step", hsize_t(T));
    h5::describe(f, "/step", "updates taken before the batch's loss was measured");
    h5::write_index_scale(f, "/point", hsize_t(P));
    h5::describe(f, "/point", "point index, row-major over the axes");

    auto with = [&](std::vector<hsize_t> extra) {
      std::vector<hsize_t> d = grid;
      d.insert(d.end(), extra.begin(), extra.end());
      return d;
    };
    auto names_with = [&](std::vector<std::string> extra) {
      std::vector<std::string> n = axis_names;
      n.insert(n.end(), extra.begin(), extra.end());
      return n;
    };
    std::vector<double> loss(P * T), wall(P);
    std::vector<uint8_t> diverged(P);
    std::vector<int64_t> diverged_at(P);
    std::vector<std::string> point_configs(P), point_inputs(P);
    for (size_t i = 0; i < P; ++i) {
      if (data[i].train_loss.size() != T) throw ConfigError("sweep: points disagree on the number of steps");
      std::copy(data[i].train_loss.begin(), data[i].train_loss.end(), loss.begin() + i * T);
      diverged[i] = uint8_t(data[i].diverged);
      diverged_at[i] = data[i].diverged_at;
      wall[i] = data[i].wall_seconds;
      point_configs[i] = data[i].config_toml;
      point_inputs[i] = data[i].input_digests;
    }
    const std::string convention = h5::read_attr_string(h5::File(point_file(spec, 0), h5::Mode::read), "/", "loss_convention");
    write_variable(f, "/train_loss", loss, with({T}), names_with({"step"}));
    h5::describe(f, "/train_loss", "training batch loss");
    h5::write_attr(f, "/train_loss", "convention", convention);
    write_variable(f, "/diverged", diverged, grid, axis_names);
    h5::describe(f, "/diverged", "loss became NaN or Inf (0/1)");
    write_variable(f, "/diverged_at", diverged_at, grid, axis_names);
    h5::describe(f, "/diverged_at", "first step with a non-finite loss (-1: none)");
    write_variable(f, "/wall_seconds", wall, grid, axis_names);
    h5::describe(f, "/wall_seconds", "training wall time", "s");
    h5::write_strings(f, "/config_toml", point_configs);
    h5::attach_scale(f, "/config_toml", "/point", 0);
    h5::write_strings(f, "/input_digests", point_inputs);
    h5::attach_scale(f, "/input_digests", "/point", 0);

    if (R > 0) {
      h5::File first(point_file(spec, 0), h5::Mode::read);
      const std::vector<int64_t> diag_steps = h5::read_int64(first, "diagnostics/diag_step");
      h5::write(f, "/diag_step", diag_steps.data(), {hsize_t(R)});
      h5::make_scale(f, "/diag_step", "diag_step");
      h5::write_strings(f, "/metric", metrics);
      h5::make_scale(f, "/metric", "metric");
      const double nan = std::numeric_limits<double>::quiet_NaN();
      std::vector<double> val(P * R), accuracy(P * R, nan), diag(P * R * Q, nan);
      for (size_t i = 0; i < P; ++i) {
        const PointData& d = data[i];
        if (d.val_loss.size() != R) throw ConfigError("sweep: points disagree on the diagnostics cadence");
        std::copy(d.val_loss.begin(), d.val_loss.end(), val.begin() + i * R);
        if (d.val_accuracy.size() == R) std::copy(d.val_accuracy.begin(), d.val_accuracy.end(), accuracy.begin() + i * R);
        const size_t q_point = d.metrics.size();
        for (size_t q = 0; q < Q; ++q) {
          const size_t col = size_t(std::find(d.metrics.begin(), d.metrics.end(), metrics[q]) - d.metrics.begin());
          for (size_t r = 0; r < R; ++r) diag[(i * R + r) * Q + q] = d.diag[r * q_point + col];
        }
      }
      write_variable(f, "/val_loss", val, with({R}), names_with({"diag_step"}));
      h5::describe(f, "/val_loss", "validation loss");
      h5::write_attr(f, "/val_loss", "convention", convention);
      write_variable(f, "/val_accuracy", accuracy, with({R}), names_with({"diag_step"}));
      h5::describe(f, "/val_accuracy", "top-1 accuracy on the validation set (NaN for regression)");
      write_variable(f, "/diagnostics", diag, with({R, Q}), names_with({"diag_step", "metric"}));
      h5::describe(f, "/diagnostics", "diagnostics on the probe batch (docs/output_format.md)");
      h5::describe(f, "/diag_step", "updates taken when measured");
    }
  });
}

}  // namespace moedmft
