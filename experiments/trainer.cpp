#include "experiments/trainer.hpp"

#include <chrono>
#include <cmath>
#include <limits>
#include <memory>

#include "models/checkpoint.hpp"
#include "models/diagnostics.hpp"
#include "models/memory_budget.hpp"

namespace moedmft {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<int> label_slice(const std::vector<int>& labels, int begin, int count) {
  if (labels.empty()) return {};
  return std::vector<int>(labels.begin() + begin, labels.begin() + begin + count);
}

}  // namespace

RunData load_run_data(const RunConfig& cfg) {
  RunData d;
  if (cfg.data.source == "teacher") {
    TrainValSplit split = make_teacher_dataset(cfg.data.teacher);
    d.train = std::move(split.train);
    d.val = std::move(split.val);
  } else {
    if (cfg.data.source == "fashion-mnist") {
      TrainValSplit split = load_mnist_folder(cfg.data.path, cfg.data.max_points, cfg.data.test_points);
      d.train = std::move(split.train);
      d.val = std::move(split.val);  // the test split: validation loss and accuracy at diag_every
    } else {
      Dataset all = load_dataset_file(cfg.data.path, cfg.data.max_points);
      const int n_val = cfg.data.val_points;
      if (n_val >= all.size())
        throw ConfigError("data.val_points: " + std::to_string(n_val) + " leaves no training points (file has " +
                          std::to_string(all.size()) + ")");
      d.train = all.rows(0, all.size() - n_val);
      if (n_val > 0) d.val = all.rows(all.size() - n_val, n_val);
    }
  }
  if (cfg.data.standardize) {
    const Dataset stats = d.train;
    standardize_inputs(d.train, stats);
    if (d.val.size() > 0) standardize_inputs(d.val, stats);
  }
  d.train.validate();
  return d;
}

RunConfig with_data_dims(const RunConfig& cfg, long D, long C, const std::vector<std::string>& overrides) {
  std::vector<std::string> with_dims = overrides;
  with_dims.push_back("model.D=" + std::to_string(D));
  with_dims.push_back("model.C=" + std::to_string(C));
  return parse_run_config(cfg.resolved_toml, with_dims, "resolved config");
}

void fit_config_to_data(RunConfig& cfg, const RunData& d, const std::vector<std::string>& overrides) {
  // The file decides D and C: re-resolve so the recorded config says what ran.
  if (cfg.data.source != "teacher" &&
      (cfg.shape.D != d.train.input_dim() || cfg.shape.C != d.train.output_dim()))
    cfg = with_data_dims(cfg, d.train.input_dim(), d.train.output_dim(), overrides);
  if (cfg.train.protocol == Protocol::online && long(cfg.train.steps) * cfg.train.batch_size > d.train.size())
    throw ConfigError("train.steps: the online protocol makes one pass, so steps * batch_size must be <= " +
                      std::to_string(d.train.size()) + " training points");
}

RunData prepare_data(RunConfig& cfg, const std::vector<std::string>& overrides) {
  RunData d = load_run_data(cfg);
  fit_config_to_data(cfg, d, overrides);
  return d;
}

double run_memory_bytes(const RunConfig& cfg) {
  const Shape& s = cfg.shape;
  const double value = cfg.precision == Precision::float32 ? 4 : 8;
  const double N = s.N, Ne = s.Ne, M = s.M, K = s.K, L = s.L;
  const double params = double(s.D) * N + L * (N * M + M + 2 * M * N * Ne) + N * s.C;
  // weights, gradients, up to two optimizer moments, the initial copy kept for the output file
  // and the diagnostics' reference weights
  const double per_param = 4 + (is_adam_like(cfg.optim.kind) ? 2 : 0);
  // forward cache and backward temporaries per block, for a training batch
  const double B = cfg.train.batch_size;
  const double activations = 2 * L * B * (6 * N + 3 * K * N + 3 * K * Ne + 4 * M);
  // the diagnostics probe evaluates every expert densely on its batch
  const double P = cfg.train.diag_every > 0 ? cfg.train.probe_size : 0;
  const double probe = 3 * L * M * P * (Ne + N);
  return value * (per_param * params + activations + probe);
}

