#include "experiments/recorder.hpp"

#include <cstdio>
#include <iomanip>
#include <sstream>

#include "data/h5/h5.hpp"
#include "experiments/file_guard.hpp"
#include "models/checkpoint.hpp"
#include "moedmft_version.hpp"

namespace moedmft {

void write_param_table(int64_t loc, const std::string& group, const ParamTable& table, const ResolvedParam& p) {
  h5::open_or_create_group(loc, group);
  h5::write_attr(loc, group, "name", table.name);
  h5::write_attr(loc, group, "table_toml", param_table_to_toml(table));
  h5::write_attr(loc, group, "gate_factor", p.gate_factor);
  h5::write_attr(loc, group, "aggregation", p.aggregation);
  h5::write_attr(loc, group, "residual_multiplier", p.residual_multiplier);
  h5::write_attr(loc, group, "shared_experts", int64_t(p.shared_experts));
  std::vector<std::string> names(kGroupNames.begin(), kGroupNames.end());
  h5::write_strings(loc, group + "/group", names);
  h5::make_scale(loc, group + "/group", "group");
  const std::vector<hsize_t> dims = {hsize_t(kNumGroups)};
  // Value type follows pick's return: the zero_init flag stays an integer.
  auto column = [&](const char* name, const char* long_name, auto pick) {
    std::vector<decltype(pick(p.groups[0]))> v(kNumGroups);
    for (int g = 0; g < kNumGroups; ++g) v[g] = pick(p.groups[g]);
    h5::write(loc, group + "/" + name, v.data(), dims);
    h5::attach_scale(loc, group + "/" + name, group + "/group", 0);
    h5::describe(loc, group + "/" + name, long_name);
  };
  column("init_std", "initial standard deviation", [](const ResolvedGroup& r) { return r.init_std; });
  column("multiplier", "forward multiplier", [](const ResolvedGroup& r) { return r.multiplier; });
  column("lr", "learning rate", [](const ResolvedGroup& r) { return r.lr; });
  column("eps", "optimizer epsilon", [](const ResolvedGroup& r) { return r.eps; });
  column("weight_decay", "weight decay", [](const ResolvedGroup& r) { return r.weight_decay; });
  column("zero_init", "zero initialisation (0/1)", [](const ResolvedGroup& r) { return uint8_t(r.zero_init); });
}

namespace {
std::string loss_convention(LossKind loss) {
  return loss == LossKind::mse ? "mse: mean over batch and outputs of (f - y)^2"
                               : "cross_entropy: mean over the batch";
}
}  // namespace

std::string format_resolved(const ResolvedParam& p) {
  std::ostringstream s;
  s << "parameterization " << p.name << ": gate_factor " << p.gate_factor << ", aggregation " << p.aggregation
    << ", residual " << p.residual_multiplier << (p.shared_experts ? ", shared initial experts" : "") << "\n";
  s << "  group      init_std   multiplier  lr          eps         weight_decay\n";
  for (int g = 0; g < kNumGroups; ++g) {
    const ResolvedGroup& r = p.groups[g];
    s << "  " << std::left << std::setw(9) << kGroupNames[g] << std::right << std::scientific << std::setprecision(3)
      << std::setw(11) << (r.zero_init ? 0.0 : r.init_std) << std::setw(11) << r.multiplier << std::setw(12) << r.lr
      << std::setw(12) << r.eps << std::setw(12) << r.weight_decay << (r.zero_init ? "  zero-init" : "") << "\n";
  }
  return s.str();
}

template <class T>
void write_run_file(const std::string& path, const RunRecord& rec, const MoeNetwork<T>& initial,
                    const MoeNetwork<T>& final_net) {
  write_h5_atomically(path, [&](h5::File& f) {
    const RunConfig& cfg = *rec.config;
    const RunOutcome& out = *rec.outcome;
    h5::write_attr(f, "/", "moedmft_version", std::string(MOEDMFT_VERSION));
    h5::write_attr(f, "/", "kind", std::string("train"));
    h5::write_attr(f, "/", "seed", int64_t(cfg.seed));
    h5::write_attr(f, "/", "precision", std::string(to_string(cfg.precision)));
    h5::write_attr(f, "/", "config_toml", cfg.resolved_toml);
    h5::write_attr(f, "/", "command_line", rec.command_line);
    if (!rec.input_digests.empty()) h5::write_attr(f, "/", "input_digests", rec.input_digests);
    h5::write_attr(f, "/", "data_description", rec.data_description);
    const std::string convention = loss_convention(cfg.model.loss);
    h5::write_attr(f, "/", "loss_convention", convention);
    h5::write_attr(f, "/", "diverged", int64_t(out.diverged));
    h5::write_attr(f, "/", "diverged_at", int64_t(out.diverged_at));
    h5::write_attr(f, "/", "wall_seconds", out.seconds);

    write_param_table(f.id(), "/param", *rec.table, *rec.resolved);

    // Per-step metrics on a "step" axis (steps are 0-based update indices).
    const hsize_t steps = out.train_loss.size();
    h5::write_index_scale(f, "/metrics/step", steps);
    h5::describe(f, "/metrics/step", "updates taken before the batch's loss was measured");
    h5::write(f, "/metrics/train_loss", out.train_loss.data(), {steps});
    h5::attach_scale(f, "/metrics/train_loss", "/metrics/step", 0);
    h5::describe(f, "/metrics/train_loss", "training batch loss");
    h5::write_attr(f, "/metrics/train_loss", "convention", convention);
    if (!out.train_accuracy.empty()) {
      h5::write(f, "/metrics/train_accuracy", out.train_accuracy.data(), {steps});
      h5::attach_scale(f, "/metrics/train_accuracy", "/metrics/step", 0);
      h5::describe(f, "/metrics/train_accuracy", "training batch accuracy");
    }

    // Diagnostics: a [diag_step, metric] matrix with named metric coordinates.
    if (!out.diag_steps.empty()) {
      const hsize_t rows = out.diag_steps.size(), cols = out.diag_names.size();
      std::vector<int64_t> diag_axis(out.diag_steps.begin(), out.diag_steps.end());
      std::vector<double> values(rows * cols);
      for (hsize_t r = 0; r < rows; ++r)
        for (hsize_t c = 0; c < cols; ++c) values[r * cols + c] = out.diag_values[r][c];
      h5::write(f, "/diagnostics/diag_step", diag_axis.data(), {rows});
      h5::make_scale(f, "/diagnostics/diag_step", "diag_step");
      h5::write_strings(f, "/diagnostics/metric", out.diag_names);
      h5::make_scale(f, "/diagnostics/metric", "metric");
      h5::describe(f, "/diagnostics/diag_step", "updates taken when measured");
      h5::write(f, "/diagnostics/values", values.data(), {rows, cols});
      h5::attach_scale(f, "/diagnostics/values", "/diagnostics/diag_step", 0);
      h5::attach_scale(f, "/diagnostics/values", "/diagnostics/metric", 1);
      h5::describe(f, "/diagnostics/values", "diagnostics on the probe batch (docs/output_format.md)");
      for (const auto& [name, series] : {std::pair{"val_loss", &out.val_loss}, std::pair{"val_accuracy", &out.val_accuracy}}) {
        h5::write(f, std::string("/diagnostics/") + name, series->data(), {rows});
        h5::attach_scale(f, std::string("/diagnostics/") + name, "/diagnostics/diag_step", 0);
      }
      h5::describe(f, "/diagnostics/val_loss", "validation loss");
      h5::write_attr(f, "/diagnostics/val_loss", "convention", convention);
      h5::describe(f, "/diagnostics/val_accuracy", "validation accuracy");
    }
    save_weights(f.id(), "/weights_init", initial);
    save_weights(f.id(), "/weights", final_net);
  });
}

template void write_run_file<float>(const std::string&, const RunRecord&, const MoeNetwork<float>&, const MoeNetwork<float>&);
template void write_run_file<double>(const std::string&, const RunRecord&, const MoeNetwork<double>&, const MoeNetwork<double>&);

}  // namespace moedmft
