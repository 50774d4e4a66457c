// Training runs end to end: determinism, exact reproduction from a run file's initial weights
// and saved data, divergence recorded as data, and the HDF5 run layout.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>

#include "data/h5/h5.hpp"
#include "experiments/recorder.hpp"
#include "experiments/trainer.hpp"
#include "test_support.hpp"

using namespace moedmft;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kSmall = {"model.N=16", "model.Ne=12", "model.M=4", "model.K=2", "data.P=400",
                                         "data.P_val=50", "train.steps=20", "train.batch_size=20",
                                         "train.diag_every=5", "train.probe_size=16"};

std::vector<std::string> with(std::vector<std::string> base, const std::vector<std::string>& extra) {
  base.insert(base.end(), extra.begin(), extra.end());
  return base;
}

struct Trained {
  RunConfig cfg;
  RunData data;
  RunOutcome outcome;
};

Trained run(const std::vector<std::string>& sets, const std::string& output = "") {
  Trained t;
  t.cfg = parse_run_config("", sets);
  t.data = prepare_data(t.cfg, sets);
  ParamTable table;
  const ResolvedParam p = resolve_run_param(t.cfg, &table);
  MoeNetwork<double> net = build_network<double>(t.cfg, p);
  const MoeNetwork<double> initial = net;
  t.outcome = train_run(t.cfg, t.data, net);
  if (!output.empty()) {
    RunRecord rec{&t.cfg, &table, &p, &t.outcome, t.data.train.description, "test", ""};
    write_run_file(output, rec, initial, net);
  }
  return t;
}

// Bitwise equality that treats NaN entries (e.g. gradient RMS before the first step) as equal.
bool same_values(const std::vector<std::vector<double>>& a, const std::vector<std::vector<double>>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].size() != b[i].size()) return false;
    for (size_t j = 0; j < a[i].size(); ++j)
      if (!(a[i][j] == b[i][j] || (std::isnan(a[i][j]) && std::isnan(b[i][j])))) return false;
  }
  return true;
}


}  // namespace

TEST_CASE("the same config and seed give bitwise identical runs; another seed differs", "[trainer]") {
  const Trained a = run(kSmall), b = run(kSmall), c = run(with(kSmall, {"seed=2"}));
  CHECK(a.outcome.train_loss == b.outcome.train_loss);
  CHECK(same_values(a.outcome.diag_values, b.outcome.diag_values));
  CHECK(!same_values(a.outcome.diag_values, c.outcome.diag_values));
  CHECK(a.outcome.train_loss != c.outcome.train_loss);
  CHECK(a.outcome.train_loss.back() < a.outcome.train_loss.front());
  CHECK(a.outcome.diag_steps == std::vector<long>{0, 5, 10, 15, 20});
}

TEST_CASE("a run reproduces exactly from its file's initial weights and its saved data", "[trainer]") {
  const testing::Scratch dir("trainer_reproduce");
  const std::string out = dir.file("original.h5"), data = dir.file("data.h5");
  const Trained a = run(kSmall, out);
  save_hdf5_dataset(data, a.data.train);
  const Trained b = run(with(kSmall, {"seed=99", "train.init_from=\"" + out + "\"", "train.init_group=weights_init",
                                      "data.source=file", "data.path=\"" + data + "\""}));
  CHECK(b.outcome.train_loss == a.outcome.train_loss);

  h5::File f(out, h5::Mode::read);
  CHECK(h5::read_attr_int64(f, "/", "seed") == 1);
  CHECK(h5::read_attr_string(f, "/", "config_toml") == a.cfg.resolved_toml);
  CHECK(h5::read_attr_string(f, "/param", "name") == "mup-I-sgd");
  CHECK(h5::read_double(f, "/metrics/train_loss") == a.outcome.train_loss);
  CHECK(h5::dims_of(f, "/diagnostics/values") ==
        std::vector<hsize_t>{5, hsize_t(a.outcome.diag_names.size())});
  CHECK(h5::dims_of(f, "/weights/w_expert1") == std::vector<hsize_t>{4, 16, 12});
  // The per-process temporary was renamed onto the output: nothing but the output is left.
  for (const auto& entry : fs::directory_iterator(fs::path(out).parent_path()))
    CHECK(entry.path().filename().string().find(".partial") == std::string::npos);
}

TEST_CASE("divergence is recorded as NaN data with a flag, not a crash", "[trainer]") {
  const testing::Scratch dir("trainer_diverge");
  const std::string out = dir.file("diverged.h5");
  const Trained t = run(with(kSmall, {"optim.lr=1e6"}), out);
  REQUIRE(t.outcome.diverged);
  CHECK(t.outcome.diverged_at >= 0);
  CHECK(std::isnan(t.outcome.train_loss.back()));
  // The diagnostics schedule stays regular (0, 5, 10, 15, 20) with NaN rows after the divergence.
  CHECK(t.outcome.diag_steps == std::vector<long>{0, 5, 10, 15, 20});
  CHECK(std::isnan(t.outcome.diag_values.back().front()));
  h5::File f(out, h5::Mode::read);
  CHECK(h5::read_attr_int64(f, "/", "diverged") == 1);
}

TEST_CASE("full-batch and classification runs train", "[trainer]") {
  const Trained t = run(with(kSmall, {"train.protocol=full_batch", "data.P=60", "data.task=classification",
                                      "data.C=3", "model.loss=cross_entropy", "optim.lr=0.5"}));
  REQUIRE(t.outcome.train_accuracy.size() == 20);
  CHECK(t.outcome.train_loss.back() < t.outcome.train_loss.front());
  CHECK(!std::isnan(t.outcome.val_accuracy.back()));
}
