#include "solver/scaling/rational.hpp"

#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace moedmft::scaling {
namespace {

int64_t checked_mul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw RationalOverflow("Rational: int64 overflow in *");
  return r;
}
int64_t checked_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) throw RationalOverflow("Rational: int64 overflow in +");
  return r;
}
int64_t checked_neg(int64_t a) {
  if (a == std::numeric_limits<int64_t>::min()) throw RationalOverflow("Rational: int64 overflow in -");
  return -a;
}
// gcd of magnitudes without overflowing on INT64_MIN.
uint64_t ugcd(int64_t a, int64_t b) {
  auto mag = [](int64_t v) { return v < 0 ? uint64_t(0) - uint64_t(v) : uint64_t(v); };
  return std::gcd(mag(a), mag(b));
}

}  // namespace

Rational::Rational(int64_t n) : num_(n), den_(1) {}

Rational::Rational(int64_t n, int64_t d) {
  if (d == 0) throw std::domain_error("Rational: zero denominator");
  uint64_t g = ugcd(n, d);
  if (g > 1) {
    // g divides both; dividing by g cannot overflow except INT64_MIN / 1, which is not g > 1.
    n = static_cast<int64_t>(n / static_cast<int64_t>(g));
    d = static_cast<int64_t>(d / static_cast<int64_t>(g));
  }
  if (d < 0) {
    n = checked_neg(n);
    d = checked_neg(d);
  }
  num_ = n;
  den_ = d;
}

Rational Rational::from_double(double x, int64_t max_den) {
  if (!std::isfinite(x)) throw std::domain_error("Rational::from_double: value is not finite");
  // Continued fraction expansion, stopping when the denominator would exceed max_den.
  int64_t p0 = 0, q0 = 1, p1 = 1, q1 = 0;
  double v = x;
  for (int it = 0; it < 64; ++it) {
    double a = std::floor(v);
    if (std::fabs(a) > 9e15) break;
    auto ai = static_cast<int64_t>(a);
    int64_t p2 = checked_add(checked_mul(ai, p1), p0);
    int64_t q2 = checked_add(checked_mul(ai, q1), q0);
    if (q2 > max_den) break;
    p0 = p1;
    q0 = q1;
    p1 = p2;
    q1 = q2;
    double frac = v - a;
    if (std::fabs(static_cast<double>(p1) / static_cast<double>(q1) - x) <= 1e-12 * std::max(1.0, std::fabs(x)) ||
        frac < 1e-15)
      break;
    v = 1.0 / frac;
  }
  if (q1 == 0) throw RationalOverflow("Rational::from_double: no representable approximation");
  return Rational(p1, q1);
}

Rational Rational::operator-() const {
  Rational r;
  r.num_ = checked_neg(num_);
  r.den_ = den_;
  return r;
}

Rational& Rational::operator+=(const Rational& o) {
  // a/b + c/d = (a*(d/g) + c*(b/g)) / (b/g*d), g = gcd(b, d)
  auto g = static_cast<int64_t>(std::gcd(den_, o.den_));
  int64_t n = checked_add(checked_mul(num_, o.den_ / g), checked_mul(o.num_, den_ / g));
  int64_t d = checked_mul(den_ / g, o.den_);
  *this = Rational(n, d);
  return *this;
}

Rational& Rational::operator-=(const Rational& o) { return *this += -o; }

Rational& Rational::operator*=(const Rational& o) {
  // cross-cancel first to keep intermediates small
  auto g1 = static_cast<int64_t>(ugcd(num_, o.den_));
  auto g2 = static_cast<int64_t>(ugcd(o.num_, den_));
  if (g1 == 0) g1 = 1;
  if (g2 == 0) g2 = 1;
  int64_t n = checked_mul(num_ / g1, o.num_ / g2);
  int64_t d = checked_mul(den_ / g2, o.den_ / g1);
  *this = Rational(n, d);
  return *this;
}

Rational& Rational::operator/=(const Rational& o) {
  if (o.num_ == 0) throw std::domain_error("Rational: division by zero");
  Rational inv;
  inv.num_ = o.den_;
  inv.den_ = o.num_;
  if (inv.den_ < 0) {
    inv.num_ = checked_neg(inv.num_);
    inv.den_ = checked_neg(inv.den_);
  }
  return *this *= inv;
}

bool operator<(const Rational& a, const Rational& b) {
  // compare a.n * b.d < b.n * a.d in 128-bit arithmetic (never overflows)
  __int128 l = static_cast<__int128>(a.num_) * b.den_;
  __int128 r = static_cast<__int128>(b.num_) * a.den_;
  return l < r;
}

std::string Rational::str() const {
  if (den_ == 1) return std::to_string(num_);
  return std::to_string(num_) + "/" + std::to_string(den_);
}

std::ostream& operator<<(std::ostream& os, const Rational& r) { return os << r.str(); }

Rational abs(const Rational& r) { return r.sign() < 0 ? -r : r; }

}  // namespace moedmft::scaling
