// Causal linear algebra of the deep DMFT sweep: a lower Cholesky factor grown one block row per
// time step (PSD-safe: pivots below a relative floor are marked dead, their noise is unused), and
// causal whitening F L^{-T} of a sample history. Internal to solver/dmft.
#pragma once
#include <vector>

#include "models/types.hpp"

namespace moedmft::dmft {

// Lower Cholesky factor of a PSD matrix; columns with a non-positive pivot are set to zero.
Mat<double> psd_cholesky(const Mat<double>& C);

struct CausalChol {
  Mat<double> L;           // [n,n] lower; a dead pivot has 1 on the diagonal and a zero column
  std::vector<char> dead;  // per index
  void init(int n);
  // Rows [K0, K0+P) from the kernel block row C [P, K0+P] (kernel rows K0.., columns 0..K0+P).
  void extend(const Mat<double>& C, int K0, int P, double rel_floor);
  // Whitened block of a history: W[:, K0:K0+P] = (F_k - W[:, 0:K0] L[K,0:K0]^T) L_kk^{-T}.
  void whiten_block(const Mat<double>& F, Mat<double>& W, int K0, int P) const;
  // Zero the noise columns of dead pivots in block [K0, K0+P).
  void kill_dead_noise(Mat<double>& noise, int K0, int P) const;
  // Samples of the block: noise[:, 0:K0+P] L[K, 0:K0+P]^T.
  Mat<double> sample_block(const Mat<double>& noise, int K0, int P) const;
  // Full inverse-free solve X = C L^{-1} (C [m,n]), dead components zeroed: for explicit responses.
  Mat<double> right_solve_inverse(const Mat<double>& C) const;
};

}  // namespace moedmft::dmft
