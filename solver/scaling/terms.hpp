// Symbolic model of the MLP-MoE's atomic forward and backward terms (model.md section 2,
// scaling.md). Every term's size is n^(exponent) along a regime's ladder; the exponent is an
// affine function of the parameterization's unknown exponents (init std, forward multiplier, LR,
// Adam epsilon per group) and of a few node sizes (backward signals, activation sizes).
#pragma once
#include <array>
#include <string>
#include <vector>

#include "models/parameterization.hpp"
#include "models/types.hpp"
#include "solver/scaling/rational.hpp"

namespace moedmft::scaling {

using DimVec = std::array<Rational, kNumDims>;  // exponents over N, Ne, M, K, L
DimVec unit(Dim d, Rational v = 1);
DimVec operator+(const DimVec& a, const DimVec& b);
DimVec operator-(const DimVec& a, const DimVec& b);
DimVec operator*(const Rational& s, const DimVec& a);
std::string format_dims(const DimVec& v);  // "N^-1 M^1/2", "1" for all zero

enum class Optimizer { sgd, adam };  // adam: Adam, AdamW and SignGD (sign-like updates of size lr)
const char* optimizer_name(Optimizer o);

// A regime: which dims grow, and how fast, along one scale n (dim ~ n^growth).
struct Regime {
  std::string name;
  DimVec growth{};
  Rational alpha = 0;  // gate exponent: gates carry (M/M_base)^(-alpha)
  Shape base;          // base shape for produced tables
  Rational ladder(const DimVec& v) const;  // sum_d growth_d * v_d
};
Regime regime_I();    // N ~ Ne, M, K fixed, alpha 0
Regime regime_II();   // N ~ M ~ K, Ne fixed, alpha 1
Regime regime_III();  // all grow, alpha 1
Regime regime_by_name(const std::string& name);  // "I", "II", "III"; throws std::invalid_argument

// The five weight matrices that carry exponents (bias has no term of its own).
inline constexpr int kMats = 5;  // in, router, expert1, expert2, out (Group order)

// Symbols: parameter exponents (quantity x group) followed by node sizes.
enum class Param { init = 0, mult, lr, eps };
inline constexpr int kNumParams = 4;
enum class Node { h1 = 0, dh1, a, da, z, dz, bz, bo, ba, bpsi, bh };
inline constexpr int kNumNodes = 11;
inline constexpr int kNumSyms = kNumParams * kMats + kNumNodes;
inline int sym(Param p, Group g) { return static_cast<int>(p) * kMats + static_cast<int>(g); }
inline int sym(Node n) { return kNumParams * kMats + static_cast<int>(n); }
std::string sym_name(int s);
inline bool is_backward(Node n) { return static_cast<int>(n) >= static_cast<int>(Node::bz); }

struct Affine {
  DimVec c{};
  std::array<Rational, kNumSyms> coef{};
  Affine& add(int s, Rational k = 1) {
    coef[s] += k;
    return *this;
  }
  Affine& add(const DimVec& v) {
    c = c + v;
    return *this;
  }
  friend Affine operator+(Affine a, const Affine& b) {
    a.c = a.c + b.c;
    for (int i = 0; i < kNumSyms; ++i) a.coef[i] += b.coef[i];
    return a;
  }
  friend Affine operator*(const Rational& k, Affine a) {
    a.c = k * a.c;
    for (auto& x : a.coef) x *= k;
    return a;
  }
  std::string str() const;
};

// Structural switches and fixed exponents the terms depend on.
struct Structure {
  std::array<bool, kNumGroups> zero_init{};
  bool shared_experts = false;
  Rational alpha = 0;        // gate exponent
  Rational alpha_L = 1;      // residual branch multiplier L^(-alpha_L)
  DimVec aggregation{};      // exponents of the routed-sum factor
  bool residual = false;     // L blocks on a residual stream (needed when L grows)
};

// One atomic term. `node` names the quantity it is a part of: an activation (h1, psi, a, o,
// hagg, z, f; z only with residual) or a backward signal (b_z, b_o, b_a, b_psi, b_h1).
struct Atom {
  std::string name;   // e.g. "hagg.init"
  std::string node;   // e.g. "hagg"
  std::string kind;   // init, eff, prop, prop_ind, prop_ret, cross, W0^T.delta, dW^T.delta, ...
  std::string what;   // the formula in words
  Affine expr;
  bool zero = false;  // identically zero (zero init)
  bool backward = false;
  int bnode = -1;     // backward: the Node index the atom sums into
  DimVec target{};    // forward: the Theta(1) target (block effective updates: L^(alpha_L-1))
  bool block_eff = false;
};

struct TermModel {
  Regime regime;
  Optimizer opt = Optimizer::sgd;
  Structure st;
  std::vector<Atom> atoms;
  const Atom& atom(const std::string& name) const;  // throws std::out_of_range
  int index(const std::string& name) const;         // -1 if absent
  // Nominal size of an activation node (0: Theta(1)); backward nodes have no nominal size.
  DimVec nominal(Node n) const;
  // Raw gradient entry of a group's weights (for Adam epsilon faithfulness).
  Affine grad_entry(Group g) const;
};

TermModel build_model(const Regime& r, Optimizer opt, const Structure& st);

// Structure of a parameterization table (zero init, shared experts, alpha, alpha_L, aggregation).
Structure structure_of(const ParamTable& t, bool residual = false);

// Parameter values of a table as exponent vectors (init std including its fan-in exponent).
using ParamValues = std::array<DimVec, kNumSyms>;
ParamValues param_values(const ParamTable& t, Optimizer opt);

// Fan-in dim of a group's matrix (in: none; router, expert1, out: N; expert2: Ne).
DimVec fan_in_dims(Group g);

DimVec evaluate(const Affine& a, const ParamValues& v);

}  // namespace moedmft::scaling
