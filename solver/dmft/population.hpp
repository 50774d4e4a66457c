// The sample population of one DMFT replicate, and its split over MPI ranks (internal to
// solver/dmft). Every march holds S samples per population and reads the process only through
// averages over them, (1/S) sum_i a_i b_i^T. Under `mpirun ... --mpi-split samples` rank k holds
// rows [begin, begin + rows) of every S-row population (drawn from the same stream as a
// one-process solve, then sliced), forms its partial sums, and the ranks add them: every rank
// then holds the same averages, so they take the same decisions (Cholesky pivots, top-K routes)
// and the solve equals the one-process solve to round-off. Without a split every call reduces to
// the one-process arithmetic, bit for bit.
#pragma once
#include <functional>
#include <string>

#include "models/types.hpp"

namespace moedmft::dmft {

// Collective: adds `count` doubles over the ranks in place, with the same result on every rank.
using RankSum = std::function<void(double* data, size_t count)>;

struct Population {
  int S = 0;                 // all samples: the divisor of every average
  int begin = 0, rows = 0;   // this process's samples
  const RankSum* sum = nullptr;  // null: the whole population is here

  bool split() const { return sum != nullptr; }
  // (1/S) sum over every sample, of a product summed over this process's rows (A^T B).
  template <class Expr>
  Mat<double> mean(const Expr& local) const {
    if (!sum) return Mat<double>(local * (1.0 / S));
    Mat<double> m = local;
    (*sum)(m.data(), size_t(m.size()));
    return m * (1.0 / S);
  }
  // The same, dividing by `divisor` instead of S (a readout's f = <h z> / gamma0).
  template <class Expr>
  Mat<double> mean_over(const Expr& local, double divisor) const {
    if (!sum) return Mat<double>(local / divisor);
    Mat<double> m = local;
    (*sum)(m.data(), size_t(m.size()));
    return m / divisor;
  }
  // Mean of the squares of an [rows, cols] per-sample block over every sample.
  double mean_square(const Mat<double>& local) const {
    double total = local.squaredNorm();
    if (sum) (*sum)(&total, 1);
    const double count = double(S) * double(local.cols());
    return count > 0 ? total / count : 0.0;
  }
  // This process's rows of a draw of all S samples.
  Mat<double> mine(Mat<double> all) const {
    if (!sum) return all;
    return all.middleRows(begin, rows);
  }
  Vec<double> mine(Vec<double> all) const {
    if (!sum) return all;
    return all.segment(begin, rows);
  }
};

// All S samples, here (a particle population, or a solve that must not be cut).
inline Population whole_population(int S) {
  Population pop;
  pop.S = pop.rows = S;
  return pop;
}

// The population of S samples as this process holds it: all of it, unless a solve runs with its
// samples split over ranks (then this rank's slice; antithetic pairs are never cut). `what` names
// the solver in the refusal when S is too small to give every rank a pair.
Population population(int S, const std::string& what);

// Solves that cannot split their samples (the pair estimator) call this: it throws a one-line
// ConfigError naming the option when a split is active.
void refuse_sample_split(const std::string& what);

// Set by solve_replicates around the sequential solves of `--mpi-split samples`.
struct ScopedSampleSplit {
  ScopedSampleSplit(int rank, int ranks, const RankSum* sum);
  ~ScopedSampleSplit();
  ScopedSampleSplit(const ScopedSampleSplit&) = delete;
  ScopedSampleSplit& operator=(const ScopedSampleSplit&) = delete;
};

}  // namespace moedmft::dmft
