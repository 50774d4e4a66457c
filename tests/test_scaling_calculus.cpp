// Scaling calculus, part 2: the term model and the muP / MSSP solvers against Tensor Programs V,
// depth-muP / CompleteP and the hand-derived tables of docs/parameterizations.md.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>

#include "models/parameterization.hpp"
#include "solver/scaling/solve.hpp"

using namespace moedmft;
using namespace moedmft::scaling;

namespace {

const std::array<Group, 5> kMatGroups = {Group::in, Group::router, Group::expert1, Group::expert2, Group::out};
const std::array<Quantity, 4> kQs = {Quantity::init_std, Quantity::lr_sgd, Quantity::lr_adam, Quantity::eps};

Regime regime_of(const std::string& n) { return regime_by_name(n); }

bool contains(const std::vector<std::string>& v, const std::string& s) {
  for (const auto& x : v)
    if (x.find(s) != std::string::npos) return true;
  return false;
}

// The hand derivation's ladder exponents (docs/parameterizations.md section 5, docs/scaling_calculus.md
// section 4), init / SGD LR / Adam LR / eps per group (in, router, expert1, expert2, out). The
// built-in mup-*/mssp-* tables are generated from the calculus since issue #3, so the hand
// derivation is kept here as literal numbers: the independent check of the calculus.
struct HandLadder {
  Rational v[5][4];
};
HandLadder hand_ladder(const std::string& regime, bool mssp) {
  const Rational h(1, 2), mh(-1, 2);
  HandLadder l{};
  const Rational in[4] = {0, 1, 0, -1}, out[4] = {-1, -1, -1, 0};
  for (int q = 0; q < 4; ++q) l.v[0][q] = in[q], l.v[4][q] = out[q];
  auto set = [&](int g, Rational a, Rational b, Rational c, Rational d) {
    l.v[g][0] = a, l.v[g][1] = b, l.v[g][2] = c, l.v[g][3] = d;
  };
  if (regime == "I") {
    set(1, -1, -1, -1, 0);
    set(2, mh, 0, -1, -1);
    set(3, mh, 0, -1, -1);
  } else if (regime == "II") {
    set(1, mh, 0, -1, -1);
    set(2, mh, 0, -1, -1);
    set(3, mssp ? h : Rational(0), 2, 0, -2);  // MSSP: expert2 init variance M/Ne
  } else {
    set(1, mh, 0, -1, -1);
    set(2, mh, 1, -1, -2);
    set(3, mh, 1, -1, -2);
  }
  return l;
}

// Compares a derived table with the hand derivation exponent by exponent along the ladder, the
// structural switches, and the L exponents (CompleteP depth factors) of the LRs and epsilons.
void compare_with_hand(const ParamTable& calc, const std::string& regime, bool mssp, const Regime& r) {
  INFO("calculus table " << calc.name << "\n" << format_table(calc, &r));
  const HandLadder hl = hand_ladder(regime, mssp);
  CHECK(calc.shared_experts == (mssp && regime == "III"));
  CHECK(calc.gate_exponent == (regime == "I" ? 0.0 : 1.0));
  CHECK(calc.residual_exponent == 1.0);
  for (Group g : kMatGroups) {
    INFO("group " << group_name(g));
    // Both desiderata zero the readout (muP as the MSSP paper runs it); muP keeps its 1/N law.
    const bool zero = g == Group::out || (mssp && g == Group::router && regime == "I");
    CHECK(calc[g].zero_init == zero);
    for (int qi = 0; qi < 4; ++qi) {
      const Quantity q = kQs[qi];
      INFO("quantity " << kQuantityNames[static_cast<int>(q)]);
      if (q == Quantity::init_std && zero && mssp) continue;  // the law is unused
      CHECK(ladder_exponent(calc, g, q, r) == hl.v[static_cast<int>(g)][qi]);
      const bool block = g == Group::router || g == Group::expert1 || g == Group::expert2;
      const double lexp = !block || q == Quantity::init_std || q == Quantity::lr_adam ? 0.0
                          : q == Quantity::lr_sgd                                    ? 1.0
                                                                                     : -1.0;
      CHECK(calc[g][q].exponents[static_cast<int>(Dim::L)] == lexp);
    }
  }
}
}  // namespace

