// Parameterization tables: resolver values against hand calculations, TOML round trips,
// strict-parser error messages and sanity of every built-in.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <string>

#include "models/parameterization.hpp"

using namespace moedmft;
using Catch::Matchers::Contains;

namespace {

Shape make_shape(int N, int Ne, int M, int K, int L = 1, int D = 16) {
  Shape s;
  s.D = D;
  s.N = N;
  s.Ne = Ne;
  s.M = M;
  s.K = K;
  s.L = L;
  s.C = 1;
  return s;
}

ResolveInputs sgd(double lr = 0.1) {
  ResolveInputs in;
  in.adam_like = false;
  in.base_lr = lr;
  in.base_eps = 1e-8;
  return in;
}

ResolveInputs adam(double lr = 1e-3) {
  ResolveInputs in = sgd(lr);
  in.adam_like = true;
  return in;
}

bool same_table(const ParamTable& a, const ParamTable& b) {
  if (a.name != b.name || a.description != b.description) return false;
  for (int d = 0; d < kNumDims; ++d)
    if (a.base.dim(static_cast<Dim>(d)) != b.base.dim(static_cast<Dim>(d))) return false;
  if (!(a.aggregation == b.aggregation) || a.gate_exponent != b.gate_exponent ||
      a.residual_exponent != b.residual_exponent || a.shared_experts != b.shared_experts)
    return false;
  for (int g = 0; g < kNumGroups; ++g) {
    if (a.groups[g].zero_init != b.groups[g].zero_init) return false;
    for (int q = 0; q < kNumQuantities; ++q)
      if (!(a.groups[g].q[q] == b.groups[g].q[q])) return false;
  }
  return true;
}

const std::string kMinimal = "name = \"t\"\n";

ParamTable parse(const std::string& text) { return parse_param_table(text, "test.toml"); }

}  // namespace

TEST_CASE("fan_in and group names", "[param]") {
  const Shape s = make_shape(256, 64, 16, 4, 1, 10);
  CHECK(fan_in(Group::in, s) == 10);
  CHECK(fan_in(Group::router, s) == 256);
  CHECK(fan_in(Group::expert1, s) == 256);
  CHECK(fan_in(Group::expert2, s) == 64);
  CHECK(fan_in(Group::out, s) == 256);
  CHECK(fan_in(Group::bias, s) == 1);
  for (int g = 0; g < kNumGroups; ++g) CHECK(parse_group(kGroupNames[g]) == static_cast<Group>(g));
  CHECK_THROWS_AS(parse_group("hidden"), ConfigError);
  CHECK_THROWS_WITH(parse_group("hidden"), Contains("param.group") && Contains("'hidden'") &&
                                               Contains("expert2"));
}

TEST_CASE("ScaleLaw evaluates constant * fan_in^a * prod (dim/base)^e", "[param]") {
  ScaleLaw law;
  law.constant = 3.0;
  law.fan_in_exponent = -0.5;
  law.exponents[static_cast<int>(Dim::N)] = 1.0;
  law.exponents[static_cast<int>(Dim::M)] = -2.0;
  const Shape base = make_shape(128, 128, 8, 2);
  const Shape s = make_shape(512, 128, 16, 2);
  CHECK(law.evaluate(s, base, 64.0) == Approx(3.0 / 8.0 * 4.0 / 4.0));
  CHECK(ScaleLaw{}.evaluate(s, base, 123.0) == 1.0);
}

