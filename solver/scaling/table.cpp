// MSSP structural search, the derived ParamTable, its text form and the diagnosis of a table.
#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "solver/scaling/solve.hpp"

namespace moedmft::scaling {
namespace {

struct Switch {
  const char* name;
  void (*apply)(Structure&);
};
const Switch kSwitches[] = {
    {"router zero init", [](Structure& s) { s.zero_init[static_cast<int>(Group::router)] = true; }},
    {"readout zero init", [](Structure& s) { s.zero_init[static_cast<int>(Group::out)] = true; }},
    {"shared initial experts", [](Structure& s) { s.shared_experts = true; }},
    {"expert2 zero init", [](Structure& s) { s.zero_init[static_cast<int>(Group::expert2)] = true; }},
};
constexpr int kPrimarySwitches = 3;  // the paper's kinds; expert2 zero init is reported as an alternative
constexpr int kAllSwitches = 4;

// Minimal subsets (by size, then lexicographic) of the first `count` switches that make MSSP
// consistent.
std::vector<std::vector<int>> minimal_sets(const Regime& r, Optimizer opt, const SolveOptions& o, int count,
                                           std::vector<LadderSolution>* sols) {
  std::vector<std::vector<int>> res;
  for (int size = 1; size <= count && res.empty(); ++size) {
    for (int mask = 1; mask < (1 << count); ++mask) {
      if (__builtin_popcount(mask) != size) continue;
      Structure st = default_structure(r, o);
      std::vector<int> set;
      for (int i = 0; i < count; ++i)
        if (mask & (1 << i)) {
          kSwitches[i].apply(st);
          set.push_back(i);
        }
      LadderSolution s = solve_ladder(r, opt, Desiderata::mssp, st, o);
      if (s.ok()) {
        res.push_back(set);
        if (sols) sols->push_back(s);
      }
    }
  }
  std::sort(res.begin(), res.end());
  return res;
}

DimVec law_dims(const ScaleLaw& law, Group g) {
  DimVec v;
  for (int d = 0; d < kNumDims; ++d) v[d] = Rational::from_double(law.exponents[d]);
  return v + Rational::from_double(law.fan_in_exponent) * fan_in_dims(g);
}

int canonical_dim(const Regime& r) {
  for (int d = 0; d < kNumDims; ++d)
    if (d != static_cast<int>(Dim::L) && !r.growth[d].is_zero()) return d;
  if (!r.growth[static_cast<int>(Dim::L)].is_zero()) return static_cast<int>(Dim::L);
  throw std::runtime_error("regime " + r.name + ": no dimension grows");
}

std::string law_str(const ScaleLaw& l) {
  std::string s;
  if (l.constant != 1.0) s += std::to_string(l.constant) + " ";
  if (l.fan_in_exponent != 0) s += "fan^" + Rational::from_double(l.fan_in_exponent).str() + " ";
  for (int d = 0; d < kNumDims; ++d)
    if (l.exponents[d] != 0) s += std::string(kDimNames[d]) + "^" + Rational::from_double(l.exponents[d]).str() + " ";
  if (s.empty()) return "1";
  s.pop_back();
  return s;
}

}  // namespace

MsspResult solve_mssp(const Regime& r, Optimizer opt, const SolveOptions& o) {
  MsspResult res;
  res.plain = solve_ladder(r, opt, Desiderata::mssp, default_structure(r, o), o);
  if (res.plain.ok()) {
    res.solution = res.plain;
  } else {
    std::vector<LadderSolution> sols;
    auto sets = minimal_sets(r, opt, o, kPrimarySwitches, &sols);
    if (sets.empty()) sets = minimal_sets(r, opt, o, kAllSwitches, &sols);
    if (sets.empty()) {
      res.solution = res.plain;
      res.requirements.push_back("no combination of structural switches makes MSSP consistent");
      return res;
    }
    res.solution = sols.front();
    for (int i : sets.front()) res.switches.push_back(kSwitches[i].name);
    for (const auto& set : minimal_sets(r, opt, o, kAllSwitches, nullptr)) {
      std::vector<std::string> names;
      for (int i : set) names.push_back(kSwitches[i].name);
      res.alternatives.push_back(names);
    }
    for (const auto& s : res.switches) res.requirements.push_back(s);
  }
  LadderSolution mup = solve_ladder(r, opt, Desiderata::mup, default_structure(r, o), o);
  if (mup.ok())
    for (int g = 0; g < kMats; ++g) {
      if (res.solution.structure.zero_init[g]) continue;
      Rational diff = res.solution.value[sym(Param::init, static_cast<Group>(g))] -
                      mup.value[sym(Param::init, static_cast<Group>(g))];
      if (!diff.is_zero())
        res.requirements.push_back(std::string(diff.sign() > 0 ? "extra" : "reduced") + " init variance for " +
                                   kGroupNames[g] + ": std x n^(" + diff.str() + ") relative to muP");
    }
  return res;
}

Rational ladder_exponent(const ParamTable& t, Group g, Quantity q, const Regime& r) {
  return r.ladder(law_dims(t[g][q], g));
}

DerivedTable derive_table(const Regime& r, Desiderata d, const SolveOptions& o, bool depth_factors) {
  DerivedTable out;
  Structure st = default_structure(r, o);
  LadderSolution mup_sgd = solve_ladder(r, Optimizer::sgd, Desiderata::mup, st, o);
  if (d == Desiderata::mup) {
    out.sgd = mup_sgd;
    out.adam = solve_ladder(r, Optimizer::adam, Desiderata::mup, st, o);
  } else {
    MsspResult ms = solve_mssp(r, Optimizer::sgd, o), ma = solve_mssp(r, Optimizer::adam, o);
    out.sgd = ms.solution;
    out.adam = ma.solution;
    // placement: muP's dim-resolved laws wherever MSSP keeps muP's ladder exponent
    const LadderSolution mup_adam = solve_ladder(r, Optimizer::adam, Desiderata::mup, st, o);
    SolveOptions os = o, oa = o;
    os.place_like = &mup_sgd;
    oa.place_like = &mup_adam;
    if (ms.solution.ok() && mup_sgd.ok())
      out.sgd = solve_ladder(r, Optimizer::sgd, Desiderata::mssp, ms.solution.structure, os);
    if (ma.solution.ok() && mup_adam.ok())
      out.adam = solve_ladder(r, Optimizer::adam, Desiderata::mssp, ma.solution.structure, oa);
    for (const auto& q : ms.requirements) out.notes.push_back("MSSP (sgd): " + q);
    if (ms.switches != ma.switches) out.notes.push_back("SGD and Adam MSSP need different switches");
  }
  if (!out.sgd.ok() || !out.adam.ok() || !mup_sgd.ok())
    throw std::runtime_error(std::string("derive_table: ") + desiderata_name(d) + " regime " + r.name +
                             " is inconsistent:\n" + out.sgd.report() + out.adam.report());
  // muP as the MSSP paper's code runs it: readout zero init. Both readout inits are admissible
  // under the muP desiderata (checked: the zero-readout solve keeps every LR and eps exponent);
  // the 1/N law stays in the table (param.readout_init = "law" uses it).
  bool mup_zero_readout = false;
  if (d == Desiderata::mup) {
    Structure zs = st;
    zs.zero_init[static_cast<int>(Group::out)] = true;
    const LadderSolution zsgd = solve_ladder(r, Optimizer::sgd, Desiderata::mup, zs, o);
    const LadderSolution zadam = solve_ladder(r, Optimizer::adam, Desiderata::mup, zs, o);
    mup_zero_readout = zsgd.ok() && zadam.ok();
    for (int g = 0; g < kMats && mup_zero_readout; ++g)
      for (Param p : {Param::lr, Param::eps, Param::mult}) {
        const int k = sym(p, static_cast<Group>(g));
        if (zsgd.value[k] != out.sgd.value[k] || zadam.value[k] != out.adam.value[k]) mup_zero_readout = false;
      }
    out.notes.push_back(mup_zero_readout
                            ? "readout zero init, as the MSSP paper runs muP; the out init_std law (1/N) is the "
                              "other admissible muP readout (param.readout_init = \"law\")"
                            : "readout zero init would change muP's exponents here; the 1/N readout law is used");
  }
  for (int g = 0; g < kMats; ++g)
    if (!out.sgd.structure.zero_init[g] &&
        out.sgd.value[sym(Param::init, static_cast<Group>(g))] != out.adam.value[sym(Param::init, static_cast<Group>(g))])
      out.notes.push_back(std::string("init std of ") + kGroupNames[g] + " differs between SGD and Adam; SGD used");
  // depth probe
  std::array<Rational, kNumSyms> lexp{};
  if (depth_factors) {
    // L grows much slower than the width (width exponents scaled by kProbe): dominance is
    // decided by the width first and only ties are broken by depth.
    constexpr int kProbe = 8;
    Regime rp = r;
    rp.growth = Rational(kProbe) * r.growth;
    rp.growth[static_cast<int>(Dim::L)] += 1;
    SolveOptions op = o;
    op.residual = true;
    Structure sp = default_structure(rp, op);
    LadderSolution ps = solve_ladder(rp, Optimizer::sgd, Desiderata::mup, sp, op);
    LadderSolution pa = solve_ladder(rp, Optimizer::adam, Desiderata::mup, sp, op);
    Structure s0 = default_structure(r, op);
    LadderSolution bs = solve_ladder(r, Optimizer::sgd, Desiderata::mup, s0, op);
    LadderSolution ba = solve_ladder(r, Optimizer::adam, Desiderata::mup, s0, op);
    if (ps.ok() && pa.ok() && bs.ok() && ba.ok()) {
      for (int g = 0; g < kMats; ++g) {
        auto gg = static_cast<Group>(g);
        const Rational k(kProbe);
        Rational init_l = ps.get(Param::init, gg) - k * bs.get(Param::init, gg);
        if (!init_l.is_zero())
          out.notes.push_back(std::string("depth probe: init std of ") + kGroupNames[g] + " would carry L^" +
                              init_l.str() + " (not written: init stds carry no depth factor)");
        lexp[sym(Param::mult, gg)] = ps.get(Param::lr, gg) - k * bs.get(Param::lr, gg);  // SGD lr slot
        lexp[sym(Param::lr, gg)] = pa.get(Param::lr, gg) - k * ba.get(Param::lr, gg);
        lexp[sym(Param::eps, gg)] = pa.get(Param::eps, gg) - k * ba.get(Param::eps, gg);
      }
    } else {
      out.notes.push_back("depth probe inconsistent; no L factors");
    }
  }
  const int c = canonical_dim(r);
  const int Lx = static_cast<int>(Dim::L);
  ParamTable& t = out.table;
  t.name = std::string(d == Desiderata::mup ? "mup" : "mssp") + "-" + r.name + "-calc";
  t.description = std::string(desiderata_name(d)) + " for regime " + r.name + ", derived by solver/scaling";
  t.base = r.base;
  t.gate_exponent = r.alpha.to_double();
  t.residual_exponent = o.alpha_L.to_double();
  t.shared_experts = out.sgd.structure.shared_experts;
  // Placement on the dims (docs/scaling_calculus.md 1.1): the dim-resolved solution of the
  // ladder's binding equations over the growing dims; if it does not exist, the ladder value on
  // the first growing dim.
  auto placed = [&](const LadderSolution& s, int symbol) {
    DimVec v{};
    if (s.dims_resolved) {
      for (int k = 0; k < kNumDims; ++k)
        if (k != Lx && !r.growth[k].is_zero()) v[k] = s.dims[symbol][k];
    } else {
      v[c] = s.value[symbol] / r.growth[c];
    }
    return v;
  };
  for (const LadderSolution* s : {&out.sgd, &out.adam, &mup_sgd})
    for (const auto& n : s->dims_notes)
      out.notes.push_back(std::string("placement (") + optimizer_name(s->opt) + "): " + n + "; written on " +
                          kDimNames[c]);
  auto put = [&](ScaleLaw& law, const DimVec& v, const Rational& lval) {
    for (int k = 0; k < kNumDims; ++k)
      if (k != Lx) law.exponents[k] = v[k].to_double();
    law.exponents[Lx] += lval.to_double();
  };
  for (int g = 0; g < kMats; ++g) {
    auto gg = static_cast<Group>(g);
    GroupLaws& gl = t[gg];
    gl.zero_init = out.sgd.structure.zero_init[g];
    DimVec init = gl.zero_init ? placed(mup_sgd, sym(Param::init, gg)) : placed(out.sgd, sym(Param::init, gg));
    // init std = fan_in^(-1/2) x the rest; off-ladder dims keep only the fan-in rule
    for (int k = 0; k < kNumDims; ++k)
      if (k != Lx && !r.growth[k].is_zero()) init[k] += Rational(1, 2) * fan_in_dims(gg)[k];
    gl[Quantity::init_std].fan_in_exponent = -0.5;
    put(gl[Quantity::init_std], init, lexp[sym(Param::init, gg)]);
    if (!gl.zero_init && d == Desiderata::mssp) {
      // MSSP's change of an init std relative to muP is an absolute power of the dims (the
      // paper's variance M/Ne in regime II), not a power relative to the base shape
      const DimVec diff = placed(out.sgd, sym(Param::init, gg)) - placed(mup_sgd, sym(Param::init, gg));
      double k = 1;
      for (int q = 0; q < kNumDims; ++q)
        if (!diff[q].is_zero()) k *= std::pow(static_cast<double>(r.base.dim(static_cast<Dim>(q))), diff[q].to_double());
      gl[Quantity::init_std].constant = k;
    }
    put(gl[Quantity::lr_sgd], placed(out.sgd, sym(Param::lr, gg)), lexp[sym(Param::mult, gg)]);
    put(gl[Quantity::lr_adam], placed(out.adam, sym(Param::lr, gg)), lexp[sym(Param::lr, gg)]);
    put(gl[Quantity::eps], placed(out.adam, sym(Param::eps, gg)), lexp[sym(Param::eps, gg)]);
  }
  if (mup_zero_readout) t[Group::out].zero_init = true;
  t[Group::bias].zero_init = true;
  return out;
}

std::string format_table(const ParamTable& t, const Regime* r) {
  std::ostringstream os;
  os << t.name << ": base N=" << t.base.N << " Ne=" << t.base.Ne << " M=" << t.base.M << " K=" << t.base.K
     << " L=" << t.base.L << ", alpha=" << t.gate_exponent << ", alpha_L=" << t.residual_exponent
     << (t.shared_experts ? ", shared initial experts" : "") << "\n";
  os << "| group | init std | multiplier | SGD LR | Adam LR | eps |" << (r ? " ladder " + r->name + " (init/sgd/adam/eps) |" : "")
     << "\n";
  for (int g = 0; g < kMats; ++g) {
    auto gg = static_cast<Group>(g);
    const GroupLaws& gl = t[gg];
    os << "| " << kGroupNames[g] << " | " << (gl.zero_init ? "zero (" + law_str(gl[Quantity::init_std]) + ")" : law_str(gl[Quantity::init_std]))
       << " | " << law_str(gl[Quantity::multiplier]) << " | " << law_str(gl[Quantity::lr_sgd]) << " | "
       << law_str(gl[Quantity::lr_adam]) << " | " << law_str(gl[Quantity::eps]) << " |";
    if (r)
      os << " " << (gl.zero_init ? std::string("zero") : ladder_exponent(t, gg, Quantity::init_std, *r).str()) << " / "
         << ladder_exponent(t, gg, Quantity::lr_sgd, *r).str() << " / " << ladder_exponent(t, gg, Quantity::lr_adam, *r).str()
         << " / " << ladder_exponent(t, gg, Quantity::eps, *r).str() << " |";
    os << "\n";
  }
  return os.str();
}

const TermValue& Diagnosis::term(const std::string& name) const {
  for (const auto& t : terms)
    if (t.name == name) return t;
  throw std::out_of_range("no term named '" + name + "'");
}

std::string Diagnosis::str() const {
  std::ostringstream os;
  for (const auto& t : terms)
    os << "  " << t.name << ": " << (t.zero ? "zero" : "n^" + t.exponent.str()) << " rel "
       << (t.zero ? "-" : t.rel().str() + " (" + format_dims(t.relative) + ")") << " " << t.status() << "\n";
  os << "  node sizes (propagated):";
  for (const auto& n : sizes) os << " " << n.name << " " << (n.absent ? std::string("zero") : "(" + format_dims(n.value) + ")");
  os << "\n";
  for (const auto& v : mup_violations) os << "  muP violation: " << v << "\n";
  for (const auto& v : mssp_violations) os << "  MSSP violation: " << v << "\n";
  return os.str();
}

Diagnosis diagnose(const ParamTable& t, const Regime& r, Optimizer opt, bool residual, bool at_init, bool lazy_backward) {
  Structure st = structure_of(t, residual || !r.growth[static_cast<int>(Dim::L)].is_zero());
  TermModel m = build_model(r, opt, st);
  ParamValues v = param_values(t, opt);
  if (!st.residual)  // one block: L = 1 and the tables' depth factors are inert
    for (auto& x : v) x[static_cast<int>(Dim::L)] = 0;
  // Node sizes are propagated through the term graph (docs/scaling_calculus.md 3.1): every term
  // is evaluated at the sizes its inputs actually have, not at a nominal Theta(1).
  //  1. forward activations at init: |h1| = h1.init, |a| = a.init, |z| = the block output at init
  //     (hagg.init; with a residual stream the larger of h1.init and the blocks' init sum);
  //  2. backward signals in dependency order (b_z, b_o, b_a, b_psi, b_h1), each the largest of its
  //     live parts at those sizes (none of them depends on the update sizes);
  //  3. update sizes: |dh1| = h1.eff, |da| = max(a.eff, a.prop_*), |dz| = max of the block
  //     output's update terms (propagating, effective, cross);
  //  4. every term at these sizes. This is the first-step (lazy) accounting: the gradient and the
  //     activation an update multiplies both have their init size. A node whose every part is
  //     identically zero makes every term that carries it zero.
  std::array<bool, kNumNodes> absent{};
  std::vector<bool> dead(m.atoms.size(), false);
  if (at_init)  // the state at init: no update exists, only init and W0-only backward parts
    for (size_t i = 0; i < m.atoms.size(); ++i) {
      const Atom& a = m.atoms[i];
      const bool w0 = a.name == "b_z.init" || a.name == "b_o.gate" || a.name == "b_a.init" || a.name == "b_psi.init" ||
                      a.name == "b_h1.router_W0" || a.name == "b_h1.experts_W0_init" || a.name == "b_h1.residual";
      dead[i] = a.backward ? !w0 : a.kind != "init";
    }
  if (lazy_backward)  // early steps: backward signals still at their W0 parts, every forward term live
    for (size_t i = 0; i < m.atoms.size(); ++i) {
      const Atom& a = m.atoms[i];
      const bool w0 = a.name == "b_z.init" || a.name == "b_o.gate" || a.name == "b_a.init" || a.name == "b_psi.init" ||
                      a.name == "b_h1.router_W0" || a.name == "b_h1.experts_W0_init" || a.name == "b_h1.residual";
      if (a.backward && !w0) dead[i] = true;
    }
  auto carries_absent = [&](const Affine& e) {
    for (int k = 0; k < kNumNodes; ++k)
      if (absent[k] && !e.coef[sym(static_cast<Node>(k))].is_zero()) return true;
    return false;
  };
  auto is_dead = [&](size_t i) { return m.atoms[i].zero || dead[i] || carries_absent(m.atoms[i].expr); };
  auto size_of = [&](Node n, const std::vector<std::string>& names) {
    bool have = false;
    DimVec best{};
    for (const auto& nm : names) {
      const int i = m.index(nm);
      if (i < 0 || is_dead(static_cast<size_t>(i))) continue;
      DimVec x = evaluate(m.atoms[i].expr, v);
      if (!have || r.ladder(x) > r.ladder(best)) best = x;
      have = true;
    }
    v[sym(n)] = best;
    absent[static_cast<int>(n)] = !have;
  };
  size_of(Node::h1, {"h1.init"});
  size_of(Node::a, {"a.init"});
  if (st.residual)
    size_of(Node::z, {"h1.init", "z.blocks_init"});
  else
    size_of(Node::z, {"hagg.init"});
  for (Node n : {Node::bz, Node::bo, Node::ba, Node::bpsi, Node::bh}) {
    std::vector<std::string> names;
    for (const auto& a : m.atoms)
      if (a.backward && a.bnode == static_cast<int>(n)) names.push_back(a.name);
    size_of(n, names);
  }
  size_of(Node::dh1, {"h1.eff"});
  size_of(Node::da, {"a.eff", "a.prop_ind", "a.prop_ret"});
  if (st.residual)
    size_of(Node::dz, {"z.blocks_prop_ind", "z.blocks_prop_ret", "z.blocks_eff", "z.blocks_cross"});
  else
    size_of(Node::dz, {"hagg.prop_ind", "hagg.prop_ret", "hagg.eff", "hagg.cross"});
  Diagnosis dg;
  for (Node n : {Node::h1, Node::a, Node::z, Node::dh1, Node::da, Node::dz, Node::bz, Node::bo, Node::ba, Node::bpsi,
                 Node::bh})
    dg.sizes.push_back({sym_name(sym(n)), absent[static_cast<int>(n)], v[sym(n)]});
  for (size_t i = 0; i < m.atoms.size(); ++i) {
    const Atom& a = m.atoms[i];
    DimVec x = evaluate(a.expr, v);
    DimVec tg = a.backward ? v[sym(static_cast<Node>(a.bnode))] : a.target;
    dg.terms.push_back({a.name, a.node, a.kind, a.what, is_dead(i), a.backward, r.ladder(x), r.ladder(tg), x - tg});
  }
  for (int g = 0; g < kMats; ++g) {
    auto gg = static_cast<Group>(g);
    DimVec x = evaluate(m.grad_entry(gg), v);
    DimVec tg = opt == Optimizer::adam ? v[sym(Param::eps, gg)] : x;
    dg.terms.push_back({std::string("grad.") + kGroupNames[g], "grad", "grad", "raw gradient entry (target: Adam epsilon)",
                        carries_absent(m.grad_entry(gg)), false, r.ladder(x), r.ladder(tg), x - tg});
  }
  auto describe = [](const TermValue& tv) {
    return tv.name + " ~ n^" + tv.rel().str() + " (" + format_dims(tv.relative) + ") relative to " +
           (tv.backward ? "its backward signal" : "Theta(1)");
  };
  auto prop_max = [&](const std::string& node) -> const TermValue* {
    const TermValue* best = nullptr;
    for (const auto& tv : dg.terms)
      if (tv.node == node && !tv.zero && (tv.kind == "prop_ind" || tv.kind == "prop_ret"))
        if (!best || tv.rel() > best->rel()) best = &tv;
    return best;
  };
  for (const auto& tv : dg.terms) {
    if (tv.zero || tv.kind == "grad") continue;  // epsilon faithfulness is checked below
    bool piece = tv.kind == "prop_ind" || tv.kind == "prop_ret";
    if (!tv.backward && tv.rel().sign() > 0) dg.mup_violations.push_back("unstable: " + describe(tv));
    if (!tv.backward && tv.rel().sign() != 0 && tv.kind == "eff" && tv.node != "hagg" && tv.node != "z")
      dg.mup_violations.push_back("not maximal: " + describe(tv));
    if (tv.name == "h1.init" && tv.rel().sign() < 0) dg.mup_violations.push_back("vanishing input layer: " + describe(tv));
    // desideratum 1: the activations that later matrices read (a, and the block output that
    // feeds the readout) are Theta(1) at init; a vanishing one shrinks every update built on it
    if ((tv.name == "a.init" || tv.name == (st.residual ? "z.blocks_init" : "hagg.init")) && tv.rel().sign() < 0 &&
        !(st.residual && tv.name == "z.blocks_init"))
      dg.mup_violations.push_back("vanishing activation at init: " + describe(tv));
    bool mssp_atom = tv.backward ? (tv.node != "b_psi" && tv.name.rfind("b_h1.experts_W0", 0) != 0)
                                 : (tv.node != "o" && !piece);
    if (mssp_atom && tv.rel().sign() != 0) dg.mssp_violations.push_back(describe(tv));
  }
  for (const char* n : {"psi", "a", "o", "hagg", "f", "z"}) {
    const TermValue* p = prop_max(n);
    if (!p || p->rel().sign() == 0) continue;
    if (std::string(n) != "hagg" && std::string(n) != "z")
      dg.mup_violations.push_back("propagating update of " + std::string(n) + ": " + describe(*p));
    if (std::string(n) != "o") dg.mssp_violations.push_back("propagating update of " + std::string(n) + ": " + describe(*p));
  }
  for (const char* n : {"b_psi", "b_h1"}) {
    // max-type MSSP atoms: b_psi as a whole, W1_0^T delta_a as a whole
    const TermValue* best = nullptr;
    for (const auto& tv : dg.terms)
      if (!tv.zero && tv.node == n && (std::string(n) == "b_psi" || tv.name.rfind("b_h1.experts_W0", 0) == 0))
        if (!best || tv.rel() > best->rel()) best = &tv;
    if (best && best->rel().sign() != 0) dg.mssp_violations.push_back(describe(*best));
  }
  if (opt == Optimizer::adam)
    for (int g = 0; g < kMats; ++g) {
      auto gg = static_cast<Group>(g);
      Rational eps = r.ladder(v[sym(Param::eps, gg)]), grad = r.ladder(evaluate(m.grad_entry(gg), v));
      if (eps != grad && !carries_absent(m.grad_entry(gg))) {
        std::string s = std::string("Adam epsilon of ") + kGroupNames[g] + " ~ n^" + eps.str() +
                        " but gradient entries ~ n^" + grad.str();
        dg.mup_violations.push_back(s);
        dg.mssp_violations.push_back(s);
      }
    }
  return dg;
}

}  // namespace moedmft::scaling
