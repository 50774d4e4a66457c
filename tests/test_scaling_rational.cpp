// Scaling calculus, part 1: exact rationals and the rational linear solver.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "solver/scaling/linear.hpp"
#include "solver/scaling/rational.hpp"

using namespace moedmft::scaling;

TEST_CASE("Rational normalises and compares exactly", "[scaling]") {
  CHECK(Rational(2, 4) == Rational(1, 2));
  CHECK(Rational(3, -6).num() == -1);
  CHECK(Rational(3, -6).den() == 2);
  CHECK(Rational(0, -7) == Rational(0));
  CHECK(Rational(0, -7).den() == 1);
  CHECK(Rational(-4, -8) == Rational(1, 2));
  CHECK(Rational(1, 2) + Rational(1, 3) == Rational(5, 6));
  CHECK(Rational(1, 2) - Rational(1, 3) == Rational(1, 6));
  CHECK(Rational(2, 3) * Rational(3, 4) == Rational(1, 2));
  CHECK(Rational(1, 2) / Rational(-1, 4) == Rational(-2));
  CHECK(Rational(-1, 3) < Rational(-1, 4));
  CHECK(Rational(7, 3) > Rational(2));
  CHECK(Rational(5, 10).str() == "1/2");
  CHECK(Rational(-3).str() == "-3");
  CHECK(abs(Rational(-3, 7)) == Rational(3, 7));
  CHECK(Rational(-3, 7).sign() == -1);
  CHECK(Rational(6, 3).is_integer());
}

TEST_CASE("Rational rejects zero denominators and overflow", "[scaling]") {
  const int64_t big = std::numeric_limits<int64_t>::max();
  const int64_t small = std::numeric_limits<int64_t>::min();
  CHECK_THROWS_AS(Rational(1, 0), std::domain_error);
  CHECK_THROWS_AS(Rational(1) / Rational(0), std::domain_error);
  CHECK_THROWS_AS(Rational(big) + Rational(1), RationalOverflow);
  CHECK_THROWS_AS(Rational(big) * Rational(2), RationalOverflow);
  CHECK_THROWS_AS(-Rational(small), RationalOverflow);
  CHECK_THROWS_AS(Rational(1, small), RationalOverflow);  // the sign cannot move to the numerator
  CHECK_THROWS_AS(Rational(1, big) + Rational(1, big - 1), RationalOverflow);
  // cross-cancellation keeps exact products representable
  CHECK(Rational(1, int64_t(1) << 62) * Rational(int64_t(1) << 62, 3) == Rational(1, 3));
  CHECK(Rational(big, 3) * Rational(3, big) == Rational(1));
  // comparison of values whose cross products overflow int64
  CHECK(Rational(big - 1, big) < Rational(big, big - 1));
  CHECK_FALSE(Rational(big, big - 1) < Rational(big - 1, big));
  CHECK(Rational(small) < Rational(big));
}

TEST_CASE("Rational::from_double recovers simple fractions", "[scaling]") {
  CHECK(Rational::from_double(0.5) == Rational(1, 2));
  CHECK(Rational::from_double(-1.0 / 3.0) == Rational(-1, 3));
  CHECK(Rational::from_double(-2.0) == Rational(-2));
  CHECK(Rational::from_double(0.0) == Rational(0));
  CHECK(Rational::from_double(1.25) == Rational(5, 4));
  CHECK_THROWS_AS(Rational::from_double(std::nan("")), std::domain_error);
  CHECK_THROWS_AS(Rational::from_double(INFINITY), std::domain_error);
}

namespace {
RVec mul(const RMat& A, const RVec& x) {
  RVec r;
  for (const auto& row : A) {
    Rational s = 0;
    for (size_t j = 0; j < row.size(); ++j) s += row[j] * x[j];
    r.push_back(s);
  }
  return r;
}
RVec R(std::initializer_list<int> v) {
  RVec r;
  for (int x : v) r.push_back(Rational(x));
  return r;
}
}  // namespace

TEST_CASE("solve_linear: unique solution", "[scaling]") {
  // 2x + y = 1, x - y = 1/2  ->  x = 1/2, y = 0 ; a redundant third row keeps it unique
  RMat A = {R({2, 1}), R({1, -1}), R({3, 0})};
  RVec b = {Rational(1), Rational(1, 2), Rational(3, 2)};
  LinearSolution s = solve_linear(A, b);
  REQUIRE(s.status == SolveStatus::unique);
  CHECK(s.rank == 2);
  CHECK(s.x == RVec{Rational(1, 2), Rational(0)});
  CHECK(s.free_directions.empty());
  CHECK(mul(A, s.x) == b);
}

TEST_CASE("solve_linear: free directions span the null space", "[scaling]") {
  // x + y - z = 1, 2x + 2y - 2z = 2 (dependent), w free
  RMat A = {R({1, 1, -1, 0}), R({2, 2, -2, 0})};
  RVec b = {Rational(1), Rational(2)};
  LinearSolution s = solve_linear(A, b);
  REQUIRE(s.status == SolveStatus::free);
  CHECK(s.rank == 1);
  CHECK(s.free_directions.size() == 3);
  CHECK(mul(A, s.x) == b);
  for (const auto& d : s.free_directions) CHECK(mul(A, d) == R({0, 0}));
  // no equations at all: every unknown is free
  LinearSolution e = solve_linear(RMat{}, RVec{});
  CHECK(e.status == SolveStatus::unique);  // zero unknowns
  CHECK_THROWS_AS(solve_linear(RMat{R({1, 2}), R({1})}, R({0, 0})), std::invalid_argument);
}

TEST_CASE("solve_linear: inconsistent systems name an irreducible conflict", "[scaling]") {
  // unknowns x, y, z. rows: z = 5 (innocent), x = 1, y = 1, x + y = 3, 2z = 10 (innocent, redundant)
  RMat A = {R({0, 0, 1}), R({1, 0, 0}), R({0, 1, 0}), R({1, 1, 0}), R({0, 0, 2})};
  RVec b = R({5, 1, 1, 3, 10});
  CHECK_FALSE(is_consistent(A, b));
  LinearSolution s = solve_linear(A, b);
  REQUIRE(s.status == SolveStatus::inconsistent);
  CHECK(s.conflict == std::vector<int>{1, 2, 3});
  CHECK(is_consistent(A, b, {0, 1, 2, 4}));
  // more equations than unknowns but consistent: no conflict
  RVec b2 = R({5, 1, 1, 2, 10});
  CHECK(minimal_conflict(A, b2).empty());
  CHECK(solve_linear(A, b2).status == SolveStatus::unique);
  // a direct contradiction between two copies of one desideratum
  RMat A3 = {R({1}), R({1})};
  CHECK(solve_linear(A3, R({0, 1})).conflict == std::vector<int>{0, 1});
}
