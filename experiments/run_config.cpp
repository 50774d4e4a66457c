#include "experiments/run_config.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "data/h5/h5.hpp"
#include "experiments/toml_section.hpp"

namespace moedmft {
namespace {

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
  if (d.source != "teacher" && d.source != "file" && d.source != "fashion-mnist")
    throw ConfigError("data.source: unknown value '" + d.source + "' (allowed: teacher, file, fashion-mnist)");
  d.path = s.get<std::string>("path", d.source == "fashion-mnist" ? kFashionMnistDir : "");
  if (d.source == "file" && d.path.empty()) throw ConfigError("data.path: required when data.source = \"file\"");
  d.max_points = s.get_int("max_points", -1, -1, 1L << 30);
  d.val_points = s.get_int("val_points", 0, 0, 1L << 30);
  if (d.source == "fashion-mnist" && d.val_points > 0)
    throw ConfigError("data.val_points: fashion-mnist validates on its test split (data.test_points: -1 all, 0 none, or a count)");
  d.test_points = s.get_int("test_points", -1, -1, 1L << 30);
  d.standardize = s.get<bool>("standardize", d.source == "fashion-mnist");
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
  toml::table root = parse_toml(toml_text, origin);
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
  c.resolve.readout_init = get_enum(p, "readout_init", "table", parse_readout_init);
  {
    Section knobs = p.sub("knobs");
    read_group_numbers(knobs, "init", c.resolve.init_knob);
    read_group_numbers(knobs, "lr", c.resolve.lr_knob);
    knobs.finish();
    Section base = p.sub("base");
    c.param_base.N = base.get_int("N", 0, 0, 1L << 20);
    c.param_base.Ne = base.get_int("Ne", 0, 0, 1L << 20);
    c.param_base.M = base.get_int("M", 0, 0, 65536);
    c.param_base.K = base.get_int("K", 0, 0, 65536);
    c.param_base.L = base.get_int("L", 0, 0, 1024);
    base.finish();
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
  top.allow("dmft");  // the DMFT limit's knobs (moedmft dmft-moe / converge) may share the file
  top.finish();

  std::ostringstream text;
  text << root;
  c.resolved_toml = text.str();
  return c;
}

namespace {

bool is_hdf5_file(const std::string& path) {
  static const char kSignature[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
  char head[8] = {};
  std::ifstream in(path, std::ios::binary);
  return in.read(head, 8) && std::equal(head, head + 8, kSignature);
}

RunConfig load_from_result(const std::string& path, const std::vector<std::string>& overrides) {
  std::string kind, config, table;
  try {
    h5::File f(path, h5::Mode::read);
    kind = h5::has_attr(f, "/", "kind") ? h5::read_attr_string(f, "/", "kind") : "unknown";
    if (kind == "train") {
      config = h5::read_attr_string(f, "/", "config_toml");
      if (h5::has_attr(f, "/param", "table_toml")) table = h5::read_attr_string(f, "/param", "table_toml");
    }
  } catch (const std::runtime_error& e) {
    throw ConfigError("--config: cannot read the stored config of '" + path + "': " + e.what());
  }
  if (kind != "train")
    throw ConfigError("--config: '" + path + "' is a " + kind + " file; only train results (kind train) store a run's config");
  RunConfig c = parse_run_config(config, overrides, path);
  // The stored table text stands in for the table only while the run still names that table.
  if (!table.empty() && c.param_table == parse_run_config(config, {}, path).param_table) c.param_table_text = table;
  return c;
}

}  // namespace

const std::array<const char*, 3> kRunPathKeys = {"data.path", "param.table", "train.init_from"};

std::string anchor_path(const std::string& value, const std::string& config_file) {
  namespace fs = std::filesystem;
  if (config_file.empty() || value.empty() || fs::path(value).is_absolute()) return value;
  const fs::path folder = fs::path(config_file).parent_path();
  return folder.empty() ? value : (folder / value).lexically_normal().string();
}

std::string anchor_run_value(const std::string& key, const std::string& value, const std::string& config_file) {
  if (std::find(kRunPathKeys.begin(), kRunPathKeys.end(), key) == kRunPathKeys.end()) return value;
  if (key == "param.table") {  // a built-in name is not a path
    const auto names = builtin_param_names();
    if (std::find(names.begin(), names.end(), value) != names.end()) return value;
  }
  return anchor_path(value, config_file);
}

std::string anchor_run_paths(const std::string& toml_text, const std::string& config_file) {
  if (config_file.empty()) return toml_text;
  toml::table root = parse_toml(toml_text, config_file);
  bool changed = false;
  for (const char* key : kRunPathKeys) {
    toml::node* node = root.at_path(key).node();
    if (!node || !node->is_string()) continue;  // absent, or a type error the parser reports
    const std::string value = *node->value<std::string>();
    const std::string anchored = anchor_run_value(key, value, config_file);
    if (anchored != value) {
      *node->as_string() = anchored;
      changed = true;
    }
  }
  if (!changed) return toml_text;
  std::ostringstream text;
  text << root;
  return text.str();
}

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  if (!path.empty() && !std::filesystem::is_directory(path) && is_hdf5_file(path)) return load_from_result(path, overrides);
  const std::string text = path.empty() ? std::string() : anchor_run_paths(read_config_text(path, "--config"), path);
  return parse_run_config(text, overrides, path.empty() ? "defaults" : path);
}

std::string string_override(const std::string& key, const std::string& value) {
  std::ostringstream s;
  s << key << '=' << toml::value<std::string>(value);
  return s.str();
}

ResolvedParam resolve_run_param(const RunConfig& cfg, ParamTable* table_out) {
  ParamTable table =
      cfg.param_table_text.empty() ? load_param_table(cfg.param_table) : parse_param_table(cfg.param_table_text, cfg.param_table);
  const RunConfig::BaseShape& b = cfg.param_base;
  for (auto [given, dim] : {std::pair{b.N, &table.base.N}, {b.Ne, &table.base.Ne}, {b.M, &table.base.M},
                            {b.K, &table.base.K}, {b.L, &table.base.L}})
    if (given > 0) *dim = given;
  if (table_out) *table_out = table;
  return resolve(table, cfg.shape, cfg.model.m_base, cfg.resolve);
}

const char* to_string(Protocol p) { return choice_name(p, kProtocols); }
const char* to_string(Precision p) { return choice_name(p, kPrecisions); }

}  // namespace moedmft