TEST_CASE("term model: atoms, counting and structure switches", "[scaling]") {
  Regime r = regime_III();
  Structure st = default_structure(r);
  TermModel m = build_model(r, Optimizer::sgd, st);
  for (const char* n : {"h1.init", "psi.eff", "a.prop_ret", "o.init", "hagg.init", "hagg.prop_ind", "hagg.prop_ret",
                        "hagg.eff", "hagg.cross", "f.init", "b_z.upd", "b_a.init", "b_h1.router_W0", "b_h1.experts_dW"})
    CHECK(m.index(n) >= 0);
  // hagg.init = sqrt(K) G times o.init: K^(1/2) M^(-1) Ne^(1/2) + init.expert2 + init.expert1 + N^(1/2)
  const Affine& hi = m.atom("hagg.init").expr;
  CHECK(hi.c[static_cast<int>(Dim::K)] == Rational(1, 2));
  CHECK(hi.c[static_cast<int>(Dim::M)] == Rational(-1));
  CHECK(hi.coef[sym(Param::init, Group::expert2)] == Rational(1));
  // shared initial experts turn the independent sum over experts into a correlated one
  st.shared_experts = true;
  TermModel ms = build_model(r, Optimizer::sgd, st);
  CHECK(ms.atom("hagg.init").expr.c[static_cast<int>(Dim::K)] == Rational(1));
  CHECK(ms.atom("hagg.eff").expr.c[static_cast<int>(Dim::K)] == Rational(1));
  // zero init makes the atoms that carry that init identically zero
  st.zero_init[static_cast<int>(Group::out)] = true;
  TermModel mz = build_model(r, Optimizer::sgd, st);
  CHECK(mz.atom("f.init").zero);
  CHECK(mz.atom("b_z.init").zero);
  CHECK_FALSE(mz.atom("b_z.upd").zero);
  // SGD updates carry the gradient (input x backward signal), Adam updates do not
  TermModel ma = build_model(r, Optimizer::adam, default_structure(r));
  CHECK(m.atom("a.eff").expr.coef[sym(Node::ba)] == Rational(1));
  CHECK(ma.atom("a.eff").expr.coef[sym(Node::ba)] == Rational(0));
}

TEST_CASE("dense muP: Tensor Programs V anchors in regime I", "[scaling]") {
  Regime r = regime_I();
  LadderSolution s = solve_ladder(r, Optimizer::sgd, Desiderata::mup, default_structure(r));
  LadderSolution a = solve_ladder(r, Optimizer::adam, Desiderata::mup, default_structure(r));
  INFO(s.report() << a.report());
  REQUIRE(s.status == SolveStatus::unique);
  REQUIRE(a.status == SolveStatus::unique);
  // init: input Theta(1) (fan-in fixed), hidden var 1/fan_in, readout 1/fan_in
  CHECK(s.get(Param::init, Group::in) == Rational(0));
  CHECK(s.get(Param::init, Group::expert1) == Rational(-1, 2));
  CHECK(s.get(Param::init, Group::expert2) == Rational(-1, 2));
  CHECK(s.get(Param::init, Group::out) == Rational(-1));
  // SGD LR: fan_out for input, 1 for hidden, 1/fan_in for readout
  CHECK(s.get(Param::lr, Group::in) == Rational(1));
  CHECK(s.get(Param::lr, Group::expert1) == Rational(0));
  CHECK(s.get(Param::lr, Group::expert2) == Rational(0));
  CHECK(s.get(Param::lr, Group::out) == Rational(-1));
  // Adam LR: 1 for input, 1/fan_in for hidden and readout; eps ~ gradient entries
  CHECK(a.get(Param::lr, Group::in) == Rational(0));
  CHECK(a.get(Param::lr, Group::expert1) == Rational(-1));
  CHECK(a.get(Param::lr, Group::expert2) == Rational(-1));
  CHECK(a.get(Param::lr, Group::out) == Rational(-1));
  CHECK(a.get(Param::eps, Group::in) == Rational(-1));
  CHECK(a.get(Param::eps, Group::expert1) == Rational(-1));
  CHECK(a.get(Param::eps, Group::out) == Rational(0));
  // the router with M fixed is a readout of h1
  CHECK(s.get(Param::init, Group::router) == Rational(-1));
  CHECK(s.get(Param::lr, Group::router) == Rational(-1));
  // the readout's init part of b_z ties its update part (init 1/N is the largest stable choice)
  CHECK(contains(s.binding, "[b_z.upd]"));
  CHECK_FALSE(contains(s.binding, "[psi.init]"));  // the router init term vanishes, not tight
  // the init and Adam solves agree on the init stds
  for (Group g : kMatGroups) CHECK(s.get(Param::init, g) == a.get(Param::init, g));
}

