// Dense-network DMFT for full-batch gradient descent (docs/dmft.md).
//
// Network: h^1 = W^0 x / sqrt(D), h^{l+1} = W^l phi(h^l) / sqrt(N), f = w^L . phi(h^L) / (gamma0 N),
// all weights N(0,1), network learning rate eta_net = gamma0^2 N eta.
// Loss convention everywhere in this solver: L = (1/2) sum_mu (y_mu - f_mu)^2 (sum over the P
// training points, factor one half). PyTorch's mse_loss = mean_mu (y_mu - f_mu)^2 = 2 L / P; to
// reproduce a run trained on the mean loss with learning rate eta_torch, use eta_net = 2 eta_torch / P.
// Time: step t = 0..T, gradient-flow time t * eta.
// Entrywise optimizers (SignGD, Adam; docs/dmft_entrywise.md) act on the O(1) normalised gradient
// entries c (network gradient entry = -c / (gamma0 N) in the parameterization table's coordinates
// for the input and hidden layers, -c for the readout), each entry moving by gamma0 eta u(c) in the
// DMFT's units. For L >= 2 each hidden-to-hidden matrix keeps an S x S pair state (the pair
// estimator, docs/dmft_entrywise.md s.2): O(S^2 P) work per step and matrix, O(S^2) memory.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "models/types.hpp"

namespace moedmft::dmft {

// exact: the deterministic solution for phi = identity (L = 1: covariance recursion; L >= 2: the
// sweep with the population replaced by an orthonormal basis of the Gaussian sources).
enum class DeepMethod { sweep, fixed_point, exact };
enum class DmftOptimizer { sgd, signgd, adam };

struct DmftConfig {
  int P = 0;                 // training points; 0 = take from x.rows()
  int T = 100;               // GD steps (outputs have T+1 rows, t = 0..T)
  int L = 1;                 // hidden layers (L = 1: two-layer network)
  int samples = 4096;        // S, single-site samples per replicate solve
  int replicates = 8;        // R independent solves (seeds mix_seed(seed, r)) for error bars
  double gamma0 = 1.0;       // feature-learning strength (> 0)
  double eta = 0.1;          // DMFT learning rate (network: gamma0^2 N eta)
  Activation phi = Activation::tanh;
  uint64_t seed = 1;
  bool antithetic = true;    // samples in pairs (u, z) and (u, -z): f(0) = 0 to round-off (S even)
  bool two_time_kernels = false;  // also return Phi(t,s), G(t,s) over all (t,s)
  DeepMethod method = DeepMethod::sweep;  // sweep / fixed_point: L >= 2 only; exact: any L
  // Optimizer (signgd, adam: any L; for L >= 2 with method sweep only, fixed_point and exact are
  // SGD only). Adam follows PyTorch (bias-corrected moments, eps added to sqrt(v_hat)); eps in
  // units of the normalised gradient entries (header note).
  DmftOptimizer optimizer = DmftOptimizer::sgd;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double lr_in = 1.0;        // input-layer (W^0) LR multiplier (0: input layer frozen)
  // L >= 2 only.
  int max_iter = 60;         // fixed point: iterations
  double damping = 0.5;      // fixed point: new = (1-damping) old + damping estimate
  double tol = 1e-4;         // fixed point: stop when the relative Frobenius change < tol
  double jitter = 1e-10;     // relative eigenvalue floor of the causal Cholesky blocks
  bool responses = true;     // diagnostic only: false drops the A, B response terms (wrong physics)