TEST_CASE("mup-I-sgd at N = Ne = 512 matches hand values", "[param]") {
  const ParamTable t = builtin_param_table("mup-I-sgd");
  const Shape s = make_shape(512, 512, 8, 2);
  ResolveInputs with_law = sgd(0.1);
  with_law.readout_init = ReadoutInit::law;  // the 1/N readout instead of the built-in zero
  const ResolvedParam r = resolve(t, s, 8, with_law);
  CHECK(r[Group::expert1].init_std == Approx(1.0 / std::sqrt(512.0)));
  CHECK(r[Group::expert2].init_std == Approx(1.0 / std::sqrt(512.0)));
  CHECK(r[Group::in].init_std == Approx(0.25));  // D = 16
  // Readout and router ~ 1/N, equal to 128^(-1/2) at the base.
  CHECK(r[Group::out].init_std == Approx(std::pow(512.0, -0.5) * std::pow(4.0, -0.5)));
  CHECK(r[Group::out].init_std == Approx(1.0 / std::sqrt(128.0) / 4.0));
  CHECK(r[Group::router].init_std == Approx(1.0 / std::sqrt(128.0) / 4.0));
  CHECK(r[Group::in].lr == Approx(0.1 * 4));
  CHECK(r[Group::expert1].lr == Approx(0.1));
  CHECK(r[Group::expert2].lr == Approx(0.1));
  CHECK(r[Group::router].lr == Approx(0.1 / 4));
  CHECK(r[Group::out].lr == Approx(0.1 / 4));
  CHECK(r[Group::bias].lr == Approx(1e-3));
  CHECK(r[Group::in].eps == Approx(1e-8 / 4));
  CHECK(r[Group::expert1].eps == Approx(1e-8 / 4));
  CHECK(r[Group::out].eps == Approx(1e-8));
  CHECK(r.gate_factor == 1.0);
  CHECK(r.aggregation == 1.0);
  CHECK(r.residual_multiplier == 1.0);
  CHECK_FALSE(r.shared_experts);
  CHECK_FALSE(r[Group::out].zero_init);
  CHECK(r[Group::bias].zero_init);
  CHECK(r[Group::bias].init_std == 0.0);
  // The built-in muP readout starts at zero (as the MSSP paper runs muP); only the init changes.
  const ResolvedParam z = resolve(t, s, 8, sgd(0.1));
  CHECK(z[Group::out].zero_init);
  CHECK(z[Group::out].init_std == 0.0);
  CHECK(z[Group::out].lr == r[Group::out].lr);
  CHECK(z[Group::expert1].init_std == r[Group::expert1].init_std);
}

TEST_CASE("param.readout_init overrides the readout start of any table", "[param]") {
  const Shape s = make_shape(256, 256, 8, 2);
  ResolveInputs in = sgd(0.1);
  in.readout_init = ReadoutInit::zero;  // a table with a nonzero readout, zeroed
  const ResolvedParam sp = resolve(builtin_param_table("sp"), s, 8, in);
  CHECK(sp[Group::out].zero_init);
  CHECK(sp[Group::out].init_std == 0.0);
  CHECK(sp[Group::in].init_std > 0.0);
  in.readout_init = ReadoutInit::law;  // MSSP's zero readout started from its init_std law
  const ResolvedParam ms = resolve(builtin_param_table("mssp-I-sgd"), s, 8, in);
  CHECK_FALSE(ms[Group::out].zero_init);
  CHECK(ms[Group::out].init_std > 0.0);
  CHECK(parse_readout_init("table") == ReadoutInit::table);
  CHECK_THROWS_WITH(parse_readout_init("half"), "param.readout_init: 'half' is not known (allowed: table, zero, law)");
}

TEST_CASE("mup-I-adam at N = Ne = 512: Adam LR ~ 1/fan_in, input O(1)", "[param]") {
  const ResolvedParam r = resolve(builtin_param_table("mup-I-adam"), make_shape(512, 512, 8, 2), 8, adam(1e-3));
  CHECK(r[Group::in].lr == Approx(1e-3));
  CHECK(r[Group::router].lr == Approx(1e-3 / 4));
  CHECK(r[Group::expert1].lr == Approx(1e-3 / 4));
  CHECK(r[Group::expert2].lr == Approx(1e-3 / 4));
  CHECK(r[Group::out].lr == Approx(1e-3 / 4));
  CHECK(r[Group::bias].lr == Approx(1e-3));  // bias rate, not the Adam law
}

