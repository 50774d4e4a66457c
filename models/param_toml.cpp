// TOML <-> ParamTable. The parser is strict: every unknown key or wrong type is a one-line
// ConfigError naming the full dotted key, so typos in user tables never pass silently.
#include <toml++/toml.h>

#include <charconv>
#include <climits>
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

#include "models/parameterization.hpp"

namespace moedmft {
namespace {

const std::initializer_list<const char*> kTopKeys = {
    "name", "description", "gate_exponent", "residual_exponent", "shared_experts",
    "base", "aggregation", "groups"};
const std::initializer_list<const char*> kGroupKeys = {
    "zero_init", "init_std", "multiplier", "lr_sgd", "lr_adam", "eps", "weight_decay"};

std::string join(std::initializer_list<const char*> items) {
  std::string out;
  for (const char* s : items) out += (out.empty() ? "" : ", ") + std::string(s);
  return out;
}

std::string law_keys() {
  std::string out = "constant, fan_in";
  for (const char* d : kDimNames) out += std::string(", ") + d;
  return out;
}

const char* type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    default: return "a date/time";
  }
}

struct Parser {
  std::string origin;

  [[noreturn]] void fail(const std::string& msg) const { throw ConfigError(origin + ": " + msg); }

  [[noreturn]] void wrong_type(const std::string& key, const toml::node& n,
                               const std::string& want) const {
    fail(key + ": expected " + want + ", got " + type_name(n));
  }

  std::string dotted(const std::string& prefix, std::string_view key) const {
    return prefix.empty() ? std::string(key) : prefix + "." + std::string(key);
  }

  void check_keys(const toml::table& t, const std::string& prefix,
                  const std::initializer_list<const char*>& allowed,
                  const std::string& allowed_text) const {
    for (auto&& [k, v] : t) {
      bool ok = false;
      for (const char* a : allowed) ok = ok || k.str() == a;
      if (!ok) fail("unknown key '" + dotted(prefix, k.str()) + "' (allowed: " + allowed_text + ")");
    }
  }

  const toml::table& as_table(const toml::node& n, const std::string& key,
                              const std::string& want) const {
    if (!n.is_table()) wrong_type(key, n, want);
    return *n.as_table();
  }

  double number(const toml::node& n, const std::string& key) const {
    double v = 0;
    if (n.is_integer()) v = static_cast<double>(n.as_integer()->get());
    else if (n.is_floating_point()) v = n.as_floating_point()->get();
    else wrong_type(key, n, "a number");
    if (!std::isfinite(v)) fail(key + ": " + std::to_string(v) + " is out of range (allowed: finite)");
    return v;
  }

  bool boolean(const toml::node& n, const std::string& key) const {
    if (!n.is_boolean()) wrong_type(key, n, "a boolean");
    return n.as_boolean()->get();
  }

  std::string string(const toml::node& n, const std::string& key) const {
    if (!n.is_string()) wrong_type(key, n, "a string");
    return n.as_string()->get();
  }

  ScaleLaw law(const toml::node& n, const std::string& key) const {
    const std::string want = "a table with keys {" + law_keys() + "}";
    const toml::table& t = as_table(n, key, want);
    ScaleLaw out;
    for (auto&& [k, v] : t) {
      const std::string kk = dotted(key, k.str());
      if (k.str() == "constant") {
        out.constant = number(v, kk);
        if (out.constant < 0) fail(kk + ": " + std::to_string(out.constant) + " is out of range (allowed: >= 0)");
        continue;
      }
      if (k.str() == "fan_in") {
        out.fan_in_exponent = number(v, kk);
        continue;
      }
      bool found = false;
      for (int d = 0; d < kNumDims && !found; ++d) {
        if (k.str() != kDimNames[d]) continue;
        out.exponents[d] = number(v, kk);
        found = true;
      }
      if (!found) fail("unknown key '" + kk + "' (allowed: " + law_keys() + ")");
    }
    return out;
  }

  Shape base(const toml::node& n) const {
    std::string dims;
    for (const char* d : kDimNames) dims += (dims.empty() ? "" : ", ") + std::string(d);
    const toml::table& t = as_table(n, "base", "a table with keys {" + dims + "}");
    Shape s;
    s.N = s.Ne = s.M = s.K = s.L = 1;  // omitted dims: exponents act on the absolute value
    for (auto&& [k, v] : t) {
      const std::string kk = dotted("base", k.str());
      int* slot = nullptr;
      if (k.str() == "N") slot = &s.N;
      else if (k.str() == "Ne") slot = &s.Ne;
      else if (k.str() == "M") slot = &s.M;
      else if (k.str() == "K") slot = &s.K;
      else if (k.str() == "L") slot = &s.L;
      else fail("unknown key '" + kk + "' (allowed: " + dims + ")");
      if (!v.is_integer()) wrong_type(kk, v, "an integer >= 1");
      const int64_t x = v.as_integer()->get();
      if (x < 1 || x > INT_MAX)
        fail(kk + ": " + std::to_string(x) + " is out of range (allowed: integer >= 1)");
      *slot = static_cast<int>(x);
    }
    return s;
  }