TEST_CASE("abc-symmetry: free multipliers leave one free direction per group", "[scaling]") {
  for (Optimizer opt : {Optimizer::sgd, Optimizer::adam}) {
    Regime r = regime_II();
    SolveOptions o;
    o.free_multipliers = true;
    LadderSolution f = solve_ladder(r, opt, Desiderata::mup, default_structure(r, o), o);
    LadderSolution p = solve_ladder(r, opt, Desiderata::mup, default_structure(r));
    INFO(f.report());
    REQUIRE(f.status == SolveStatus::free);
    REQUIRE(f.free_vectors.size() == 5);
    for (const auto& v : f.free_vectors) {
      int groups = 0;
      for (Group g : kMatGroups) {
        Rational m = v[sym(Param::mult, g)];
        if (m.is_zero()) continue;
        ++groups;
        CHECK(v[sym(Param::init, g)] == -m);
        CHECK(v[sym(Param::lr, g)] == (opt == Optimizer::sgd ? Rational(-2) : Rational(-1)) * m);
        if (opt == Optimizer::adam) CHECK(v[sym(Param::eps, g)] == m);
      }
      CHECK(groups == 1);
      for (Node n : {Node::bz, Node::bo, Node::ba, Node::bpsi, Node::bh}) CHECK(v[sym(n)].is_zero());
    }
    // the particular solution (multipliers 0) is the multiplier-free muP
    for (Group g : kMatGroups) CHECK(f.get(Param::lr, g) == p.get(Param::lr, g));
  }
}

TEST_CASE("readout-multiplier form (TP V Table 3) is equivalent to the Table 8 form", "[scaling]") {
  Regime r = regime_I();
  ParamTable t8 = derive_table(r, Desiderata::mup).table;
  ParamTable t3 = t8;
  // readout: multiplier 1/fan_in, init std 1, SGD LR fan_in, Adam LR 1, eps 1/fan_in
  GroupLaws& out = t3[Group::out];
  out[Quantity::multiplier] = ScaleLaw{};
  out[Quantity::multiplier].fan_in_exponent = -1;
  out[Quantity::init_std] = ScaleLaw{};
  out[Quantity::lr_sgd] = ScaleLaw{};
  out[Quantity::lr_sgd].fan_in_exponent = 1;
  out[Quantity::lr_adam] = ScaleLaw{};
  out[Quantity::eps] = ScaleLaw{};
  out[Quantity::eps].fan_in_exponent = -1;
  for (Optimizer opt : {Optimizer::sgd, Optimizer::adam}) {
    Diagnosis d8 = diagnose(t8, r, opt), d3 = diagnose(t3, r, opt);
    REQUIRE(d8.terms.size() == d3.terms.size());
    for (size_t i = 0; i < d8.terms.size(); ++i) {
      INFO(d8.terms[i].name);
      // raw gradient entries move with the multiplier (so must epsilon); relative to eps they agree
      if (d8.terms[i].kind != "grad") CHECK(d8.terms[i].exponent == d3.terms[i].exponent);
      CHECK(d8.terms[i].rel() == d3.terms[i].rel());
      CHECK(d8.terms[i].relative == d3.terms[i].relative);
    }
    CHECK(d3.mup_violations.empty());
    if (opt == Optimizer::adam) CHECK(d3.term("grad.out").exponent == d8.term("grad.out").exponent - 1);
    // negative control: the multiplier alone (without moving init and LR) changes the terms
    ParamTable bad = t8;
    bad[Group::out][Quantity::multiplier].fan_in_exponent = -1;
    Diagnosis db = diagnose(bad, r, opt);
    CHECK(db.term("f.eff").exponent != d8.term("f.eff").exponent);
    CHECK_FALSE(db.mup_violations.empty());
  }
}

