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
#include <map>
#include <memory>
#include <mutex>
#include <sstream>

#include "data/h5/h5.hpp"
#include "experiments/file_guard.hpp"
#include "experiments/recorder.hpp"
#include "experiments/sweep_internal.hpp"
#include "experiments/trainer.hpp"
#include "models/diagnostics.hpp"
#include "models/parallel.hpp"
#include "models/multirun.hpp"

namespace moedmft {
namespace fs = std::filesystem;
using detail::node_text;

namespace {

// What points must share to be trained as one multi-run group: everything but the seed, the
// parameterization ([param]: table, knobs, overrides) and the optimizer ([optim]: kind, LR,
// schedule, ...). [model], [data], [train] and the precision must be equal.
std::string batch_group_key(const RunConfig& cfg) {
  toml::table t = parse_toml(cfg.resolved_toml, "resolved config");
  for (const char* varying : {"seed", "output", "param", "optim"}) t.erase(varying);
  return node_text(t);
}

// Runs fn under the process-wide HDF5 lock (the library is not thread-safe). An exception thrown
// by fn is carried out of the critical region and rethrown after it: none may leave an OpenMP
// structured block (GCC terminates the process).
template <class Fn>
void serialized_hdf5(Fn fn) {
  FirstFailure failure;
#pragma omp critical(moedmft_hdf5)
  failure.run(fn);
  failure.rethrow();
}

// The training data of every point with the same [data], loaded once per sweep (a Fashion-MNIST
// load takes seconds, a point's training often less). File loads run under the HDF5 lock; the
// teacher source is generated without HDF5, so different teachers are built concurrently.
// Entries live for the sweep: a sweep varies [data] over a few values at most.
class DataCache {
 public:
  std::shared_ptr<const RunData> get(const RunConfig& cfg) {
    const toml::table t = parse_toml(cfg.resolved_toml, "resolved config");
    const std::string key = t["data"].as_table() ? node_text(*t["data"].as_table()) : std::string();
    std::shared_ptr<Entry> entry;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      std::shared_ptr<Entry>& slot = entries_[key];
      if (!slot) slot = std::make_shared<Entry>();
      entry = slot;
    }
    std::lock_guard<std::mutex> lock(entry->mutex);
    if (!entry->data) {
      if (cfg.data.source == "teacher")
        entry->data = std::make_shared<const RunData>(load_run_data(cfg));
      else
        serialized_hdf5([&] { entry->data = std::make_shared<const RunData>(load_run_data(cfg)); });
    }
    return entry->data;
  }

 private:
  struct Entry {
    std::mutex mutex;
    std::shared_ptr<const RunData> data;
  };
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;
};

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
  const std::vector<std::string> inputs = input_digests(configs);
  const SweepShard& shard = options.shard;
  const bool sharded = shard.count > 1;
  const std::string who = sharded ? "sweep --shard " + shard.text() : "sweep";
  const std::string command = "moedmft " + who;  // each point file records the shard that ran it
  const fs::path dir(spec.output + ".points");
  fs::create_directories(dir);
  // The whole grid locks the output; shards share that lock and each locks its own points.
  const FileLock output_lock(spec.output + ".lock", sharded ? FileLock::Kind::shared : FileLock::Kind::exclusive, who);
  std::unique_ptr<FileLock> shard_lock;
  if (sharded)
    shard_lock = std::make_unique<FileLock>(
        spec.output + ".shard-" + std::to_string(shard.index) + "-of-" + std::to_string(shard.count) + ".lock",
        FileLock::Kind::exclusive, who);

