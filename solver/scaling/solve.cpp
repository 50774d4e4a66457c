#include "solver/scaling/solve.hpp"

#include <algorithm>
#include <map>
#include <sstream>
#include <stdexcept>

namespace moedmft::scaling {

const char* desiderata_name(Desiderata d) { return d == Desiderata::mup ? "muP" : "MSSP"; }

std::string TermValue::status() const {
  if (zero) return "zero";
  int s = rel().sign();
  return s == 0 ? "ok" : (s < 0 ? "vanishing" : "exploding");
}

Structure default_structure(const Regime& r, const SolveOptions& o) {
  Structure s;
  s.alpha = r.alpha;
  s.alpha_L = o.alpha_L;
  s.residual = o.residual || !r.growth[static_cast<int>(Dim::L)].is_zero();
  s.zero_init[static_cast<int>(Group::bias)] = true;
  return s;
}

namespace {

// A requirement on the terms. eq: every listed atom equals the right-hand side; maxeq: the
// largest listed atom equals it (a dominance hypothesis picks which); le: each listed atom <= it.
struct Req {
  enum Kind { eq, maxeq, le } kind;
  std::vector<int> atoms;
  int node = -1;  // rhs: backward node symbol if >= 0, else the atom's target
  std::string label;
};

struct Engine {
  const TermModel& m;
  std::vector<int> cols;        // unknown symbols, in column order
  std::map<int, int> col_of;    // symbol -> column
  std::vector<Req> reqs;
  std::vector<std::pair<Affine, std::string>> extra_eq;  // affine == 0 (Adam epsilon)

  Regime lad;                   // the direction constants are measured along (the ladder, or one dim)

  explicit Engine(const TermModel& model) : m(model), lad(model.regime) {}

  Rational target(int atom) const { return lad.ladder(m.atoms[atom].target); }

