#include "experiments/analyze.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <limits>
#include <sstream>

#include "data/h5/h5.hpp"
#include "experiments/coord_check.hpp"
#include "experiments/file_guard.hpp"
#include "models/types.hpp"

namespace moedmft {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Axis {
  std::string name;
  std::vector<double> values;        // numeric coordinates
  std::vector<std::string> labels;   // text of every coordinate
};

Axis read_axis(hid_t f, const std::string& name) {
  Axis a;
  a.name = name;
  if (!h5::exists(f, name)) throw ConfigError("analyze: the sweep file has no coordinate '" + name + "'");
  try {
    a.values = h5::read_double(f, name);
    for (double v : a.values) {
      std::ostringstream s;
      s << v;
      a.labels.push_back(s.str());
    }
  } catch (const std::exception&) {
    a.labels = h5::read_strings(f, name);
  }
  return a;
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? kNaN : s / double(v.size());
}

double stderr_of(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean_of(v);
  double ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return std::sqrt(ss / double(v.size() - 1) / double(v.size()));
}

// Index of the smallest finite entry, or -1.
int argmin_finite(const std::vector<double>& v) {
  int best = -1;
  for (int i = 0; i < int(v.size()); ++i)
    if (std::isfinite(v[i]) && (best < 0 || v[i] < v[best])) best = i;
  return best;
}

// Row-major position of a sweep point: group base + size, LR and seed offsets.
struct PointLayout {
  std::vector<size_t> stride;
  int a_lr, a_size, a_seed;
  size_t n_seeds;
  size_t index(size_t base, size_t s, size_t j, size_t r) const {
    return base + s * stride[a_size] + j * stride[a_lr] + (a_seed >= 0 ? r * stride[a_seed] : 0);
  }
};

}  // namespace

// The limit's loss (PyTorch mean convention, as the sweep's train loss) against the seed-mean
// training curves at the grid LR nearest the limit's, for the groups of the limit's table.
static void add_dmft_overlay(const std::string& path, const std::vector<double>& train_loss, size_t T,
                             const std::vector<double>& lrs, const PointLayout& layout,
                             const std::vector<size_t>& group_base, std::vector<GroupAnalysis>& groups) {
  h5::File f(path, h5::Mode::read);
  if (!h5::has_attr(f, "/", "kind") || h5::read_attr_string(f, "/", "kind") != "dmft_moe")
    throw ConfigError("--dmft: '" + path + "' is not a `moedmft dmft-moe` file");
  const std::vector<double> limit = h5::read_double(f, "loss", nullptr);
  const double lr = h5::read_attr_double(f, "/", "lr");
  const std::string table = h5::read_attr_string(f, "param", "name");
  const size_t steps = std::min(T, limit.size());
  size_t j = 0;
  for (size_t i = 1; i < lrs.size(); ++i)
    if (std::abs(std::log(lrs[i] / lr)) < std::abs(std::log(lrs[j] / lr))) j = i;
  for (size_t g = 0; g < groups.size(); ++g) {
    GroupAnalysis& G = groups[g];
    if (G.label != "all" && G.label.find("=" + table) == std::string::npos) continue;
    G.dmft_lr = lrs[j];
    for (size_t s = 0; s < G.size.size(); ++s) {
      double sum = 0;
      for (size_t t = 0; t < steps; ++t) {
        double mean = 0;
        for (size_t r = 0; r < layout.n_seeds; ++r)
          mean += train_loss[layout.index(group_base[g], s, j, r) * T + t] / double(layout.n_seeds);
        sum += (mean - limit[t]) * (mean - limit[t]);
      }
      G.dmft_gap.push_back(std::sqrt(sum / double(steps)));
    }
    const SlopeFit fit = fit_slope(G.size, G.dmft_gap);
    G.dmft_gap_slope = fit.valid ? fit.slope : kNaN;
    G.dmft_gap_lo = fit.valid ? fit.lo : kNaN;
    G.dmft_gap_hi = fit.valid ? fit.hi : kNaN;
  }
}

