// Desiderata solvers: muP (maximal update) and MSSP (maximal scale stability) along a regime's
// ladder, the derived ParamTable, its text form, and a term-by-term diagnosis of any table.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "models/parameterization.hpp"
#include "solver/scaling/linear.hpp"
#include "solver/scaling/terms.hpp"

namespace moedmft::scaling {

enum class Desiderata { mup, mssp };
const char* desiderata_name(Desiderata d);

struct SolveOptions {
  bool free_multipliers = false;  // forward multipliers as unknowns (abc-symmetry shows as free dirs)
  Rational alpha_L = 1;           // residual branch exponent (used when the structure has depth)
  bool residual = false;          // model L blocks on a residual stream (forced when L grows)
  // Placement (dim-resolved values): parameters whose ladder value equals this solution's keep
  // its dim-resolved values (MSSP tables: "muP plus the changes"); only the others are solved for.
  const struct LadderSolution* place_like = nullptr;
};

// One term's exponent along the ladder, relative to what the desiderata want.
struct TermValue {
  std::string name, node, kind, what;
  bool zero = false;
  bool backward = false;
  Rational exponent;  // ladder exponent of the term
  Rational target;    // forward: Theta(1) target; backward: the size of its backward signal
  DimVec relative{};  // dim-resolved exponent minus target (diagnose only)
  Rational rel() const { return exponent - target; }
  std::string status() const;  // zero, ok, vanishing, exploding
};

struct LadderSolution {
  SolveStatus status = SolveStatus::inconsistent;
  Desiderata desiderata = Desiderata::mup;
  Optimizer opt = Optimizer::sgd;
  Regime regime;
  Structure structure;
  std::array<Rational, kNumSyms> value{};  // ladder exponents of parameters and backward nodes
  std::vector<std::string> free_directions;  // in words: "init.out +1, mult.out -1, ..."
  std::vector<std::array<Rational, kNumSyms>> free_vectors;  // the same, over all symbols
  std::vector<std::string> conflicts;  // inconsistent: an irreducible set of conflicting desiderata
  std::vector<std::string> violated;   // inequalities that failed (when no hypothesis survives)
  std::vector<std::string> binding;    // inequalities (and non-dominant parts) met with equality
  int hypotheses = 0, consistent = 0;  // dominance hypotheses tried / surviving
  std::vector<TermValue> terms;
  // Dim-resolved values: the binding equations of the chosen dominance hypothesis solved
  // component by component over the growing dims of the regime (the placement rule of
  // docs/scaling_calculus.md section 1.1). dims_resolved = false if some growing dim's
  // component system is inconsistent (then the ladder value only is meaningful).
  std::array<DimVec, kNumSyms> dims{};
  bool dims_resolved = false;
  std::vector<std::string> dims_notes;  // why a dim could not be resolved
  Rational get(Param p, Group g) const { return value[sym(p, g)]; }
  Rational get(Node n) const { return value[sym(n)]; }
  bool ok() const { return status != SolveStatus::inconsistent; }
  std::string report() const;  // the per-term report
};

// Solves the desiderata along the regime's ladder for the given structure (zero init, shared
// experts, alpha from the regime unless the structure says otherwise).
LadderSolution solve_ladder(const Regime& r, Optimizer opt, Desiderata d, const Structure& st,
                            const SolveOptions& o = {});
// Structure with the regime's alpha and the options' alpha_L / residual, no switches.
Structure default_structure(const Regime& r, const SolveOptions& o = {});

// MSSP: the muP structure if it already works, else the smallest set of structural switches
// (router zero init, readout zero init, shared initial experts, expert2 zero init) that makes the
// MSSP system consistent. `alternatives` lists every minimal working set.
struct MsspResult {
  LadderSolution plain;     // MSSP with the muP structure (usually inconsistent: the conflicts)
  LadderSolution solution;  // with the chosen switches
  std::vector<std::string> switches;
  std::vector<std::vector<std::string>> alternatives;
  std::vector<std::string> requirements;  // structural requirements in words (incl. extra variance)
};
MsspResult solve_mssp(const Regime& r, Optimizer opt, const SolveOptions& o = {});

// The derived table: init std from the SGD solve, lr_sgd from SGD, lr_adam and eps from Adam,
// L exponents from a depth probe (the regime with L growing too, residual stream, alpha_L).
// Exponents sit on the regime's first growing dim (N), relative to the regime's base shape; init
// std is written fan_in^(-1/2) times that. Throws std::runtime_error if a solve is inconsistent.
struct DerivedTable {
  ParamTable table;
  LadderSolution sgd, adam;
  std::vector<std::string> notes;
};
DerivedTable derive_table(const Regime& r, Desiderata d, const SolveOptions& o = {},
                          bool depth_factors = true);

// Ladder exponent of a table entry (fan-in term included).
Rational ladder_exponent(const ParamTable& t, Group g, Quantity q, const Regime& r);

std::string format_table(const ParamTable& t, const Regime* r = nullptr);

struct Diagnosis {
  struct NodeSize {
    std::string name;
    bool absent = false;  // every part identically zero
    DimVec value{};
  };
  std::vector<NodeSize> sizes;  // the propagated node sizes the terms were evaluated at
  std::vector<TermValue> terms;
  std::vector<std::string> mup_violations, mssp_violations;
  std::string str() const;
  const TermValue& term(const std::string& name) const;  // throws std::out_of_range
};
// at_init: the state at initialisation (no update yet): only init terms and the W0-only parts of
// the backward signals are live; its grad.* entries are the gradients of the first step.
// lazy_backward: every forward term live but the backward signals still at their W0 parts (the
// first step's gradients driving every update; what a few-step check at small LR sees while the
// update parts of the backward signals are small in constant).
Diagnosis diagnose(const ParamTable& t, const Regime& r, Optimizer opt, bool residual = false, bool at_init = false,
                   bool lazy_backward = false);

}  // namespace moedmft::scaling

namespace moedmft::scaling {

// ---- generated built-in tables (one source of truth) -------------------------------------------
// The built-in mup-* and mssp-* tables are written by this code at build time
// (solver/scaling/generator, embedded by models/CMakeLists.txt); `moedmft exponents --write`
// writes the same text.
std::string generated_name(const Regime& r, Desiderata d, Optimizer opt);  // "mup-I-sgd"
// The table as TOML text, with generated comments: derive_table's laws, named for `opt` (both LR
// laws are filled in; the resolver picks by optimizer).
std::string generated_toml(const Regime& r, Desiderata d, Optimizer opt, const SolveOptions& o = {});
// The 12 built-ins: {mup, mssp} x {I, II, III} x {sgd, adam}, as (name, text).
std::vector<std::pair<std::string, std::string>> generated_builtins();

}  // namespace moedmft::scaling