  std::vector<long> mine;
  for (const auto& p : points)
    if (shard.contains(p.index)) mine.push_back(p.index);
  if (!options.resume)
    for (long index : mine)
      if (fs::exists(point_file(spec, index)))
        throw ConfigError(who + ": '" + dir.string() + "' holds points of an earlier run; pass --resume to keep " +
                          "them, or delete it to start over");
  // Temporaries of this shard's points whose writer (on this host) is gone; in-flight ones stay.
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    const size_t dot = name.find(".h5.partial.");
    if (name.size() < 2 || name[0] != 'p' || dot == std::string::npos || !stale_partial(name)) continue;
    const std::string index = name.substr(1, dot - 1);
    if (!index.empty() && index.find_first_not_of("0123456789") == std::string::npos &&
        shard.contains(std::stol(index))) {
      std::error_code ec;
      fs::remove(entry.path(), ec);
    }
  }

  // Finished points are kept only if they were run with this very configuration and inputs.
  std::vector<long> pending;
  SweepSummary summary;
  for (long index : mine) {
    const std::string file = point_file(spec, index);
    if (!fs::exists(file)) {
      pending.push_back(index);
      continue;
    }
    check_point_file(file, index, configs[index], inputs[index], who + " --resume");
    ++summary.skipped;
  }

  const auto start = std::chrono::steady_clock::now();
  std::atomic<long> done{0}, diverged{0};
  const int threads = spec.parallel > 0 ? spec.parallel : omp_get_max_threads();

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
  DataCache data_cache;

  std::mutex progress_mutex;  // a lock guard, unlike an omp critical, lets an exception pass
  auto report = [&]() {
    if (!options.progress) return;
    std::lock_guard<std::mutex> lock(progress_mutex);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const long d = done.load();
    const double eta = d > 0 ? elapsed / d * double(long(pending.size()) - d) : -1.0;
    options.progress({d + summary.skipped, long(mine.size()), summary.skipped, elapsed, eta});
  };
  report();
  FirstFailure failure;
  // One unit per thread; the HDF5 library is not thread-safe, so file I/O is serialised.
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (long u = 0; u < long(units.size()); ++u) {
    if (failure.failed()) continue;
    failure.run([&] {
      const std::vector<long>& unit = units[u];
      if (unit_group[u] < 0) {
        const long index = unit.front();
        RunConfig cfg = configs[index];
        const std::shared_ptr<const RunData> shared = data_cache.get(cfg);
        const RunData& data = *shared;
        fit_config_to_data(cfg, data, points[index].sets);
        ParamTable table;
        const ResolvedParam resolved = resolve_run_param(cfg, &table);
        auto run = [&](auto precision_tag) {
          using T = decltype(precision_tag);
          MoeNetwork<T> net = build_network<T>(cfg, resolved);
          const MoeNetwork<T> initial = net;
          const RunOutcome outcome = train_run(cfg, data, net);
          if (outcome.diverged) ++diverged;
          RunRecord record{&cfg, &table, &resolved, &outcome, data.train.description, command, inputs[index]};
          serialized_hdf5([&] { write_run_file(point_file(spec, index), record, initial, net); });
        };
        if (cfg.precision == Precision::float32)
          run(float{});
        else
          run(double{});
        ++done;
        report();
        return;
      }
      // A chunk of a multi-run group (the points share [data] and [model]); a file source
      // re-resolves D and C into each point's config.
      std::vector<RunConfig> cfgs;
      for (long index : unit) cfgs.push_back(configs[index]);
      const std::shared_ptr<const RunData> shared = data_cache.get(cfgs.front());
      const RunData& data = *shared;
      for (size_t i = 0; i < unit.size(); ++i) fit_config_to_data(cfgs[i], data, points[unit[i]].sets);
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
          RunRecord record{&cfgs[i], &tables[i], &resolved[i], &outcomes[i],
                           data.train.description, command, inputs[unit[i]]};
          serialized_hdf5([&] { write_run_file(point_file(spec, unit[i]), record, initial[i], final_nets[i]); });
          ++done;
          report();
        }
      };
      if (cfgs.front().precision == Precision::float32)
        run(float{});
      else
        run(double{});
    });
  }
  failure.rethrow();
  summary.trained = done.load();
  summary.diverged = diverged.load();
  if (!sharded) detail::gather_unlocked(spec);
  return summary;
}

}  // namespace moedmft