void require_run_memory(const RunConfig& cfg) {
  const Shape& s = cfg.shape;
  require_memory(run_memory_bytes(cfg), "model.N/model.Ne/model.M/model.L/train.batch_size", "the network",
                 "N = " + std::to_string(s.N) + ", Ne = " + std::to_string(s.Ne) + ", M = " + std::to_string(s.M) +
                     ", L = " + std::to_string(s.L) + ", batch " + std::to_string(cfg.train.batch_size) + ", " +
                     to_string(cfg.precision));
}

template <class T>
MoeNetwork<T> build_network(const RunConfig& cfg, const ResolvedParam& resolved) {
  require_run_memory(cfg);
  MoeNetwork<T> net(cfg.shape, cfg.model, resolved);
  if (cfg.train.init_from.empty()) {
    net.initialize(cfg.seed);
    return net;
  }
  std::string failure;
  // The HDF5 library is not thread-safe: one lock for every file access in the process.
#pragma omp critical(moedmft_hdf5)
  try {
    load_weights_file(cfg.train.init_from, net, cfg.train.init_group);
  } catch (const ConfigError& e) {
    failure = e.what();
  } catch (const std::exception& e) {
    failure = std::string("train.init_from: ") + e.what();
  }
  if (!failure.empty()) throw ConfigError(failure);
  return net;
}

template <class T>
double accuracy(const Mat<T>& f, const Mat<T>& y, const std::vector<int>& labels) {
  long correct = 0;
  for (Eigen::Index t = 0; t < f.rows(); ++t) {
    if (f.cols() == 1) {
      correct += (f(t, 0) > T(0)) == (y(t, 0) > T(0));
    } else {
      Eigen::Index best;
      f.row(t).maxCoeff(&best);
      Eigen::Index truth = 0;
      if (labels.empty())
        y.row(t).maxCoeff(&truth);
      else
        truth = labels[t];
      correct += best == truth;
    }
  }
  return f.rows() ? double(correct) / f.rows() : kNaN;
}

template <class T>
void record_diagnostics(const MoeNetwork<T>& net, DiagnosticsProbe<T>& probe, const std::vector<Vec<T>>* grads,
                        const RunData& data, const Mat<T>& x_val, const Mat<T>& y_val, long step, RunOutcome& out) {
  out.diag_steps.push_back(step);
  out.diag_values.push_back(probe.measure(net, grads));
  double vl = kNaN, va = kNaN;
  if (data.val.size() > 0 && !out.diverged) {
    ForwardCache<T> vc;
    net.forward(x_val, vc);
    vl = net.loss(vc, y_val, data.val.labels, nullptr);
    if (data.train.num_classes > 0) va = accuracy(vc.f, y_val, data.val.labels);
  }
  out.val_loss.push_back(vl);
  out.val_accuracy.push_back(va);
}

