// A training run's configuration: TOML file plus --set overrides, validated strictly
// (unknown keys and out-of-range values are one-line errors naming the field).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.hpp"
#include "models/optimizer.hpp"
#include "models/parameterization.hpp"
#include "models/types.hpp"

namespace moedmft {

enum class Protocol { online, full_batch };
enum class Precision { float32, float64 };

struct DataConfig {
  std::string source = "teacher";  // teacher | file | fashion-mnist
  std::string path;                // file source: the file; fashion-mnist: the folder (kFashionMnistDir)
  int max_points = -1;             // cap on loaded (training) points (-1: all)
  int val_points = 0;              // file source: hold out the last val_points as validation
  int test_points = -1;            // fashion-mnist: first test-split points used for validation (-1: all)
  bool standardize = false;        // z-score inputs with training statistics (fashion-mnist: default on)
  TeacherConfig teacher;
};

struct TrainConfig {
  int steps = 100;
  int batch_size = 64;
  Protocol protocol = Protocol::online;
  int diag_every = 10;   // 0 disables diagnostics
  int probe_size = 64;   // points of the fixed diagnostics probe batch
  int log_every = 10;
  std::string init_from;  // HDF5 weights to start from
  std::string init_group; // group inside init_from ("" = auto)
};

struct RunConfig {
  uint64_t seed = 1;
  Precision precision = Precision::float64;
  std::string output = "results/run.h5";
  Shape shape;
  ModelOptions model;
  std::string param_table = "mup-I-sgd";
  // The table's TOML text when the config came from a result file (its table file may be gone);
  // empty: param_table is looked up as a built-in name or a file.
  std::string param_table_text;
  ResolveInputs resolve;  // base lr/eps/wd, knobs, overrides (adam_like set from optim.kind)
  // param.base.*: the base shape the table's exponents are relative to (muP's base width);
  // 0 keeps the table's own [base] value.
  struct BaseShape {
    int N = 0, Ne = 0, M = 0, K = 0, L = 0;
  } param_base;
  OptimizerConfig optim;
  TrainConfig train;
  DataConfig data;

  std::string resolved_toml;  // the fully resolved configuration, recorded in outputs
};

// Parses a TOML document (may be empty) and applies "dotted.key=value" overrides; the value is
// read as a TOML value, falling back to a plain string. Throws ConfigError.
RunConfig parse_run_config(const std::string& toml_text, const std::vector<std::string>& overrides,
                           const std::string& origin = "config");
// `path`: a TOML file, or a train result file (HDF5), whose stored resolved config and table text
// are re-used, so that `train -c RUN.h5` repeats that run.
RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides);

// File paths a config names (data.path, param.table when it is not a built-in name,
// train.init_from) are relative to the folder of the config file that names them, so a config
// works from any working directory. Outputs and --set values stay relative to the working
// directory. `config_file` empty: nothing changes.
std::string anchor_path(const std::string& value, const std::string& config_file);
// `value` of the dotted run-config `key` as the config file means it: anchored when the key
// names a file, unchanged otherwise (other keys, built-in table names, absolute paths).
std::string anchor_run_value(const std::string& key, const std::string& value, const std::string& config_file);
std::string anchor_run_paths(const std::string& toml_text, const std::string& config_file);

// "key=VALUE" with VALUE written as a TOML string (quotes and backslashes escaped): how a CLI value
// (a path, a name) becomes an override without its characters changing what it says.
std::string string_override(const std::string& key, const std::string& value);

// The parameterization table the run names, resolved for its shape.
ResolvedParam resolve_run_param(const RunConfig& cfg, ParamTable* table_out = nullptr);

const char* to_string(Protocol p);
const char* to_string(Precision p);

}  // namespace moedmft
