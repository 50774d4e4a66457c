// Sweep files: parsing the spec, expanding the grid, resolving every point's configuration, and
// the digests of the files the points read.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>

#include "experiments/file_guard.hpp"
#include "experiments/sweep.hpp"
#include "experiments/sweep_internal.hpp"

namespace moedmft {
using detail::node_text;

// Shortest text that reads back to the same double, kept a TOML float ("0.1", not
// "0.10000000000000001"; "2.0", not the integer "2").
static std::string float_text(double v) {
  char buf[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string text = buf;
  if (text.find_first_of(".eEni") == std::string::npos) text += ".0";
  return text;
}

std::string detail::node_text(const toml::node& node) {
  if (auto v = node.value_exact<double>()) return float_text(*v);
  std::ostringstream s;
  node.visit([&s](const auto& concrete) { s << concrete; });
  return s.str();
}

namespace {

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
    if (key != "output" && key != "parallel" && key != "batch_runs" && key != "base_config" && key != "base" &&
        key != "axis")
      throw ConfigError(key + ": unknown key (allowed: output, parallel, batch_runs, base_config, base, axis)");
  }
  spec.output = root["output"].value_or(std::string("results/sweep.h5"));
  const int64_t parallel = root["parallel"].value_or(int64_t(0));
  if (parallel < 0 || parallel > 1024) throw ConfigError("parallel: out of range (allowed: 0 .. 1024, 0 = all cores)");
  spec.parallel = int(parallel);
  if (const toml::node* batch = root.get("batch_runs")) {
    if (!batch->is_boolean()) throw ConfigError("batch_runs: must be true or false (got " + node_text(*batch) + ")");
    spec.batch_runs = *batch->value<bool>();
  }

  // Paths in the sweep file are relative to its folder; those in the base config to that file's.
  const std::string sweep_file = std::filesystem::is_regular_file(origin) ? origin : std::string();
  toml::table base;
  if (auto path = root["base_config"].value<std::string>()) {
    const std::string base_file = anchor_path(*path, sweep_file);
    base = parse_toml(anchor_run_paths(read_config_text(base_file, "base_config"), base_file), base_file);
  }
  if (const toml::table* inline_base = root["base"].as_table())
    merge_into(base, parse_toml(anchor_run_paths(node_text(*inline_base), sweep_file), origin));
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
    for (auto& [key, texts] : axis.sets)
      for (auto& text : texts) {
        const toml::table value = parse_toml("v = " + text, origin);
        if (auto path = value["v"].value<std::string>()) {
          const std::string anchored = anchor_run_value(key, *path, sweep_file);
          if (anchored != *path) text = string_override("", anchored).substr(1);
        }
      }
    const std::string field = "axis[" + std::to_string(position++) + "].name";
    bool identifier = !axis.name.empty() && !std::isdigit(static_cast<unsigned char>(axis.name[0]));
    for (char ch : axis.name) identifier = identifier && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '_');
    if (!identifier) throw ConfigError(field + ": '" + axis.name + "' must be letters, digits and '_'");
    if (std::find(reserved.begin(), reserved.end(), axis.name) != reserved.end())
      throw ConfigError(field + ": '" + axis.name + "' is reserved for the output layout");
    for (const auto& other : spec.axes)
      if (other.name == axis.name) throw ConfigError(field + ": '" + axis.name + "' is used by two axes");
    // Two axes writing one key: the later wins at every point, so the earlier axis' coordinates
    // would label runs that never had those values.
    auto overlaps = [](const std::string& x, const std::string& y) {
      return x == y || x.rfind(y + ".", 0) == 0 || y.rfind(x + ".", 0) == 0;
    };
    for (const auto& other : spec.axes)
      for (const auto& mine : axis.sets)
        for (const auto& theirs : other.sets)
          if (overlaps(mine.first, theirs.first))
            throw ConfigError("axis[" + std::to_string(position - 1) + "]: axes '" + other.name + "' and '" + axis.name +
                              "' both set '" + theirs.first + "' (one axis per key; list several keys on one axis with `keys`)");
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
SweepShard parse_shard(const std::string& text) {
  const size_t slash = text.find('/');
  auto number = [&](const std::string& part, long& out) {
    if (part.empty() || part.size() > 9 || part.find_first_not_of("0123456789") != std::string::npos) return false;
    out = std::stol(part);
    return true;
  };
  long i = 0, n = 0;
  if (slash == std::string::npos || !number(text.substr(0, slash), i) || !number(text.substr(slash + 1), n))
    throw ConfigError("--shard " + text + ": expected I/N with whole numbers, e.g. 0/4");
  if (n < 1 || n > 100000) throw ConfigError("--shard " + text + ": N must be in 1..100000");
  if (i >= n) throw ConfigError("--shard " + text + ": I must be in 0.." + std::to_string(n - 1));
  return SweepShard{int(i), int(n)};
}

std::vector<std::string> input_digests(const std::vector<RunConfig>& configs) {
  std::map<std::string, std::string> files;  // path -> digest: a dataset shared by all points is read once
  auto digest = [&](const std::string& field, const std::string& path) {
    auto it = files.find(path);
    if (it == files.end()) it = files.emplace(path, file_digest(path, field)).first;
    return field + " " + path + " " + it->second + "\n";
  };
  const std::vector<std::string> builtins = builtin_param_names();
  std::vector<std::string> out;
  out.reserve(configs.size());
  for (const RunConfig& c : configs) {
    std::string lines;
    if (std::find(builtins.begin(), builtins.end(), c.param_table) != builtins.end())
      lines += "param.table " + c.param_table + " " +
               text_digest(param_table_to_toml(builtin_param_table(c.param_table))) + "\n";
    else
      lines += digest("param.table", c.param_table);
    if (c.data.source == "file") lines += digest("data.path", c.data.path);
    if (c.data.source == "fashion-mnist") {
      const MnistFolder f = find_mnist_folder(c.data.path);
      for (const std::string& file : {f.train_images, f.train_labels, f.test_images, f.test_labels})
        lines += digest("data.path", file);
    }
    if (!c.train.init_from.empty()) lines += digest("train.init_from", c.train.init_from);
    out.push_back(std::move(lines));
  }
  return out;
}

}  // namespace moedmft
