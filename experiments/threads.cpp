#include "experiments/threads.hpp"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "models/types.hpp"

namespace moedmft {

void ensure_passive_waiting(char** argv) {
  constexpr const char* marker = "MOEDMFT_WAIT_POLICY_SET";
  if (std::getenv(marker)) return;
  for (const char* launcher : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "PMIX_RANK"})
    if (std::getenv(launcher)) return;  // an MPI launcher's process: not ours to replace
  const bool wait_set = std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT");
  const bool tunables_set = std::getenv("GLIBC_TUNABLES") != nullptr;
  if (wait_set && tunables_set) return;
  if (!wait_set) setenv("OMP_WAIT_POLICY", "passive", 1);
  if (!tunables_set) setenv("GLIBC_TUNABLES", kAllocatorTunables, 1);
  setenv(marker, "1", 1);
  execv("/proc/self/exe", argv);
  // exec failed (no /proc): run on with libgomp's default policy rather than not at all.
}

int checked_threads(long requested) {
  if (requested < 1)
    throw ConfigError("--threads: must be >= 1 (got " + std::to_string(requested) +
                      "; default: what OpenMP would use, here " + std::to_string(omp_get_max_threads()) + ")");
  return int(std::min(requested, 4096L));
}

int ThreadsOption::apply() const {
  if (given()) omp_set_num_threads(checked_threads(value));
  return omp_get_max_threads();
}

void add_threads_option(CLI::App& app, ThreadsOption& threads) {
  threads.option = app.add_option("--threads,-j", threads.value,
                                  "threads, N >= 1 (default: what OpenMP would use, here " +
                                      std::to_string(omp_get_max_threads()) + ")")
                       ->default_str("");  // 0 is "unset", not a thread count to show
}

void take_threads_arg(int& argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    const char* value = nullptr;
    int used = 1;
    if (!std::strcmp(a, "-j") || !std::strcmp(a, "--threads")) {
      if (i + 1 >= argc) throw ConfigError(std::string(a) + ": needs a value N >= 1");
      value = argv[i + 1];
      used = 2;
    } else if (!std::strncmp(a, "--threads=", 10)) {
      value = a + 10;
    } else {
      continue;
    }
    char* end = nullptr;
    const long n = std::strtol(value, &end, 10);
    if (end == value || *end) throw ConfigError(std::string("--threads: '") + value + "' is not an integer");
    omp_set_num_threads(checked_threads(n));
    for (int j = i; j + used <= argc; ++j) argv[j] = argv[j + used];  // argv[argc] is the null
    argc -= used;
    --i;
  }
}

}  // namespace moedmft
