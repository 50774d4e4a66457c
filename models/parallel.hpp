// Exceptions and OpenMP: an exception that leaves a parallel region calls std::terminate, so
// every region whose body can throw (allocation, config checks, I/O) runs it through
// FirstFailure and rethrows the first failure once the region has ended.
#pragma once
#include <omp.h>

#include <atomic>
#include <exception>

namespace moedmft {

// Whether a parallel region would really fork here. `#pragma omp parallel if (false)` (and any
// region nested inside an active one) still builds a one-thread team, and with passive waiting
// libgomp ends it with a futex wake: 2.6 us nested and 20 us at top level on the 2026-12-04 VM,
// a third of a small training step. Small work therefore skips OpenMP altogether.
inline bool should_fork(bool enough_work) {
  return enough_work && !omp_in_parallel() && omp_get_max_threads() > 1;
}

enum class Schedule { static_chunks, dynamic_one };

// for (i = 0; i < n; ++i) body(i), forked over the threads only when should_fork(enough_work).
// The body must not throw (run it through FirstFailure).
template <class Body>
void parallel_for(long n, bool enough_work, Schedule schedule, Body&& body) {
  if (n < 2 || !should_fork(enough_work)) {
    for (long i = 0; i < n; ++i) body(i);
  } else if (schedule == Schedule::dynamic_one) {
#pragma omp parallel for schedule(dynamic, 1)
    for (long i = 0; i < n; ++i) body(i);
  } else {
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; ++i) body(i);
  }
}

class FirstFailure {
 public:
  // Runs body(), keeping the first exception any thread threw; never throws itself.
  template <class Body>
  void run(Body&& body) noexcept {
    try {
      body();
    } catch (...) {
      record(std::current_exception());
    }
  }
  // Lets the remaining iterations of a long loop stop early once one has failed.
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  // Call after the parallel region.
  void rethrow() const {
    if (failure_) std::rethrow_exception(failure_);
  }

 private:
  void record(std::exception_ptr e) noexcept {
#pragma omp critical(moedmft_first_failure)
    if (!failure_) failure_ = e;
    failed_ = true;
  }
  std::exception_ptr failure_;
  std::atomic<bool> failed_{false};
};

}  // namespace moedmft
