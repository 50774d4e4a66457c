// Exact rational numbers over int64 with gcd normalisation and overflow checks.
#pragma once
#include <cstdint>
#include <ostream>
#include <stdexcept>
#include <string>

namespace moedmft::scaling {

struct RationalOverflow : std::overflow_error {
  using std::overflow_error::overflow_error;
};

// num/den in lowest terms, den > 0. Every operation that would overflow int64 throws
// RationalOverflow; division by zero throws std::domain_error.
class Rational {
 public:
  constexpr Rational() = default;
  Rational(int64_t n);  // NOLINT(google-explicit-constructor): integers are rationals
  Rational(int64_t n, int64_t d);

  int64_t num() const { return num_; }
  int64_t den() const { return den_; }
  bool is_zero() const { return num_ == 0; }
  bool is_integer() const { return den_ == 1; }
  int sign() const { return (num_ > 0) - (num_ < 0); }
  double to_double() const { return static_cast<double>(num_) / static_cast<double>(den_); }
  // Nearest rational with denominator <= max_den to a double (exact for k/2^j etc.);
  // throws std::domain_error if the value is not finite.
  static Rational from_double(double x, int64_t max_den = 1000000);

  Rational operator-() const;
  Rational& operator+=(const Rational& o);
  Rational& operator-=(const Rational& o);
  Rational& operator*=(const Rational& o);
  Rational& operator/=(const Rational& o);
  friend Rational operator+(Rational a, const Rational& b) { return a += b; }
  friend Rational operator-(Rational a, const Rational& b) { return a -= b; }
  friend Rational operator*(Rational a, const Rational& b) { return a *= b; }
  friend Rational operator/(Rational a, const Rational& b) { return a /= b; }
  friend bool operator==(const Rational& a, const Rational& b) {
    return a.num_ == b.num_ && a.den_ == b.den_;
  }
  friend bool operator!=(const Rational& a, const Rational& b) { return !(a == b); }
  friend bool operator<(const Rational& a, const Rational& b);
  friend bool operator>(const Rational& a, const Rational& b) { return b < a; }
  friend bool operator<=(const Rational& a, const Rational& b) { return !(b < a); }
  friend bool operator>=(const Rational& a, const Rational& b) { return !(a < b); }

  // "3", "-1/2"
  std::string str() const;

 private:
  int64_t num_ = 0;
  int64_t den_ = 1;
};

std::ostream& operator<<(std::ostream& os, const Rational& r);
Rational abs(const Rational& r);

}  // namespace moedmft::scaling