TEST_CASE("depth: depth-muP and CompleteP residual, LR and epsilon factors", "[scaling]") {
  const int Lx = static_cast<int>(Dim::L);
  struct Case {
    Rational alpha_L;
    double sgd, adam, eps;
  };
  for (Case c : {Case{Rational(1, 2), 0.0, -0.5, -0.5}, Case{Rational(1), 1.0, 0.0, -1.0}}) {
    SolveOptions o;
    o.alpha_L = c.alpha_L;
    DerivedTable d = derive_table(regime_I(), Desiderata::mup, o);
    INFO("alpha_L = " << c.alpha_L << "\n" << format_table(d.table));
    CHECK(d.table.residual_exponent == c.alpha_L.to_double());
    for (Group g : {Group::expert1, Group::expert2}) {
      CHECK(d.table[g][Quantity::lr_sgd].exponents[Lx] == c.sgd);
      CHECK(d.table[g][Quantity::lr_adam].exponents[Lx] == c.adam);
      CHECK(d.table[g][Quantity::eps].exponents[Lx] == c.eps);
      CHECK(d.table[g][Quantity::init_std].exponents[Lx] == 0.0);
    }
    for (Group g : {Group::in, Group::out})
      for (Quantity q : kQs) CHECK(d.table[g][q].exponents[Lx] == 0.0);
    // residual terms on a ladder where L grows (slower than the width)
    Regime r = regime_I();
    r.growth = Rational(8) * r.growth;
    r.growth[Lx] = 1;
    o.residual = true;
    LadderSolution s = solve_ladder(r, Optimizer::sgd, Desiderata::mup, default_structure(r, o), o);
    INFO(s.report());
    REQUIRE(s.ok());
    auto term = [&](const std::string& n) {
      for (const auto& t : s.terms)
        if (t.name == n) return t;
      FAIL("no term " << n);
      return TermValue{};
    };
    // the blocks' random init contributions add like sqrt(L) L^(-alpha_L)
    CHECK(term("z.blocks_init").exponent == Rational(1, 2) - c.alpha_L);
    // each block moves the stream by 1/L, its own features by L^(alpha_L - 1)
    CHECK(term("z.blocks_eff").exponent == Rational(0));
    CHECK(term("a.eff").exponent == c.alpha_L - 1);
    CHECK(term("hagg.eff").exponent == c.alpha_L - 1);
  }
  // CompleteP router factors
  DerivedTable cp = derive_table(regime_II(), Desiderata::mup);
  CHECK(cp.table[Group::router][Quantity::lr_sgd].exponents[Lx] == 1.0);
  CHECK(cp.table[Group::router][Quantity::lr_adam].exponents[Lx] == 0.0);
  CHECK(cp.table[Group::router][Quantity::eps].exponents[Lx] == -1.0);
}

TEST_CASE("muP tables agree with the hand derivation along every ladder", "[scaling]") {
  for (const char* rn : {"I", "II", "III"}) {
    Regime r = regime_of(rn);
    DerivedTable d = derive_table(r, Desiderata::mup);
    compare_with_hand(d.table, rn, false, r);
    for (const char* opt : {"sgd", "adam"})  // the generated built-ins carry the same laws
      compare_with_hand(builtin_param_table(std::string("mup-") + rn + "-" + opt), rn, false, r);
  }
}

TEST_CASE("MSSP tables agree with the hand derivation along every ladder", "[scaling]") {
  for (const char* rn : {"I", "II", "III"}) {
    Regime r = regime_of(rn);
    DerivedTable d = derive_table(r, Desiderata::mssp);
    compare_with_hand(d.table, rn, true, r);
    for (const char* opt : {"sgd", "adam"})
      compare_with_hand(builtin_param_table(std::string("mssp-") + rn + "-" + opt), rn, true, r);
  }
}

