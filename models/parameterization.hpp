// Parameterizations as data: per-group scaling laws over (N, Ne, M, K, L), resolved to
// concrete init std / multiplier / LR / epsilon / weight decay for one shape.
#pragma once
#include <array>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "models/types.hpp"

namespace moedmft {

enum class Group { in = 0, router, expert1, expert2, out, bias };
inline constexpr int kNumGroups = 6;
inline constexpr std::array<const char*, kNumGroups> kGroupNames = {"in", "router", "expert1",
                                                                   "expert2", "out", "bias"};
Group parse_group(const std::string& s);  // throws ConfigError
inline const char* group_name(Group g) { return kGroupNames[static_cast<int>(g)]; }

// Fan-in of each group's weight matrix (bias: 1).
double fan_in(Group g, const Shape& s);

// value = constant * fan_in^fan_in_exponent * prod_d (dim_d / base_d)^exponent_d
struct ScaleLaw {
  double constant = 1.0;
  double fan_in_exponent = 0.0;
  std::array<double, kNumDims> exponents{};  // over N, Ne, M, K, L
  double evaluate(const Shape& shape, const Shape& base, double fan_in) const;
  bool operator==(const ScaleLaw& o) const {
    return constant == o.constant && fan_in_exponent == o.fan_in_exponent && exponents == o.exponents;
  }
};

enum class Quantity { init_std = 0, multiplier, lr_sgd, lr_adam, eps, weight_decay };
inline constexpr int kNumQuantities = 6;
inline constexpr std::array<const char*, kNumQuantities> kQuantityNames = {
    "init_std", "multiplier", "lr_sgd", "lr_adam", "eps", "weight_decay"};

struct GroupLaws {
  std::array<ScaleLaw, kNumQuantities> q;
  bool zero_init = false;
  ScaleLaw& operator[](Quantity k) { return q[static_cast<int>(k)]; }
  const ScaleLaw& operator[](Quantity k) const { return q[static_cast<int>(k)]; }
};

struct ParamTable {
  std::string name;
  std::string description;
  Shape base;  // dims relative to which exponents act (all ones = absolute scaling)
  std::array<GroupLaws, kNumGroups> groups;
  double gate_exponent = 0.0;      // alpha: gates carry (M / m_base)^(-alpha)
  ScaleLaw aggregation;            // factor on the routed sum (1/K for Jiang, K for Complete-muE)
  double residual_exponent = 1.0;  // alpha_L: residual branches carry L^(-alpha_L)
  bool shared_experts = false;     // all experts start from expert 0's initial weights

  GroupLaws& operator[](Group g) { return groups[static_cast<int>(g)]; }
  const GroupLaws& operator[](Group g) const { return groups[static_cast<int>(g)]; }
};

// Concrete per-group values for one shape and optimizer.
struct ResolvedGroup {
  double init_std = 0, multiplier = 1, lr = 0, eps = 0, weight_decay = 0;
  bool zero_init = false;
};

struct ResolvedParam {
  std::string name;
  std::array<ResolvedGroup, kNumGroups> groups;
  double gate_factor = 1.0;
  double aggregation = 1.0;
  double residual_multiplier = 1.0;
  bool shared_experts = false;
  ResolvedGroup& operator[](Group g) { return groups[static_cast<int>(g)]; }
  const ResolvedGroup& operator[](Group g) const { return groups[static_cast<int>(g)]; }
};

// How the readout (group out) starts: as the table says; zero; or from the table's init_std law
// even where the table zero-initialises it (the 1/N readout of muP without the zero init).
enum class ReadoutInit { table, zero, law };
ReadoutInit parse_readout_init(const std::string& s);  // throws ConfigError naming param.readout_init

// Global knobs a run supplies on top of a table.
struct ResolveInputs {
  ReadoutInit readout_init = ReadoutInit::table;
  bool adam_like = false;  // Adam, AdamW and SignGD use lr_adam; SGD uses lr_sgd
  double base_lr = 0.1;
  double base_eps = 1e-8;
  double base_weight_decay = 0.0;
  double bias_rate = 1e-3;  // Jiang bias update rate at the table's bias LR law of 1
  // Per-group constant multipliers ("init" or "lr" knobs), keyed by group.
  std::map<Group, double> init_knob, lr_knob;
  // Direct per-group overrides of resolved values: group -> (quantity name -> value).
  std::map<Group, std::map<std::string, double>> overrides;
};

ResolvedParam resolve(const ParamTable& table, const Shape& shape, int m_base,
                      const ResolveInputs& in);

// TOML <-> table. parse throws ConfigError with a one-line message naming the offending key.
ParamTable parse_param_table(const std::string& toml_text, const std::string& origin);
std::string param_table_to_toml(const ParamTable& table);

// Built-in tables (embedded TOML, see models/parameterizations/).
std::vector<std::string> builtin_param_names();
ParamTable builtin_param_table(const std::string& name);  // throws ConfigError if unknown
// Name of a built-in, or a path to a TOML file.
ParamTable load_param_table(const std::string& name_or_path);

}  // namespace moedmft
