#include "experiments/sweep.hpp"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "data/h5/h5.hpp"
#include "experiments/recorder.hpp"
#include "experiments/toml_section.hpp"
#include "experiments/trainer.hpp"

namespace moedmft {
namespace fs = std::filesystem;

namespace {

// Shortest text that reads back to the same double, kept a TOML float ("0.1", not
// "0.10000000000000001"; "2.0", not the integer "2").
std::string float_text(double v) {
  char buf[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string text = buf;
  if (text.find_first_of(".eEni") == std::string::npos) text += ".0";
  return text;
}

std::string node_text(const toml::node& node) {
  if (auto v = node.value_exact<double>()) return float_text(*v);
  std::ostringstream s;
  node.visit([&s](const auto& concrete) { s << concrete; });
  return s.str();
}

std::vector<std::string> value_texts(const toml::array& values, const std::string& field) {
  std::vector<std::string> out;
  for (const auto& v : values) {
    if (!(v.is_number() || v.is_string() || v.is_boolean()))
      throw ConfigError(field + ": values must be numbers, strings or booleans");
    out.push_back(node_text(v));
  }
  return out;
}

// Merges `overlay` into `base` (tables recursively, everything else replaced).
void merge_into(toml::table& base, const toml::table& overlay) {
  for (const auto& [key, value] : overlay) {
    toml::node* existing = base.get(key);
    if (existing && existing->is_table() && value.is_table())
      merge_into(*existing->as_table(), *value.as_table());
    else
      base.insert_or_assign(key, value);
  }
}

SweepAxis parse_axis(const toml::table& t, int position) {
  const std::string field = "axis[" + std::to_string(position) + "]";
  SweepAxis axis;
  for (const auto& [k, v] : t) {
    const std::string key(k.str());
    if (key != "name" && key != "key" && key != "keys" && key != "values" && key != "set")
      throw ConfigError(field + "." + key + ": unknown key (allowed: name, key, keys, values, set)");
  }
  axis.name = t["name"].value_or(std::string());
  if (axis.name.empty()) throw ConfigError(field + ".name: required (the dimension name in the output)");
  const toml::array* values = t["values"].as_array();
  if (!values || values->empty()) throw ConfigError(field + ".values: required, a non-empty array");
  const std::vector<std::string> texts = value_texts(*values, field + ".values");
  axis.numeric = true;
  for (const auto& v : *values) {
    axis.numeric = axis.numeric && v.is_number();
    axis.labels.push_back(v.is_string() ? *v.value<std::string>() : node_text(v));
  }
  std::vector<std::string> keys;
  if (auto key = t["key"].value<std::string>()) keys.push_back(*key);
  if (const toml::array* many = t["keys"].as_array())
    for (const auto& k : *many) keys.push_back(k.value_or(std::string()));
  for (const auto& k : keys) axis.sets.push_back({k, texts});
  if (const toml::table* set = t["set"].as_table())
    for (const auto& [k, v] : *set) {
      const std::string key(k.str());
      const toml::array* list = v.as_array();
      if (!list || list->size() != values->size())
        throw ConfigError(field + ".set." + key + ": needs one value per coordinate (" +
                          std::to_string(values->size()) + ")");
      axis.sets.push_back({key, value_texts(*list, field + ".set." + key)});
    }
  if (axis.sets.empty()) throw ConfigError(field + ": give `key`, `keys` or `set` (what the axis changes)");
  return axis;
}

}  // namespace

SweepSpec parse_sweep_spec(const std::string& toml_text, const std::vector<std::string>& base_sets,
                           const std::string& origin) {
  toml::table root = parse_toml(toml_text, origin);
  SweepSpec spec;
  spec.spec_toml = toml_text;
  spec.base_sets = base_sets;
  for (const auto& [k, v] : root) {
    const std::string key(k.str());
    if (key != "output" && key != "parallel" && key != "base_config" && key != "base" && key != "axis")
      throw ConfigError(key + ": unknown key (allowed: output, parallel, base_config, base, axis)");
  }
  spec.output = root["output"].value_or(std::string("results/sweep.h5"));
  const int64_t parallel = root["parallel"].value_or(int64_t(0));
  if (parallel < 0 || parallel > 1024) throw ConfigError("parallel: out of range (allowed: 0 .. 1024, 0 = all cores)");
  spec.parallel = int(parallel);

  toml::table base;
  if (auto path = root["base_config"].value<std::string>()) {
    base = parse_toml(read_config_text(*path, "base_config"), *path);
  }
  if (const toml::table* inline_base = root["base"].as_table()) merge_into(base, *inline_base);
  // Every point writes its own file; the base's output key is not used.
  base.erase("output");
  spec.base_toml = node_text(base);

  const toml::array* axes = root["axis"].as_array();
  if (!axes || axes->empty()) throw ConfigError("axis: at least one [[axis]] is required");
  int position = 0;
  const std::vector<std::string> reserved = {"step", "diag_step", "metric", "point", "train_loss", "val_loss",
                                             "diagnostics", "diverged", "diverged_at", "wall_seconds", "config_toml"};
  for (const auto& a : *axes) {
    if (!a.is_table()) throw ConfigError("axis: every entry must be a table ([[axis]])");
    SweepAxis axis = parse_axis(*a.as_table(), position);
    const std::string field = "axis[" + std::to_string(position++) + "].name";
    bool identifier = !axis.name.empty() && !std::isdigit(static_cast<unsigned char>(axis.name[0]));
    for (char ch : axis.name) identifier = identifier && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '_');
    if (!identifier) throw ConfigError(field + ": '" + axis.name + "' must be letters, digits and '_'");
    if (std::find(reserved.begin(), reserved.end(), axis.name) != reserved.end())
      throw ConfigError(field + ": '" + axis.name + "' is reserved for the output layout");
    for (const auto& other : spec.axes)
      if (other.name == axis.name) throw ConfigError(field + ": '" + axis.name + "' is used by two axes");
    spec.axes.push_back(std::move(axis));
  }
  return spec;
}

SweepSpec load_sweep_spec(const std::string& path, const std::vector<std::string>& base_sets) {
  return parse_sweep_spec(read_config_text(path, "--config"), base_sets, path);
}

std::vector<SweepPoint> expand_grid(const SweepSpec& spec) {
  long total = 1;
  for (const auto& a : spec.axes) total *= long(a.labels.size());
  std::vector<SweepPoint> points(total);
  for (long i = 0; i < total; ++i) {
    SweepPoint& p = points[i];
    p.index = i;
    p.coords.assign(spec.axes.size(), 0);
    long rest = i;
    for (int a = int(spec.axes.size()) - 1; a >= 0; --a) {
      const long n = long(spec.axes[a].labels.size());
      p.coords[a] = int(rest % n);
      rest /= n;
    }
    p.sets = spec.base_sets;
    for (size_t a = 0; a < spec.axes.size(); ++a)
      for (const auto& [key, values] : spec.axes[a].sets) p.sets.push_back(key + "=" + values[p.coords[a]]);
  }
  return points;
}

std::vector<RunConfig> resolve_points(const SweepSpec& spec, const std::vector<SweepPoint>& points) {
  std::vector<RunConfig> configs;
  configs.reserve(points.size());
  for (const auto& p : points) {
    try {
      configs.push_back(parse_run_config(spec.base_toml, p.sets, "sweep base"));
    } catch (const ConfigError& e) {
      std::string where;
      for (size_t a = 0; a < spec.axes.size(); ++a)
        where += (a ? ", " : "") + spec.axes[a].name + "=" + spec.axes[a].labels[p.coords[a]];
      throw ConfigError("sweep point " + std::to_string(p.index) + " (" + where + "): " + e.what());
    }
    const RunConfig& first = configs.front();
    const RunConfig& c = configs.back();
    if (c.train.steps != first.train.steps || c.train.diag_every != first.train.diag_every)
      throw ConfigError("sweep: train.steps and train.diag_every must be the same at every point (they define the "
                        "step and diag_step axes)");
  }
  return configs;
}

std::string point_file(const SweepSpec& spec, long index) {
  return spec.output + ".points/p" + std::to_string(index) + ".h5";
}

SweepSummary run_sweep(const SweepSpec& spec, const SweepOptions& options) {
  const std::vector<SweepPoint> points = expand_grid(spec);
  const std::vector<RunConfig> configs = resolve_points(spec, points);
  const fs::path dir(spec.output + ".points");
  if (fs::exists(dir) && !options.resume && !fs::is_empty(dir))
    throw ConfigError("sweep: '" + dir.string() + "' holds points of an earlier run; pass --resume to keep them, or "
                      "delete it to start over");
  fs::create_directories(dir);

  // Finished points are kept only if they were run with this very configuration.
  std::vector<long> pending;
  SweepSummary summary;
  for (const auto& p : points) {
    const std::string file = point_file(spec, p.index);
    fs::remove(file + ".partial");
    if (!fs::exists(file)) {
      pending.push_back(p.index);
      continue;
    }
    h5::File f(file, h5::Mode::read);
    if (h5::read_attr_string(f, "/", "config_toml") != configs[p.index].resolved_toml)
      throw ConfigError("sweep --resume: point " + std::to_string(p.index) + " in '" + file +
                        "' was run with a different configuration; delete it (or the whole directory) to rerun");
    ++summary.skipped;
  }

  const auto start = std::chrono::steady_clock::now();
  std::atomic<long> done{0}, diverged{0};
  const int threads = spec.parallel > 0 ? spec.parallel : omp_get_num_procs();
  auto report = [&]() {
    if (!options.progress) return;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const long d = done.load();
    const double eta = d > 0 ? elapsed / d * double(long(pending.size()) - d) : -1.0;
    options.progress({d + summary.skipped, long(points.size()), summary.skipped, elapsed, eta});
  };
  report();
  std::exception_ptr failure;
  std::atomic<bool> failed{false};
  // One point per thread; the HDF5 library is not thread-safe, so file I/O is serialised.
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (long i = 0; i < long(pending.size()); ++i) {
    if (failed) continue;
    try {
      RunConfig cfg = configs[pending[i]];
      RunData data;
#pragma omp critical(moedmft_hdf5)
      data = prepare_data(cfg, points[pending[i]].sets);
      ParamTable table;
      const ResolvedParam resolved = resolve_run_param(cfg, &table);
      auto run = [&](auto precision_tag) {
        using T = decltype(precision_tag);
        MoeNetwork<T> net = build_network<T>(cfg, resolved);
        const MoeNetwork<T> initial = net;
        const RunOutcome outcome = train_run(cfg, data, net);
        if (outcome.diverged) ++diverged;
        RunRecord record{&cfg, &table, &resolved, &outcome, data.train.description, "moedmft sweep"};
#pragma omp critical(moedmft_hdf5)
        write_run_file(point_file(spec, pending[i]), record, initial, net);
      };
      if (cfg.precision == Precision::float32)
        run(float{});
      else
        run(double{});
      ++done;
#pragma omp critical(moedmft_progress)
      report();
    } catch (...) {
#pragma omp critical(moedmft_failure)
      if (!failed.exchange(true)) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
  summary.trained = done.load();
  summary.diverged = diverged.load();
  gather_sweep(spec);
  return summary;
}

}  // namespace moedmft
