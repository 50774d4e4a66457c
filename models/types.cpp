#include "models/types.hpp"

#include <sstream>

namespace moedmft {
namespace {

template <class E, size_t N>
E parse_enum(const std::string& field, const std::string& value,
             const std::array<std::pair<const char*, E>, N>& table) {
  std::ostringstream allowed;
  for (size_t i = 0; i < N; ++i) {
    if (value == table[i].first) return table[i].second;
    allowed << (i ? ", " : "") << table[i].first;
  }
  throw ConfigError(field + ": unknown value '" + value + "' (allowed: " + allowed.str() + ")");
}

template <class E, size_t N>
const char* enum_name(E e, const std::array<std::pair<const char*, E>, N>& table) {
  for (const auto& [name, value] : table)
    if (value == e) return name;
  return "?";
}

const std::array<std::pair<const char*, Activation>, 4> kActivations = {
    {{"gelu", Activation::gelu}, {"tanh", Activation::tanh}, {"relu", Activation::relu},
     {"identity", Activation::identity}}};
const std::array<std::pair<const char*, GateFn>, 3> kGates = {
    {{"sigmoid", GateFn::sigmoid}, {"softmax", GateFn::softmax}, {"linear", GateFn::linear}}};
const std::array<std::pair<const char*, Routing>, 2> kRoutings = {
    {{"soft", Routing::soft}, {"topk", Routing::topk}}};
const std::array<std::pair<const char*, Selection>, 2> kSelections = {
    {{"logits", Selection::logits}, {"biased_sigmoid", Selection::biased_sigmoid}}};
const std::array<std::pair<const char*, LossKind>, 2> kLosses = {
    {{"mse", LossKind::mse}, {"cross_entropy", LossKind::cross_entropy}}};

void require_range(const char* field, int value, int lo, long hi, const std::string& hi_text) {
  if (value < lo || value > hi) {
    std::ostringstream msg;
    msg << "model." << field << ": " << value << " is out of range (allowed: " << lo << " .. " << hi_text << ")";
    throw ConfigError(msg.str());
  }
}

}  // namespace

Activation parse_activation(const std::string& s) { return parse_enum("model.activation", s, kActivations); }
GateFn parse_gate(const std::string& s) { return parse_enum("model.gate", s, kGates); }
Routing parse_routing(const std::string& s) { return parse_enum("model.routing", s, kRoutings); }
Selection parse_selection(const std::string& s) { return parse_enum("model.selection", s, kSelections); }
LossKind parse_loss(const std::string& s) { return parse_enum("model.loss", s, kLosses); }
const char* to_string(Activation a) { return enum_name(a, kActivations); }
const char* to_string(GateFn g) { return enum_name(g, kGates); }
const char* to_string(Routing r) { return enum_name(r, kRoutings); }
const char* to_string(Selection s) { return enum_name(s, kSelections); }
const char* to_string(LossKind l) { return enum_name(l, kLosses); }

void Shape::validate() const {
  constexpr long kMaxWidth = 1L << 20;
  require_range("D", D, 1, kMaxWidth, "1048576");
  require_range("N", N, 1, kMaxWidth, "1048576");
  require_range("Ne", Ne, 1, kMaxWidth, "1048576");
  require_range("M", M, 1, 65536, "65536");
  require_range("K", K, 1, M, "M = " + std::to_string(M));
  require_range("L", L, 1, 1024, "1024");
  require_range("C", C, 1, 65536, "65536");
}

}  // namespace moedmft
