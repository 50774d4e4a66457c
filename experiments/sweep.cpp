#include "experiments/sweep.hpp"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>
#include <sstream>

#include "data/h5/h5.hpp"
#include "experiments/recorder.hpp"
#include "experiments/toml_section.hpp"
#include "experiments/trainer.hpp"
#include "models/diagnostics.hpp"
#include "models/multirun.hpp"

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

namespace {

// What points must share to be trained as one multi-run group: everything but the seed, the
// parameterization ([param]: table, knobs, overrides) and the optimizer ([optim]: kind, LR,
// schedule, ...). [model], [data], [train] and the precision must be equal.
std::string batch_group_key(const RunConfig& cfg) {
  toml::table t = parse_toml(cfg.resolved_toml, "resolved config");
  for (const char* varying : {"seed", "output", "param", "optim"}) t.erase(varying);
  return node_text(t);
}

// prepare_data under the process-wide HDF5 lock when it reads a file; the teacher source is
// generated without HDF5 (and is thread-safe), so points prepare it concurrently.
RunData prepare_point_data(RunConfig& cfg, const std::vector<std::string>& sets) {
  if (cfg.data.source == "teacher") return prepare_data(cfg, sets);
  RunData data;
  std::exception_ptr failure;
#pragma omp critical(moedmft_hdf5)
  try {
    data = prepare_data(cfg, sets);
  } catch (...) {
    failure = std::current_exception();
  }
  if (failure) std::rethrow_exception(failure);
  return data;
}

std::vector<int> label_slice(const std::vector<int>& labels, long begin, long count) {
  if (labels.empty()) return {};
  return std::vector<int>(labels.begin() + begin, labels.begin() + begin + count);
}

// Trains the points of one group through MultiRunEngine (one thread: the sweep already runs one
// unit per thread) and fills each point's outcome exactly as train_run does: per-step loss and
// accuracy, and at the diagnostics cadence the probe's row and the validation loss (measured
// on each run right after its step), all NaN after a divergence.
template <class T>
void train_batched_group(const std::vector<RunConfig>& cfgs, const std::vector<ResolvedParam>& resolved,
                         const RunData& data, std::vector<MoeNetwork<T>>& initial, std::vector<MoeNetwork<T>>& final_nets,
                         std::vector<RunOutcome>& outcomes) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  const RunConfig& first = cfgs.front();
  const int R = int(cfgs.size());
  MultiRunEngine<T> engine(1);
  initial.clear();
  for (int r = 0; r < R; ++r) {
    MoeNetwork<T> net = build_network<T>(cfgs[r], resolved[r]);
    initial.push_back(net);
    engine.add_run(std::move(net), cfgs[r].optim);
  }
  const bool classification = data.train.num_classes > 0;
  const long steps = first.train.steps;
  const int diag_every = first.train.diag_every;
  const bool full_batch = first.train.protocol == Protocol::full_batch;
  const int B = full_batch ? data.train.size() : first.train.batch_size;
  const Mat<T> x_all = data.train.x.template cast<T>(), y_all = data.train.y.template cast<T>();
  const Mat<T> x_val = data.val.x.template cast<T>(), y_val = data.val.y.template cast<T>();
  outcomes.assign(R, RunOutcome{});