TEST_CASE("MSSP: conflicts and structural requirements per regime", "[scaling]") {
  struct Case {
    Regime r;
    std::vector<std::string> switches;
  };
  for (const auto& c : {Case{regime_I(), {"router zero init", "readout zero init"}},
                        Case{regime_II(), {"readout zero init"}},
                        Case{regime_III(), {"readout zero init", "shared initial experts"}}}) {
    for (Optimizer opt : {Optimizer::sgd, Optimizer::adam}) {
      MsspResult m = solve_mssp(c.r, opt);
      INFO("regime " << c.r.name << " " << optimizer_name(opt) << "\n" << m.plain.report() << m.solution.report());
      CHECK(m.plain.status == SolveStatus::inconsistent);
      CHECK_FALSE(m.plain.conflicts.empty());
      // the readout conflict in every regime; the router's in I; the experts' backward init in III
      CHECK(contains(m.plain.conflicts, "f.init"));
      CHECK(contains(m.plain.conflicts, "psi.init") == (c.r.name == "I"));
      CHECK(contains(m.plain.conflicts, "b_h1.experts_W0") == (c.r.name == "III"));
      CHECK(m.switches == c.switches);
      CHECK(m.solution.status == SolveStatus::unique);
      // every atom of the chosen solution is Theta(1) (relative to its signal) or zero, o_m aside
      for (const auto& t : m.solution.terms)
        if (!t.zero && t.node != "o" && t.kind != "prop_ind" && t.kind != "prop_ret" && t.node != "b_psi" &&
            t.name.rfind("b_h1.experts_W0", 0) != 0)
          CHECK(t.rel() == Rational(0));
      // regime II: extra expert2 init variance M/Ne (std x n^(1/2) along the ladder)
      bool extra = contains(m.requirements, "extra init variance for expert2: std x n^(1/2)");
      CHECK(extra == (c.r.name == "II"));
      // zero-initialised expert output matrices are an alternative the search also finds
      bool alt = false;
      for (const auto& a : m.alternatives) alt = alt || contains(a, "expert2 zero init");
      CHECK(alt);
    }
  }
}

TEST_CASE("diagnose flags the muP aggregation init term and passes the MSSP tables", "[scaling]") {
  for (const char* rn : {"I", "II", "III"}) {
    Regime r = regime_of(rn);
    for (const char* o : {"sgd", "adam"}) {
      Optimizer opt = std::string(o) == "sgd" ? Optimizer::sgd : Optimizer::adam;
      Diagnosis mup = diagnose(builtin_param_table(std::string("mup-") + rn + "-" + o), r, opt);
      Diagnosis mssp = diagnose(builtin_param_table(std::string("mssp-") + rn + "-" + o), r, opt);
      INFO(rn << " " << o << "\nmuP:\n" << mup.str() << "MSSP:\n" << mssp.str());
      // diagnose propagates node sizes (issue #3): in II/III the block output at init is
      // hagg.init ~ n^-1/2, a muP stability violation ("vanishing activation at init") that
      // the nominal Theta(1) sizes used to hide; regime I stays clean
      if (std::string(rn) == "I")
        CHECK(mup.mup_violations.empty());
      else
        CHECK(contains(mup.mup_violations, "vanishing activation at init: hagg.init ~ n^-1/2"));
      CHECK_FALSE(mup.mssp_violations.empty());
      CHECK(mssp.mssp_violations.empty());
      const TermValue& hi = mup.term("hagg.init");
      if (std::string(rn) == "I") {
        CHECK(hi.rel() == Rational(0));
        CHECK(mup.term("psi.init").rel() == Rational(-1, 2));
      } else {
        CHECK(hi.rel() == Rational(-1, 2));  // sqrt(K) G = M^(-1/2)
        CHECK(hi.relative[static_cast<int>(Dim::M)] == Rational(-1));
        CHECK(hi.relative[static_cast<int>(Dim::K)] == Rational(1, 2));
        CHECK(contains(mup.mssp_violations, "hagg.init ~ n^-1/2"));
      }
      CHECK(mup.term("f.init").rel() < Rational(0));
    }
  }
  // standard parameterization with one global SGD LR is unstable in regime I
  Diagnosis sp = diagnose(builtin_param_table("sp"), regime_I(), Optimizer::sgd);
  CHECK(contains(sp.mup_violations, "unstable: f.eff"));
}