TEST_CASE("mup-II at N = 512, M = K = 32: gate factor and expert LR powers of M", "[param]") {
  const ParamTable t = builtin_param_table("mup-II-sgd");
  const Shape s = make_shape(512, 16, 32, 32);
  const ResolvedParam r = resolve(t, s, 8, sgd(0.1));
  CHECK(r.gate_factor == Approx(0.25));
  CHECK(r[Group::router].init_std == Approx(1.0 / std::sqrt(512.0)));  // hidden-like router
  CHECK(r[Group::expert2].init_std == Approx(0.25));                   // Ne^(-1/2)
  // SGD: expert2 LR ~ N M / Ne, expert1 ~ Ne M / N, router ~ M / N.
  CHECK(r[Group::expert2].lr == Approx(0.1 * 16));
  CHECK(r[Group::expert1].lr == Approx(0.1));
  CHECK(r[Group::router].lr == Approx(0.1));
  CHECK(r[Group::expert2].eps == Approx(1e-8 / 16));
  CHECK(r[Group::expert1].eps == Approx(1e-8 / 4));
  CHECK(r[Group::router].eps == Approx(1e-8 / 4));
  const ResolvedParam ra = resolve(builtin_param_table("mup-II-adam"), s, 8, adam(1e-3));
  CHECK(ra[Group::expert2].lr == Approx(1e-3));  // fan-in Ne fixed
  CHECK(ra[Group::expert1].lr == Approx(1e-3 / 4));
  CHECK(ra[Group::router].lr == Approx(1e-3 / 4));
}

TEST_CASE("mup-III at 4x base: expert LRs pick up the 1/M gate", "[param]") {
  const Shape s = make_shape(512, 512, 32, 32);
  const ResolvedParam r = resolve(builtin_param_table("mup-III-sgd"), s, 8, sgd(1.0));
  CHECK(r[Group::expert1].lr == Approx(4.0));
  CHECK(r[Group::expert2].lr == Approx(4.0));
  CHECK(r[Group::router].lr == Approx(1.0));
  CHECK(r[Group::expert1].eps == Approx(1e-8 / 16));
  const ResolvedParam ra = resolve(builtin_param_table("mup-III-adam"), s, 8, adam(1.0));
  CHECK(ra[Group::expert2].lr == Approx(0.25));
}

TEST_CASE("MSSP structural changes per regime", "[param]") {
  SECTION("regime I: router and readout zero init") {
    const ResolvedParam r = resolve(builtin_param_table("mssp-I-adam"), make_shape(256, 256, 8, 2), 8, adam());
    CHECK(r[Group::router].zero_init);
    CHECK(r[Group::router].init_std == 0.0);
    CHECK(r[Group::out].init_std == 0.0);
    CHECK(r[Group::expert1].init_std == Approx(1.0 / 16.0));
    CHECK_FALSE(r.shared_experts);
  }
  SECTION("regime II: expert2 init variance M/Ne exactly") {
    for (const char* name : {"mssp-II-sgd", "mssp-II-adam"}) {
      const ParamTable t = builtin_param_table(name);
      CHECK(resolve(t, make_shape(512, 16, 32, 32), 8, sgd())[Group::expert2].init_std ==
            Approx(std::sqrt(32.0 / 16.0)));
      CHECK(resolve(t, make_shape(128, 16, 8, 8), 8, sgd())[Group::expert2].init_std ==
            Approx(std::sqrt(8.0 / 16.0)));
      CHECK(resolve(t, make_shape(128, 16, 8, 8), 8, sgd())[Group::router].init_std > 0);
    }
  }
  SECTION("regime III: shared initial experts") {
    const ResolvedParam r = resolve(builtin_param_table("mssp-III-sgd"), make_shape(128, 128, 8, 8), 8, sgd());
    CHECK(r.shared_experts);
    CHECK(r[Group::out].zero_init);
    CHECK_FALSE(resolve(builtin_param_table("mup-III-sgd"), make_shape(128, 128, 8, 8), 8, sgd()).shared_experts);
  }
  SECTION("MSSP LRs and epsilons equal muP") {
    const Shape s = make_shape(512, 16, 32, 32, 2);
    for (const char* reg : {"I", "II", "III"})
      for (bool is_adam : {false, true}) {
        const std::string opt = is_adam ? "adam" : "sgd";
        const auto a = resolve(builtin_param_table(std::string("mup-") + reg + "-" + opt), s, 8,
                               is_adam ? adam() : sgd());
        const auto b = resolve(builtin_param_table(std::string("mssp-") + reg + "-" + opt), s, 8,
                               is_adam ? adam() : sgd());
        for (int g = 0; g < kNumGroups; ++g) {
          CHECK(a.groups[g].lr == b.groups[g].lr);
          CHECK(a.groups[g].eps == b.groups[g].eps);
        }
      }
  }
}