  void validate() const;     // throws ConfigError naming the field ("dmft.gamma0: ...")
};

struct DmftResult {
  Mat<double> f, f_err;                  // [T+1, P]: replicate mean and its standard error
  std::vector<double> loss, loss_err;    // [T+1]: L = 0.5 sum_mu (y - f)^2
  // Equal-time kernels per hidden layer l = 1..L (index l-1) and step: Phi[l][t], G[l][t] [P,P].
  // Phi^l = <phi(h^l) phi(h^l)^T>, G^l = <g^l g^l^T>, g^l = phi'(h^l) z^l.
  std::vector<std::vector<Mat<double>>> Phi, G, Phi_err, G_err;
  // Two-time kernels [(T+1)P, (T+1)P], time-major (row t*P + mu), replicate mean; if requested.
  std::vector<Mat<double>> Phi_two, G_two;
  Mat<double> ntk0;                      // K(0) = sum_l G^{l+1}(0) o Phi^l(0), replicate mean
  std::vector<Mat<double>> f_replicates; // [R] each [T+1, P]
  std::vector<double> history;           // fixed point: relative change per iteration (rep. 0)
  int iterations = 0;
};

// Up-front estimate of a solve from its sizes (P points of D inputs): peak bytes and flops.
struct DmftCost {
  double bytes = 0, flops = 0;
};
DmftCost dmft_cost(const DmftConfig& cfg, int P, int D);
// Throws a ConfigError naming the size fields when dmft_cost's bytes do not fit in memory.
void require_dmft_memory(const DmftConfig& cfg, int P, int D);

// Public entry point: x [P, D], y [P] (or [P,1]).
DmftResult solve_dmft(const DmftConfig& cfg, const Mat<double>& x, const Mat<double>& y);

// One two-layer solve from a given population: H0 [S,P] first-layer fields (u), z0 [S] readouts.
// This is the network itself when (H0, z0) = (W^0 x^T / sqrt(D), w): f(t) matches to round-off.
struct Trace {
  Mat<double> f;                          // [T+1, P]
  std::vector<double> loss;               // [T+1]
  std::vector<std::vector<Mat<double>>> Phi, G;  // [layer][t]
  std::vector<Mat<double>> Phi_two, G_two;       // [layer], if two_time_kernels
  Mat<double> ntk0;
  std::vector<double> history;
  int iterations = 0;
  // Every member, in order, for packing (solver/dmft/replicates.hpp); keep in step with the struct.
  template <class V>
  void fields(V&& v) {
    v(f, loss, Phi, G, Phi_two, G_two, ntk0, history, iterations);
  }
};
Trace march_two_layer(const DmftConfig& cfg, const Mat<double>& Kx, const Vec<double>& y,
                      Mat<double> H, Vec<double> z);

// One deep (L >= 2) solve with its own random draws (seed), by sweep or fixed point (SGD).
Trace solve_deep_once(const DmftConfig& cfg, const Mat<double>& Kx, const Vec<double>& y, uint64_t seed);

// The deep SGD sweep from given first-layer fields u1 [S,P] and readouts z0 [S]; the hidden-layer
// white noises are drawn from noise_seed exactly as solve_deep_once(seed) draws them.
Trace march_deep(const DmftConfig& cfg, const Mat<double>& Kx, const Vec<double>& y, Mat<double> u1,
                 Vec<double> z0, uint64_t noise_seed);

// The deep (L >= 2) sweep under an entrywise optimizer (or SGD, u(c) = c, as a cross-check: it
// then equals march_deep from u1 = W0 x^T / sqrt(D)) from input weights W0 [S, D], readouts
// z0 [S] and the hidden white noises of noise_seed: the pair estimator of docs/dmft_entrywise.md.
Trace march_deep_entrywise(const DmftConfig& cfg, const Mat<double>& x, const Vec<double>& y, Mat<double> W0,
                           Vec<double> z0, uint64_t noise_seed);

// Two-layer march under an entrywise optimizer (or SGD, as a cross-check of the normalisation)
// from input weights W0 [S, D] and readouts z0 [S]: entries of W0 couple a data coordinate with
// one neuron and readout entries are per neuron, so this is exactly the width-S network.
Trace march_two_layer_entrywise(const DmftConfig& cfg, const Mat<double>& x, const Vec<double>& y,
                                Mat<double> W0, Vec<double> z);

// The deterministic solution (method exact, phi = identity), one trace.
Trace solve_exact(const DmftConfig& cfg, const Mat<double>& Kx, const Vec<double>& y);

// The deep sweep on the orthonormal source basis (any L; exact for phi = identity), and its size.
Trace march_linear_basis(const DmftConfig& cfg, const Mat<double>& Kx, const Vec<double>& y);
int linear_basis_size(int L, int P, int T);

// Input kernel K^x = x x^T / D.
Mat<double> input_kernel(const Mat<double>& x);

// S x P Gaussian fields with covariance C (rows iid), via the lower Cholesky factor (PSD-safe).
Mat<double> sample_fields(const Mat<double>& C, int S, uint64_t seed, bool antithetic, Vec<double>* z);

}  // namespace moedmft::dmft
