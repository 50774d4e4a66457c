#include "solver/scaling/terms.hpp"

#include <stdexcept>

namespace moedmft::scaling {

DimVec unit(Dim d, Rational v) {
  DimVec r{};
  r[static_cast<int>(d)] = v;
  return r;
}
DimVec operator+(const DimVec& a, const DimVec& b) {
  DimVec r;
  for (int i = 0; i < kNumDims; ++i) r[i] = a[i] + b[i];
  return r;
}
DimVec operator-(const DimVec& a, const DimVec& b) {
  DimVec r;
  for (int i = 0; i < kNumDims; ++i) r[i] = a[i] - b[i];
  return r;
}
DimVec operator*(const Rational& s, const DimVec& a) {
  DimVec r;
  for (int i = 0; i < kNumDims; ++i) r[i] = s * a[i];
  return r;
}
std::string format_dims(const DimVec& v) {
  std::string s;
  for (int i = 0; i < kNumDims; ++i) {
    if (v[i].is_zero()) continue;
    if (!s.empty()) s += " ";
    s += std::string(kDimNames[i]) + "^" + v[i].str();
  }
  return s.empty() ? "1" : s;
}

const char* optimizer_name(Optimizer o) { return o == Optimizer::sgd ? "sgd" : "adam"; }

Rational Regime::ladder(const DimVec& v) const {
  Rational r = 0;
  for (int i = 0; i < kNumDims; ++i) r += growth[i] * v[i];
  return r;
}

namespace {
Shape base_shape(int N, int Ne, int M, int K) {
  Shape s;
  s.N = N;
  s.Ne = Ne;
  s.M = M;
  s.K = K;
  s.L = 1;
  return s;
}
}  // namespace

Regime regime_I() {
  Regime r;
  r.name = "I";
  r.growth = unit(Dim::N) + unit(Dim::Ne);
  r.alpha = 0;
  r.base = base_shape(128, 128, 8, 2);
  return r;
}
Regime regime_II() {
  Regime r;
  r.name = "II";
  r.growth = unit(Dim::N) + unit(Dim::M) + unit(Dim::K);
  r.alpha = 1;
  r.base = base_shape(128, 16, 8, 8);
  return r;
}
Regime regime_III() {
  Regime r;
  r.name = "III";
  r.growth = unit(Dim::N) + unit(Dim::Ne) + unit(Dim::M) + unit(Dim::K);
  r.alpha = 1;
  r.base = base_shape(128, 128, 8, 8);
  return r;
}
Regime regime_by_name(const std::string& name) {
  if (name == "I") return regime_I();
  if (name == "II") return regime_II();
  if (name == "III") return regime_III();
  throw std::invalid_argument("unknown regime '" + name + "' (allowed: I, II, III)");
}

std::string sym_name(int s) {
  static const char* params[] = {"init", "mult", "lr", "eps"};
  static const char* nodes[] = {"|h1|", "|dh1|", "|a|", "|da|", "|z|", "|dz|",
                                "b_z",  "b_o",   "b_a", "b_psi", "b_h1"};
  if (s < kNumParams * kMats)
    return std::string(params[s / kMats]) + "." + kGroupNames[s % kMats];
  return nodes[s - kNumParams * kMats];
}

std::string Affine::str() const {
  std::string out = format_dims(c);
  for (int i = 0; i < kNumSyms; ++i) {
    if (coef[i].is_zero()) continue;
    out += coef[i].sign() < 0 ? " - " : " + ";
    Rational k = abs(coef[i]);
    if (k != Rational(1)) out += k.str() + "*";
    out += sym_name(i);
  }
  return out;
}

DimVec fan_in_dims(Group g) {
  switch (g) {
    case Group::router:
    case Group::expert1:
    case Group::out: return unit(Dim::N);
    case Group::expert2: return unit(Dim::Ne);
    default: return DimVec{};
  }
}

const Atom& TermModel::atom(const std::string& name) const {
  int i = index(name);
  if (i < 0) throw std::out_of_range("no term named '" + name + "'");
  return atoms[i];
}
int TermModel::index(const std::string& name) const {
  for (size_t i = 0; i < atoms.size(); ++i)
    if (atoms[i].name == name) return static_cast<int>(i);
  return -1;
}
DimVec TermModel::nominal(Node) const { return DimVec{}; }

namespace {

Affine node(Node n) { return Affine().add(sym(n)); }
Affine dims(const DimVec& v) { return Affine().add(v); }

// Input activation and output backward signal of each matrix.
Affine input_of(Group g) {
  switch (g) {
    case Group::router:
    case Group::expert1: return node(Node::h1);
    case Group::expert2: return node(Node::a);
    case Group::out: return node(Node::z);
    default: return Affine();  // x: Theta(1), D fixed
  }
}
Affine bout_of(Group g) {
  switch (g) {
    case Group::in: return node(Node::bh);
    case Group::router: return node(Node::bpsi);
    case Group::expert1: return node(Node::ba);
    case Group::expert2: return node(Node::bo);
    default: return Affine();  // b_f: Theta(1), C fixed
  }
}

}  // namespace

Affine TermModel::grad_entry(Group g) const {
  return Affine().add(sym(Param::mult, g)) + input_of(g) + bout_of(g);
}

TermModel build_model(const Regime& r, Optimizer opt, const Structure& st) {
  TermModel m;
  m.regime = r;
  m.opt = opt;
  m.st = st;
  const Rational h(1, 2);
  const DimVec N = unit(Dim::N), E = unit(Dim::Ne), M = unit(Dim::M), K = unit(Dim::K),
               L = unit(Dim::L);
  const DimVec G = (-st.alpha) * M;
  const DimVec A = st.aggregation;
  const DimVec R = st.residual ? (-st.alpha_L) * L : DimVec{};
  const DimVec tau = st.residual ? (st.alpha_L - 1) * L : DimVec{};
  const DimVec Kc = st.shared_experts ? K : h * K;  // sums over experts at init
  const DimVec gate = G + A;
  auto zi = [&](Group g) { return st.zero_init[static_cast<int>(g)]; };
  // effective init std and effective update entry of the (multiplied) weight
  auto S = [&](Group g) { return Affine().add(sym(Param::init, g)).add(sym(Param::mult, g)); };
  auto u = [&](Group g) {
    Affine a = Affine().add(sym(Param::lr, g)).add(sym(Param::mult, g));
    if (opt == Optimizer::sgd) a = a + m.grad_entry(g);  // eta * m * (m * input * b_out)
    return a;
  };
  // One builder for both directions: backward atoms also record the signal they sum into.
  auto add_atom = [&](const std::string& name, const std::string& kind, const std::string& what, Affine e,
                      bool zero, bool block_eff, int backward_node) {
    Atom at;
    at.name = name;
    at.node = name.substr(0, name.find('.'));
    at.kind = kind;
    at.what = what;
    at.expr = std::move(e);
    at.zero = zero;
    at.block_eff = block_eff;
    at.target = block_eff ? tau : DimVec{};
    at.backward = backward_node >= 0;
    at.bnode = backward_node;
    m.atoms.push_back(at);
    return m.atoms.back();
  };
  auto fwd = [&](const std::string& name, const std::string& kind, const std::string& what,
                 Affine e, bool zero, bool block_eff = false) {
    return add_atom(name, kind, what, std::move(e), zero, block_eff, -1);
  };
  auto bwd = [&](const std::string& name, Node n, const std::string& kind, const std::string& what,
                 Affine e, bool zero) {
    return add_atom(name, kind, what, std::move(e), zero, false, static_cast<int>(n));
  };
  const Affine h1 = node(Node::h1), dh1 = node(Node::dh1), a = node(Node::a), da = node(Node::da),
               z = node(Node::z), dz = node(Node::dz), bz = node(Node::bz), bo = node(Node::bo),
               ba = node(Node::ba), bpsi = node(Node::bpsi), bh = node(Node::bh);
  const Group gin = Group::in, gr = Group::router, g1 = Group::expert1, g2 = Group::expert2,
              go = Group::out;

  // input layer: h1 = phi(x W_in), fan-in D fixed, input fixed (no propagating term)
  Atom h1i = fwd("h1.init", "init", "x W_in0 (D fixed)", S(gin), zi(gin));
  fwd("h1.eff", "eff", "dW_in x (correlated over D)", u(gin), false);
  // router logits psi = h1 W_r
  fwd("psi.init", "init", "h1 W_r0: independent sum over N", dims(h * N) + S(gr) + h1, zi(gr));
  fwd("psi.eff", "eff", "dW_r^T h1: correlated sum over N", dims(N) + u(gr) + h1, false, true);
  fwd("psi.prop_ind", "prop_ind", "W_r0^T dh1, dh1 independent of W_r0", dims(h * N) + S(gr) + dh1, zi(gr));
  fwd("psi.prop_ret", "prop_ret", "W_r0^T dh1, part of dh1 driven back through W_r0",
      dims(N) + 2 * S(gr) + bpsi + Rational(-1) * bh + dh1, zi(gr));
  // expert hidden a_m = phi(h1 W1[m])
  Atom ai = fwd("a.init", "init", "h1 W1_0: independent sum over N", dims(h * N) + S(g1) + h1, zi(g1));
  fwd("a.eff", "eff", "dW1^T h1: correlated sum over N", dims(N) + u(g1) + h1, false, true);
  fwd("a.prop_ind", "prop_ind", "W1_0^T dh1, independent part", dims(h * N) + S(g1) + dh1, zi(g1));
  fwd("a.prop_ret", "prop_ret", "W1_0^T dh1, part driven back through W1_0",
      dims(N) + 2 * S(g1) + ba + Rational(-1) * bh + dh1, zi(g1));
  // expert output o_m = a_m W2[m] (per expert; not an MSSP atom, g_m o_m summed is)
  Atom oi = fwd("o.init", "init", "a W2_0: independent sum over Ne", dims(h * E) + S(g2) + ai.expr,
                zi(g2) || ai.zero);
  Atom oe = fwd("o.eff", "eff", "dW2^T a: correlated sum over Ne", dims(E) + u(g2) + a, false, true);
  Atom op = fwd("o.prop_ind", "prop_ind", "W2_0^T da, independent part", dims(h * E) + S(g2) + da, zi(g2));
  // the part of da driven back through W2_0 is a's effective update (size L^(alpha_L-1))
  Atom orr = fwd("o.prop_ret", "prop_ret", "W2_0^T da, part driven back through W2_0",
                 dims(E + tau) + 2 * S(g2) + bo + Rational(-1) * ba, zi(g2));
  // aggregation hagg = A sum_m g_m o_m over K active experts, g_m ~ G
  const std::string over = st.shared_experts ? "correlated (shared init)" : "independent";
  Atom hi = fwd("hagg.init", "init", "sum_m g W2_0^T a_0: " + over + " over K experts",
                dims(Kc + gate) + oi.expr, oi.zero);
  fwd("hagg.prop_ind", "prop_ind", "sum_m g W2_0^T da, independent piece: " + over + " over K",
      dims(Kc + gate) + op.expr, op.zero);
  fwd("hagg.prop_ret", "prop_ret", "sum_m g W2_0^T da, self-correlated piece: correlated over K",
      dims(K + gate) + orr.expr, orr.zero);
  fwd("hagg.eff", "eff", "sum_m g dW2^T a: correlated over K (all along the error)",
      dims(K + gate) + oe.expr, false, true);
  fwd("hagg.cross", "cross", "sum_m g dW2^T da: correlated over K and Ne",
      dims(K + gate + E) + u(g2) + da, false, true);
  Affine z0 = hi.expr;
  bool z0zero = hi.zero;
  if (st.residual) {
    // z = h1 + sum_l L^(-alpha_L) hagg_l: random (init, independent) pieces add like sqrt(L),
    // pieces along the error like L
    const std::vector<std::pair<std::string, bool>> parts = {
        {"init", false}, {"prop_ind", false}, {"prop_ret", true}, {"eff", true}, {"cross", true}};
    for (const auto& [k, corr] : parts) {
      const Atom& src = m.atom("hagg." + k);
      Affine e = dims((corr ? L : h * L) + R) + src.expr;
      fwd("z.blocks_" + k, k, "sum over L blocks of L^(-alpha_L) hagg." + k, e, src.zero);
    }
    z0 = h1i.expr;
    z0zero = h1i.zero;
  }
  // readout f = z W_out, C fixed
  fwd("f.init", "init", "z_0 W_out0: independent sum over N", dims(h * N) + S(go) + z0, zi(go) || z0zero);
  fwd("f.eff", "eff", "dW_out^T z: correlated sum over N", dims(N) + u(go) + z, false);
  fwd("f.prop_ind", "prop_ind", "W_out0^T dz, independent part", dims(h * N) + S(go) + dz, zi(go));
  fwd("f.prop_ret", "prop_ret", "W_out0^T dz, dz driven along W_out0 (C fixed)",
      dims(N) + 2 * S(go) + Rational(-1) * bz + dz, zi(go));

  // backward signals (per coordinate), b_f = Theta(1)
  bwd("b_z.init", Node::bz, "W0^T.delta", "W_out0 b_f (C fixed)", S(go), zi(go));
  bwd("b_z.upd", Node::bz, "dW^T.delta", "dW_out b_f", u(go), false);
  const DimVec gR = gate + R;
  bwd("b_o.gate", Node::bo, "gate", "g_m A L^(-alpha_L) b_z", dims(gR) + bz, false);
  Atom bai = bwd("b_a.init", Node::ba, "W0^T.delta", "W2_0 b_o: independent sum over N",
                 dims(h * N) + S(g2) + bo, zi(g2));
  Atom bau = bwd("b_a.upd", Node::ba, "dW^T.delta", "dW2 b_o: correlated sum over N",
                 dims(N) + u(g2) + bo, false);
  bwd("b_psi.init", Node::bpsi, "o0.delta", "g' o_0 . b_z: independent sum over N",
      dims(gR + h * N) + oi.expr + bz, oi.zero);
  bwd("b_psi.eff", Node::bpsi, "do.delta", "g' do . b_z: correlated sum over N",
      dims(gR + N) + oe.expr + bz, false);
  bwd("b_h1.router_W0", Node::bh, "W0^T.delta", "W_r0 b_psi: independent sum over M",
      dims(h * M) + S(gr) + bpsi, zi(gr));
  bwd("b_h1.router_dW", Node::bh, "dW^T.delta", "dW_r b_psi: correlated sum over M",
      dims(M) + u(gr) + bpsi, false);
  bwd("b_h1.experts_W0_init", Node::bh, "W0^T.delta", "sum_m W1_0 b_a.init: " + over + " over K, independent over Ne",
      dims(Kc + h * E) + S(g1) + bai.expr, zi(g1) || bai.zero);
  bwd("b_h1.experts_W0_upd", Node::bh, "W0^T.delta", "sum_m W1_0 b_a.upd: " + over + " over K, independent over Ne",
      dims(Kc + h * E) + S(g1) + bau.expr, zi(g1));
  bwd("b_h1.experts_dW", Node::bh, "dW^T.delta", "sum_m dW1 b_a: correlated over K and Ne",
      dims(K + E) + u(g1) + ba, false);
  if (st.residual) bwd("b_h1.residual", Node::bh, "residual", "b_z through the skip connection", bz, false);
  return m;
}

Structure structure_of(const ParamTable& t, bool residual) {
  Structure s;
  for (int g = 0; g < kNumGroups; ++g) s.zero_init[g] = t.groups[g].zero_init;
  s.shared_experts = t.shared_experts;
  s.alpha = Rational::from_double(t.gate_exponent);
  s.alpha_L = Rational::from_double(t.residual_exponent);
  for (int d = 0; d < kNumDims; ++d) s.aggregation[d] = Rational::from_double(t.aggregation.exponents[d]);
  s.residual = residual;
  return s;
}

namespace {
DimVec law_dims(const ScaleLaw& law, Group g) {
  DimVec v;
  for (int d = 0; d < kNumDims; ++d) v[d] = Rational::from_double(law.exponents[d]);
  return v + Rational::from_double(law.fan_in_exponent) * fan_in_dims(g);
}
}  // namespace

ParamValues param_values(const ParamTable& t, Optimizer opt) {
  ParamValues v{};
  for (int gi = 0; gi < kMats; ++gi) {
    auto g = static_cast<Group>(gi);
    v[sym(Param::init, g)] = law_dims(t[g][Quantity::init_std], g);
    v[sym(Param::mult, g)] = law_dims(t[g][Quantity::multiplier], g);
    v[sym(Param::lr, g)] = law_dims(t[g][opt == Optimizer::sgd ? Quantity::lr_sgd : Quantity::lr_adam], g);
    v[sym(Param::eps, g)] = law_dims(t[g][Quantity::eps], g);
  }
  return v;
}

DimVec evaluate(const Affine& a, const ParamValues& v) {
  DimVec r = a.c;
  for (int i = 0; i < kNumSyms; ++i)
    if (!a.coef[i].is_zero()) r = r + a.coef[i] * v[i];
  return r;
}

}  // namespace moedmft::scaling
