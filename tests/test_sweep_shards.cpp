// Sweeps past one process: shards and their gather, input digests on resume and gather, the
// output lock, in-flight temporaries of other processes, and the Slurm scripts.
#include <catch2/catch.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <fstream>

#include "data/h5/h5.hpp"
#include "experiments/file_guard.hpp"
#include "experiments/sweep.hpp"
#include "test_support.hpp"

using namespace moedmft;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

// 6 points of a few steps: 3 LRs (one diverges) x 2 parameterizations (the second may be a file).
SweepSpec small_spec(const std::string& output, const std::string& table = "sp", int parallel = 1) {
  const std::string text = "output = \"" + output + "\"\nparallel = " + std::to_string(parallel) +
                           "\n[base.model]\nN = 8\nNe = 8\nM = 4\n[base.train]\nsteps = 12\ndiag_every = 6\n"
                           "[[axis]]\nname = \"param\"\nkey = \"param.table\"\nvalues = [\"mup-I-sgd\", \"" +
                           table + "\"]\n[[axis]]\nname = \"lr\"\nkey = \"optim.lr\"\nvalues = [0.01, 0.1, 1e4]\n";
  return parse_sweep_spec(text, {});
}

SweepOptions shard(int i, int n, bool resume = false) {
  SweepOptions o;
  o.shard = SweepShard{i, n};
  o.resume = resume;
  return o;
}

template <class Fn>
std::string message_of(Fn fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// The same bytes: NaN (a diverged run) equals NaN.
bool same_values(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
  return true;
}

std::string this_host() {
  const std::string p = process_partial("x");  // x.partial.<host>.<pid>
  const size_t begin = p.find(".partial.") + 9;
  return p.substr(begin, p.rfind('.') - begin);
}

}  // namespace

TEST_CASE("sweep shard I/N: every point in exactly one shard, bad values name the range", "[sweep][shard]") {
  for (int n = 1; n <= 7; ++n)
    for (long point = 0; point < 20; ++point) {
      int owners = 0;
      for (int i = 0; i < n; ++i) owners += SweepShard{i, n}.contains(point);
      CHECK(owners == 1);
    }
  CHECK(parse_shard("2/5").index == 2);
  CHECK(parse_shard("2/5").count == 5);
  CHECK(message_of([] { parse_shard("3/3"); }) == "--shard 3/3: I must be in 0..2");
  CHECK_THAT(message_of([] { parse_shard("0/0"); }), Contains("--shard 0/0: N must be in 1.."));
  CHECK_THAT(message_of([] { parse_shard("-1/3"); }), Contains("expected I/N"));
  CHECK_THAT(message_of([] { parse_shard("1"); }), Contains("expected I/N"));
}

TEST_CASE("shards run apart and gathered equal the one-process sweep, and a missing shard is named", "[sweep][shard]") {
  const testing::Scratch dir("sweep_shards");
  const SweepSpec sharded = small_spec(dir.file("sharded.h5")), single = small_spec(dir.file("single.h5"));
  run_sweep(single, {});
  CHECK(run_sweep(sharded, shard(0, 3)).trained == 2);
  CHECK(!fs::exists(sharded.output));  // a shard does not gather
  CHECK(run_sweep(sharded, shard(2, 3)).trained == 2);
  CHECK(message_of([&] { gather_sweep(sharded); }) ==
        "sweep --gather: 2 of 6 points are missing in '" + sharded.output +
            ".points' (1, 4); run the shards that own them (with --resume)");
  // Resuming a finished shard trains nothing; without --resume its points are protected.
  CHECK(run_sweep(sharded, shard(0, 3, true)).skipped == 2);
  CHECK_THAT(message_of([&] { run_sweep(sharded, shard(0, 3)); }), Contains("sweep --shard 0/3: ") && Contains("--resume"));
  run_sweep(sharded, shard(1, 3));
  gather_sweep(sharded);
  h5::File a(single.output, h5::Mode::read), b(sharded.output, h5::Mode::read);
  for (const char* name : {"train_loss", "val_loss", "diagnostics", "diverged", "diverged_at"})
    CHECK(same_values(h5::read_double(a, name), h5::read_double(b, name)));
  CHECK(h5::read_strings(a, "config_toml") == h5::read_strings(b, "config_toml"));
  CHECK(h5::read_strings(a, "input_digests") == h5::read_strings(b, "input_digests"));
  CHECK(h5::read_double(b, "diverged") == std::vector<double>{0, 0, 1, 0, 0, 1});

  // A stray point of a larger grid is not merged.
  fs::copy_file(point_file(sharded, 0), point_file(sharded, 6));
  CHECK_THAT(message_of([&] { gather_sweep(sharded); }), Contains("p6.h5' is not a point of this grid (6 points)"));
}

TEST_CASE("a table file edited between runs is refused by --resume and by the gather", "[sweep][shard]") {
  const testing::Scratch dir("sweep_digests");
  const std::string table = dir.file("table.toml");
  std::ofstream(table) << param_table_to_toml(builtin_param_table("sp"));
  const SweepSpec spec = small_spec(dir.file("sweep.h5"), table);
  run_sweep(spec, shard(0, 2));
  {
    h5::File p(point_file(spec, 4), h5::Mode::read);  // points 3..5 read the table file
    CHECK_THAT(h5::read_attr_string(p, "/", "input_digests"), Contains("param.table " + table + " "));
  }
  std::ofstream(table, std::ios::app) << "# edited\n";
  CHECK_THAT(message_of([&] { run_sweep(spec, shard(0, 2, true)); }),
             Contains("sweep --shard 0/2 --resume: point 4 in '") && Contains("different input files") &&
                 Contains("param.table " + table));
  run_sweep(spec, shard(1, 2));  // the other shard runs on the edited table
  CHECK_THAT(message_of([&] { gather_sweep(spec); }), Contains("sweep --gather: point 4") && Contains("different input files"));
}