TEST_CASE("gate factor is (M / m_base)^(-alpha)", "[param]") {
  const ParamTable t = builtin_param_table("mup-II-adam");
  CHECK(resolve(t, make_shape(128, 16, 8, 8), 8, adam()).gate_factor == Approx(1.0));
  CHECK(resolve(t, make_shape(128, 16, 32, 8), 8, adam()).gate_factor == Approx(0.25));
  CHECK(resolve(t, make_shape(128, 16, 32, 8), 16, adam()).gate_factor == Approx(0.5));
  ParamTable half = t;
  half.gate_exponent = 0.5;
  CHECK(resolve(half, make_shape(128, 16, 32, 8), 8, adam()).gate_factor == Approx(0.5));
  CHECK(resolve(builtin_param_table("mup-I-adam"), make_shape(128, 128, 32, 8), 8, adam()).gate_factor == 1.0);
  CHECK_THROWS_WITH(resolve(t, make_shape(128, 16, 8, 8), 0, adam()), Contains("model.m_base"));
}

TEST_CASE("depth: residual L^(-alpha_L) and CompleteP factors", "[param]") {
  const Shape s = make_shape(128, 128, 8, 2, 4);
  const ResolvedParam r = resolve(builtin_param_table("mup-I-sgd"), s, 8, sgd(0.1));
  CHECK(r.residual_multiplier == Approx(0.25));
  CHECK(r[Group::expert1].lr == Approx(0.4));  // SGD ~ L^(2 alpha_L - 1)
  CHECK(r[Group::in].lr == Approx(0.1));       // outside the blocks
  CHECK(r[Group::expert2].eps == Approx(1e-8 / 4));
  const ResolvedParam ra = resolve(builtin_param_table("mup-I-adam"), s, 8, adam(1e-3));
  CHECK(ra[Group::expert1].lr == Approx(1e-3));  // Adam ~ L^(alpha_L - 1)
  CHECK(resolve(builtin_param_table("sp"), s, 8, sgd()).residual_multiplier == 1.0);
}

TEST_CASE("jiang and complete-mue reference values", "[param]") {
  const Shape s = make_shape(256, 64, 16, 4);
  const ResolvedParam j = resolve(builtin_param_table("jiang"), s, 8, adam(1e-2));
  CHECK(j[Group::router].init_std == Approx(1.0 / 256));
  CHECK(j[Group::expert1].init_std == Approx(1.0 / 16));
  CHECK(j[Group::expert2].init_std == Approx(16.0 / 64));  // sqrt(N)/Ne
  CHECK(j[Group::router].lr == Approx(1e-2 / 256));
  CHECK(j[Group::expert1].lr == Approx(1e-2 / 256));
  CHECK(j[Group::expert2].lr == Approx(1e-2 / 64));
  CHECK(j[Group::bias].zero_init);
  CHECK(j[Group::bias].lr == Approx(1e-3));
  CHECK(j.aggregation == Approx(0.25));
  CHECK(j.gate_factor == 1.0);

  const ParamTable c = builtin_param_table("complete-mue");
  const ResolvedParam cm = resolve(c, s, 8, adam(1e-2));
  CHECK(cm.aggregation == Approx(4.0));
  CHECK(cm[Group::expert2].multiplier == Approx(256.0 / (4 * 64)));
  CHECK(cm[Group::expert2].init_std == Approx(1.0 / 16));
  CHECK(cm[Group::expert2].lr == Approx(1e-2 / 2));
  const ResolvedParam cb = resolve(c, make_shape(128, 128, 8, 2), 8, adam());
  CHECK(cb[Group::expert2].multiplier == Approx(0.5));
  CHECK(cb.aggregation == Approx(2.0));
}

