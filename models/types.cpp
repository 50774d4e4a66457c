#include "models/types.hpp"

#include <sstream>

namespace moedmft {
namespace {

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

Activation parse_activation(const std::string& s) { return parse_choice("model.activation", s, kActivations); }
GateFn parse_gate(const std::string& s) { return parse_choice("model.gate", s, kGates); }
Routing parse_routing(const std::string& s) { return parse_choice("model.routing", s, kRoutings); }
Selection parse_selection(const std::string& s) { return parse_choice("model.selection", s, kSelections); }
LossKind parse_loss(const std::string& s) { return parse_choice("model.loss", s, kLosses); }
const char* to_string(Activation a) { return choice_name(a, kActivations); }
const char* to_string(GateFn g) { return choice_name(g, kGates); }
const char* to_string(Routing r) { return choice_name(r, kRoutings); }
const char* to_string(Selection s) { return choice_name(s, kSelections); }
const char* to_string(LossKind l) { return choice_name(l, kLosses); }

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
