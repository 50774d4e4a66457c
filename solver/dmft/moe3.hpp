// Regime-III DMFT of the MLP-MoE: N, Ne, M, K -> infinity together (rho = Ne/N, nu = M/N and
// kappa = K/M fixed). Full-batch SGD on the simulator's mean-squared loss. Derivation and every
// scale factor: docs/dmft_moe_regime3.md.
//
// The populations are nested: residual neurons of h1 and of hagg (S samples each), experts as
// particles (S_e, each with its router logit), and inside every expert an infinite population of
// hidden neurons, sampled by S_n neurons per particle (an S_e x S_n grid of (expert, neuron)
// pairs). With independent experts (muP) each pair has its own sources. With shared initial
// experts (MSSP) neuron j starts from the same weights in every expert, so the sources are drawn
// per neuron index j and shared across experts; the expert averages at fixed j (the shared
// expert-hidden process) then carry the expert1/expert2 init sources and their responses, which
// add coherently over experts instead of vanishing like M^-1/2.
#pragma once
#include <string>

#include "solver/dmft/moe2.hpp"

namespace moedmft::dmft {

// Width-independent constants of the regime-III limit (the shared ones: moe2.hpp).
struct Moe3LimitConstants : StreamConstants {
  double lr_expert1 = 0;                 // Gamma s_1^2 eta_1 / M
  double c_expert2 = 1, lr_expert2 = 0;  // sqrt(Ne) s_2 sigma_2; Gamma^2 s_2^2 eta_2 Ne / (M N)
  double rho = 1;                        // Ne / N
  bool shared = false;                   // all experts start from one set of initial weights
  double eps_expert1 = 0, eps_expert2 = 0;  // SignGD/Adam (see StreamConstants)
};

// Constants of a resolved table at one shape (normalised = softmax gates or renormalisation).
// (entrywise: SignGD's and Adam's constants, docs/dmft_moe_regime3.md section 9.)
Moe3LimitConstants limit3_constants(const ResolvedParam& p, const Shape& shape, bool normalised,
                                    bool entrywise = false);

// Resolves the table at the shape and at twice its N, Ne, M and K. A constant may stay fixed or
// vanish (set to 0 unless keep_vanishing); a growing constant throws ConfigError naming the group
// and the power of N. With independent experts the expert1/expert2 init sources are O(M^-1/2)
// and recorded as vanishing (they are structural: the march leaves them out).
Moe3LimitConstants regime3_constants(const ParamTable& table, const Shape& shape, int m_base,
                                     const ResolveInputs& inputs, bool normalised, bool keep_vanishing = false);

struct Moe3DmftConfig : ParticleSolveOptions {
  int neuron_samples = 128;  // S_n hidden neurons sampled per expert particle
  Moe3LimitConstants k;
  Moe3DmftConfig() { expert_samples = 128; }
  int selected() const { return selected_at(k.kappa); }
  void validate() const;  // ConfigError naming the field
};

// Bytes one replicate's march holds (the solve holds min(replicates, threads) of them).
double moe3_march_bytes(const Moe3DmftConfig& cfg, int P);

// The regime-II result layout: f, loss, logit law, load, aggregation split (hagg, init,
// propagating, effective, cross), activation RMS (h1, psi, expert act, hagg) and the kernels
// (expert kernels pooled over all (expert, neuron) pairs).
using Moe3DmftResult = Moe2DmftResult;

Moe3DmftResult solve_moe3_dmft(const Moe3DmftConfig& cfg, const Mat<double>& x, const Vec<double>& y);

}  // namespace moedmft::dmft