TEST_CASE("derived tables are valid parameterization tables", "[scaling]") {
  Regime r = regime_II();
  DerivedTable d = derive_table(r, Desiderata::mssp);
  std::string text = format_table(d.table, &r);
  // placement (docs/scaling_calculus.md 1.1): the MSSP change is placed by hagg.init,
  // std_2 = sqrt(8) (M/8) (K/8)^-1/2 fan^-1/2 (it used to be written on N as fan^-1/2 N^1/2)
  CHECK(text.find("| expert2 | 2.828427 fan^-1/2 M^1 K^-1/2 |") != std::string::npos);
  CHECK(text.find("| out | zero") != std::string::npos);
  ParamTable back = parse_param_table(param_table_to_toml(d.table), "derived");
  for (Group g : kMatGroups)
    for (Quantity q : kQs) CHECK(ladder_exponent(back, g, q, r) == ladder_exponent(d.table, g, q, r));
  // laws equal 1 at the base shape (apart from the fan-in factor of the init std)
  ResolveInputs in;
  in.adam_like = true;
  in.base_lr = 1e-3;
  ResolvedParam rp = resolve(d.table, d.table.base, 8, in);
  CHECK(rp[Group::router].lr == Approx(1e-3));
  CHECK(rp[Group::expert2].init_std == Approx(std::sqrt(8.0) / 4.0));  // sqrt(M/Ne) at M = 8, Ne = 16
  CHECK(rp[Group::out].zero_init);
}

TEST_CASE("gradient entries per group match the hand table (docs/parameterizations.md 3.4)", "[scaling]") {
  // rows: in, router, expert1, expert2, out; columns: regimes I, II, III
  const int expected[5][3] = {{-1, -1, -1}, {0, -1, -1}, {-1, -1, -2}, {-1, -2, -2}, {0, 0, 0}};
  const char* names[3] = {"I", "II", "III"};
  for (int ri = 0; ri < 3; ++ri)
    for (Optimizer opt : {Optimizer::sgd, Optimizer::adam}) {
      Regime r = regime_of(names[ri]);
      LadderSolution s = solve_ladder(r, opt, Desiderata::mup, default_structure(r));
      REQUIRE(s.ok());
      for (int g = 0; g < 5; ++g) {
        std::string n = std::string("grad.") + kGroupNames[g];
        for (const auto& t : s.terms)
          if (t.name == n) {
            INFO(names[ri] << " " << n);
            CHECK(t.exponent == Rational(expected[g][ri]));
            CHECK(t.rel() == Rational(0));
          }
      }
    }
}

TEST_CASE("custom regimes solve or report why not", "[scaling]") {
  // experts only (N, Ne fixed; M ~ K grow, gates ~ 1/M): muP unique; MSSP needs the router zero
  // (M independent router columns add like sqrt(M) in W_r0^T delta) and shared initial experts
  Regime mk;
  mk.name = "MK";
  mk.growth = unit(Dim::M) + unit(Dim::K);
  mk.alpha = 1;
  for (Optimizer opt : {Optimizer::sgd, Optimizer::adam}) {
    CHECK(solve_ladder(mk, opt, Desiderata::mup, default_structure(mk)).status == SolveStatus::unique);
    MsspResult m = solve_mssp(mk, opt);
    CHECK(m.plain.status == SolveStatus::inconsistent);
    CHECK(m.switches == std::vector<std::string>{"router zero init", "shared initial experts"});
    CHECK(m.solution.status == SolveStatus::unique);
  }
  LadderSolution s = solve_ladder(mk, Optimizer::sgd, Desiderata::mup, default_structure(mk));
  CHECK(s.get(Param::lr, Group::expert2) == Rational(1));  // SGD LRs carry the inverse gate M
  CHECK(s.get(Param::lr, Group::out) == Rational(0));
  // N alone grows (Ne, M, K fixed): muP exists, MSSP does not with any switch set considered
  Regime n;
  n.name = "N";
  n.growth = unit(Dim::N);
  CHECK(solve_ladder(n, Optimizer::adam, Desiderata::mup, default_structure(n)).status == SolveStatus::unique);
  MsspResult mn = solve_mssp(n, Optimizer::adam);
  CHECK(mn.solution.status == SolveStatus::inconsistent);
  CHECK_FALSE(mn.solution.conflicts.empty());
  CHECK(contains(mn.requirements, "no combination"));
}
