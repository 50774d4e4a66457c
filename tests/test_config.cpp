// Run configuration: defaults, --set overrides, and one-line errors that name the field.
#include <catch2/catch.hpp>

#include "experiments/run_config.hpp"
#include "test_support.hpp"

using namespace moedmft;
using Catch::Matchers::Contains;

namespace {

std::string error_of(const std::string& toml, const std::vector<std::string>& sets = {}) {
  try {
    parse_run_config(toml, sets);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("defaults resolve and are recorded in full", "[config]") {
  const RunConfig c = parse_run_config("", {});
  CHECK(c.shape.N == 128);
  CHECK(c.shape.M == 8);
  CHECK(c.shape.K == 2);
  CHECK(c.model.routing == Routing::topk);
  CHECK(c.param_table == "mup-I-sgd");
  CHECK_THAT(c.resolved_toml, Contains("[model]") && Contains("N = 128") && Contains("table = 'mup-I-sgd'"));
  // The resolved text parses back to the same configuration.
  const RunConfig again = parse_run_config(c.resolved_toml, {});
  CHECK(again.resolved_toml == c.resolved_toml);
}

TEST_CASE("set overrides take TOML values and bare strings", "[config]") {
  const RunConfig c = parse_run_config("[model]\nN = 64\n", {"model.N=256", "model.routing=soft", "model.M=4",
                                                              "optim.kind=adam", "optim.lr=3e-3", "param.table=sp",
                                                              "param.knobs.lr.router=0.5"});
  CHECK(c.shape.N == 256);
  CHECK(c.model.routing == Routing::soft);
  CHECK(c.shape.K == 4);  // soft routing defaults K to M
  CHECK(c.resolve.adam_like);
  CHECK(c.resolve.base_lr == Approx(3e-3));
  CHECK(c.param_table == "sp");
  CHECK(c.resolve.lr_knob.at(Group::router) == 0.5);
}

TEST_CASE("bad configurations fail with one line naming the field and the allowed range", "[config]") {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"model.K", {"model.M=4", "model.K=5"}},
      {"model.N", {"model.N=-3"}},
      {"model.Ne", {"model.Ne=0"}},
      {"model.widht", {"model.widht=3"}},
      {"optim.lr", {"optim.lr=nan"}},
      {"optim.lr", {"optim.lr=-1"}},
      {"model.activation", {"model.activation=swish"}},
      {"optim.kind", {"optim.kind=lion"}},
      {"train.steps", {"train.steps=1000", "train.batch_size=64", "data.P=100"}},
      {"model.K", {"model.routing=soft", "model.M=8", "model.K=2"}},
      {"param.knobs.lr.routr", {"param.knobs.lr.routr=2"}},
      {"model.N", {"model.N=\"wide\""}},
      {"data.source", {"data.source=web"}},
      {"data.path", {"data.source=file"}},
      {"optim.beta2", {"optim.beta2=1.0"}},
  };
  for (const auto& [field, sets] : cases) {
    INFO(field);
    const std::string msg = error_of("", sets);
    CHECK_THAT(msg, Contains(field));
    CHECK(msg.find('\n') == std::string::npos);
  }
  CHECK_THAT(error_of("[model]\nN = 128\n", {"model.K=9"}), Contains("allowed: 1 .. 8"));
  CHECK_THAT(error_of("[model\nN=1"), Contains("config:1"));
  CHECK_THAT(error_of("[trian]\nsteps = 3\n"), Contains("trian: unknown key"));
}

TEST_CASE("a directory or a missing file given as a config fails naming the option", "[config]") {
  const moedmft::testing::Scratch scratch("config_dir");
  CHECK_THROWS_WITH(load_run_config(scratch.dir.string(), {}), Catch::Contains("--config") && Catch::Contains("directory"));
  CHECK_THROWS_WITH(load_run_config(scratch.file("missing.toml"), {}), Catch::Contains("--config: cannot read"));
}

TEST_CASE("set of a whole section is refused instead of dropping the section's keys", "[config]") {
  const std::string doc = "[model]\nN = 64\nNe = 32\n";
  CHECK_THROWS_WITH(parse_run_config(doc, {"model={N=16}"}), Catch::StartsWith("--set model: 'model' is a section"));
  CHECK(parse_run_config(doc, {"model.N=16"}).shape.Ne == 32);  // a key inside keeps the rest
}

TEST_CASE("CLI values become TOML strings with quotes and backslashes intact", "[config]") {
  for (const std::string& name : {std::string("out\".h5"), std::string("a\\b.h5"), std::string("x\" \nseed = 3 #.h5")}) {
    const RunConfig c = parse_run_config("", {string_override("output", name)});
    CHECK(c.output == name);
    CHECK(c.seed == 1);  // nothing in the name is read as another key
  }
}

TEST_CASE("param.base overrides the table's base shape like any key", "[config]") {
  const RunConfig plain = parse_run_config("", {});
  const RunConfig based = parse_run_config("", {"param.base.N=64", "param.base.Ne=64"});
  ParamTable table;
  const ResolvedParam r = resolve_run_param(based, &table);
  CHECK(table.base.N == 64);
  CHECK(table.base.Ne == 64);
  CHECK(table.base.M == 8);  // untouched dims keep the table's value
  // The same as editing the table's [base] by hand.
  ParamTable edited = load_param_table(plain.param_table);
  edited.base.N = edited.base.Ne = 64;
  const ResolvedParam expect = resolve(edited, based.shape, based.model.m_base, based.resolve);
  const ResolvedParam original = resolve_run_param(plain);
  for (Group g : {Group::in, Group::expert1, Group::expert2, Group::out}) {
    CHECK(r[g].init_std == expect[g].init_std);
    CHECK(r[g].lr == expect[g].lr);
  }
  // muP's readout LR is relative to the base width: halving the base at N = 128 changes it.
  CHECK(r[Group::out].lr != original[Group::out].lr);
  CHECK(testing::config_error([] { parse_run_config("", {"param.base.N=-1"}); }) ==
        "param.base.N: -1 is out of range (allowed: 0 .. 1048576)");
}
