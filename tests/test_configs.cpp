// Every shipped config in experiments/configs/ parses and resolves (a sweep: every grid point), so
// a renamed key or a bad combination there fails here rather than in a user's hour-long sweep;
// the MSSP-protocol presets carry the protocol the paper states.
#include <catch2/catch.hpp>
#include <algorithm>
#include <filesystem>
#include <set>

#include "experiments/moe_limit.hpp"
#include "experiments/sweep.hpp"
#include "experiments/toml_section.hpp"

using namespace moedmft;
namespace fs = std::filesystem;

namespace {

const fs::path kConfigs = fs::path(MOEDMFT_SOURCE_DIR) / "experiments" / "configs";

std::vector<RunConfig> sweep_points(const fs::path& p) {
  const SweepSpec spec = load_sweep_spec(p.string(), {});
  return resolve_points(spec, expand_grid(spec));
}

}  // namespace

TEST_CASE("every config in experiments/configs parses and resolves", "[configs]") {
  int sweeps = 0, runs = 0, limits = 0;
  for (const auto& entry : fs::directory_iterator(kConfigs)) {
    if (entry.path().extension() != ".toml") continue;
    const std::string text = read_config_text(entry.path().string(), "experiments/configs");
    INFO(entry.path().filename().string());
    if (text.find("[[axis]]") != std::string::npos) {
      std::vector<RunConfig> points;
      REQUIRE_NOTHROW(points = sweep_points(entry.path()));
      CHECK(points.size() > 1);
      ++sweeps;
    } else if (text.find("\n[dmft]") != std::string::npos) {
      REQUIRE_NOTHROW(read_moe_limit_config(text, {}, entry.path().string()));
      ++limits;
    } else {
      REQUIRE_NOTHROW(load_run_config(entry.path().string(), {}));
      ++runs;
    }
  }
  std::printf("[configs] %d sweeps, %d runs, %d run+limit files resolve\n", sweeps, runs, limits);
  CHECK(sweeps >= 8);
  CHECK(runs >= 1);
  CHECK(limits >= 3);
}

TEST_CASE("the MSSP-protocol presets run the paper's protocol on Fashion-MNIST", "[configs]") {
  for (const char* name : {"mssp_protocol_fmnist.toml", "mssp_protocol_fmnist_adam.toml"}) {
    INFO(name);
    const bool adam = std::string(name).find("adam") != std::string::npos;
    const std::vector<RunConfig> points = sweep_points(kConfigs / name);
    std::set<uint64_t> seeds;
    std::set<std::string> tables;
    for (const RunConfig& c : points) {
      CHECK(c.data.source == "fashion-mnist");
      CHECK(c.train.protocol == Protocol::online);
      CHECK(c.train.batch_size == 50);
      CHECK(c.train.steps == 1000);
      CHECK(c.model.loss == LossKind::cross_entropy);
      CHECK(c.shape.C == 10);
      CHECK(c.optim.kind == (adam ? OptimizerKind::adam : OptimizerKind::sgd));
      seeds.insert(c.seed);
      tables.insert(c.param_table);
    }
    CHECK(seeds.size() == 4);
    CHECK(tables == std::set<std::string>{adam ? "mup-II-adam" : "mup-II-sgd", adam ? "mssp-II-adam" : "mssp-II-sgd"});
  }
}