  GroupLaws group(const toml::node& n, const std::string& key) const {
    const toml::table& t = as_table(n, key, "a table with keys {" + join(kGroupKeys) + "}");
    check_keys(t, key, kGroupKeys, join(kGroupKeys));
    GroupLaws out;
    if (const toml::node* z = t.get("zero_init")) out.zero_init = boolean(*z, key + ".zero_init");
    for (int q = 0; q < kNumQuantities; ++q)
      if (const toml::node* l = t.get(kQuantityNames[q]))
        out.q[q] = law(*l, key + "." + kQuantityNames[q]);
    return out;
  }

  ParamTable table(const toml::table& root) const {
    check_keys(root, "", kTopKeys, join(kTopKeys));
    ParamTable out;
    out.base.N = out.base.Ne = out.base.M = out.base.K = out.base.L = 1;
    const toml::node* name = root.get("name");
    if (!name) fail("name: missing (allowed: a non-empty string)");
    out.name = string(*name, "name");
    if (out.name.empty()) fail("name: empty (allowed: a non-empty string)");
    if (const toml::node* n = root.get("description")) out.description = string(*n, "description");
    if (const toml::node* n = root.get("gate_exponent")) out.gate_exponent = number(*n, "gate_exponent");
    if (const toml::node* n = root.get("residual_exponent"))
      out.residual_exponent = number(*n, "residual_exponent");
    if (const toml::node* n = root.get("shared_experts")) out.shared_experts = boolean(*n, "shared_experts");
    if (const toml::node* n = root.get("base")) out.base = base(*n);
    if (const toml::node* n = root.get("aggregation")) out.aggregation = law(*n, "aggregation");
    if (const toml::node* n = root.get("groups")) {
      std::string groups;
      for (const char* g : kGroupNames) groups += (groups.empty() ? "" : ", ") + std::string(g);
      const toml::table& t = as_table(*n, "groups", "a table with keys {" + groups + "}");
      for (auto&& [k, v] : t) {
        const std::string kk = dotted("groups", k.str());
        int gi = -1;
        for (int g = 0; g < kNumGroups; ++g)
          if (k.str() == kGroupNames[g]) gi = g;
        if (gi < 0) fail("unknown key '" + kk + "' (allowed: " + groups + ")");
        out.groups[gi] = group(v, kk);
      }
    }
    return out;
  }
};

// Shortest text that reads back to the same double, always a TOML float.
std::string emit_double(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, res.ptr);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string emit_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"') out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04X", static_cast<unsigned>(c));
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// Non-default entries of a law as "k = v" items; constant and fan_in always written.
std::vector<std::string> law_items(const ScaleLaw& l) {
  std::vector<std::string> items = {"constant = " + emit_double(l.constant),
                                    "fan_in = " + emit_double(l.fan_in_exponent)};
  for (int d = 0; d < kNumDims; ++d)
    if (l.exponents[d] != 0.0) items.push_back(std::string(kDimNames[d]) + " = " + emit_double(l.exponents[d]));
  return items;
}

}  // namespace

ParamTable parse_param_table(const std::string& toml_text, const std::string& origin) {
  Parser p{origin};
  toml::table root;
  try {
    root = toml::parse(toml_text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << "TOML syntax error at line " << e.source().begin.line << ", column "
        << e.source().begin.column << ": " << e.description();
    p.fail(msg.str());
  }
  return p.table(root);
}

std::string param_table_to_toml(const ParamTable& t) {
  std::ostringstream os;
  os << "name = " << emit_string(t.name) << "\n";
  os << "description = " << emit_string(t.description) << "\n";
  os << "gate_exponent = " << emit_double(t.gate_exponent) << "\n";
  os << "residual_exponent = " << emit_double(t.residual_exponent) << "\n";
  os << "shared_experts = " << (t.shared_experts ? "true" : "false") << "\n\n[base]\n";
  for (int d = 0; d < kNumDims; ++d)
    os << kDimNames[d] << " = " << static_cast<long long>(t.base.dim(static_cast<Dim>(d))) << "\n";
  os << "\n[aggregation]\n";
  for (const std::string& item : law_items(t.aggregation)) os << item << "\n";
  for (int g = 0; g < kNumGroups; ++g) {
    const GroupLaws& laws = t.groups[g];
    os << "\n[groups." << kGroupNames[g] << "]\n";
    os << "zero_init = " << (laws.zero_init ? "true" : "false") << "\n";
    for (int q = 0; q < kNumQuantities; ++q) {
      os << kQuantityNames[q] << " = { ";
      const auto items = law_items(laws.q[q]);
      for (size_t i = 0; i < items.size(); ++i) os << (i ? ", " : "") << items[i];
      os << " }\n";
    }
  }
  return os.str();
}

}  // namespace moedmft