// Drift of the optimum between the end sizes with a ~95% interval: the per-seed optimum's
// standard error plus the grid quantisation (uniform +-1/2 step at each end, variance 1/12 each),
// and the three-way verdict from that interval.
static void transfer_verdict(GroupAnalysis& G, double tolerance) {
  G.drift = G.best_index.back() - G.best_index.front();
  G.drift_err = std::hypot(G.best_index_err.back(), G.best_index_err.front());
  const double e = std::sqrt(G.drift_err * G.drift_err + 2.0 / 12.0);
  G.drift_lo = G.drift - 2 * e;
  G.drift_hi = G.drift + 2 * e;
  if (G.size.size() < 2) {
    G.verdict = "one size";
  } else if (!G.bracketed.front() || !G.bracketed.back()) {
    G.verdict = "not bracketed";
  } else if (G.drift_lo >= -tolerance && G.drift_hi <= tolerance) {
    G.verdict = "transfers";
  } else if (G.drift_lo > 0 || G.drift_hi < 0) {
    G.verdict = "drifts";
  } else {
    G.verdict = "inconclusive";
  }
  G.transfers = G.verdict == "transfers";
}

std::vector<GroupAnalysis> analyze_sweep(const std::string& path, const AnalyzeOptions& opt) {
  h5::File f(path, h5::Mode::read);
  if (!h5::has_attr(f, "/", "kind") || h5::read_attr_string(f, "/", "kind") != "sweep")
    throw ConfigError("analyze: '" + path + "' is not a gathered sweep file (kind != sweep)");
  std::vector<std::string> names;
  {
    std::stringstream list(h5::read_attr_string(f, "/", "axes"));
    for (std::string n; std::getline(list, n, ',');) names.push_back(n);
  }
  std::vector<Axis> axes;
  for (const auto& n : names) axes.push_back(read_axis(f, n));
  auto find = [&](const std::string& n, bool required) {
    const int i = int(std::find(names.begin(), names.end(), n) - names.begin());
    if (i == int(names.size()) && required)
      throw ConfigError("analyze: no axis named '" + n + "' (axes: " + h5::read_attr_string(f, "/", "axes") + ")");
    return i == int(names.size()) ? -1 : i;
  };
  const int a_lr = find(opt.lr_axis, true), a_size = find(opt.size_axis, true), a_seed = find(opt.seed_axis, false);
  if (axes[a_lr].values.empty() || axes[a_size].values.empty())
    throw ConfigError("analyze: the LR and size axes must be numeric");

  // Final loss per point.
  std::vector<hsize_t> dims;
  const std::vector<double> series = h5::read_double(f, opt.use_val ? "val_loss" : "train_loss", &dims);
  if (dims.empty() || dims.back() == 0)
    throw ConfigError(std::string("analyze: '") + path + "': " + (opt.use_val ? "val_loss" : "train_loss") +
                      " has no steps (need at least 1)");
  const size_t T = dims.back(), points = series.size() / T;
  const size_t window = opt.use_val ? 1 : std::max<size_t>(1, size_t(std::lround(opt.window_fraction * double(T))));
  std::vector<double> final_loss(points);
  for (size_t p = 0; p < points; ++p) {
    double s = 0;
    for (size_t t = T - window; t < T; ++t) s += series[p * T + t];
    final_loss[p] = s / double(window);  // NaN if any step in the window diverged
  }

  const int A = int(axes.size());
  std::vector<size_t> extent(A), stride(A);
  for (int a = A - 1, s = 1; a >= 0; --a) {
    extent[a] = axes[a].labels.size();
    stride[a] = size_t(s);
    s *= int(extent[a]);
  }
  std::vector<int> group_axes;
  for (int a = 0; a < A; ++a)
    if (a != a_lr && a != a_size && a != a_seed) group_axes.push_back(a);
  size_t n_groups = 1;
  for (int a : group_axes) n_groups *= extent[a];
  size_t grid_points = 1;
  for (size_t e : extent) grid_points *= e;
  if (grid_points != points)
    throw ConfigError("analyze: '" + path + "': the axes (" + h5::read_attr_string(f, "/", "axes") + ") span " +
                      std::to_string(grid_points) + " points but the loss series has " + std::to_string(points));
  const size_t S = extent[a_size], J = extent[a_lr], n_seeds = a_seed >= 0 ? extent[a_seed] : 1;
  const PointLayout layout{stride, a_lr, a_size, a_seed, n_seeds};

  std::vector<GroupAnalysis> out(n_groups);
  std::vector<size_t> group_base(n_groups);
  for (size_t g = 0; g < n_groups; ++g) {
    GroupAnalysis& G = out[g];
    size_t base = 0, rest = g;
    std::string label;
    for (int k = int(group_axes.size()) - 1; k >= 0; --k) {
      const int a = group_axes[k];
      const size_t i = rest % extent[a];
      rest /= extent[a];
      base += i * stride[a];
      label = axes[a].name + "=" + axes[a].labels[i] + (label.empty() ? "" : ", ") + label;
    }
    G.label = label.empty() ? "all" : label;
    group_base[g] = base;
    G.size = axes[a_size].values;
    G.lr = axes[a_lr].values;
    G.loss.assign(S, std::vector<double>(J));
    G.loss_err.assign(S, std::vector<double>(J));
    for (size_t s = 0; s < S; ++s) {
      std::vector<std::vector<double>> per_seed(n_seeds, std::vector<double>(J));
      for (size_t j = 0; j < J; ++j) {
        std::vector<double> v;
        for (size_t r = 0; r < n_seeds; ++r) {
          const size_t p = layout.index(base, s, j, r);
          v.push_back(final_loss[p]);
          per_seed[r][j] = final_loss[p];
        }
        // An LR at which any seed diverged counts as diverged.
        G.loss[s][j] = mean_of(v);
        G.loss_err[s][j] = std::isfinite(G.loss[s][j]) ? stderr_of(v) : kNaN;
      }
      const int best = argmin_finite(G.loss[s]);
      G.best_index.push_back(best < 0 ? kNaN : best);
      G.best_lr.push_back(best < 0 ? kNaN : G.lr[best]);
      std::vector<double> seed_best;
      for (const auto& curve : per_seed)
        if (argmin_finite(curve) >= 0) seed_best.push_back(argmin_finite(curve));
      G.best_index_err.push_back(stderr_of(seed_best));
    }
    for (size_t s = 0; s < S; ++s) {
      // The optimum is located only if it has a finite loss on both sides within the grid.
      const double b = G.best_index[s];
      const bool inside = std::isfinite(b) && b > 0 && b < double(J) - 1;
      G.bracketed.push_back(inside && std::isfinite(G.loss[s][size_t(b) - 1]) && std::isfinite(G.loss[s][size_t(b) + 1]));
    }
    transfer_verdict(G, opt.transfer_tolerance);

    // Monotonic improvement at the LR tuned on the smallest size: no significant increase.
    G.monotonic = std::isfinite(G.best_index.front());
    if (!G.monotonic) G.monotonic_note = "every LR diverged at the smallest size";
    const int jt = G.monotonic ? int(G.best_index.front()) : 0;
    G.transferred_lr = G.monotonic ? G.lr[jt] : kNaN;
    for (size_t s = 0; s < S; ++s) G.loss_at_transferred.push_back(G.loss[s][jt]);
    for (size_t s = 1; s < S && G.monotonic; ++s) {
      const double prev = G.loss[s - 1][jt], cur = G.loss[s][jt];
      const double tol = 2 * std::hypot(G.loss_err[s - 1][jt], G.loss_err[s][jt]);
      std::ostringstream note;
      if (!std::isfinite(cur)) {
        note << "diverged at size " << G.size[s];
      } else if (cur > prev + tol) {
        note << "loss rises from " << prev << " to " << cur << " at size " << G.size[s];
      }
      if (!note.str().empty()) {
        G.monotonic = false;
        G.monotonic_note = note.str();
      }
    }
  }
  if (!opt.dmft_path.empty()) {
    // always against the training loss (the limit has no validation set)
    const std::vector<double> train = opt.use_val ? h5::read_double(f, "train_loss", nullptr) : series;
    const size_t T_train = opt.use_val ? train.size() / points : T;
    add_dmft_overlay(opt.dmft_path, train, T_train, axes[a_lr].values, layout, group_base, out);
  }
  return out;
}

