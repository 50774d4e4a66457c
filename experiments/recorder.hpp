// Writes one training run into one self-describing HDF5 file (layout in docs/output_format.md).
#pragma once
#include <string>
#include <vector>

#include "experiments/run_config.hpp"
#include "experiments/trainer.hpp"
#include "models/network.hpp"
#include "models/parameterization.hpp"

namespace moedmft {

struct RunRecord {
  const RunConfig* config;
  const ParamTable* table;
  const ResolvedParam* resolved;
  const RunOutcome* outcome;
  std::string data_description;
  std::string command_line;
  std::string input_digests;  // sweep points: digests of the files read (input_digests in sweep.hpp)
};

// Written to a per-process "<path>.partial.<host>.<pid>" then renamed, so a killed run never
// leaves a truncated file under the final name and two writers never share a temporary.
template <class T>
void write_run_file(const std::string& path, const RunRecord& record, const MoeNetwork<T>& initial,
                    const MoeNetwork<T>& final_net);

// Writes the resolved parameterization (table TOML + per-group values) under `group`.
void write_param_table(int64_t loc, const std::string& group, const ParamTable& table, const ResolvedParam& resolved);

// The loss convention of every full-batch output (dmft, dmft-moe, converge), also that of
// `train` with MSE: stored as the `convention` attribute of each loss variable.
// The matrices' storage one after another: how a list of same-shape matrices (kernels per
// step, outputs per replicate) becomes one HDF5 array with the list index as leading axis.
inline std::vector<double> concatenated(const std::vector<Mat<double>>& matrices) {
  std::vector<double> flat;
  for (const auto& m : matrices) flat.insert(flat.end(), m.data(), m.data() + m.size());
  return flat;
}

inline constexpr const char* kLimitLossConvention =
    "mse: mean over the P training points of (f - y)^2 (PyTorch mse_loss)";

// Human-readable table of the resolved per-group values.
std::string format_resolved(const ResolvedParam& p);

}  // namespace moedmft
