// Memory checks and replicate loops of the DMFT solvers (internal to solver/dmft).
#pragma once
#include <string>

#include "models/memory_budget.hpp"
#include "models/parallel.hpp"

namespace moedmft::dmft {

// The solvers' wording of moedmft::require_memory.
inline void require_memory(double bytes, const std::string& fields, const std::string& detail) {
  moedmft::require_memory(bytes, fields, "the solve", detail);
}

// Runs body(r) for r = 0..R-1 on up to `threads` threads; the first exception thrown by any
// body is rethrown here, after the loop.
template <class Body>
void parallel_replicates(int R, int threads, Body body) {
  FirstFailure failure;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1)
  for (int r = 0; r < R; ++r)
    if (!failure.failed()) failure.run([&] { body(r); });
  failure.rethrow();
}

}  // namespace moedmft::dmft