std::string format_analysis(const std::vector<GroupAnalysis>& groups) {
  std::ostringstream s;
  for (const auto& G : groups) {
    s << G.label << "\n  size      optimal lr   (grid index +- seed s.e.)   loss at optimum   loss at transferred lr\n";
    for (size_t i = 0; i < G.size.size(); ++i) {
      const int j = std::isfinite(G.best_index[i]) ? int(G.best_index[i]) : -1;
      s << "  " << std::left << std::setw(9) << G.size[i] << std::right << std::setw(11) << G.best_lr[i] << "   ("
        << std::setw(4) << G.best_index[i] << " +- " << std::fixed << std::setprecision(2) << G.best_index_err[i]
        << std::defaultfloat << std::setprecision(6) << ")" << std::setw(26) << (j >= 0 ? G.loss[i][j] : NAN)
        << std::setw(25) << G.loss_at_transferred[i] << "\n";
    }
    std::string verdict = G.verdict;
    for (char& ch : verdict) ch = char(std::toupper(static_cast<unsigned char>(ch)));
    s << std::fixed << std::setprecision(2) << "  transfer: optimum drifts " << G.drift << " +- " << G.drift_err
      << " grid steps across sizes, 95% interval [" << G.drift_lo << ", " << G.drift_hi << "] -> " << verdict
      << (G.verdict == "not bracketed" ? " (an end size's optimum is at the grid edge or next to a diverged LR: "
                                         "no transfer verdict)"
                                       : "")
      << std::defaultfloat
      << std::setprecision(6) << "\n  monotonic improvement at lr " << G.transferred_lr << ": "
      << (G.monotonic ? "YES" : "NO (" + G.monotonic_note + ")") << "\n";
    if (!G.dmft_gap.empty()) {
      s << "  DMFT overlay at lr " << G.dmft_lr << ": gap (RMS over steps) per size:";
      for (double v : G.dmft_gap) s << " " << v;
      s << "; gap ~ size^" << G.dmft_gap_slope << " [" << G.dmft_gap_lo << ", " << G.dmft_gap_hi << "]\n";
    }
  }
  return s.str();
}

