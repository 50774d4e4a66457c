// Exact linear algebra over the rationals: Gaussian elimination with the unique solution, a basis
// of free directions, or (for an inconsistent system) an irreducible set of conflicting equations.
#pragma once
#include <string>
#include <vector>

#include "solver/scaling/rational.hpp"

namespace moedmft::scaling {

using RVec = std::vector<Rational>;
using RMat = std::vector<RVec>;  // row-major, rows = equations

enum class SolveStatus { unique, free, inconsistent };
const char* status_name(SolveStatus s);

struct LinearSolution {
  SolveStatus status = SolveStatus::unique;
  int rank = 0;
  RVec x;                     // a particular solution (free unknowns set to 0); empty if inconsistent
  std::vector<RVec> free_directions;  // basis of the null space (empty if unique)
  std::vector<int> pivot_rows;        // equations that carry a pivot (an independent subset)
  std::vector<int> conflict;  // inconsistent: an irreducible inconsistent subset of equation indices
};

// Solves A x = b exactly. A has m rows of equal length n (n may be 0). Throws std::invalid_argument
// on ragged input.
LinearSolution solve_linear(const RMat& A, const RVec& b);

// True if A x = b has a solution (rows restricted to `rows` if non-empty).
bool is_consistent(const RMat& A, const RVec& b, const std::vector<int>& rows = {});

// An irreducible inconsistent subsystem (deletion filter: removing any one of the returned rows
// makes the rest consistent). Empty if the system is consistent.
std::vector<int> minimal_conflict(const RMat& A, const RVec& b);

}  // namespace moedmft::scaling