  // Row "expr - rhs = 0" as (coefficients, right-hand side).
  std::pair<RVec, Rational> row(const Affine& e, int node, const Rational& rhs) const {
    RVec a(cols.size(), Rational(0));
    Rational b = rhs - lad.ladder(e.c);
    for (int s = 0; s < kNumSyms; ++s) {
      if (e.coef[s].is_zero()) continue;
      auto it = col_of.find(s);
      if (it != col_of.end()) a[it->second] += e.coef[s];
      // fixed symbols (activation nodes, fixed multipliers, zero-init stds) are 0 on the ladder
    }
    if (node >= 0) a[col_of.at(node)] -= 1;
    return {a, b};
  }
  std::pair<RVec, Rational> atom_row(int atom, int node) const {
    return row(m.atoms[atom].expr, node, node >= 0 ? Rational(0) : target(atom));
  }
  Rational eval(const Affine& e, const RVec& x) const {
    Rational v = lad.ladder(e.c);
    for (int s = 0; s < kNumSyms; ++s) {
      if (e.coef[s].is_zero()) continue;
      auto it = col_of.find(s);
      if (it != col_of.end()) v += e.coef[s] * x[it->second];
    }
    return v;
  }
  Rational rhs_value(const Req& r, int atom, const RVec& x) const {
    return r.node >= 0 ? x[col_of.at(r.node)] : target(atom);
  }
};

std::string atom_label(const Atom& a) { return a.name + " (" + a.what + ")"; }

}  // namespace

LadderSolution solve_ladder(const Regime& r, Optimizer opt, Desiderata d, const Structure& st,
                            const SolveOptions& o) {
  TermModel m = build_model(r, opt, st);
  Engine e(m);
  // unknown columns: init, lr, eps (Adam), backward nodes, multipliers (last: free directions)
  for (int g = 0; g < kMats; ++g)
    if (!st.zero_init[g]) e.cols.push_back(sym(Param::init, static_cast<Group>(g)));
  for (int g = 0; g < kMats; ++g) e.cols.push_back(sym(Param::lr, static_cast<Group>(g)));
  if (opt == Optimizer::adam)
    for (int g = 0; g < kMats; ++g) e.cols.push_back(sym(Param::eps, static_cast<Group>(g)));
  for (Node n : {Node::bz, Node::bo, Node::ba, Node::bpsi, Node::bh}) e.cols.push_back(sym(n));
  if (o.free_multipliers)
    for (int g = 0; g < kMats; ++g) e.cols.push_back(sym(Param::mult, static_cast<Group>(g)));
  for (size_t i = 0; i < e.cols.size(); ++i) e.col_of[e.cols[i]] = static_cast<int>(i);

  auto live = [&](const std::string& name) {
    int i = m.index(name);
    return (i >= 0 && !m.atoms[i].zero) ? i : -1;
  };
  auto add = [&](Req::Kind k, std::vector<std::string> names, int node, const std::string& label) {
    Req q{k, {}, node, label};
    for (const auto& n : names)
      if (int i = live(n); i >= 0) q.atoms.push_back(i);
    if (!q.atoms.empty()) e.reqs.push_back(q);
  };
  const bool mssp = d == Desiderata::mssp;
  // forward requirements
  add(Req::eq, {"h1.init"}, -1, "stability: h1 Theta(1) at init");
  for (const char* n : {"h1", "psi", "a", "o", "f"}) {
    std::string s = n;
    if (mssp && s == "o") continue;  // per-expert o_m is not an MSSP atom; g_m o_m summed is
    add(Req::eq, {s + ".eff"}, -1, "maximal update: effective update of " + s);
    add(Req::maxeq, {s + ".prop_ind", s + ".prop_ret"}, -1, "maximal update: propagating update of " + s);
  }
  for (const auto& a : m.atoms) {
    if (a.backward || a.zero) continue;
    if (mssp && a.node == "o") continue;  // o_m may be large (sqrt(M) in regime II): not an atom
    if (mssp && a.kind != "prop_ind" && a.kind != "prop_ret")
      add(Req::eq, {a.name}, -1, "MSSP: " + a.name + " Theta(1)");
    else
      add(Req::le, {a.name}, -1, "stability: " + a.name + " O(1)");
  }
  if (mssp) {
    add(Req::maxeq, {"hagg.prop_ind", "hagg.prop_ret"}, -1, "MSSP: hagg propagating Theta(1)");
    if (st.residual)
      add(Req::maxeq, {"z.blocks_prop_ind", "z.blocks_prop_ret"}, -1, "MSSP: z propagating Theta(1)");
  }
  // backward signals
  for (Node n : {Node::bz, Node::bo, Node::ba, Node::bpsi, Node::bh}) {
    std::vector<std::string> names;
    for (const auto& a : m.atoms)
      if (a.backward && a.bnode == static_cast<int>(n)) names.push_back(a.name);
    if (!mssp || n == Node::bpsi) {
      add(Req::maxeq, names, sym(n), "backward: " + sym_name(sym(n)) + " is its largest part");
      continue;
    }
    std::vector<std::string> w0;
    for (const auto& nm : names) {
      if (nm.rfind("b_h1.experts_W0", 0) == 0)
        w0.push_back(nm);
      else
        add(Req::eq, {nm}, sym(n), "MSSP: " + nm + " Theta(" + sym_name(sym(n)) + ")");
    }
    add(Req::maxeq, w0, sym(n), "MSSP: b_h1.experts_W0 (W1_0^T delta_a) Theta(b_h1)");
  }
  if (opt == Optimizer::adam)
    for (int g = 0; g < kMats; ++g) {
      auto gg = static_cast<Group>(g);
      e.extra_eq.push_back({Affine().add(sym(Param::eps, gg)) + Rational(-1) * m.grad_entry(gg),
                            std::string("Adam faithfulness: eps.") + kGroupNames[g] + " ~ gradient entries"});
    }

  // enumerate dominance hypotheses
  std::vector<int> maxreqs;
  for (size_t i = 0; i < e.reqs.size(); ++i)
    if (e.reqs[i].kind == Req::maxeq) maxreqs.push_back(static_cast<int>(i));
  std::vector<size_t> pick(maxreqs.size(), 0);
  LadderSolution out;
  out.desiderata = d;
  out.opt = opt;
  out.regime = r;
  out.structure = st;
  std::vector<RVec> found;
  LinearSolution first_sol;
  struct Bad {
    RMat A;
    RVec b;
    std::vector<std::string> labels;
  };
  std::vector<Bad> bad;
  std::vector<std::string> first_violated;
  auto build_rows = [&](const std::vector<size_t>& pk, RMat& A, RVec& b, std::vector<std::string>* labels) {
    // dominance rows first: the deletion filter drops them first, so conflicts avoid them
    for (size_t k = 0; k < maxreqs.size(); ++k) {
      const Req& q = e.reqs[maxreqs[k]];
      int a = q.atoms[pk[k]];
      auto [ra, rb] = e.atom_row(a, q.node);
      A.push_back(ra);
      b.push_back(rb);
      if (labels) labels->push_back(q.label + " [dominant: " + atom_label(m.atoms[a]) + "]");
    }
    for (const auto& q : e.reqs) {
      if (q.kind != Req::eq) continue;
      for (int a : q.atoms) {
        auto [ra, rb] = e.atom_row(a, q.node);
        A.push_back(ra);
        b.push_back(rb);
        if (labels) labels->push_back(q.label + " [" + atom_label(m.atoms[a]) + "]");
      }
    }
    for (const auto& [aff, lab] : e.extra_eq) {
      auto [ra, rb] = e.row(aff, -1, 0);
      A.push_back(ra);
      b.push_back(rb);
      if (labels) labels->push_back(lab);
    }
  };
  std::vector<size_t> first_pick;
  int first_score = -1;
  // Placement tie-break: among hypotheses that reach the first solution, prefer the one whose
  // dominant parts are update parts (dW^T delta, do . delta, b_h1.experts_W0_upd) most often.
  auto update_score = [&](const std::vector<size_t>& pk) {
    int n = 0;
    for (size_t k = 0; k < maxreqs.size(); ++k) {
      const Atom& a = m.atoms[e.reqs[maxreqs[k]].atoms[pk[k]]];
      n += a.kind == "dW^T.delta" || a.kind == "do.delta" || (a.name.size() > 4 && a.name.substr(a.name.size() - 4) == "_upd");
    }
    return n;
  };
  while (true) {
    RMat A;
    RVec b;
    std::vector<std::string> labels;
    build_rows(pick, A, b, &labels);
    ++out.hypotheses;
    if (!is_consistent(A, b)) {
      bad.push_back({A, b, labels});
    } else {
      LinearSolution s = solve_linear(A, b);
      std::vector<std::string> viol, tight;
      std::vector<int> forced;  // atoms pinned by an equation of this hypothesis
      for (const auto& q : e.reqs)
        if (q.kind == Req::eq) forced.insert(forced.end(), q.atoms.begin(), q.atoms.end());
      for (size_t k = 0; k < maxreqs.size(); ++k) forced.push_back(e.reqs[maxreqs[k]].atoms[pick[k]]);
      for (const auto& q : e.reqs) {
        if (q.kind == Req::eq) continue;
        for (size_t j = 0; j < q.atoms.size(); ++j) {
          int a = q.atoms[j];
          Rational lhs = e.eval(m.atoms[a].expr, s.x), rhs = e.rhs_value(q, a, s.x);
          if (lhs > rhs)
            viol.push_back(q.label + " [" + m.atoms[a].name + " = n^" + lhs.str() + "]");
          else if (lhs == rhs && std::find(forced.begin(), forced.end(), a) == forced.end())
            tight.push_back(q.label + " [" + m.atoms[a].name + "]");
        }
      }
      if (viol.empty()) {
        ++out.consistent;
        if (std::find(found.begin(), found.end(), s.x) == found.end()) found.push_back(s.x);
        if (s.x == found.front() && update_score(pick) > first_score) {
          first_pick = pick;
          first_score = update_score(pick);
        }
        if (found.size() == 1 && first_sol.x.empty()) {
          first_sol = s;
          std::sort(tight.begin(), tight.end());
          tight.erase(std::unique(tight.begin(), tight.end()), tight.end());
          out.binding = tight;
        }
      } else if (first_violated.empty()) {
        first_violated = viol;
      }
    }
    size_t k = 0;
    while (k < pick.size() && ++pick[k] == e.reqs[maxreqs[k]].atoms.size()) pick[k++] = 0;
    if (k == pick.size()) break;
  }
  if (found.empty()) {
    out.status = SolveStatus::inconsistent;
    // Report the hypothesis whose conflict leans least on dominance choices (then the smallest),
    // and in it every disjoint irreducible conflict: "[k] label" for conflict k.
    auto dominance_rows = [](const Bad& h, const std::vector<int>& rows) {
      int n = 0;
      for (int i : rows) n += h.labels[i].find("[dominant:") != std::string::npos;
      return n;
    };
    const Bad* best = nullptr;
    std::pair<int, size_t> best_score{1 << 30, 0};
    for (const auto& h : bad) {
      std::vector<int> c = minimal_conflict(h.A, h.b);
      std::pair<int, size_t> score{dominance_rows(h, c), c.size()};
      if (!best || score < best_score) {
        best = &h;
        best_score = score;
      }
    }
    if (best) {
      std::vector<int> keep(best->A.size());
      for (size_t i = 0; i < keep.size(); ++i) keep[i] = static_cast<int>(i);
      for (int k = 1; k <= 8; ++k) {
        RMat A;
        RVec b;
        for (int i : keep) {
          A.push_back(best->A[i]);
          b.push_back(best->b[i]);
        }
        std::vector<int> c = minimal_conflict(A, b);
        if (c.empty()) break;
        std::vector<int> drop;
        for (int i : c) {
          out.conflicts.push_back("[" + std::to_string(k) + "] " + best->labels[keep[i]]);
          drop.push_back(keep[i]);
        }
        std::vector<int> rest;
        for (int i : keep)
          if (std::find(drop.begin(), drop.end(), i) == drop.end()) rest.push_back(i);
        keep = rest;
      }
    }
    out.violated = first_violated;
    return out;
  }
  out.status = (found.size() > 1 || !first_sol.free_directions.empty()) ? SolveStatus::free : SolveStatus::unique;
  if (found.size() > 1) out.free_directions.push_back(std::to_string(found.size()) + " distinct dominance solutions");
  for (const auto& dir : first_sol.free_directions) {
    std::string s;
    std::array<Rational, kNumSyms> v{};
    for (size_t c = 0; c < dir.size(); ++c) v[e.cols[c]] = dir[c];
    out.free_vectors.push_back(v);
    for (size_t c = 0; c < dir.size(); ++c)
      if (!dir[c].is_zero()) s += (s.empty() ? "" : ", ") + sym_name(e.cols[c]) + " " + (dir[c].sign() > 0 ? "+" : "") + dir[c].str();
    out.free_directions.push_back(s);
  }
  const RVec& x = found.front();
  for (size_t c = 0; c < e.cols.size(); ++c) out.value[e.cols[c]] = x[c];
  // dim-resolved values: the same equations, constants taken along one growing dim at a time
  out.dims_resolved = true;
  for (int d = 0; d < kNumDims; ++d) {
    if (r.growth[d].is_zero()) continue;
    e.lad = r;
    e.lad.growth = unit(static_cast<Dim>(d));
    RMat A;
    RVec b;
    build_rows(first_pick, A, b, nullptr);
    std::vector<bool> pinned(e.cols.size(), false);
    if (o.place_like && o.place_like->dims_resolved) {
      // "muP plus the changes": parameters with muP's ladder value take muP's dim-resolved
      // value; a changed parameter is placed by the first equation in which it is the only
      // unknown once the others are pinned (regime II: hagg.init for the expert2 init)
      const LadderSolution& pl = *o.place_like;
      for (size_t c = 0; c < e.cols.size(); ++c)
        if (e.cols[c] < kNumParams * kMats && pl.value[e.cols[c]] == x[c]) {
          pinned[c] = true;
          out.dims[e.cols[c]][d] = pl.dims[e.cols[c]][d];
        }
      for (size_t c = 0; c < e.cols.size(); ++c) {
        if (pinned[c] || e.cols[c] >= kNumParams * kMats) continue;
        bool placed = false;
        for (size_t i = 0; i < A.size() && !placed; ++i) {
          if (A[i][c].is_zero()) continue;
          bool alone = true;
          Rational rhs = b[i];
          for (size_t k = 0; k < e.cols.size() && alone; ++k) {
            if (k == c || A[i][k].is_zero()) continue;
            if (pinned[k])
              rhs -= A[i][k] * pl.dims[e.cols[k]][d];
            else
              alone = false;
          }
          if (!alone) continue;
          out.dims[e.cols[c]][d] = rhs / A[i][c];
          placed = true;
        }
        if (!placed) {
          out.dims_resolved = false;
          out.dims_notes.push_back(sym_name(e.cols[c]) + " differs from the reference and no equation places it along " +
                                   kDimNames[d]);
        }
      }
      continue;
    }
    LinearSolution sd = solve_linear(A, b);
    if (sd.status == SolveStatus::inconsistent) {
      out.dims_resolved = false;
      out.dims_notes.push_back(std::string("the binding equations have no solution along ") + kDimNames[d] + " alone");
      continue;
    }
    for (size_t c = 0; c < e.cols.size(); ++c) out.dims[e.cols[c]][d] = sd.x[c];
  }
  e.lad = r;
  if (out.dims_resolved)
    for (size_t c = 0; c < e.cols.size(); ++c)
      if ((!o.place_like || e.cols[c] < kNumParams * kMats) && r.ladder(out.dims[e.cols[c]]) != x[c]) {  // free directions: another particular solution
        out.dims_resolved = false;
        out.dims_notes.push_back("dim-resolved " + sym_name(e.cols[c]) + " does not sum to its ladder value");
      }
  for (size_t i = 0; i < m.atoms.size(); ++i) {
    const Atom& a = m.atoms[i];
    TermValue t{a.name, a.node, a.kind, a.what, a.zero, a.backward, e.eval(a.expr, x),
                a.backward ? x[e.col_of.at(sym(static_cast<Node>(a.bnode)))] : e.target(i), {}};
    out.terms.push_back(t);
  }
  // gradient entries per group (Adam: relative to epsilon, which faithfulness sets equal)
  for (int g = 0; g < kMats; ++g) {
    auto gg = static_cast<Group>(g);
    Rational gr = e.eval(m.grad_entry(gg), x);
    Rational eps = opt == Optimizer::adam ? x[e.col_of.at(sym(Param::eps, gg))] : gr;
    out.terms.push_back({std::string("grad.") + kGroupNames[g], "grad", "grad",
                         "raw gradient entry (target: Adam epsilon)", false, false, gr, eps, {}});
  }
  return out;
}

std::string LadderSolution::report() const {
  std::ostringstream os;
  os << desiderata_name(desiderata) << ", regime " << regime.name << ", " << optimizer_name(opt) << ": "
     << status_name(status) << " (" << consistent << "/" << hypotheses << " dominance hypotheses consistent)\n";
  for (const auto& c : conflicts) os << "  conflict: " << c << "\n";
  for (const auto& v : violated) os << "  violated: " << v << "\n";
  for (const auto& f : free_directions) os << "  free direction: " << f << "\n";
  for (const auto& b : binding) os << "  binding: " << b << "\n";
  if (!ok()) return os.str();
  for (int g = 0; g < kMats; ++g) {
    auto gg = static_cast<Group>(g);
    os << "  " << kGroupNames[g] << ": init " << (structure.zero_init[g] ? "zero" : get(Param::init, gg).str())
       << ", lr " << get(Param::lr, gg).str();
    if (opt == Optimizer::adam) os << ", eps " << get(Param::eps, gg).str();
    os << "\n";
  }
  for (const auto& t : terms)
    os << "  " << t.name << ": " << (t.zero ? "zero" : "n^" + t.exponent.str()) << "  rel "
       << (t.zero ? "-" : t.rel().str()) << "  " << t.status() << "\n";
  return os.str();
}

}  // namespace moedmft::scaling
