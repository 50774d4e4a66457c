// `moedmft exponents`: derive muP or MSSP exponents for a regime and optimizer.
// `moedmft diagnose`: every atomic term's exponent under a given parameterization.
#include <fstream>
#include <iostream>
#include <sstream>

#include "experiments/cli/commands.hpp"
#include "experiments/file_guard.hpp"
#include "models/parameterization.hpp"
#include "solver/scaling/solve.hpp"

namespace moedmft::cli {
namespace {

struct RegimeArgs {
  std::string regime = "I";
  std::string growth;  // custom: "N=1,Ne=1,M=0,K=0"
  double alpha = 0;
};

void add_regime_options(CLI::App* sub, RegimeArgs& r) {
  sub->add_option("--regime,-r", r.regime, "I (N~Ne), II (N~M~K), III (all), or custom")
      ->check(CLI::IsMember({"I", "II", "III", "custom"}))
      ->capture_default_str();
  sub->add_option("--growth", r.growth, "custom regime: growth exponent per dim, e.g. N=1,Ne=1,M=1,K=0");
  sub->add_option("--alpha", r.alpha, "custom regime: gate exponent (gates carry (M/M_base)^-alpha)");
}

scaling::Regime make_regime(const RegimeArgs& a) {
  if (a.regime != "custom") return scaling::regime_by_name(a.regime);
  if (a.growth.empty()) throw ConfigError("--growth: required with --regime custom (e.g. N=1,Ne=1,M=0,K=0)");
  scaling::Regime r = scaling::regime_I();
  r.name = "custom(" + a.growth + ")";
  r.growth = {};
  r.alpha = scaling::Rational::from_double(a.alpha);
  std::stringstream list(a.growth);
  for (std::string item; std::getline(list, item, ',');) {
    const auto eq = item.find('=');
    const std::string dim = item.substr(0, eq);
    int d = -1;
    for (int i = 0; i < kNumDims; ++i)
      if (dim == kDimNames[i]) d = i;
    if (eq == std::string::npos || d < 0)
      throw ConfigError("--growth: '" + item + "' is not DIM=EXPONENT with DIM one of N, Ne, M, K, L");
    r.growth[d] = scaling::Rational::from_double(std::stod(item.substr(eq + 1)));
  }
  return r;
}

scaling::Optimizer parse_opt(const std::string& s) { return s == "sgd" ? scaling::Optimizer::sgd : scaling::Optimizer::adam; }

}  // namespace

std::vector<Command> add_scaling_commands(CLI::App& app) {
  std::vector<Command> commands;

  struct ExponentArgs {
    RegimeArgs regime;
    std::string optimizer = "sgd", desiderata = "mup", write;
    bool report = false;
  };
  auto ex = std::make_shared<ExponentArgs>();
  CLI::App* exponents = app.add_subcommand("exponents", "derive the muP or MSSP exponents of a regime (scaling calculus)");
  add_regime_options(exponents, ex->regime);
  exponents->add_option("--optimizer,-O", ex->optimizer, "sgd or adam (Adam, AdamW, SignGD)")
      ->check(CLI::IsMember({"sgd", "adam"}))
      ->capture_default_str();
  exponents->add_option("--desiderata,-d", ex->desiderata, "mup or mssp")->check(CLI::IsMember({"mup", "mssp"}))->capture_default_str();
  exponents->add_option("--output,-o,--write", ex->write, "also write the derived table as a parameterization TOML (the text of the built-in <d>-<R>-<opt>)");
  exponents->add_flag("--report", ex->report, "print every term's exponent in the solution");
  commands.push_back({exponents, [ex]() {
    const scaling::Regime regime = make_regime(ex->regime);
    const scaling::Optimizer opt = parse_opt(ex->optimizer);
    const scaling::Desiderata d = ex->desiderata == "mup" ? scaling::Desiderata::mup : scaling::Desiderata::mssp;
    if (d == scaling::Desiderata::mssp) {
      const scaling::MsspResult m = scaling::solve_mssp(regime, opt);
      std::cout << "MSSP, regime " << regime.name << ", " << ex->optimizer << ": structural requirements:";
      if (m.requirements.empty()) std::cout << " none";
      for (const auto& req : m.requirements) std::cout << "\n  - " << req;
      std::cout << "\n";
    }
    const scaling::DerivedTable derived = scaling::derive_table(regime, d);
    std::cout << scaling::format_table(derived.table, &regime);
    const scaling::LadderSolution& sol = opt == scaling::Optimizer::sgd ? derived.sgd : derived.adam;
    std::cout << "solution: " << (sol.free_directions.empty() ? "unique" : "free directions:");
    for (const auto& f : sol.free_directions) std::cout << "\n  " << f;
    std::cout << "\n";
    for (const auto& b : sol.binding) std::cout << "  binding: " << b << "\n";
    for (const auto& n : derived.notes) std::cout << "  note: " << n << "\n";
    if (ex->report) std::cout << sol.report();
    if (!ex->write.empty()) {
      // the same text as the generated built-in of this regime, desiderata and optimizer
      write_text_atomically(ex->write, scaling::generated_toml(regime, d, opt));
      std::cout << "wrote " << ex->write << "\n";
    }
    return 0;
  }});

  struct DiagnoseArgs {
    RegimeArgs regime;
    std::string param, optimizer = "sgd", state = "full";
  };
  auto dg = std::make_shared<DiagnoseArgs>();
  CLI::App* diagnose = app.add_subcommand("diagnose", "exponent of every atomic term under a parameterization, with violations");
  diagnose->add_option("--param,-p", dg->param, "built-in table name or TOML file")->required();
  add_regime_options(diagnose, dg->regime);
  diagnose->add_option("--optimizer,-O", dg->optimizer, "sgd or adam")->check(CLI::IsMember({"sgd", "adam"}))->capture_default_str();
  diagnose->add_option("--state", dg->state,
                       "full (backward signals = largest part), init (no update yet), lazy (updates driven by the "
                       "W0 parts of the backward signals)")
      ->check(CLI::IsMember({"full", "init", "lazy"}))
      ->capture_default_str();
  commands.push_back({diagnose, [dg]() {
    const scaling::Regime regime = make_regime(dg->regime);
    const ParamTable table = load_param_table(dg->param);
    const scaling::Diagnosis d =
        scaling::diagnose(table, regime, parse_opt(dg->optimizer), false, dg->state == "init", dg->state == "lazy");
    std::cout << table.name << " in regime " << regime.name << " (" << dg->optimizer
              << "): term exponents along the ladder (rel = exponent minus its target)\n"
              << d.str();
    std::cout << (d.mup_violations.empty() ? "meets the muP desiderata\n" : "")
              << (d.mssp_violations.empty() ? "meets the MSSP desiderata\n" : "");
    return 0;
  }});
  return commands;
}

}  // namespace moedmft::cli