TEST_CASE("sp, ntp, simplep", "[param]") {
  const Shape s = make_shape(512, 256, 8, 2);
  const ResolvedParam sp = resolve(builtin_param_table("sp"), s, 8, adam(1e-3));
  CHECK(sp[Group::out].init_std == Approx(1.0 / std::sqrt(512.0)));
  CHECK(sp[Group::expert2].init_std == Approx(1.0 / 16));
  for (int g = 0; g < 5; ++g) CHECK(sp.groups[g].lr == Approx(1e-3));
  const ResolvedParam ntp = resolve(builtin_param_table("ntp"), s, 8, sgd(0.5));
  CHECK(ntp[Group::expert2].init_std == 1.0);
  CHECK(ntp[Group::expert2].multiplier == Approx(1.0 / 16));
  CHECK(ntp[Group::router].lr == Approx(0.5));
  const ResolvedParam simp = resolve(builtin_param_table("simplep"), s, 8, sgd(0.1));
  CHECK(simp[Group::router].init_std == Approx(1.0 / std::sqrt(512.0)));  // router as SP
  CHECK(simp[Group::router].lr == Approx(0.1));
  CHECK(simp[Group::expert2].lr == Approx(0.1 * 4 / 2));
  CHECK(simp[Group::out].lr == Approx(0.1 / 4));
}

TEST_CASE("knobs and overrides", "[param]") {
  const ParamTable t = builtin_param_table("mssp-I-sgd");
  const Shape s = make_shape(128, 128, 8, 2);
  ResolveInputs in = sgd(0.1);
  in.init_knob[Group::expert1] = 2.0;
  in.init_knob[Group::router] = 5.0;  // zero init stays zero
  in.lr_knob[Group::out] = 3.0;
  in.lr_knob[Group::bias] = 0.5;
  ResolvedParam r = resolve(t, s, 8, in);
  CHECK(r[Group::expert1].init_std == Approx(2.0 / std::sqrt(128.0)));
  CHECK(r[Group::router].init_std == 0.0);
  CHECK(r[Group::out].lr == Approx(0.3));
  CHECK(r[Group::bias].lr == Approx(0.5e-3));
  CHECK(r[Group::in].lr == Approx(0.1));

  in.overrides[Group::expert2] = {{"lr", 0.7}, {"eps", 1e-5}, {"multiplier", 2.0}, {"weight_decay", 0.1}};
  in.overrides[Group::router] = {{"init_std", 0.02}};
  r = resolve(t, s, 8, in);
  CHECK(r[Group::expert2].lr == 0.7);
  CHECK(r[Group::expert2].eps == 1e-5);
  CHECK(r[Group::expert2].multiplier == 2.0);
  CHECK(r[Group::expert2].weight_decay == 0.1);
  CHECK(r[Group::router].init_std == 0.02);
  CHECK_FALSE(r[Group::router].zero_init);

  ResolveInputs bad = sgd();
  bad.overrides[Group::expert1] = {{"learning_rate", 0.1}};
  CHECK_THROWS_WITH(resolve(t, s, 8, bad), Contains("param.override.expert1") &&
                                               Contains("'learning_rate'") && Contains("weight_decay"));
  bad.overrides[Group::expert1] = {{"lr", -0.1}};
  CHECK_THROWS_WITH(resolve(t, s, 8, bad), Contains("param.override.expert1.lr") && Contains(">= 0"));
  bad.overrides[Group::expert1] = {{"init_std", std::numeric_limits<double>::infinity()}};
  CHECK_THROWS_WITH(resolve(t, s, 8, bad), Contains("param.override.expert1.init_std") && Contains("finite"));
}

TEST_CASE("non-finite or negative resolved LR is a ConfigError", "[param]") {
  const ParamTable t = builtin_param_table("mup-I-adam");
  const Shape s = make_shape(128, 128, 8, 2);
  CHECK_THROWS_WITH(resolve(t, s, 8, adam(std::nan(""))), Contains("optim.lr") && Contains("finite, >= 0"));
  CHECK_THROWS_WITH(resolve(t, s, 8, sgd(-1.0)), Contains("optim.lr"));
  ResolveInputs in = adam();
  in.base_eps = -1.0;
  CHECK_THROWS_WITH(resolve(t, s, 8, in), Contains("optim.eps"));
  in = adam();
  in.lr_knob[Group::router] = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH(resolve(t, s, 8, in), Contains("optim.lr") && Contains("router"));
}

