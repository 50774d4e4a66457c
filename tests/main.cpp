// The test binary starts like the moedmft binaries: passive OpenMP waiting and the allocator
// settings of experiments/threads.hpp (one re-exec when they are missing), so that the suite
// measures the same code paths at the same speed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "experiments/threads.hpp"

int main(int argc, char** argv) {
  moedmft::ensure_passive_waiting(argv);
  return Catch::Session().run(argc, argv);
}
