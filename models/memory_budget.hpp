// Memory checks before big allocations: estimate, then refuse with a one-line ConfigError naming
// the fields that set the size, so that no std::bad_alloc (or the OOM killer) reaches the user.
#pragma once
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "models/types.hpp"

namespace moedmft {

// Memory this process may still use: MemAvailable of /proc/meminfo (the page cache counts as
// free), else physical pages.
inline double available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  double kb = 0;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024.0;
  return double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGE_SIZE));
}

inline std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

// Throws when `bytes` exceed 90% of the available memory. `fields` names what sets the size,
// `what` the consumer ("the solve", "the network"), `detail` how the estimate was made.
inline void require_memory(double bytes, const std::string& fields, const std::string& what,
                           const std::string& detail, const std::string& remedy = "lower them") {
  const double avail = available_memory_bytes();
  if (bytes > 0.9 * avail)
    throw ConfigError(fields + ": " + what + " needs about " + gib(bytes) + " (" + detail + ") but only " +
                      gib(avail) + " is available; " + remedy);
}

}  // namespace moedmft