TEST_CASE("every built-in is well formed and round-trips through TOML", "[param]") {
  const auto names = builtin_param_names();
  REQUIRE(names.size() == 17);
  for (const char* expected :
       {"sp", "ntp", "simplep", "jiang", "complete-mue", "mup-I-sgd", "mup-I-adam", "mup-II-sgd",
        "mup-II-adam", "mup-III-sgd", "mup-III-adam", "mssp-I-sgd", "mssp-I-adam", "mssp-II-sgd",
        "mssp-II-adam", "mssp-III-sgd", "mssp-III-adam"})
    CHECK(std::find(names.begin(), names.end(), expected) != names.end());
  for (const auto& name : names) {
    INFO(name);
    const ParamTable t = builtin_param_table(name);
    CHECK(t.name == name);
    CHECK_FALSE(t.description.empty());
    const std::string text = param_table_to_toml(t);
    const ParamTable back = parse_param_table(text, "roundtrip");
    CHECK(same_table(t, back));
    CHECK(param_table_to_toml(back) == text);
  }
}

TEST_CASE("round trip keeps awkward values exactly", "[param]") {
  ParamTable t = parse(kMinimal);
  t.description = "quote \" backslash \\ tab\t newline\n unicode \xc3\xa9";
  t.gate_exponent = 1.0 / 3.0;
  t.aggregation.constant = 0.1;
  t.aggregation.exponents[static_cast<int>(Dim::K)] = -1e-300;
  t[Group::expert2][Quantity::init_std].constant = std::sqrt(8.0);
  t[Group::router].zero_init = true;
  t.base.Ne = 7;
  const ParamTable back = parse(param_table_to_toml(t));
  CHECK(same_table(t, back));
}

TEST_CASE("parser defaults", "[param]") {
  const ParamTable t = parse(kMinimal);
  CHECK(t.name == "t");
  CHECK(t.base.N == 1);
  CHECK(t.base.L == 1);
  CHECK(t.gate_exponent == 0.0);
  CHECK(t.residual_exponent == 1.0);
  CHECK_FALSE(t.shared_experts);
  CHECK(t[Group::out][Quantity::lr_adam] == ScaleLaw{});
  const ParamTable u = parse("name = \"u\"\n[base]\nN = 64\n[groups.out]\nlr_adam = { N = -1 }\n");
  CHECK(u.base.N == 64);
  CHECK(u.base.Ne == 1);
  CHECK(resolve(u, make_shape(256, 8, 8, 2), 8, adam(1.0))[Group::out].lr == Approx(0.25));
}

