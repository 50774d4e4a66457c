// `moedmft coord-check`: numerical verification of the scaling calculus (experiments/coord_check.hpp).
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>

#include "data/h5/h5.hpp"
#include "experiments/cli/commands.hpp"
#include "experiments/coord_check.hpp"
#include "experiments/threads.hpp"
#include "models/types.hpp"

namespace moedmft::cli {

namespace {
// The table at one diag step: column | predicted | fitted slope [CI] | verdict.
std::string format_coord_table(const CoordCheckResult& r, size_t d, bool only_predicted = false) {
  std::ostringstream s;
  const size_t Q = r.metrics.size();
  s << "diag_step " << r.diag_steps[d] << "\n"
    << std::left << std::setw(26) << "column" << std::setw(11) << "predicted" << std::setw(30)
    << "fitted slope [95% CI]" << "verdict\n";
  for (size_t m = 0; m < Q; ++m) {
    const size_t i = d * Q + m;
    const Prediction& p = r.predictions[i];
    if (only_predicted && !p.has) continue;
    std::ostringstream pred, fit;
    pred << std::fixed << std::setprecision(3);
    if (!p.has)
      pred << "-";
    else if (p.zero)
      pred << "zero";
    else
      pred << p.exponent;
    fit << std::fixed << std::setprecision(3);
    if (r.measured_zero[i])
      fit << "zero";
    else if (r.fits[i].valid)
      fit << std::showpos << r.fits[i].slope << " [" << r.fits[i].lo << ", " << r.fits[i].hi << "]";
    else
      fit << "-";
    s << std::left << std::setw(26) << r.metrics[m] << std::setw(11) << pred.str() << std::setw(30) << fit.str()
      << r.verdicts[i] << "\n";
  }
  return s.str();
}

std::string format_coord_summary(const CoordCheckResult& r) {
  std::ostringstream s;
  const size_t Q = r.metrics.size();
  for (size_t d = 0; d < r.diag_steps.size(); ++d) {
    int agree = 0, disagree = 0;
    std::string which;
    for (size_t m = 0; m < Q; ++m) {
      const std::string& v = r.verdicts[d * Q + m];
      if (v == "agree") ++agree;
      if (v == "disagree") {
        ++disagree;
        which += " " + r.metrics[m];
      }
    }
    s << "diag_step " << r.diag_steps[d] << ": " << agree << " agree, " << disagree << " disagree"
      << (which.empty() ? "" : ":" + which) << "\n";
  }
  return s.str();
}

int run_coord_check_command(const CoordCheckOptions& o, const std::string& sizes, bool full, bool quiet) {
  CoordCheckOptions opt = o;
  if (!sizes.empty()) {
    std::stringstream list(sizes);
    for (std::string item; std::getline(list, item, ',');) {
      try {
        opt.sizes.push_back(std::stoi(item));
      } catch (const std::exception&) {
        throw ConfigError("--sizes: '" + item + "' is not an integer");
      }
      if (opt.sizes.back() < 1) throw ConfigError("--sizes: sizes must be >= 1");
    }
  }
  if (opt.regime != "I" && opt.routing == "topk") opt.routing = "soft";
  const CoordCheckResult r = run_coord_check(opt, quiet);
  std::cout << "coord-check: regime " << opt.regime << ", " << opt.param << ", " << opt.optimizer << ", sizes";
  for (int n : r.sizes) std::cout << " " << n;
  std::cout << ", " << r.seeds.size() << " seeds, " << opt.steps << " steps, lr "
            << coord_lr(opt) << " (" << r.seconds << " s";
  if (r.diverged) std::cout << ", " << r.diverged << " runs DIVERGED";
  std::cout << ")\nfit: OLS of log|value| on log(n) over all (size, seed) samples, 95% t CI; verdict agree if "
            << "the prediction lies in the CI +- " << opt.tolerance << "\n\n";
  if (full)
    for (size_t d = 0; d < r.diag_steps.size(); ++d) std::cout << format_coord_table(r, d) << "\n";
  else {
    if (r.diag_steps.size() > 2) std::cout << format_coord_table(r, 1, true) << "\n";
    std::cout << format_coord_table(r, r.diag_steps.size() - 1) << "\n";
  }
  std::cout << format_coord_summary(r);
  if (!opt.output.empty()) {
    write_coord_check(opt.output, r, {{"table", format_coord_table(r, r.diag_steps.size() - 1)},
                                      {"summary", format_coord_summary(r)}});
    std::cout << "wrote " << opt.output << "\n";
  }
  return 0;
}
}  // namespace

std::vector<Command> add_coord_check_commands(CLI::App& app) {
  struct Args {
    CoordCheckOptions o;
    std::string sizes;
    bool full = false, quiet = false;
    ThreadsOption threads;
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand("coord-check", "coordinate check: fit width exponents of every diagnostic "
                                                    "along a regime's ladder and compare with the scaling calculus");
  sub->add_option("--regime,-r", a->o.regime, "I (N=Ne=n, M=8), II (N=n, Ne=16, M=K=n/16), III (N=Ne=n, M=K=n/16)")
      ->check(CLI::IsMember({"I", "II", "III"}))
      ->capture_default_str();
  sub->add_option("--param,-p", a->o.param, "parameterization: built-in name or TOML file")->required();
  CLI::Option* optimizer = sub->add_option("--optimizer,-O", a->o.optimizer, "sgd or adam (default: adam for a table named *-adam)")
                               ->check(CLI::IsMember({"sgd", "adam"}))
                               ->capture_default_str();
  sub->add_option("--sizes", a->sizes,
                  "ladder scale n, comma separated (default I, III: 64,128,256,512; II: 128,256,512,1024)");
  sub->add_option("--seeds", a->o.seeds, "init seeds per size (data seed fixed)")->capture_default_str();
  sub->add_option("--steps", a->o.steps, "full-batch training steps (diagnostics after each)")->capture_default_str();
  sub->add_option("--lr", a->o.lr, "base LR (default: sgd 0.2, adam 0.03; halved for soft routing (II, III, I soft))");
  sub->add_option("--readout-init", a->o.readout_init_knob, "constant factor on the readout init std (param.knobs.init.out)")
      ->capture_default_str();
  sub->add_option("--batch", a->o.batch, "training points (full batch)")->capture_default_str();
  sub->add_option("--routing", a->o.routing, "regime I: topk (K=2) or soft (K=M)")
      ->check(CLI::IsMember({"soft", "topk"}))
      ->capture_default_str();
  sub->add_option("--tolerance", a->o.tolerance, "verdict tolerance around the CI")->capture_default_str();
  add_threads_option(*sub, a->threads);  // runs trained at once
  sub->add_option("--output,-o", a->o.output, "write the results (HDF5)");
  sub->add_option("--set,-s", a->o.sets, "config override key=value for every run (repeatable)");
  sub->add_flag("--all-steps", a->full, "print the table at every diagnostics step");
  sub->add_flag("--quiet,-q", a->quiet, "no progress line");
  return {{sub, [a, optimizer]() {
             a->o.parallel = a->threads.apply();
             const std::string& p = a->o.param;
             if (optimizer->count() == 0 && p.size() > 5 && p.compare(p.size() - 5, 5, "-adam") == 0)
               a->o.optimizer = "adam";
             return run_coord_check_command(a->o, a->sizes, a->full, a->quiet);
           }}};
}

}  // namespace moedmft::cli
