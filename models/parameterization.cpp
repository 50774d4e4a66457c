// Resolver and built-in lookup for parameterization tables (TOML I/O is in param_toml.cpp).
#include "models/parameterization.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

namespace moedmft {
namespace detail {
// Generated from models/parameterizations/*.toml (see models/CMakeLists.txt).
const std::vector<std::pair<std::string, std::string>>& builtin_table_texts();
}  // namespace detail

namespace {

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += (i ? ", " : "") + names[i];
  return out;
}

std::string fmt(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

bool valid_nonneg(double v) { return std::isfinite(v) && v >= 0.0; }

double knob(const std::map<Group, double>& knobs, Group g) {
  auto it = knobs.find(g);
  return it == knobs.end() ? 1.0 : it->second;
}

// Resolved values must be usable by an optimizer; the first bad one names its field.
void check_resolved(const std::string& field, Group g, double v) {
  if (valid_nonneg(v)) return;
  throw ConfigError(field + ": group '" + group_name(g) + "' resolves to " + fmt(v) +
                    " (allowed: finite, >= 0)");
}

void apply_override(ResolvedGroup& r, Group g, const std::string& key, double v) {
  const std::string field = std::string("param.override.") + group_name(g);
  double* slot = nullptr;
  if (key == "init_std") slot = &r.init_std;
  else if (key == "multiplier") slot = &r.multiplier;
  else if (key == "lr") slot = &r.lr;
  else if (key == "eps") slot = &r.eps;
  else if (key == "weight_decay") slot = &r.weight_decay;
  else
    throw ConfigError(field + ": unknown key '" + key +
                      "' (allowed: init_std, multiplier, lr, eps, weight_decay)");
  if (!valid_nonneg(v))
    throw ConfigError(field + "." + key + ": " + fmt(v) + " is out of range (allowed: finite, >= 0)");
  *slot = v;
  // An explicit init std overrides the structural zero-init switch as well.
  if (key == "init_std") r.zero_init = (v == 0.0);
}

}  // namespace

Group parse_group(const std::string& s) {
  for (int i = 0; i < kNumGroups; ++i)
    if (s == kGroupNames[i]) return static_cast<Group>(i);
  throw ConfigError("param.group: unknown group '" + s +
                    "' (allowed: in, router, expert1, expert2, out, bias)");
}

double fan_in(Group g, const Shape& s) {
  switch (g) {
    case Group::in: return s.D;
    case Group::router: return s.N;
    case Group::expert1: return s.N;
    case Group::expert2: return s.Ne;
    case Group::out: return s.N;
    case Group::bias: return 1.0;
  }
  return 1.0;
}

double ScaleLaw::evaluate(const Shape& shape, const Shape& base, double fan) const {
  double v = constant;
  // Skip zero exponents so that unused dims never contribute (even 0/0 or inf).
  if (fan_in_exponent != 0.0) v *= std::pow(fan, fan_in_exponent);
  for (int d = 0; d < kNumDims; ++d) {
    if (exponents[d] == 0.0) continue;
    const Dim dim = static_cast<Dim>(d);
    v *= std::pow(shape.dim(dim) / base.dim(dim), exponents[d]);
  }
  return v;
}

ReadoutInit parse_readout_init(const std::string& s) {
  if (s == "table") return ReadoutInit::table;
  if (s == "zero") return ReadoutInit::zero;
  if (s == "law") return ReadoutInit::law;
  throw ConfigError("param.readout_init: '" + s + "' is not known (allowed: table, zero, law)");
}

ResolvedParam resolve(const ParamTable& table, const Shape& shape, int m_base,
                      const ResolveInputs& in) {
  if (m_base < 1)
    throw ConfigError("model.m_base: " + std::to_string(m_base) + " is out of range (allowed: >= 1)");
  ResolvedParam out;
  out.name = table.name;
  out.shared_experts = table.shared_experts;
  out.gate_factor = std::pow(static_cast<double>(shape.M) / m_base, -table.gate_exponent);
  out.aggregation = table.aggregation.evaluate(shape, table.base, 1.0);
  out.residual_multiplier = std::pow(static_cast<double>(shape.L), -table.residual_exponent);

  for (int i = 0; i < kNumGroups; ++i) {
    const Group g = static_cast<Group>(i);
    const GroupLaws& laws = table[g];
    const double fan = fan_in(g, shape);
    auto eval = [&](Quantity q) { return laws[q].evaluate(shape, table.base, fan); };
    ResolvedGroup& r = out[g];
    r.zero_init = laws.zero_init;
    if (g == Group::out && in.readout_init != ReadoutInit::table) r.zero_init = in.readout_init == ReadoutInit::zero;
    r.init_std = r.zero_init ? 0.0 : eval(Quantity::init_std) * knob(in.init_knob, g);
    r.multiplier = eval(Quantity::multiplier);
    if (g == Group::bias)  // Jiang bias update rate: same law for every optimizer
      r.lr = eval(Quantity::lr_sgd) * in.bias_rate * knob(in.lr_knob, g);
    else
      r.lr = eval(in.adam_like ? Quantity::lr_adam : Quantity::lr_sgd) * in.base_lr *
             knob(in.lr_knob, g);
    r.eps = eval(Quantity::eps) * in.base_eps;
    r.weight_decay = eval(Quantity::weight_decay) * in.base_weight_decay;

    auto ov = in.overrides.find(g);
    if (ov != in.overrides.end())
      for (const auto& [key, value] : ov->second) apply_override(r, g, key, value);

    check_resolved("optim.lr", g, r.lr);
    check_resolved("optim.eps", g, r.eps);
    check_resolved("optim.weight_decay", g, r.weight_decay);
    check_resolved("param.init_std", g, r.init_std);
    if (!std::isfinite(r.multiplier))
      throw ConfigError(std::string("param.multiplier: group '") + group_name(g) + "' resolves to " +
                        fmt(r.multiplier) + " (allowed: finite)");
  }
  if (!std::isfinite(out.aggregation) || !std::isfinite(out.gate_factor) ||
      !std::isfinite(out.residual_multiplier))
    throw ConfigError("param.aggregation: gate, aggregation or residual factor is not finite (allowed: finite)");
  return out;
}

std::vector<std::string> builtin_param_names() {
  std::vector<std::string> names;
  for (const auto& entry : detail::builtin_table_texts()) names.push_back(entry.first);
  return names;
}

ParamTable builtin_param_table(const std::string& name) {
  for (const auto& [stem, text] : detail::builtin_table_texts())
    if (stem == name) return parse_param_table(text, "builtin:" + stem);
  throw ConfigError("param.table: unknown built-in '" + name + "' (built-ins: " +
                    join_names(builtin_param_names()) + ")");
}

ParamTable load_param_table(const std::string& name_or_path) {
  for (const auto& entry : detail::builtin_table_texts())
    if (entry.first == name_or_path) return builtin_param_table(name_or_path);
  std::error_code ec;
  std::ifstream file;
  if (std::filesystem::is_regular_file(name_or_path, ec)) file.open(name_or_path, std::ios::binary);
  if (!file.is_open())
    throw ConfigError("param.table: no built-in named '" + name_or_path + "' and no file '" +
                      name_or_path + "' (built-ins: " + join_names(builtin_param_names()) + ")");
  std::ostringstream text;
  text << file.rdbuf();
  return parse_param_table(text.str(), name_or_path);
}

}  // namespace moedmft