TEST_CASE("a second sweep on one output is refused with the lock and its holder", "[sweep][lock]") {
  const testing::Scratch dir("sweep_lock");
  const SweepSpec spec = small_spec(dir.file("sweep.h5"));
  fs::create_directories(spec.output + ".points");
  const std::string me = "pid " + std::to_string(getpid()) + " on host " + this_host();
  {
    const FileLock running(spec.output + ".lock", FileLock::Kind::exclusive, "test");
    CHECK(message_of([&] { run_sweep(spec, {}); }) ==
          "sweep: another sweep is using this output: '" + spec.output + ".lock' is held by " + me);
    CHECK_THAT(message_of([&] { run_sweep(spec, shard(1, 2)); }), Contains("is held by " + me));
    CHECK_THAT(message_of([&] { gather_sweep(spec); }), Contains("sweep --gather: another sweep"));
  }
  {
    // Shards share the output lock: a whole-grid sweep or a gather waits for them, another shard does not.
    const FileLock shard_running(spec.output + ".lock", FileLock::Kind::shared, "test");
    const FileLock its_points(spec.output + ".shard-0-of-2.lock", FileLock::Kind::exclusive, "test");
    CHECK_THAT(message_of([&] { run_sweep(spec, {}); }), Contains("is held by running shards"));
    CHECK_THAT(message_of([&] { run_sweep(spec, shard(0, 2)); }), Contains(".shard-0-of-2.lock' is held by " + me));
    CHECK(run_sweep(spec, shard(1, 2)).trained == 3);
  }
  CHECK(fs::is_empty(fs::path(spec.output + ".points")) == false);
}

TEST_CASE("a starting sweep removes only the temporaries of dead writers on this host", "[sweep][lock]") {
  const testing::Scratch dir("sweep_partials");
  const SweepSpec spec = small_spec(dir.file("sweep.h5"));
  const fs::path points(spec.output + ".points");
  fs::create_directories(points);
  const pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  const std::string host = this_host();
  const fs::path live = points / ("p0.h5.partial." + host + "." + std::to_string(getppid()));
  const fs::path dead = points / ("p1.h5.partial." + host + "." + std::to_string(child));
  const fs::path elsewhere = points / "p2.h5.partial.some-other-host.1";
  for (const auto& p : {live, dead, elsewhere}) std::ofstream(p) << "in flight";
  run_sweep(spec, {});
  CHECK(fs::exists(live));
  CHECK(fs::file_size(live) == 9);
  CHECK(!fs::exists(dead));
  CHECK(fs::exists(elsewhere));
  CHECK(fs::exists(spec.output));
}

TEST_CASE("a point that cannot be written fails the sweep with an exception, not a crash", "[sweep][lock]") {
  const testing::Scratch dir("sweep_write_error");
  const SweepSpec spec = small_spec(dir.file("sweep.h5"), "sp", 2);
  // A directory where point 5's temporary must go: HDF5 cannot create it inside the OpenMP loop.
  fs::create_directories(process_partial(point_file(spec, 5)));
  CHECK_THROWS_AS(run_sweep(spec, {}), std::exception);
  CHECK(!fs::exists(spec.output));
}

TEST_CASE("sweep --slurm writes an array job of N shards and a gather that depends on it", "[sweep][slurm]") {
  const testing::Scratch dir("sweep_slurm");
  const SweepSpec spec = small_spec(dir.file("sweep.h5"));
  SlurmOptions o;
  o.shards = 3;
  o.dir = dir.file("jobs");
  o.partition = "short";
  o.time = "01:00:00";
  o.cpus_per_task = 2;
  o.extra = {"--mem=2G"};
  o.binary = "/opt/moedmft";
  o.sweep_file = "/home/me/sweep file.toml";
  o.sets = {"model.N=16"};
  o.output = "/scratch/sweep.h5";
  o.workdir = "/home/me";
  const SlurmScripts s = write_slurm_scripts(spec, o);
  auto text = [](const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const std::string array = text(s.array), gather = text(s.gather), submit = text(s.submit);
  for (const char* line : {"#SBATCH --array=0-2\n", "#SBATCH --cpus-per-task=2\n", "#SBATCH --partition=short\n",
                           "#SBATCH --time=01:00:00\n", "#SBATCH --mem=2G\n", "#SBATCH --chdir=/home/me\n"})
    CHECK_THAT(array, Contains(line));
  CHECK_THAT(array, Contains("exec '/opt/moedmft' sweep -q -c '/home/me/sweep file.toml' -o '/scratch/sweep.h5' "
                             "--set 'model.N=16' --resume --parallel \"${SLURM_CPUS_PER_TASK:-1}\" --shard "
                             "\"${SLURM_ARRAY_TASK_ID}/3\""));
  CHECK_THAT(gather, Contains("#SBATCH --partition=short\n") && Contains("--set 'model.N=16' --gather\n"));
  CHECK_THAT(gather, !Contains("--array"));
  CHECK_THAT(submit, Contains("array=$(sbatch --parsable array.sbatch)") &&
                         Contains("sbatch --parsable --dependency=afterok:\"${array}\" gather.sbatch"));
  CHECK((fs::status(s.submit).permissions() & fs::perms::owner_exec) != fs::perms::none);
  o.shards = 7;
  CHECK(message_of([&] { write_slurm_scripts(spec, o); }) ==
        "--slurm 7: the number of shards must be in 1..6 (the grid has 6 points)");
}
