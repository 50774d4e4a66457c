// Analysis of a gathered sweep: optimal LR per size (with its seed spread), the LR-transfer
// verdict and the monotonic-improvement verdict, per group of the remaining axes.
#pragma once
#include <string>
#include <vector>

namespace moedmft {

struct AnalyzeOptions {
  std::string lr_axis = "lr", size_axis = "size", seed_axis = "seed";
  double window_fraction = 0.1;  // final loss = mean train loss over this last fraction of steps
  bool use_val = false;          // use the last validation loss instead
  double transfer_tolerance = 1.0;  // |drift| interval allowed for "transfers", in LR grid steps
  std::string dmft_path;            // a `moedmft dmft-moe` file: overlay gap per size (optional)
};

struct GroupAnalysis {
  std::string label;                    // e.g. "parameterization=mup-I-sgd" ("all" without groups)
  std::vector<double> size;             // size coordinates
  std::vector<double> lr;               // LR coordinates
  std::vector<std::vector<double>> loss, loss_err;  // [size][lr] seed mean and standard error
  std::vector<double> best_lr;          // [size] argmin of the seed-mean loss (NaN if all diverged)
  std::vector<double> best_index;       // [size] its LR grid index
  std::vector<double> best_index_err;   // [size] standard error of the per-seed optimum index
  std::vector<int> bracketed;           // [size] optimum inside the grid with finite neighbours
  double drift = 0, drift_err = 0;      // optimum shift across the ladder, in grid steps
  double drift_lo = 0, drift_hi = 0;    // its ~95% interval (seed error and grid quantisation)
  // "transfers" (the interval lies within +-tolerance), "drifts" (it excludes 0),
  // "inconclusive", "not bracketed" (an end size's optimum is at the grid edge or next to a
  // diverged LR) or "one size".
  std::string verdict;
  bool transfers = false;               // verdict == "transfers"
  double transferred_lr = 0;            // the smallest size's optimum
  std::vector<double> loss_at_transferred;  // [size]
  bool monotonic = false;
  std::string monotonic_note;
  // DMFT overlay (with dmft_path, for the group of the limit's parameterization): RMS over the
  // common steps of (seed-mean train loss at the grid LR nearest the limit's LR - limit loss).
  std::vector<double> dmft_gap;         // [size] (empty when not applicable)
  double dmft_lr = 0;                   // grid LR compared
  double dmft_gap_slope = 0, dmft_gap_lo = 0, dmft_gap_hi = 0;  // log-log fit against size (NaN if < 3 sizes)
};

std::vector<GroupAnalysis> analyze_sweep(const std::string& path, const AnalyzeOptions& options);
std::string format_analysis(const std::vector<GroupAnalysis>& groups);
// Replaces /analysis in the sweep file with the results (named dimensions: group, size, lr).
void store_analysis(const std::string& path, const std::vector<GroupAnalysis>& groups, const AnalyzeOptions& options);
// `output` becomes a copy of the sweep file `input` with /analysis stored; `input` is never
// modified. The copy is completed under a private temporary name, checked, then renamed.
void copy_with_analysis(const std::string& input, const std::string& output, const std::vector<GroupAnalysis>& groups,
                        const AnalyzeOptions& options);

}  // namespace moedmft
