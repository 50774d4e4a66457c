// Shared vocabulary of the model library: shapes, switches and matrix aliases.
#pragma once
#include <Eigen/Dense>
#include <array>
#include <stdexcept>
#include <string>
#include <utility>

namespace moedmft {

template <class T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;
template <class T>
using MatMap = Eigen::Map<Mat<T>>;
template <class T>
using ConstMatMap = Eigen::Map<const Mat<T>>;

// One-line, user-facing configuration error (names the field and the allowed range).
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Named choices: parse a config string against a table of (name, value) pairs, with a one-line
// error that names the field and lists the allowed names.
template <class E, size_t N>
E parse_choice(const std::string& field, const std::string& value,
               const std::array<std::pair<const char*, E>, N>& table) {
  std::string allowed;
  for (const auto& [name, choice] : table) {
    if (value == name) return choice;
    allowed += (allowed.empty() ? "" : ", ") + std::string(name);
  }
  throw ConfigError(field + ": unknown value '" + value + "' (allowed: " + allowed + ")");
}

template <class E, size_t N>
const char* choice_name(E e, const std::array<std::pair<const char*, E>, N>& table) {
  for (const auto& [name, choice] : table)
    if (choice == e) return name;
  return "?";
}

enum class Activation { gelu, tanh, relu, identity };
enum class GateFn { sigmoid, softmax, linear };
enum class Routing { soft, topk };
enum class Selection { logits, biased_sigmoid };  // biased_sigmoid: Jiang et al. load balancing
enum class LossKind { mse, cross_entropy };

// The scaled dimensions, in the order every exponent vector uses.
enum class Dim { N = 0, Ne, M, K, L };
inline constexpr int kNumDims = 5;
inline constexpr std::array<const char*, kNumDims> kDimNames = {"N", "Ne", "M", "K", "L"};

struct Shape {
  int D = 16;   // input dimension (fixed)
  int N = 128;  // residual width
  int Ne = 128; // expert hidden width
  int M = 8;    // experts
  int K = 2;    // active experts per token (K == M with soft routing)
  int L = 1;    // MoE blocks
  int C = 1;    // outputs

  double dim(Dim d) const {
    switch (d) {
      case Dim::N: return N;
      case Dim::Ne: return Ne;
      case Dim::M: return M;
      case Dim::K: return K;
      case Dim::L: return L;
    }
    return 1;
  }
  void validate() const;  // throws ConfigError
};

struct ModelOptions {
  Routing routing = Routing::soft;
  GateFn gate = GateFn::sigmoid;
  Selection selection = Selection::logits;
  bool renormalize = false;  // divide selected gates by their sum
  bool residual = false;     // block output adds its input
  Activation activation = Activation::gelu;
  LossKind loss = LossKind::mse;
  int m_base = 8;            // gate factor is (M / m_base)^(-alpha)
};

Activation parse_activation(const std::string& s);
GateFn parse_gate(const std::string& s);
Routing parse_routing(const std::string& s);
Selection parse_selection(const std::string& s);
LossKind parse_loss(const std::string& s);
const char* to_string(Activation a);
const char* to_string(GateFn g);
const char* to_string(Routing r);
const char* to_string(Selection s);
const char* to_string(LossKind l);

}  // namespace moedmft