TEST_CASE("parser errors name the offending key", "[param]") {
  auto err = [](const std::string& text) {
    try {
      parse(text);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(err(kMinimal + "alpha = 1.0\n"), Contains("unknown key 'alpha'") && Contains("gate_exponent"));
  CHECK_THAT(err(kMinimal + "[groups.hidden]\n"), Contains("'groups.hidden'") && Contains("expert1"));
  CHECK_THAT(err(kMinimal + "[groups.in]\nlr = { N = 1 }\n"),
             Contains("'groups.in.lr'") && Contains("lr_sgd") && Contains("zero_init"));
  CHECK_THAT(err(kMinimal + "[groups.router]\ninit_std = { P = 1 }\n"),
             Contains("'groups.router.init_std.P'") && Contains("fan_in"));
  CHECK_THAT(err(kMinimal + "[base]\nD = 4\n"), Contains("'base.D'") && Contains("Ne"));
  CHECK_THAT(err(kMinimal + "gate_exponent = \"one\"\n"), Contains("gate_exponent") && Contains("number"));
  CHECK_THAT(err(kMinimal + "[groups.out]\nzero_init = 1\n"), Contains("groups.out.zero_init") && Contains("boolean"));
  CHECK_THAT(err(kMinimal + "[groups.out]\nlr_sgd = 2.0\n"), Contains("groups.out.lr_sgd") && Contains("table"));
  CHECK_THAT(err(kMinimal + "[base]\nN = 1.5\n"), Contains("base.N") && Contains("integer"));
  CHECK_THAT(err(kMinimal + "[base]\nM = 0\n"), Contains("base.M") && Contains(">= 1"));
  CHECK_THAT(err(kMinimal + "[aggregation]\nK = nan\n"), Contains("aggregation.K") && Contains("finite"));
  CHECK_THAT(err(kMinimal + "[aggregation]\nconstant = -1\n"), Contains("aggregation.constant"));
  CHECK_THAT(err(kMinimal + "shared_experts = \"yes\"\n"), Contains("shared_experts"));
  CHECK_THAT(err(kMinimal + "groups = 3\n"), Contains("groups") && Contains("table"));
  CHECK_THAT(err("description = \"x\"\n"), Contains("name"));
  CHECK_THAT(err("name = [\"x\"]\n"), Contains("name") && Contains("string"));
  CHECK_THAT(err("name = \n"), Contains("test.toml") && Contains("line 1"));
}

TEST_CASE("every built-in resolves to finite positive LRs at base and 4x base", "[param]") {
  for (const auto& name : builtin_param_names()) {
    INFO(name);
    const ParamTable t = builtin_param_table(name);
    // Absolute tables (base all ones) are checked at the regime I base.
    const Shape b = t.base.N == 1 ? make_shape(128, 128, 8, 2) : make_shape(t.base.N, t.base.Ne, t.base.M, t.base.K);
    for (int f : {1, 4}) {
      const Shape s = make_shape(b.N * f, b.Ne * f, b.M * f, b.K * f, f);
      for (bool is_adam : {false, true}) {
        const ResolvedParam r = resolve(t, s, 8, is_adam ? adam() : sgd());
        for (int g = 0; g < kNumGroups; ++g) {
          INFO(kGroupNames[g] << " factor " << f << (is_adam ? " adam" : " sgd"));
          const ResolvedGroup& rg = r.groups[g];
          CHECK(std::isfinite(rg.lr));
          CHECK(rg.lr > 0);
          CHECK(std::isfinite(rg.eps));
          CHECK(rg.eps > 0);
          CHECK(std::isfinite(rg.init_std));
          CHECK(rg.init_std >= 0);
          CHECK((rg.zero_init ? rg.init_std == 0 : rg.init_std > 0));
          CHECK(std::isfinite(rg.multiplier));
          CHECK(rg.multiplier > 0);
        }
        CHECK(std::isfinite(r.gate_factor));
        CHECK(r.aggregation > 0);
        CHECK(r.residual_multiplier > 0);
      }
    }
    // muP-type tables are relative: at the base shape every LR equals base_lr (bias: bias_rate).
    if (name.rfind("mup-", 0) == 0 || name.rfind("mssp-", 0) == 0) {
      const ResolvedParam r = resolve(t, b, 8, adam(1e-3));
      for (int g = 0; g < kNumGroups - 1; ++g) CHECK(r.groups[g].lr == Approx(1e-3));
      CHECK(r.gate_factor == 1.0);
    }
  }
}

TEST_CASE("load_param_table: built-in name, file path, errors", "[param]") {
  CHECK(load_param_table("mssp-III-adam").shared_experts);
  CHECK_THROWS_WITH(builtin_param_table("mup"), Contains("param.table") && Contains("mup-I-sgd"));
  CHECK_THROWS_WITH(load_param_table("/nonexistent/x.toml"),
                    Contains("no built-in named '/nonexistent/x.toml'") &&
                        Contains("no file '/nonexistent/x.toml'") && Contains("complete-mue"));
  const std::string path = "/tmp/moedmft_test_param_table.toml";
  {
    ParamTable t = builtin_param_table("jiang");
    t.name = "my-jiang";
    t[Group::router][Quantity::lr_adam].constant = 2.0;
    std::ofstream(path) << param_table_to_toml(t);
  }
  const ParamTable loaded = load_param_table(path);
  CHECK(loaded.name == "my-jiang");
  CHECK(loaded[Group::router][Quantity::lr_adam].constant == 2.0);
  {
    std::ofstream(path) << "name = \"x\"\nbogus = 1\n";
  }
  CHECK_THROWS_WITH(load_param_table(path), Contains(path) && Contains("'bogus'"));
  std::remove(path.c_str());
}
