#include "solver/scaling/linear.hpp"

#include <stdexcept>

namespace moedmft::scaling {

const char* status_name(SolveStatus s) {
  switch (s) {
    case SolveStatus::unique: return "unique";
    case SolveStatus::free: return "free";
    case SolveStatus::inconsistent: return "inconsistent";
  }
  return "?";
}

namespace {

struct Echelon {
  RMat a;                  // reduced row echelon form of [A | b]
  std::vector<int> pivot_col;  // per reduced row, its pivot column (or -1)
  std::vector<int> origin;     // per reduced row, the original row that was swapped there
  bool inconsistent = false;
  int rank = 0;
};

Echelon reduce(const RMat& A, const RVec& b, const std::vector<int>& rows) {
  const size_t n = A.empty() ? 0 : A[0].size();
  Echelon e;
  for (int r : rows) {
    if (A[r].size() != n) throw std::invalid_argument("solve_linear: ragged matrix");
    RVec row = A[r];
    row.push_back(b[r]);
    e.a.push_back(std::move(row));
    e.origin.push_back(r);
  }
  const size_t m = e.a.size();
  size_t pr = 0;
  for (size_t c = 0; c < n && pr < m; ++c) {
    size_t p = pr;
    while (p < m && e.a[p][c].is_zero()) ++p;
    if (p == m) continue;
    std::swap(e.a[p], e.a[pr]);
    std::swap(e.origin[p], e.origin[pr]);
    Rational inv = Rational(1) / e.a[pr][c];
    for (size_t j = c; j <= n; ++j) e.a[pr][j] *= inv;
    for (size_t i = 0; i < m; ++i) {
      if (i == pr || e.a[i][c].is_zero()) continue;
      Rational f = e.a[i][c];
      for (size_t j = c; j <= n; ++j)
        if (!e.a[pr][j].is_zero()) e.a[i][j] -= f * e.a[pr][j];
    }
    e.pivot_col.push_back(static_cast<int>(c));
    ++pr;
  }
  e.rank = static_cast<int>(pr);
  for (size_t i = pr; i < m; ++i)
    if (!e.a[i][n].is_zero()) e.inconsistent = true;
  return e;
}

std::vector<int> all_rows(size_t m) {
  std::vector<int> r(m);
  for (size_t i = 0; i < m; ++i) r[i] = static_cast<int>(i);
  return r;
}

}  // namespace

bool is_consistent(const RMat& A, const RVec& b, const std::vector<int>& rows) {
  if (A.size() != b.size()) throw std::invalid_argument("solve_linear: A and b differ in rows");
  return !reduce(A, b, rows.empty() ? all_rows(A.size()) : rows).inconsistent;
}

std::vector<int> minimal_conflict(const RMat& A, const RVec& b) {
  if (is_consistent(A, b)) return {};
  std::vector<int> keep = all_rows(A.size());
  // Deletion filter: drop every row whose removal leaves the system inconsistent.
  for (size_t i = 0; i < keep.size();) {
    std::vector<int> trial = keep;
    trial.erase(trial.begin() + static_cast<long>(i));
    if (!trial.empty() && !reduce(A, b, trial).inconsistent)
      ++i;
    else
      keep = std::move(trial);
  }
  return keep;
}

LinearSolution solve_linear(const RMat& A, const RVec& b) {
  if (A.size() != b.size()) throw std::invalid_argument("solve_linear: A and b differ in rows");
  const size_t n = A.empty() ? 0 : A[0].size();
  Echelon e = reduce(A, b, all_rows(A.size()));
  LinearSolution s;
  s.rank = e.rank;
  for (int i = 0; i < e.rank; ++i) s.pivot_rows.push_back(e.origin[i]);
  if (e.inconsistent) {
    s.status = SolveStatus::inconsistent;
    s.conflict = minimal_conflict(A, b);
    return s;
  }
  s.x.assign(n, Rational(0));
  std::vector<bool> is_pivot(n, false);
  for (int i = 0; i < e.rank; ++i) {
    s.x[e.pivot_col[i]] = e.a[i][n];
    is_pivot[e.pivot_col[i]] = true;
  }
  for (size_t f = 0; f < n; ++f) {
    if (is_pivot[f]) continue;
    RVec dir(n, Rational(0));
    dir[f] = 1;
    for (int i = 0; i < e.rank; ++i) dir[e.pivot_col[i]] = -e.a[i][f];
    s.free_directions.push_back(std::move(dir));
  }
  s.status = s.free_directions.empty() ? SolveStatus::unique : SolveStatus::free;
  return s;
}

}  // namespace moedmft::scaling