template <class T>
RunOutcome train_run(const RunConfig& cfg, const RunData& data, TrainingEngine<T>& engine, const ProgressFn& progress) {
  RunOutcome out;
  const bool classification = data.train.num_classes > 0;
  const int B = cfg.train.protocol == Protocol::full_batch ? data.train.size() : cfg.train.batch_size;
  const Mat<T> x_all = data.train.x.template cast<T>(), y_all = data.train.y.template cast<T>();
  const Mat<T> x_val = data.val.x.template cast<T>(), y_val = data.val.y.template cast<T>();

  // The probe is a fixed slice of the training set, so coordinate checks see the same inputs.
  const int probe = std::min(cfg.train.probe_size, data.train.size());
  std::unique_ptr<DiagnosticsProbe<T>> diag;
  if (cfg.train.diag_every > 0) {
    diag = std::make_unique<DiagnosticsProbe<T>>(engine.network(), x_all.topRows(probe), y_all.topRows(probe),
                                                 label_slice(data.train.labels, 0, probe));
    out.diag_names = diag->names();
  }

  auto measure = [&](long step) {
    if (diag) record_diagnostics(engine.network(), *diag, step > 0 ? &engine.last_gradients() : nullptr, data, x_val, y_val, step, out);
  };

  const auto start = std::chrono::steady_clock::now();
  measure(0);
  out.train_loss.assign(cfg.train.steps, kNaN);
  if (classification) out.train_accuracy.assign(cfg.train.steps, kNaN);
  Mat<T> f;
  for (long step = 0; step < cfg.train.steps; ++step) {
    const int begin = cfg.train.protocol == Protocol::online ? int(step * B) : 0;
    const std::vector<int> labels = label_slice(data.train.labels, begin, B);
    const Mat<T> y = y_all.middleRows(begin, B);
    const double loss = engine.step(x_all.middleRows(begin, B), y, labels, classification ? &f : nullptr);
    out.train_loss[step] = loss;
    if (classification) out.train_accuracy[step] = accuracy(f, y, labels);
    if (!std::isfinite(loss)) {
      // Divergence is data: keep the NaN/Inf, stop updating, leave the rest NaN.
      out.diverged = true;
      out.diverged_at = step;
      break;
    }
    const long done = step + 1;
    if (diag && (done % cfg.train.diag_every == 0 || done == cfg.train.steps)) measure(done);
    if (progress && (done % cfg.train.log_every == 0 || done == cfg.train.steps)) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      progress({done, cfg.train.steps, loss, done / std::max(secs, 1e-9)});
    }
  }
  if (diag && out.diverged) {
    // Keep the diagnostics schedule regular: rows that were never measured are NaN.
    for (long step = out.diag_steps.back() + 1; step <= cfg.train.steps; ++step)
      if (step % cfg.train.diag_every == 0 || step == cfg.train.steps) {
        out.diag_steps.push_back(step);
        out.diag_values.push_back(std::vector<double>(out.diag_names.size(), kNaN));
        out.val_loss.push_back(kNaN);
        out.val_accuracy.push_back(kNaN);
      }
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

template <class T>
RunOutcome train_run(const RunConfig& cfg, const RunData& data, MoeNetwork<T>& net, const ProgressFn& progress) {
  CpuEngine<T> engine(net, cfg.optim);
  return train_run(cfg, data, static_cast<TrainingEngine<T>&>(engine), progress);
}

template MoeNetwork<float> build_network<float>(const RunConfig&, const ResolvedParam&);
template MoeNetwork<double> build_network<double>(const RunConfig&, const ResolvedParam&);
template double accuracy<float>(const Mat<float>&, const Mat<float>&, const std::vector<int>&);
template double accuracy<double>(const Mat<double>&, const Mat<double>&, const std::vector<int>&);
template void record_diagnostics<float>(const MoeNetwork<float>&, DiagnosticsProbe<float>&, const std::vector<Vec<float>>*,
                                        const RunData&, const Mat<float>&, const Mat<float>&, long, RunOutcome&);
template void record_diagnostics<double>(const MoeNetwork<double>&, DiagnosticsProbe<double>&, const std::vector<Vec<double>>*,
                                         const RunData&, const Mat<double>&, const Mat<double>&, long, RunOutcome&);
template RunOutcome train_run<float>(const RunConfig&, const RunData&, TrainingEngine<float>&, const ProgressFn&);
template RunOutcome train_run<double>(const RunConfig&, const RunData&, TrainingEngine<double>&, const ProgressFn&);
template RunOutcome train_run<float>(const RunConfig&, const RunData&, MoeNetwork<float>&, const ProgressFn&);
template RunOutcome train_run<double>(const RunConfig&, const RunData&, MoeNetwork<double>&, const ProgressFn&);

}  // namespace moedmft