void store_analysis(const std::string& path, const std::vector<GroupAnalysis>& groups, const AnalyzeOptions& opt) {
  h5::File f(path, h5::Mode::read_write);
  h5::remove(f, "analysis");
  const hsize_t G = groups.size(), S = groups.front().size.size(), J = groups.front().lr.size();
  std::vector<std::string> labels;
  std::vector<double> loss, loss_err, best_lr, best_index, best_err, at_transferred, drift, drift_err, transferred_lr;
  std::vector<std::string> notes, verdicts;
  std::vector<double> drift_lo, drift_hi;
  std::vector<uint8_t> bracketed, transfers, monotonic;  // flags stay integers (0/1)
  for (const auto& g : groups) {
    labels.push_back(g.label);
    verdicts.push_back(g.verdict);
    drift_lo.push_back(g.drift_lo);
    drift_hi.push_back(g.drift_hi);
    bracketed.insert(bracketed.end(), g.bracketed.begin(), g.bracketed.end());
    for (size_t s = 0; s < S; ++s) {
      loss.insert(loss.end(), g.loss[s].begin(), g.loss[s].end());
      loss_err.insert(loss_err.end(), g.loss_err[s].begin(), g.loss_err[s].end());
    }
    best_lr.insert(best_lr.end(), g.best_lr.begin(), g.best_lr.end());
    best_index.insert(best_index.end(), g.best_index.begin(), g.best_index.end());
    best_err.insert(best_err.end(), g.best_index_err.begin(), g.best_index_err.end());
    at_transferred.insert(at_transferred.end(), g.loss_at_transferred.begin(), g.loss_at_transferred.end());
    drift.push_back(g.drift);
    drift_err.push_back(g.drift_err);
    transfers.push_back(g.transfers);
    monotonic.push_back(g.monotonic);
    transferred_lr.push_back(g.transferred_lr);
    notes.push_back(g.monotonic_note);
  }
  h5::write_strings(f, "analysis/group", labels);
  h5::make_scale(f, "analysis/group", "group");
  // Integer sizes (the usual N) as int64, like the sweep's own size axis.
  const std::vector<double>& sizes = groups.front().size;
  const bool integral = std::all_of(sizes.begin(), sizes.end(), [](double v) { return v == std::round(v); });
  if (integral) {
    const std::vector<int64_t> whole(sizes.begin(), sizes.end());
    h5::write(f, "analysis/size", whole.data(), {S});
  } else {
    h5::write(f, "analysis/size", sizes.data(), {S});
  }
  h5::make_scale(f, "analysis/size", "size");
  h5::write(f, "analysis/lr", groups.front().lr.data(), {J});
  h5::make_scale(f, "analysis/lr", "lr");
  auto put = [&](const std::string& name, const auto& v, std::vector<hsize_t> dims, std::vector<std::string> scales) {
    h5::write(f, "analysis/" + name, v.data(), dims);
    for (size_t d = 0; d < scales.size(); ++d) h5::attach_scale(f, "analysis/" + name, "analysis/" + scales[d], unsigned(d));
  };
  put("final_loss", loss, {G, S, J}, {"group", "size", "lr"});
  h5::describe(f, "analysis/final_loss", std::string("final loss (seed mean): ") +
                                             (opt.use_val ? "last validation loss" : "mean train loss over the window"));
  h5::describe(f, "analysis/size", "width N");
  put("final_loss_err", loss_err, {G, S, J}, {"group", "size", "lr"});
  put("optimal_lr", best_lr, {G, S}, {"group", "size"});
  h5::describe(f, "analysis/optimal_lr", "argmin over the LR grid of the final loss (NaN: every LR diverged)");
  put("optimal_lr_index", best_index, {G, S}, {"group", "size"});
  h5::describe(f, "analysis/optimal_lr_index", "LR grid index of the optimum (float: NaN when every LR diverged)");
  put("optimal_lr_index_err", best_err, {G, S}, {"group", "size"});
  put("loss_at_transferred_lr", at_transferred, {G, S}, {"group", "size"});
  put("drift", drift, {G}, {"group"});
  put("drift_err", drift_err, {G}, {"group"});
  put("drift_lo", drift_lo, {G}, {"group"});
  put("drift_hi", drift_hi, {G}, {"group"});
  put("optimum_bracketed", bracketed, {G, S}, {"group", "size"});
  h5::describe(f, "analysis/optimum_bracketed", "optimum inside the grid with finite neighbours (0/1)");
  put("transfers", transfers, {G}, {"group"});
  h5::describe(f, "analysis/transfers", "transfer verdict is 'transfers' (0/1)");
  put("monotonic", monotonic, {G}, {"group"});
  h5::describe(f, "analysis/monotonic", "loss improves monotonically with N at the transferred LR (0/1)");
  put("transferred_lr", transferred_lr, {G}, {"group"});
  std::vector<double> gap;
  for (const auto& g : groups)
    for (size_t s = 0; s < S; ++s) gap.push_back(g.dmft_gap.empty() ? kNaN : g.dmft_gap[s]);
  put("dmft_gap", gap, {G, S}, {"group", "size"});
  h5::write_strings(f, "analysis/transfer_verdict", verdicts);
  h5::attach_scale(f, "analysis/transfer_verdict", "analysis/group", 0);
  h5::write_strings(f, "analysis/monotonic_note", notes);
  h5::attach_scale(f, "analysis/monotonic_note", "analysis/group", 0);
  h5::write_attr(f, "analysis", "metric", std::string(opt.use_val ? "last validation loss" : "mean train loss"));
  h5::write_attr(f, "analysis", "window_fraction", opt.window_fraction);
  h5::write_attr(f, "analysis", "transfer_tolerance_grid_steps", opt.transfer_tolerance);
  h5::write_attr(f, "analysis", "table", format_analysis(groups));
}

void copy_with_analysis(const std::string& input, const std::string& output, const std::vector<GroupAnalysis>& groups,
                        const AnalyzeOptions& options) {
  namespace fs = std::filesystem;
  const std::string temporary = process_partial(output);
  try {
    if (fs::path(output).has_parent_path()) fs::create_directories(fs::path(output).parent_path());
    fs::copy_file(input, temporary, fs::copy_options::overwrite_existing);
    store_analysis(temporary, groups, options);
    // Reading /analysis back proves the closed copy is whole before it takes the final name.
    h5::File check(temporary, h5::Mode::read);
    if (!h5::exists(check, "analysis/transfer_verdict")) throw std::runtime_error("the stored /analysis did not read back");
  } catch (const std::exception& e) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    throw std::runtime_error("--output: cannot write '" + output + "': " + e.what());
  }
  fs::rename(temporary, output);
}

}  // namespace moedmft
