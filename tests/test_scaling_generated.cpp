// Scaling calculus, part 3: the generated built-in tables (one source of truth), the placement of
// ladder exponents on the dims, and diagnose with propagated node sizes.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

#include "models/parameterization.hpp"
#include "solver/scaling/solve.hpp"

namespace moedmft::detail {
const std::vector<std::pair<std::string, std::string>>& builtin_table_texts();
}

using namespace moedmft;
using namespace moedmft::scaling;

namespace {

bool contains(const std::vector<std::string>& v, const std::string& s) {
  for (const auto& x : v)
    if (x.find(s) != std::string::npos) return true;
  return false;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

double law_exp(const ParamTable& t, Group g, Quantity q, Dim d) { return t[g][q].exponents[static_cast<int>(d)]; }

}  // namespace

TEST_CASE("generated built-ins: the embedded tables are the calculus' text", "[scaling][generated]") {
  const auto gen = generated_builtins();
  REQUIRE(gen.size() == 12);
  for (const auto& [name, text] : gen) {
    INFO(name);
    bool found = false;
    for (const auto& [stem, embedded] : detail::builtin_table_texts())
      if (stem == name) {
        found = true;
        CHECK(embedded == text);  // fails if the build step did not run on the current calculus
      }
    CHECK(found);
    // `moedmft params NAME` prints param_table_to_toml of the built-in: same table
    CHECK(param_table_to_toml(builtin_param_table(name)) == param_table_to_toml(parse_param_table(text, name)));
    CHECK(builtin_param_table(name).name == name);
    // no hand-written copy may shadow or drift from it
    CHECK_FALSE(std::ifstream(std::string(MOEDMFT_SOURCE_DIR) + "/models/parameterizations/" + name + ".toml").good());
  }
}

TEST_CASE("generated built-ins: the example in docs/scaling_calculus.md is current", "[scaling][generated]") {
  const std::string doc = slurp(std::string(MOEDMFT_SOURCE_DIR) + "/docs/scaling_calculus.md");
  const std::string open = "<!-- generated: mssp-II-sgd -->\n```toml\n", close = "```\n<!-- end generated -->";
  const auto a = doc.find(open), b = doc.find(close);
  REQUIRE(a != std::string::npos);
  REQUIRE(b != std::string::npos);
  CHECK(doc.substr(a + open.size(), b - a - open.size()) == generated_toml(regime_II(), Desiderata::mssp, Optimizer::sgd));
}

TEST_CASE("placement: dim-resolved laws of the generated tables", "[scaling][generated]") {
  // regime I: the hand derivation's per-dim forms come out of the dim-resolved solve
  const ParamTable m1 = builtin_param_table("mup-I-sgd");
  CHECK(law_exp(m1, Group::expert1, Quantity::lr_sgd, Dim::N) == -1.0);
  CHECK(law_exp(m1, Group::expert1, Quantity::lr_sgd, Dim::Ne) == 1.0);
  CHECK(law_exp(m1, Group::expert1, Quantity::lr_sgd, Dim::L) == 1.0);
  CHECK(law_exp(m1, Group::expert2, Quantity::lr_sgd, Dim::N) == 1.0);
  CHECK(law_exp(m1, Group::expert2, Quantity::lr_sgd, Dim::Ne) == -1.0);
  CHECK(law_exp(m1, Group::expert1, Quantity::eps, Dim::Ne) == -1.0);
  CHECK(law_exp(m1, Group::router, Quantity::init_std, Dim::N) == -0.5);
  CHECK(m1[Group::router][Quantity::init_std].fan_in_exponent == -0.5);
  // regime II: Ne is fixed, so no law carries an Ne exponent (only the fan-in rule of init std)
  for (const char* name : {"mup-II-sgd", "mssp-II-adam"}) {
    const ParamTable t = builtin_param_table(name);
    for (int g = 0; g < kNumGroups; ++g)
      for (int q = 0; q < kNumQuantities; ++q) CHECK(t.groups[g].q[q].exponents[static_cast<int>(Dim::Ne)] == 0.0);
    CHECK(law_exp(t, Group::router, Quantity::lr_sgd, Dim::N) == -1.0);
    CHECK(law_exp(t, Group::router, Quantity::lr_sgd, Dim::M) == 1.0);
    CHECK(law_exp(t, Group::expert2, Quantity::lr_sgd, Dim::N) == 1.0);
    CHECK(law_exp(t, Group::expert2, Quantity::lr_sgd, Dim::M) == 1.0);
  }
  // MSSP II: expert2 std = sqrt(8) fan^-1/2 (M/8) (K/8)^-1/2 = M / sqrt(K Ne): the sum of K
  // independent experts with gates 1/M is Theta(1) (equal to the paper's sqrt(M/Ne) for K = M)
  const ParamTable s2 = builtin_param_table("mssp-II-sgd");
  CHECK(law_exp(s2, Group::expert2, Quantity::init_std, Dim::M) == 1.0);
  CHECK(law_exp(s2, Group::expert2, Quantity::init_std, Dim::K) == -0.5);
  CHECK(s2[Group::expert2][Quantity::init_std].constant == Approx(std::sqrt(8.0)));
  Shape s;
  s.N = 512, s.Ne = 16, s.M = 32, s.K = 8, s.L = 1;
  ResolveInputs in;
  CHECK(resolve(s2, s, 8, in)[Group::expert2].init_std == Approx(32.0 / std::sqrt(8.0 * 16.0)));
  // muP placement reproduces itself: derive_table's laws sum to the ladder exponents
  for (const Regime& r : {regime_I(), regime_II(), regime_III()})
    for (Desiderata d : {Desiderata::mup, Desiderata::mssp}) {
      const DerivedTable dt = derive_table(r, d);
      INFO(r.name << " " << desiderata_name(d));
      CHECK(dt.sgd.dims_resolved);
      CHECK(dt.adam.dims_resolved);
      for (int g = 0; g < kMats; ++g)
        CHECK(r.ladder(dt.sgd.dims[sym(Param::lr, static_cast<Group>(g))]) == dt.sgd.get(Param::lr, static_cast<Group>(g)));
    }
}

TEST_CASE("exponents --write text is the built-in text", "[scaling][generated]") {
  for (Desiderata d : {Desiderata::mup, Desiderata::mssp})
    for (Optimizer o : {Optimizer::sgd, Optimizer::adam}) {
      const std::string name = generated_name(regime_III(), d, o);
      CHECK(parse_param_table(generated_toml(regime_III(), d, o), "x").name == name);
    }
}

TEST_CASE("diagnose propagates node sizes: muP II/III flag the M^-1/2 aggregation terms", "[scaling][diagnose]") {
  for (const char* rn : {"II", "III"})
    for (const char* o : {"sgd", "adam"}) {
      const Regime r = regime_by_name(rn);
      const Optimizer opt = std::string(o) == "sgd" ? Optimizer::sgd : Optimizer::adam;
      const Diagnosis d = diagnose(builtin_param_table(std::string("mup-") + rn + "-" + o), r, opt);
      INFO(rn << " " << o << "\n" << d.str());
      // the block output at init is hagg.init ~ sqrt(K) / M = n^-1/2, and the terms fed by it
      // inherit that size: f.eff = dW_out^T z ~ |z|^2, the readout gradient z b_f ~ |z|
      CHECK(d.term("hagg.init").rel() == Rational(-1, 2));
      CHECK(d.term("hagg.init").relative[static_cast<int>(Dim::M)] == Rational(-1));
      CHECK(d.term("hagg.init").relative[static_cast<int>(Dim::K)] == Rational(1, 2));
      CHECK(contains(d.mup_violations, "vanishing activation at init: hagg.init ~ n^-1/2 (M^-1 K^1/2)"));
      CHECK(contains(d.mssp_violations, "hagg.init ~ n^-1/2"));
      CHECK(d.term("f.eff").rel() == Rational(opt == Optimizer::sgd ? -1 : Rational(-1, 2)));
      CHECK(contains(d.mup_violations, "not maximal: f.eff"));
      CHECK(d.term("grad.out").exponent == Rational(-1, 2));
      CHECK(d.term("f.init").rel() == Rational(-1));  // readout init 1/N times |z| n^-1/2
    }
  // MSSP II/III and muP I: every activation Theta(1) at init, nothing of the kind flagged
  for (const char* name : {"mssp-II-sgd", "mssp-II-adam", "mssp-III-sgd", "mssp-III-adam", "mup-I-sgd", "mup-I-adam"}) {
    const std::string n = name;
    const Regime r = regime_by_name(n.substr(n.find('-') + 1, n.rfind('-') - n.find('-') - 1));
    const Optimizer opt = n.substr(n.rfind('-') + 1) == "sgd" ? Optimizer::sgd : Optimizer::adam;
    const Diagnosis d = diagnose(builtin_param_table(n), r, opt);
    INFO(n << "\n" << d.str());
    CHECK_FALSE(contains(d.mup_violations, "vanishing activation"));
    CHECK_FALSE(contains(d.mssp_violations, "hagg.init"));
    // mssp-II: the per-expert output o_m ~ sqrt(M) by design (not an MSSP atom; only g_m o_m
    // summed is), so its muP list names o and nothing else
    for (const auto& v : d.mup_violations) CHECK((n.rfind("mssp-II-", 0) == 0 && v.find(" o.") != std::string::npos));
    if (n.rfind("mssp", 0) == 0) CHECK(d.mssp_violations.empty());
    for (const auto& s : d.sizes)
      if (s.name == "|z|" || s.name == "|a|" || s.name == "|h1|") CHECK(r.ladder(s.value) == Rational(0));
  }
}

TEST_CASE("diagnose propagates node sizes: SP in regime I, exact exponents", "[scaling][diagnose]") {
  // sp: init std fan_in^-1/2 everywhere, one constant SGD LR, absolute laws. Along regime I
  // (N ~ Ne = n), first-step accounting (docs/scaling_calculus.md 3.1), by hand:
  //   b_z   = max(W_out0 b_f ~ N^-1/2, dW_out b_f ~ lr |z| = 1) = 1: the readout update exceeds the
  //           readout's init part of the backward signal by N^+1/2
  //   f.eff = N lr |z|^2 = N^1                         (unstable)
  //   b_a   = max(W2_0 b_o ~ 1, dW2 b_o ~ N |a| b_o^2 = N) = N
  //   a.eff = N lr |h1|^2 b_a = N^2, psi.eff = N (lr |h1| b_psi) = N^3 with b_psi = N^2,
  //   h1.eff = lr b_h1 = N^4 (b_h1 = dW_r b_psi ~ M lr b_psi^2)
  const Diagnosis d = diagnose(builtin_param_table("sp"), regime_I(), Optimizer::sgd);
  INFO(d.str());
  CHECK(d.term("b_z.init").exponent == Rational(-1, 2));
  CHECK(d.term("b_z.upd").exponent == Rational(0));
  CHECK(d.term("b_z.init").rel() == Rational(-1, 2));
  CHECK(contains(d.mssp_violations, "b_z.init ~ n^-1/2 (N^-1/2"));  // sp is absolute: K^-1/2 too, K fixed
  CHECK(d.term("f.eff").rel() == Rational(1));
  CHECK(contains(d.mup_violations, "unstable: f.eff ~ n^1 (N^1"));
  CHECK(d.term("b_a.upd").exponent == Rational(1));
  CHECK(d.term("a.eff").rel() == Rational(2));
  CHECK(d.term("b_psi.eff").exponent == Rational(2));
  CHECK(d.term("psi.eff").rel() == Rational(3));
  CHECK(d.term("h1.eff").rel() == Rational(4));
  // activations at init are Theta(1): SP's problem is the update sizes, not the init
  CHECK(d.term("hagg.init").rel() == Rational(0));
  CHECK_FALSE(contains(d.mup_violations, "vanishing activation"));
}

TEST_CASE("diagnose states: init and lazy backward signals", "[scaling][diagnose]") {
  ParamTable t = builtin_param_table("mup-II-sgd");
  CHECK(t[Group::out].zero_init);  // the built-in muP readout starts at zero ...
  t[Group::out].zero_init = false;  // ... and these states are those of its 1/N law
  // init: no update exists; the first gradients come from the W0 parts of the backward signals
  const Diagnosis i = diagnose(t, regime_II(), Optimizer::sgd, false, true);
  CHECK(i.term("hagg.eff").zero);
  CHECK(i.term("b_a.upd").zero);
  CHECK(i.term("grad.expert1").exponent == Rational(-3, 2));  // b_a.init = W2_0 b_o
  CHECK(i.term("grad.router").exponent == Rational(-3, 2));   // b_psi.init = g' o_0 . b_z
  // lazy: updates driven by those signals (docs/coord_check.md item 5)
  const Diagnosis l = diagnose(t, regime_II(), Optimizer::sgd, false, false, true);
  CHECK_FALSE(l.term("hagg.eff").zero);
  CHECK(l.term("h1.eff").rel() == Rational(-1, 2));
  CHECK(l.term("psi.eff").rel() == Rational(-1, 2));
  CHECK(l.term("a.eff").rel() == Rational(-1, 2));
  CHECK(l.term("grad.in").exponent == Rational(-3, 2));
  // full (default): the update parts dominate, n^1/2 above the W0 parts
  const Diagnosis f = diagnose(t, regime_II(), Optimizer::sgd);
  CHECK(f.term("grad.expert1").exponent == Rational(-1));
  CHECK(f.term("a.eff").rel() == Rational(0));
  // a zero-init readout leaves no backward signal at init: every hidden gradient is zero
  for (const char* zero_readout : {"mssp-I-sgd", "mup-II-sgd"}) {
    INFO(zero_readout);
    const Regime r = std::string(zero_readout) == "mssp-I-sgd" ? regime_I() : regime_II();
    const Diagnosis z = diagnose(builtin_param_table(zero_readout), r, Optimizer::sgd, false, true);
    CHECK(z.term("grad.expert1").zero);
    CHECK_FALSE(z.term("grad.out").zero);
  }
}
