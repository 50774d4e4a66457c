// The deep (L >= 2) causal sweep with replaceable feature-learning terms (internal to solver/dmft).
// The sweep of deep.cpp samples the Gaussian sources u^{l+1} ~ GP(0, Phi^l), r^l ~ GP(0, G^{l+1})
// and adds the Stein responses A, B; what the optimizer changes is only how the weights' own
// updates move the fields (docs/dmft_entrywise.md s.2). Under SGD those are the kernel terms
// sum_{s<t} Phi^l(t,s) (Delta o g^{l+1})(s) etc. and the K^x / readout updates; an entrywise
// optimizer supplies them through DeepTerms.
#pragma once
#include <cstdint>
#include <vector>

#include "solver/dmft/dmft.hpp"

namespace moedmft::dmft {

// Pair a = 0..L-2 is the hidden-to-hidden matrix W^{a+1} from hidden layer a+1 (lo) to a+2 (hi).
struct DeepTerms {
  virtual ~DeepTerms() = default;
  // Adds the feature-learning part of h^{a+2}(k) [S,P] from phi_lo = phi(h^{a+1}(k)) [S,P].
  virtual void forward(int a, const Mat<double>& phi_lo, Mat<double>& h) const = 0;
  // Adds the feature-learning part of z^{a+1}(k) [S,P] from g_hi = g^{a+2}(k) [S,P].
  virtual void backward(int a, const Mat<double>& g_hi, Mat<double>& z) const = 0;
  // Closes step k: phi[a], g[a] are phi(h^{a+1}(k)), g^{a+1}(k) [S,P] for a = 0..L-1, delta = Delta(k).
  // Updates the first-layer fields H1 [S,P] and the readouts zL [S], and the terms' own state.
  virtual void close_step(const std::vector<Mat<double>>& phi, const std::vector<Mat<double>>& g,
                          const Vec<double>& delta, Mat<double>& H1, Vec<double>& zL) = 0;
};

// The causal sweep from first-layer fields u1 [S,P] and readouts z0 [S], hidden-layer white noises
// drawn from noise_seed as solve_deep_once(seed) draws them; terms == nullptr: SGD.
Trace march_deep_with(const DmftConfig& cfg, const Mat<double>& Kx, const Vec<double>& y, Mat<double> u1,
                      Vec<double> z0, uint64_t noise_seed, DeepTerms* terms);

}  // namespace moedmft::dmft
