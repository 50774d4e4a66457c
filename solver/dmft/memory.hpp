// Memory checks of the DMFT solvers (internal to solver/dmft): estimate before allocating, refuse
// with a one-line ConfigError naming the fields that set the size, never a std::bad_alloc.
#pragma once
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <fstream>
#include <sstream>
#include <string>

#include "models/types.hpp"

namespace moedmft::dmft {

// Memory this process may still use: MemAvailable of /proc/meminfo (the page cache counts as
// free), else physical pages.
inline double available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  double kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024.0;
  return double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGE_SIZE));
}

inline std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

// Throws when `bytes` exceed 90% of the available memory; `fields` names what sets the size.
inline void require_memory(double bytes, const std::string& fields, const std::string& detail) {
  const double avail = available_memory_bytes();
  if (bytes > 0.9 * avail)
    throw ConfigError(fields + ": the solve needs about " + gib(bytes) + " (" + detail + ") but only " + gib(avail) +
                      " is available; lower them");
}

// Runs body(r) for r = 0..R-1 on up to `threads` threads; the first exception thrown by any
// body is rethrown here, after the loop (none may escape an OpenMP region).
template <class Body>
void parallel_replicates(int R, int threads, Body body) {
  std::exception_ptr failure;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1)
  for (int r = 0; r < R; ++r) {
    try {
      body(r);
    } catch (...) {
#pragma omp critical(moedmft_replicate_failure)
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
}

}  // namespace moedmft::dmft
