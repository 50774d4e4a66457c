#include "experiments/run_config.hpp"

#define TOML_HEADER_ONLY 1
#include <toml++/toml.h>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

namespace moedmft {
namespace {

// Reads one TOML table strictly: every read marks the key as known and writes the default back
// when absent, so that after reading, the table IS the fully resolved configuration.
class Section {
 public:
  Section(toml::table& table, std::string prefix) : t_(table), prefix_(std::move(prefix)) {}

  std::string field(const std::string& key) const { return prefix_ + key; }

  template <class V>
  V get(const std::string& key, V fallback) {
    used_.insert(key);
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
    if (v < lo || v > hi)
      throw ConfigError(field(key) + ": " + std::to_string(v) + " is out of range (allowed: " + std::to_string(lo) +
                        " .. " + std::to_string(hi) + ")");
    return int(v);
  }

  double get_number(const std::string& key, double fallback, double lo, double hi, const char* allowed) {
    const double v = get<double>(key, fallback);
    if (!std::isfinite(v) || v < lo || v > hi) {
      std::ostringstream msg;
      msg << field(key) << ": " << v << " is out of range (allowed: " << allowed << ")";
      throw ConfigError(msg.str());
    }
    return v;
  }

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

void apply_override(toml::table& root, const std::string& assignment) {
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
  try {
    return parse(value);
  } catch (const ConfigError& e) {
    // Re-label with this section's field name while keeping the allowed list.
    const std::string what = e.what();
    throw ConfigError(s.field(key) + what.substr(what.find(':')));
  }
}

const std::array<std::pair<const char*, Protocol>, 2> kProtocols = {
    {{"online", Protocol::online}, {"full_batch", Protocol::full_batch}}};
const std::array<std::pair<const char*, Precision>, 2> kPrecisions = {
    {{"float32", Precision::float32}, {"float64", Precision::float64}}};
const std::array<std::pair<const char*, TeacherKind>, 2> kTeachers = {
    {{"dense", TeacherKind::dense}, {"moe", TeacherKind::moe}}};
const std::array<std::pair<const char*, TaskKind>, 2> kTasks = {
    {{"regression", TaskKind::regression}, {"classification", TaskKind::classification}}};

Protocol parse_protocol(const std::string& s) { return parse_choice("train.protocol", s, kProtocols); }
Precision parse_precision(const std::string& s) { return parse_choice("precision", s, kPrecisions); }
TeacherKind parse_teacher(const std::string& s) { return parse_choice("data.teacher", s, kTeachers); }
TaskKind parse_task(const std::string& s) { return parse_choice("data.task", s, kTasks); }

void read_group_numbers(Section& parent, const std::string& key, std::map<Group, double>& out) {
  Section s = parent.sub(key);
  for (auto& [k, v] : s.table()) {
    const std::string name(k.str());
    Group g;
    try {
      g = parse_group(name);
    } catch (const ConfigError&) {
      throw ConfigError(s.field(name) + ": unknown group (allowed: in, router, expert1, expert2, out, bias)");
    }
    auto value = v.value<double>();
    if (!value || !std::isfinite(*value) || *value < 0)
      throw ConfigError(s.field(name) + ": expected a finite number >= 0");
    out[g] = *value;
  }
  s.mark_all_used();
}

void read_data(Section s, DataConfig& d, uint64_t run_seed) {
  d.source = s.get<std::string>("source", "teacher");
  if (d.source != "teacher" && d.source != "file")
    throw ConfigError("data.source: unknown value '" + d.source + "' (allowed: teacher, file)");
  d.path = s.get<std::string>("path", "");
  if (d.source == "file" && d.path.empty()) throw ConfigError("data.path: required when data.source = \"file\"");
  d.max_points = s.get_int("max_points", -1, -1, 1L << 30);
  d.val_points = s.get_int("val_points", 0, 0, 1L << 30);
  d.standardize = s.get<bool>("standardize", false);
  TeacherConfig& t = d.teacher;
  t.kind = get_enum(s, "teacher", "dense", parse_teacher);
  t.task = get_enum(s, "task", "regression", parse_task);
  t.P = s.get_int("P", 4096, 1, 1L << 28);
  t.P_val = s.get_int("P_val", 256, 0, 1L << 28);
  t.D = s.get_int("D", 16, 1, 1L << 20);
  t.C = s.get_int("C", 1, 1, 65536);
  t.hidden = s.get_int("hidden", 64, 1, 1L << 20);
  t.experts = s.get_int("experts", 4, 1, 65536);
  t.label_noise = s.get_number("label_noise", 0.0, 0.0, 1e6, ">= 0, and <= 1 for classification");
  t.seed = uint64_t(s.get<int64_t>("seed", int64_t(run_seed)));
  s.finish();
}

}  // namespace

RunConfig parse_run_config(const std::string& toml_text, const std::vector<std::string>& overrides,
                           const std::string& origin) {
  toml::table root;
  try {
    root = toml::parse(toml_text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << origin << ":" << e.source().begin.line << ": " << e.description();
    throw ConfigError(msg.str());
  }
  for (const auto& o : overrides) apply_override(root, o);

  RunConfig c;
  Section top(root, "");
  c.seed = uint64_t(top.get<int64_t>("seed", 1));
  c.precision = get_enum(top, "precision", "float64", parse_precision);
  c.output = top.get<std::string>("output", "results/run.h5");

  // Data first: the model's D and C default to the data's.
  read_data(top.sub("data"), c.data, c.seed);

  Section m = top.sub("model");
  Shape& s = c.shape;
  s.D = m.get_int("D", c.data.teacher.D, 1, 1L << 20);
  s.N = m.get_int("N", 128, 1, 1L << 20);
  s.Ne = m.get_int("Ne", 128, 1, 1L << 20);
  s.M = m.get_int("M", 8, 1, 65536);
  c.model.routing = get_enum(m, "routing", "topk", parse_routing);
  s.K = m.get_int("K", c.model.routing == Routing::soft ? s.M : std::min(2, s.M), 1, s.M);
  s.L = m.get_int("L", 1, 1, 1024);
  s.C = m.get_int("C", c.data.teacher.C, 1, 65536);
  c.model.gate = get_enum(m, "gate", "sigmoid", parse_gate);
  c.model.selection = get_enum(m, "selection", "logits", parse_selection);
  c.model.renormalize = m.get<bool>("renormalize", false);
  c.model.residual = m.get<bool>("residual", s.L > 1);
  c.model.activation = get_enum(m, "activation", "gelu", parse_activation);
  c.model.loss = get_enum(m, "loss", "mse", parse_loss);
  c.model.m_base = m.get_int("m_base", 8, 1, 65536);
  if (c.model.routing == Routing::soft && s.K != s.M)
    throw ConfigError("model.K: soft routing uses every expert, so K must equal M = " + std::to_string(s.M));
  if (c.model.selection == Selection::biased_sigmoid && c.model.routing != Routing::topk)
    throw ConfigError("model.selection: biased_sigmoid needs model.routing = \"topk\"");
  m.finish();
  s.validate();

  Section o = top.sub("optim");
  c.optim.kind = get_enum(o, "kind", "sgd", parse_optimizer);
  c.resolve.adam_like = is_adam_like(c.optim.kind);
  c.resolve.base_lr = o.get_number("lr", 0.1, 0.0, 1e12, "finite, >= 0");
  c.resolve.base_eps = o.get_number("eps", 1e-8, 0.0, 1e6, "finite, >= 0");
  c.resolve.base_weight_decay = o.get_number("weight_decay", 0.0, 0.0, 1e6, "finite, >= 0");
  c.resolve.bias_rate = o.get_number("bias_rate", 1e-3, 0.0, 1e6, "finite, >= 0");
  c.optim.beta1 = o.get_number("beta1", 0.9, 0.0, 0.999999999, "0 <= beta1 < 1");
  c.optim.beta2 = o.get_number("beta2", 0.999, 0.0, 0.999999999, "0 <= beta2 < 1");
  c.optim.schedule.kind = get_enum(o, "schedule", "constant", parse_schedule);
  c.optim.schedule.warmup_steps = o.get_int("warmup_steps", 0, 0, 1L << 30);
  c.optim.schedule.min_lr_ratio = o.get_number("min_lr_ratio", 0.0, 0.0, 1.0, "0 .. 1");
  c.optim.schedule.decay_fraction = o.get_number("decay_fraction", 0.2, 0.0, 1.0, "0 .. 1");
  o.finish();

  Section p = top.sub("param");
  c.param_table = p.get<std::string>("table", "mup-I-sgd");
  {
    Section knobs = p.sub("knobs");
    read_group_numbers(knobs, "init", c.resolve.init_knob);
    read_group_numbers(knobs, "lr", c.resolve.lr_knob);
    knobs.finish();
    Section ov = p.sub("override");
    for (auto& [k, v] : ov.table()) {
      const std::string name(k.str());
      if (!v.is_table()) throw ConfigError(ov.field(name) + ": expected a table of init_std/multiplier/lr/eps/weight_decay");
      Group g;
      try {
        g = parse_group(name);
      } catch (const ConfigError&) {
        throw ConfigError(ov.field(name) + ": unknown group (allowed: in, router, expert1, expert2, out, bias)");
      }
      for (auto& [qk, qv] : *v.as_table()) {
        auto value = qv.value<double>();
        if (!value) throw ConfigError(ov.field(name) + "." + std::string(qk.str()) + ": expected a number");
        c.resolve.overrides[g][std::string(qk.str())] = *value;
      }
    }
    ov.mark_all_used();
    ov.finish();
  }
  p.finish();

  Section t = top.sub("train");
  c.train.steps = t.get_int("steps", 100, 1, 1L << 30);
  c.train.batch_size = t.get_int("batch_size", 32, 1, 1L << 24);
  c.train.protocol = get_enum(t, "protocol", "online", parse_protocol);
  c.train.diag_every = t.get_int("diag_every", 10, 0, 1L << 30);
  c.train.probe_size = t.get_int("probe_size", 64, 1, 1L << 20);
  c.train.log_every = t.get_int("log_every", 10, 1, 1L << 30);
  c.train.init_from = t.get<std::string>("init_from", "");
  c.train.init_group = t.get<std::string>("init_group", "");
  t.finish();
  c.optim.schedule.total_steps = c.train.steps;
  if (c.data.source == "teacher" && c.train.protocol == Protocol::online &&
      long(c.train.steps) * c.train.batch_size > c.data.teacher.P)
    throw ConfigError("train.steps: the online protocol makes one pass, so steps * batch_size (" +
                      std::to_string(long(c.train.steps) * c.train.batch_size) + ") must be <= data.P (" +
                      std::to_string(c.data.teacher.P) + ")");
  top.finish();

  std::ostringstream text;
  text << root;
  c.resolved_toml = text.str();
  return c;
}

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::string text;
  if (!path.empty()) {
    std::ifstream in(path);
    if (!in) throw ConfigError("--config: cannot read '" + path + "'");
    std::ostringstream buffer;
    buffer << in.rdbuf();
    text = buffer.str();
  }
  return parse_run_config(text, overrides, path.empty() ? "defaults" : path);
}

ResolvedParam resolve_run_param(const RunConfig& cfg, ParamTable* table_out) {
  const ParamTable table = load_param_table(cfg.param_table);
  if (table_out) *table_out = table;
  return resolve(table, cfg.shape, cfg.model.m_base, cfg.resolve);
}

const char* to_string(Protocol p) { return choice_name(p, kProtocols); }
const char* to_string(Precision p) { return choice_name(p, kPrecisions); }

}  // namespace moedmft
