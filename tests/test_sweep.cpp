// Sweeps: grid expansion, spec errors, and a real sweep killed with SIGKILL and resumed.
#include <catch2/catch.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <thread>

#include "data/h5/h5.hpp"
#include "experiments/sweep.hpp"
#include "test_support.hpp"

using namespace moedmft;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

const char* kSpec = R"(
output = "OUT"
parallel = 1
[base.model]
N = 12
Ne = 10
M = 4
K = 2
[base.data]
P = 6000
seed = 3
[base.train]
steps = 300
batch_size = 20
diag_every = 100
probe_size = 8
[[axis]]
name = "size"
keys = ["model.N", "model.Ne"]
values = [12, 48]
[axis.set]
"model.M" = [4, 8]
[[axis]]
name = "lr"
key = "optim.lr"
values = [0.05, 0.1, 1e4]
)";

std::string spec_text(const std::string& output) {
  std::string s = kSpec;
  s.replace(s.find("OUT"), 3, output);
  return s;
}

std::string error_of(const std::string& text) {
  try {
    const SweepSpec spec = parse_sweep_spec(text, {});
    resolve_points(spec, expand_grid(spec));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

std::map<std::string, fs::file_time_type> point_times(const fs::path& dir) {
  std::map<std::string, fs::file_time_type> t;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".h5") t[e.path().filename().string()] = fs::last_write_time(e.path());
  return t;
}

}  // namespace

TEST_CASE("the grid expands row-major with every axis's keys set", "[sweep]") {
  const SweepSpec spec = parse_sweep_spec(spec_text("x.h5"), {"optim.kind=adam"});
  const std::vector<SweepPoint> points = expand_grid(spec);
  REQUIRE(points.size() == 6);
  CHECK(points[4].coords == std::vector<int>{1, 1});
  CHECK(points[4].sets ==
        std::vector<std::string>{"optim.kind=adam", "model.N=48", "model.Ne=48", "model.M=8", "optim.lr=0.1"});
  const std::vector<RunConfig> configs = resolve_points(spec, points);
  CHECK(configs[4].shape.M == 8);
  CHECK(configs[4].resolve.adam_like);
  CHECK(spec.axes[0].numeric);
}

TEST_CASE("sweep spec errors name the field", "[sweep]") {
  CHECK_THAT(error_of("[[axis]]\nname = \"lr\"\nkey = \"optim.lr\"\n"), Contains("axis[0].values"));
  CHECK_THAT(error_of("[[axis]]\nname = \"step\"\nkey = \"seed\"\nvalues = [1]\n"), Contains("reserved"));
  CHECK_THAT(error_of("[[axis]]\nname = \"lr\"\nvalues = [1]\n"), Contains("axis[0]: give `key`"));
  CHECK_THAT(error_of("[[axis]]\nname = \"s\"\nvalues = [1, 2]\n[axis.set]\n\"model.N\" = [8]\n"),
             Contains("axis[0].set.model.N"));
  CHECK_THAT(error_of("outptu = \"x\"\n"), Contains("outptu: unknown key"));
  CHECK_THAT(error_of("[[axis]]\nname = \"k\"\nkey = \"model.K\"\nvalues = [2, 9]\n"),
             Contains("sweep point 1 (k=9): model.K"));
  // two axes writing one key would label every point with coordinates it never had
  CHECK_THAT(error_of("[[axis]]\nname = \"a\"\nkey = \"optim.lr\"\nvalues = [0.1, 0.2]\n"
                      "[[axis]]\nname = \"b\"\nkeys = [\"model.N\", \"optim.lr\"]\nvalues = [0.3]\n"),
             Contains("axis[1]: axes 'a' and 'b' both set 'optim.lr'"));
}

