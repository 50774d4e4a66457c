// The progress line (experiments/progress.hpp) and the --threads flag (experiments/threads.hpp),
// on an injected clock and tty flag: nothing here depends on time passing.
#include <catch2/catch.hpp>
#include <omp.h>

#include <algorithm>
#include <string>

#include "experiments/progress.hpp"
#include "experiments/threads.hpp"
#include "models/types.hpp"

using namespace moedmft;

namespace {
struct FakeStream {
  std::string text;
  double clock = 100.0;
  ProgressLine::Io io(bool tty) {
    return {[this](const std::string& s) { text += s; }, [this] { return clock; }, tty};
  }
  long lines() const { return long(std::count(text.begin(), text.end(), '\n')); }
};
}  // namespace

TEST_CASE("progress into a log: no carriage return, one line per 10 s plus the final line", "[progress]") {
  FakeStream out;
  {
    ProgressLine line("moedmft sweep", 126, "points", out.io(false));
    for (long d = 1; d <= 126; ++d) {
      out.clock += 0.5;  // 63 s in all
      line.update(d);
    }
    line.finish();
  }
  CHECK(out.text.find('\r') == std::string::npos);
  CHECK(out.lines() == 7);  // at 10, 20, ..., 60 s, and the final line
  CHECK(out.text.find("126/126 points (100%)") != std::string::npos);
  CHECK(out.text.find("eta 00:00") != std::string::npos);
}

TEST_CASE("progress on a terminal: one line redrawn with a carriage return, ETA from the rate", "[progress]") {
  FakeStream out;
  ProgressLine line("moedmft dmft", 4, "replicates", out.io(true));
  line.update(1);  // drawn at once
  out.clock += 0.05;
  line.update(2);  // within 0.2 s: skipped
  out.clock += 10;
  line.update(3);
  CHECK(std::count(out.text.begin(), out.text.end(), '\r') == 2);
  CHECK(out.lines() == 0);
  CHECK(out.text.find("3/4 replicates ( 75%)  elapsed 00:10  eta 00:03") != std::string::npos);
  line.finish();
  CHECK(out.lines() == 1);
  line.finish();  // once only
  CHECK(out.lines() == 1);
}

TEST_CASE("progress: resumed points are left out of the rate; quiet prints nothing", "[progress]") {
  FakeStream out;
  ProgressLine line("s", 10, "points", out.io(true));
  out.clock += 5;
  line.update(6, "", 5);  // one fresh point in 5 s, four left
  CHECK(out.text.find("eta 00:20  (5 resumed)") != std::string::npos);
  CHECK(clock_text(-1) == "--:--");
  CHECK(clock_text(3725) == "1:02:05");
  ProgressLine quiet("q", 3, "runs", false);
  quiet.update(3);
  quiet.finish();  // to stderr if it were enabled; it is not
}

TEST_CASE("threads: --threads/-j takes N >= 1 and refuses 0 or negative naming the flag", "[threads]") {
  CLI::App app;
  ThreadsOption threads;
  add_threads_option(app, threads);
  const int before = omp_get_max_threads();
  app.parse("-j 1", false);
  CHECK(threads.apply() == 1);
  app.parse("--threads 0", false);
  CHECK_THROWS_WITH(threads.apply(), "--threads: must be >= 1 (got 0; default: what OpenMP would use, here 1)");
  app.parse("--threads=-3", false);
  CHECK_THROWS_AS(threads.apply(), ConfigError);
  omp_set_num_threads(before);
  CLI::App none;
  ThreadsOption unset;
  add_threads_option(none, unset);
  none.parse("", false);
  CHECK_FALSE(unset.given());
  CHECK(unset.apply() == before);  // the default: what OpenMP would use

  char a0[] = "bench", a1[] = "small", a2[] = "-j", a3[] = "1", a4[] = "x";
  char* argv[] = {a0, a1, a2, a3, a4, nullptr};
  int argc = 5;
  take_threads_arg(argc, argv);
  CHECK(argc == 3);
  CHECK(std::string(argv[2]) == "x");
  CHECK(argv[3] == nullptr);
  CHECK(omp_get_max_threads() == 1);
  omp_set_num_threads(before);
  char b2[] = "--threads=0";
  char* bad[] = {a0, b2, nullptr};
  int bad_argc = 2;
  CHECK_THROWS_AS(take_threads_arg(bad_argc, bad), ConfigError);
}

TEST_CASE("the test process runs with passive waiting and the allocator settings", "[threads]") {
  // tests/main.cpp calls ensure_passive_waiting: either the user's values or ours are in effect.
  const char* wait = std::getenv("OMP_WAIT_POLICY");
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  REQUIRE((wait != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr));
  REQUIRE(tunables != nullptr);
  if (std::getenv("MOEDMFT_WAIT_POLICY_SET") && std::string(tunables).find("hugetlb") == std::string::npos)
    WARN("GLIBC_TUNABLES was set by the caller: " << tunables);
}
