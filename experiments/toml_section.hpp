// Strict reading of TOML configuration tables, shared by the configuration formats: unknown keys
// and wrong types are one-line errors naming the dotted field, and every key read is written back
// with its resolved value, so that afterwards the table IS the full configuration.
#pragma once
#define TOML_HEADER_ONLY 1
#include <toml++/toml.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "models/types.hpp"

namespace moedmft {

// Shortest decimal text that reads back as the same double ("0.1", "1e-08", "0.999").
inline std::string number_text(double v) {
  char buf[40];
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

// Every key a parser reads, with its type, default and allowed range, in reading order: while a
// KeyRecorder lives, Section notes each read on this thread (`moedmft config --explain`).
struct ConfigKeyInfo {
  std::string key, type, fallback, allowed;
};
class KeyRecorder {
 public:
  KeyRecorder() : previous_(active()) { active() = this; }
  ~KeyRecorder() { active() = previous_; }
  KeyRecorder(const KeyRecorder&) = delete;
  KeyRecorder& operator=(const KeyRecorder&) = delete;
  static KeyRecorder*& active() {
    static thread_local KeyRecorder* current = nullptr;
    return current;
  }
  void note(const std::string& key, const std::string& type, const std::string& fallback) {
    if (index_.count(key)) return;
    index_[key] = keys_.size();
    keys_.push_back({key, type, fallback, ""});
  }
  void allowed(const std::string& key, const std::string& text) {
    if (auto it = index_.find(key); it != index_.end()) keys_[it->second].allowed = text;
  }
  const std::vector<ConfigKeyInfo>& keys() const { return keys_; }

 private:
  KeyRecorder* previous_;
  std::vector<ConfigKeyInfo> keys_;
  std::map<std::string, size_t> index_;
};

// Reads one TOML table strictly: every read marks the key as known and writes the default back
// when absent, so that after reading, the table IS the fully resolved configuration.
class Section {
 public:
  Section(toml::table& table, std::string prefix) : t_(table), prefix_(std::move(prefix)) {}

  std::string field(const std::string& key) const { return prefix_ + key; }

  template <class V>
  V get(const std::string& key, V fallback) {
    used_.insert(key);
    if (KeyRecorder* r = KeyRecorder::active()) {
      if constexpr (std::is_same_v<V, bool>)
        r->note(field(key), "bool", fallback ? "true" : "false");
      else if constexpr (std::is_integral_v<V>)
        r->note(field(key), "integer", std::to_string(fallback));
      else if constexpr (std::is_floating_point_v<V>)
        r->note(field(key), "number", number_text(fallback));
      else
        r->note(field(key), "string", "\"" + std::string(fallback) + "\"");
    }
    toml::node* node = t_.get(key);
    if (!node) {
      store(key, fallback);
      return fallback;
    }
    if constexpr (std::is_same_v<V, bool>) {
      if (auto v = node->value_exact<bool>()) return *v;
      throw ConfigError(field(key) + ": expected true or false");
    } else if constexpr (std::is_integral_v<V>) {
      if (auto v = node->value_exact<int64_t>()) return static_cast<V>(*v);
      throw ConfigError(field(key) + ": expected an integer");
    } else if constexpr (std::is_floating_point_v<V>) {
      if (auto v = node->value<double>()) return *v;
      throw ConfigError(field(key) + ": expected a number");
    } else {
      if (auto v = node->value_exact<std::string>()) return *v;
      throw ConfigError(field(key) + ": expected a string");
    }
  }

  int get_int(const std::string& key, int fallback, long lo, long hi) {
    const int64_t v = get<int64_t>(key, fallback);
    if (KeyRecorder* r = KeyRecorder::active()) r->allowed(field(key), std::to_string(lo) + " .. " + std::to_string(hi));
    if (v < lo || v > hi)
      throw ConfigError(field(key) + ": " + std::to_string(v) + " is out of range (allowed: " + std::to_string(lo) +
                        " .. " + std::to_string(hi) + ")");
    return int(v);
  }

  double get_number(const std::string& key, double fallback, double lo, double hi, const char* allowed) {
    const double v = get<double>(key, fallback);
    if (KeyRecorder* r = KeyRecorder::active()) r->allowed(field(key), allowed);
    if (!std::isfinite(v) || v < lo || v > hi) {
      std::ostringstream msg;
      msg << field(key) << ": " << v << " is out of range (allowed: " << allowed << ")";
      throw ConfigError(msg.str());
    }
    return v;
  }

  // A key another reader owns (accepted here without being read).
  void allow(const std::string& key) { used_.insert(key); }

  Section sub(const std::string& key) {
    used_.insert(key);
    toml::node* node = t_.get(key);
    if (!node) node = &t_.insert_or_assign(key, toml::table{}).first->second;
    if (!node->is_table()) throw ConfigError(field(key) + ": expected a table");
    return Section(*node->as_table(), field(key) + ".");
  }

  toml::table& table() { return t_; }
  void mark_all_used() {
    for (auto& [k, v] : t_) used_.insert(std::string(k.str()));
  }

  // Any key never asked for is a typo or an unsupported option.
  void finish() const {
    for (auto& [k, v] : t_) {
      const std::string key(k.str());
      if (!used_.count(key)) {
        std::string allowed;
        for (const auto& u : used_) allowed += (allowed.empty() ? "" : ", ") + u;
        throw ConfigError(field(key) + ": unknown key (allowed: " + allowed + ")");
      }
    }
  }

 private:
  template <class V>
  void store(const std::string& key, const V& value) {
    if constexpr (std::is_same_v<V, bool> || std::is_floating_point_v<V>)
      t_.insert_or_assign(key, value);
    else if constexpr (std::is_integral_v<V>)
      t_.insert_or_assign(key, int64_t(value));
    else
      t_.insert_or_assign(key, std::string(value));
  }

  toml::table& t_;
  std::string prefix_;
  std::set<std::string> used_;
};

// Applies one 'dotted.key=value' override: the value is read as TOML, else as a bare string.
inline void apply_override(toml::table& root, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("--set: '" + assignment + "' is not of the form key=value");
  const std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  toml::table* current = &root;
  std::stringstream parts(key);
  std::string part, last;
  std::vector<std::string> path;
  while (std::getline(parts, part, '.')) path.push_back(part);
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    toml::node* node = current->get(path[i]);
    if (!node) node = &current->insert_or_assign(path[i], toml::table{}).first->second;
    if (!node->is_table()) throw ConfigError("--set " + key + ": '" + path[i] + "' is not a table");
    current = node->as_table();
  }
  // Replacing a whole section would silently drop every key the file set in it.
  if (toml::node* existing = current->get(path.back()); existing && existing->is_table())
    throw ConfigError("--set " + key + ": '" + key + "' is a section; set its keys one by one (e.g. " + key +
                      ".KEY=VALUE)");
  // Read the value as TOML (numbers, booleans, quoted strings); anything else is a bare string.
  try {
    toml::table parsed = toml::parse("v = " + text);
    current->insert_or_assign(path.back(), *parsed.get("v"));
  } catch (const toml::parse_error&) {
    current->insert_or_assign(path.back(), text);
  }
}

template <class E>
E get_enum(Section& s, const std::string& key, const std::string& fallback, E (*parse)(const std::string&)) {
  const std::string value = s.get<std::string>(key, fallback);
  if (KeyRecorder* r = KeyRecorder::active()) try {
      parse("");  // no choice is empty: the error lists the choices
    } catch (const ConfigError& e) {
      const std::string what = e.what();
      const size_t at = what.find("(allowed: ");
      if (at != std::string::npos) r->allowed(s.field(key), what.substr(at + 10, what.rfind(')') - at - 10));
    }
  try {
    return parse(value);
  } catch (const ConfigError& e) {
    // Re-label with this section's field name while keeping the allowed list.
    const std::string what = e.what();
    throw ConfigError(s.field(key) + what.substr(what.find(':')));
  }
}

// The text of a configuration file; `field` names the option or key that gave the path.
inline std::string read_config_text(const std::string& path, const std::string& field) {
  // an ifstream opens a directory and reads nothing, which would run the defaults silently
  if (std::filesystem::is_directory(path))
    throw ConfigError(field + ": '" + path + "' is a directory (expected a TOML file)");
  std::ifstream in(path);
  if (!in) throw ConfigError(field + ": cannot read '" + path + "'");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Parses TOML text, reporting a syntax error as "origin:line: description".
inline toml::table parse_toml(const std::string& text, const std::string& origin) {
  try {
    return toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << origin << ":" << e.source().begin.line << ": " << e.description();
    throw ConfigError(msg.str());
  }
}

}  // namespace moedmft