TEST_CASE("a sweep killed mid-run resumes without redoing or corrupting finished points", "[sweep]") {
  const testing::Scratch dir("sweep_resume");
  const std::string binary = std::string(MOEDMFT_BINARY_DIR) + "/experiments/moedmft";
  std::string killed, spec_path;
  std::map<std::string, fs::file_time_type> finished;
  // Start a real sweep and SIGKILL it once two points have finished. On a loaded machine the
  // sweep may finish before it is killed; then try again in a fresh directory.
  for (int attempt = 0; attempt < 3; ++attempt) {
    killed = dir.file("killed" + std::to_string(attempt) + ".h5");
    spec_path = dir.file("sweep" + std::to_string(attempt) + ".toml");
    std::ofstream(spec_path) << spec_text(killed);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      execl(binary.c_str(), binary.c_str(), "sweep", "-q", "-c", spec_path.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    const fs::path points_dir = killed + ".points";
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline &&
           !(fs::exists(points_dir) && point_times(points_dir).size() >= 2))
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    finished = point_times(points_dir);
    if (WIFSIGNALED(status) && finished.size() < 6) break;
  }
  const fs::path points_dir = killed + ".points";
  const std::string clean = dir.file("clean.h5");
  REQUIRE(finished.size() >= 2);
  REQUIRE(finished.size() < 6);
  CHECK(!fs::exists(killed));

  // Without --resume the finished points are protected; with it they are kept as they are.
  CHECK(std::system((binary + " sweep -q -c " + spec_path + " > /dev/null 2>&1").c_str()) != 0);
  REQUIRE(std::system((binary + " sweep -q --resume -c " + spec_path + " > /dev/null").c_str()) == 0);
  const auto after = point_times(points_dir);
  CHECK(after.size() == 6);
  for (const auto& [name, time] : finished) CHECK(after.at(name) == time);

  // The resumed result equals an uninterrupted sweep, bit for bit; the huge LR is data, not a crash.
  REQUIRE(std::system((binary + " sweep -q -c " + spec_path + " -o " + clean + " > /dev/null").c_str()) == 0);
  h5::File a(killed, h5::Mode::read), b(clean, h5::Mode::read);
  const std::vector<double> la = h5::read_double(a, "train_loss"), lb = h5::read_double(b, "train_loss");
  REQUIRE(la.size() == 6 * 300);
  for (size_t i = 0; i < la.size(); ++i) CHECK((la[i] == lb[i] || (std::isnan(la[i]) && std::isnan(lb[i]))));
  CHECK(h5::read_double(a, "diverged") == std::vector<double>{0, 0, 1, 0, 0, 1});
  CHECK(h5::dims_of(a, "diagnostics")[0] == 2);
}

TEST_CASE("sweep points start from train.init_from when the base config names it", "[sweep]") {
  const testing::Scratch dir("sweep_init_from");
  const std::string binary = std::string(MOEDMFT_BINARY_DIR) + "/experiments/moedmft";
  const std::string start = dir.file("start.h5"), out = dir.file("sweep.h5"), spec_path = dir.file("sweep.toml");
  const std::string model = " --set model.N=12 --set model.Ne=10 --set model.M=4 --set train.steps=5";
  REQUIRE(std::system((binary + " train -q --set seed=77" + model + " -o " + start + " > /dev/null").c_str()) == 0);
  std::ofstream(spec_path) << "output = \"" << out << "\"\n[base.model]\nN = 12\nNe = 10\nM = 4\n"
                           << "[base.train]\nsteps = 5\ninit_from = \"" << start << "\"\ninit_group = \"weights_init\"\n"
                           << "[[axis]]\nname = \"lr\"\nkey = \"optim.lr\"\nvalues = [0.01, 0.1]\n";
  REQUIRE(std::system((binary + " sweep -q -c " + spec_path + " > /dev/null").c_str()) == 0);
  h5::File source(start, h5::Mode::read);
  for (long p = 0; p < 2; ++p) {
    h5::File point(out + ".points/p" + std::to_string(p) + ".h5", h5::Mode::read);
    for (const char* w : {"w_in", "w_router", "w_expert1", "w_expert2", "w_out"})
      CHECK(h5::read_double(point, std::string("weights_init/") + w) ==
            h5::read_double(source, std::string("weights_init/") + w));
  }
}