  // Diagnostics as train_run measures them: a fixed probe slice of the training set.
  std::vector<std::unique_ptr<DiagnosticsProbe<T>>> probes(R);
  auto measure = [&](int r, long step) {
    record_diagnostics(engine.network(r), *probes[r], step > 0 ? &engine.engine(r).last_gradients() : nullptr, data,
                       x_val, y_val, step, outcomes[r]);
  };
  const auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < R; ++r) {
    RunOutcome& o = outcomes[r];
    if (diag_every > 0) {
      const int probe = std::min(first.train.probe_size, data.train.size());
      probes[r] = std::make_unique<DiagnosticsProbe<T>>(engine.network(r), x_all.topRows(probe), y_all.topRows(probe),
                                                        label_slice(data.train.labels, 0, probe));
      o.diag_names = probes[r]->names();
      measure(r, 0);
    }
    o.train_loss.assign(steps, kNaN);
    if (classification) o.train_accuracy.assign(steps, kNaN);
  }
  engine.train(
      steps,
      [&](long step, RunBatch<T>& b) {
        if (full_batch && step > 0) return;  // the same batch every step
        const long begin = full_batch ? 0 : step * B;
        b.x = x_all.middleRows(begin, B);
        b.y = y_all.middleRows(begin, B);
        b.labels = label_slice(data.train.labels, begin, B);
      },
      [&](int r, long step, double loss, const Mat<T>* f) {
        RunOutcome& o = outcomes[r];
        o.train_loss[step] = loss;
        if (classification) {
          const long begin = full_batch ? 0 : step * B;
          o.train_accuracy[step] = accuracy(*f, Mat<T>(y_all.middleRows(begin, B)), label_slice(data.train.labels, begin, B));
        }
        if (!std::isfinite(loss)) {
          o.diverged = true;
          o.diverged_at = step;
          return;
        }
        const long done = step + 1;
        if (diag_every > 0 && (done % diag_every == 0 || done == steps)) measure(r, done);
      },
      classification);
  // The group's wall time, shared evenly: what each point cost.
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  final_nets.clear();
  for (int r = 0; r < R; ++r) {
    RunOutcome& o = outcomes[r];
    if (diag_every > 0 && o.diverged) {
      // Keep the diagnostics schedule regular: rows that were never measured are NaN.
      for (long step = o.diag_steps.back() + 1; step <= steps; ++step)
        if (step % diag_every == 0 || step == steps) {
          o.diag_steps.push_back(step);
          o.diag_values.push_back(std::vector<double>(o.diag_names.size(), kNaN));
          o.val_loss.push_back(kNaN);
          o.val_accuracy.push_back(kNaN);
        }
    }
    o.seconds = seconds / R;
    final_nets.push_back(engine.network(r));
  }
}

}  // namespace

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

  // Work units: a single point (the train_run path), or a chunk of a group of points that
  // differ only in seed, parameterization and optimizer (the multi-run path, diagnostics
  // included). The single-run path is kept for batch_runs = false and for groups of one point
  // (no other point shares its model, data and training protocol).
  std::vector<std::vector<long>> units;
  std::vector<int> unit_group;  // group of each unit (-1: single point)
  const bool batch = spec.batch_runs;
  if (batch) {
    std::vector<std::string> keys;
    std::vector<std::vector<long>> groups;
    for (long index : pending) {
      const std::string key = batch_group_key(configs[index]);
      const auto it = std::find(keys.begin(), keys.end(), key);
      if (it == keys.end()) {
        keys.push_back(key);
        groups.push_back({index});
      } else {
        groups[it - keys.begin()].push_back(index);
      }
    }
    long grouped = 0;
    for (const auto& g : groups) grouped += g.size() > 1 ? long(g.size()) : 0;
    // Enough chunks to keep every thread busy (four per thread for load balance), at least four
    // runs per chunk so that runs still share their batches.
    const long chunk = std::max(4L, (grouped + 4L * threads - 1) / (4L * threads));
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      const auto& g = groups[gi];
      const long n = long(g.size()), parts = (n + chunk - 1) / chunk;
      for (long part = 0, begin = 0; part < parts; ++part) {
        const long end = begin + (n - begin) / (parts - part);
        units.emplace_back(g.begin() + begin, g.begin() + end);
        unit_group.push_back(n > 1 ? int(gi) : -1);
        begin = end;
      }
    }
  } else {
    for (long index : pending) {
      units.push_back({index});
      unit_group.push_back(-1);
    }
  }
  // A group's training data, prepared by the first of its chunks to start and shared by the rest.
  struct GroupData {
    std::mutex mutex;
    std::shared_ptr<const RunData> data;
  };
  std::vector<GroupData> group_data(units.empty() ? 0 : size_t(*std::max_element(unit_group.begin(), unit_group.end()) + 1));

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
  // One unit per thread; the HDF5 library is not thread-safe, so file I/O is serialised.
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (long u = 0; u < long(units.size()); ++u) {
    if (failed) continue;
    try {
      const std::vector<long>& unit = units[u];
      if (unit_group[u] < 0) {
        const long index = unit.front();
        RunConfig cfg = configs[index];
        const RunData data = prepare_point_data(cfg, points[index].sets);
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
          write_run_file(point_file(spec, index), record, initial, net);
        };
        if (cfg.precision == Precision::float32)
          run(float{});
        else
          run(double{});
        ++done;
#pragma omp critical(moedmft_progress)
        report();
        continue;
      }
      // A chunk of a multi-run group: the data is prepared once per group (the points share
      // [data] and [model]). A file source may re-resolve D and C into each point's config, so
      // there every point still runs prepare_data on its own config.
      std::vector<RunConfig> cfgs;
      for (long index : unit) cfgs.push_back(configs[index]);
      std::shared_ptr<const RunData> shared;
      {
        GroupData& gd = group_data[unit_group[u]];
        std::lock_guard<std::mutex> lock(gd.mutex);
        if (!gd.data) {
          RunConfig c = cfgs.front();
          gd.data = std::make_shared<const RunData>(prepare_point_data(c, points[unit.front()].sets));
        }
        shared = gd.data;
      }
      if (cfgs.front().data.source != "teacher")
        for (size_t i = 0; i < unit.size(); ++i) prepare_point_data(cfgs[i], points[unit[i]].sets);
      const RunData& data = *shared;
      std::vector<ParamTable> tables(unit.size());
      std::vector<ResolvedParam> resolved;
      for (size_t i = 0; i < unit.size(); ++i) resolved.push_back(resolve_run_param(cfgs[i], &tables[i]));
      auto run = [&](auto precision_tag) {
        using T = decltype(precision_tag);
        std::vector<MoeNetwork<T>> initial, final_nets;
        std::vector<RunOutcome> outcomes;
        train_batched_group<T>(cfgs, resolved, data, initial, final_nets, outcomes);
        for (size_t i = 0; i < unit.size(); ++i) {
          if (outcomes[i].diverged) ++diverged;
          RunRecord record{&cfgs[i], &tables[i], &resolved[i], &outcomes[i], data.train.description, "moedmft sweep"};
#pragma omp critical(moedmft_hdf5)
          write_run_file(point_file(spec, unit[i]), record, initial[i], final_nets[i]);
          ++done;
#pragma omp critical(moedmft_progress)
          report();
        }
      };
      if (cfgs.front().precision == Precision::float32)
        run(float{});
      else
        run(double{});
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
