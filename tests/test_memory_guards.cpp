// Memory estimates refuse what cannot fit with a one-line ConfigError naming the fields (never a
// std::bad_alloc), and exceptions inside OpenMP regions are rethrown after them (never terminate).
#include <hdf5.h>
#include <omp.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/dataset.hpp"
#include "experiments/progress.hpp"
#include "experiments/trainer.hpp"
#include "models/parallel.hpp"
#include "solver/dmft/dmft.hpp"
#include "test_support.hpp"

using namespace moedmft;
using moedmft::testing::config_error;

TEST_CASE("parallel_for visits every index once and forks only outside a parallel region", "[memory]") {
  for (bool enough : {false, true})
    for (Schedule schedule : {Schedule::static_chunks, Schedule::dynamic_one}) {
      std::vector<int> visits(1001, 0);
      std::atomic<int> forked{0};
      parallel_for(long(visits.size()), enough, schedule, [&](long i) {
        ++visits[i];
        if (omp_in_parallel()) forked = 1;
      });
      for (int v : visits) REQUIRE(v == 1);
      // Forks only when asked to and when there is more than one thread to fork to.
      REQUIRE(forked == ((enough && omp_get_max_threads() > 1) ? 1 : 0));
    }
  REQUIRE_FALSE(should_fork(false));
  REQUIRE(should_fork(true) == (omp_get_max_threads() > 1));
  int inside = -1;
#pragma omp parallel num_threads(2)
  {
#pragma omp single
    inside = should_fork(true) ? 1 : 0;  // a region nested in an active one would not add threads
  }
  REQUIRE(inside == 0);
}

TEST_CASE("FirstFailure rethrows an exception thrown inside an OpenMP loop after the loop", "[memory]") {
  long sum = 0;
  FirstFailure clean;
#pragma omp parallel for num_threads(2) reduction(+ : sum)
  for (int i = 0; i < 1000; ++i) clean.run([&] { sum += i; });
  REQUIRE_NOTHROW(clean.rethrow());
  REQUIRE(sum == 999 * 1000 / 2);

  FirstFailure failing;
#pragma omp parallel for num_threads(2) schedule(dynamic, 1)
  for (int i = 0; i < 1000; ++i) {
    if (failing.failed()) continue;
    failing.run([&] {
      if (i % 100 == 37) throw ConfigError("model.N: iteration failed");
      if (i % 100 == 91) throw std::bad_alloc();
    });
  }
  REQUIRE(failing.failed());
  bool caught = false;
  try {
    failing.rethrow();
  } catch (const ConfigError& e) {
    caught = std::string(e.what()) == "model.N: iteration failed";
  } catch (const std::bad_alloc&) {
    caught = true;  // whichever thread failed first
  }
  REQUIRE(caught);
}

TEST_CASE("train refuses a network larger than memory, naming the model fields", "[memory]") {
  const RunConfig huge = parse_run_config("", {"model.N=1048576", "model.Ne=1048576"});
  const std::string msg = config_error([&] { require_run_memory(huge); });
  CHECK(msg.rfind("model.N/model.Ne/model.M/model.L/train.batch_size: the network needs about", 0) == 0);
  CHECK(msg.find('\n') == std::string::npos);
  // The estimate follows the parameter count: doubling N = Ne quadruples the expert weights.
  const RunConfig small = parse_run_config("", {"model.N=128", "model.Ne=128"});
  const RunConfig wide = parse_run_config("", {"model.N=256", "model.Ne=256"});
  const double ratio = run_memory_bytes(wide) / run_memory_bytes(small);
  CHECK(ratio > 3.0);
  CHECK(ratio < 4.0);
  // At least weights, gradients, the initial copy and the diagnostics reference in float64.
  const Shape& s = small.shape;
  const double expert_weights = 2.0 * s.L * s.M * s.N * s.Ne;
  CHECK(run_memory_bytes(small) > 4 * 8 * expert_weights);
  REQUIRE_NOTHROW(require_run_memory(small));
}

TEST_CASE("the dense DMFT refuses a solve larger than memory before allocating", "[memory][dmft]") {
  dmft::DmftConfig cfg;
  cfg.L = 2;
  cfg.T = 1 << 20;
  const Mat<double> x = Mat<double>::Ones(16, 8);
  const Mat<double> y = Mat<double>::Ones(16, 1);
  const std::string msg = config_error([&] { dmft::solve_dmft(cfg, x, y); });
  CHECK(msg.rfind("dmft.T/dmft.samples/dmft.replicates/data.P: the solve needs about", 0) == 0);
  // Costs: an L = 1 march is linear in T; a deep sweep holds [S, n] and [n, n] with n = (T+1) P.
  dmft::DmftConfig one;
  one.T = 99;
  const double m1 = dmft::dmft_cost(one, 16, 8).flops;
  one.T = 199;
  CHECK(dmft::dmft_cost(one, 16, 8).flops / m1 == Approx(2.0).epsilon(1e-9));
  dmft::DmftConfig deep;
  deep.L = 2;
  deep.T = 99;
  const double b1 = dmft::dmft_cost(deep, 16, 8).bytes;
  deep.T = 199;
  const double b2 = dmft::dmft_cost(deep, 16, 8).bytes;
  CHECK(b2 / b1 > 2.0);  // the [S, n] histories grow like T, the kernels like T^2
  CHECK(b2 / b1 < 4.0);
}

TEST_CASE("a long dmft is announced with its cost, a short one is not", "[memory][progress]") {
  CHECK(long_run_warning("moedmft dmft", 1e9, "dmft.T").empty());
  const std::string w = long_run_warning("moedmft dmft", 6e12, "dmft.T");
  CHECK(w == "moedmft dmft: about 6 TFLOP, roughly 02:00 at 50 GFLOP/s; dmft.T set the cost");
}

TEST_CASE("an HDF5 data file declaring a dataset larger than memory is refused before reading", "[memory][data]") {
  testing::Scratch scratch("memory_guards");
  const std::string path = scratch.file("huge.h5");
  // Chunked and never written: a tiny file that declares 2^40 values.
  const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(f >= 0);
  for (const char* name : {"/x", "/y"}) {
    const bool x = name[1] == 'x';
    const hsize_t dims[2] = {hsize_t(1) << 34, 64}, chunk[2] = {1, 64};
    const hid_t space = H5Screate_simple(x ? 2 : 1, dims, nullptr);
    const hid_t plist = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(plist, x ? 2 : 1, chunk);
    const hid_t d = H5Dcreate2(f, name, H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, plist, H5P_DEFAULT);
    REQUIRE(d >= 0);
    H5Dclose(d);
    H5Pclose(plist);
    H5Sclose(space);
  }
  H5Fclose(f);
  const std::string msg = config_error([&] { load_hdf5_dataset(path); });
  CHECK(msg.rfind("dataset file '" + path + "' /x: reading it needs about", 0) == 0);
  CHECK(msg.find("1099511627776 values declared") != std::string::npos);
  CHECK(msg.find("use a smaller file") != std::string::npos);
}

TEST_CASE("the teacher refuses a dataset larger than memory, naming data.P", "[memory][data]") {
  TeacherConfig t;
  t.P = 1 << 20;
  t.hidden = 1 << 20;
  const std::string msg = config_error([&] { make_teacher_dataset(t); });
  CHECK(msg.rfind("data.P/data.P_val/data.D: the teacher dataset needs about", 0) == 0);
}
