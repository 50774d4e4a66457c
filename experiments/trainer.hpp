// One training run: data preparation, the step loop (online or full-batch), divergence
// handling and diagnostics at a fixed cadence. Reused by the CLI, the benchmarks and sweeps.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "data/dataset.hpp"
#include "experiments/run_config.hpp"
#include "models/diagnostics.hpp"
#include "models/engine.hpp"
#include "models/network.hpp"

namespace moedmft {

struct RunData {
  Dataset train;
  Dataset val;  // may be empty
};

// Generates or loads the data the config names; for file data, fills cfg.shape.D / C
// from the file (and re-resolves cfg.resolved_toml) when the config left them at the defaults.
RunData prepare_data(RunConfig& cfg, const std::vector<std::string>& overrides);
// Its two halves: the data alone (depends on cfg.data only, so runs that share [data] share
// it), and fitting a config to loaded data (D and C from a file, the online pass length).
RunData load_run_data(const RunConfig& cfg);
void fit_config_to_data(RunConfig& cfg, const RunData& d, const std::vector<std::string>& overrides);
// cfg re-resolved (with its overrides) at input dim D and output dim C, as a data file sets them.
RunConfig with_data_dims(const RunConfig& cfg, long D, long C, const std::vector<std::string>& overrides);

// The network a run starts from: built from the resolved parameterization and initialised from
// cfg.seed, or loaded from train.init_from (errors name that field). The file is read under the
// process-wide HDF5 lock, so parallel sweep points may call this.
template <class T>
MoeNetwork<T> build_network(const RunConfig& cfg, const ResolvedParam& resolved);
// Peak bytes of one training run (weights, gradients, optimizer state, copies, activations,
// diagnostics); require_run_memory refuses with a ConfigError naming the model fields.
double run_memory_bytes(const RunConfig& cfg);
void require_run_memory(const RunConfig& cfg);

struct RunOutcome {
  std::vector<double> train_loss;      // [steps] loss of the batch each step trained on
  std::vector<double> train_accuracy;  // [steps] classification only
  std::vector<long> diag_steps;        // updates taken when each diagnostics row was measured
  std::vector<std::string> diag_names;
  std::vector<std::vector<double>> diag_values;
  std::vector<double> val_loss, val_accuracy;  // at diag_steps (NaN without validation data)
  bool diverged = false;
  long diverged_at = -1;  // first step whose loss was NaN/Inf
  double seconds = 0;
};

struct Progress {
  long step, total;
  double loss, steps_per_second;
};
using ProgressFn = std::function<void(const Progress&)>;

// Trains through any backend; diagnostics read the engine's host network at their cadence.
template <class T>
RunOutcome train_run(const RunConfig& cfg, const RunData& data, TrainingEngine<T>& engine,
                     const ProgressFn& progress = {});
// The CPU path: trains `net` in place.
template <class T>
RunOutcome train_run(const RunConfig& cfg, const RunData& data, MoeNetwork<T>& net, const ProgressFn& progress = {});

// One diagnostics row: the probe's measurements (grads: the last step's gradients, null at step 0)
// and the validation loss/accuracy (NaN without validation data or after divergence).
template <class T>
void record_diagnostics(const MoeNetwork<T>& net, DiagnosticsProbe<T>& probe, const std::vector<Vec<T>>* grads,
                        const RunData& data, const Mat<T>& x_val, const Mat<T>& y_val, long step, RunOutcome& out);

// Fraction correct: C == 1 compares signs with +-1 targets, otherwise argmax against labels.
template <class T>
double accuracy(const Mat<T>& f, const Mat<T>& y, const std::vector<int>& labels);

}  // namespace moedmft
