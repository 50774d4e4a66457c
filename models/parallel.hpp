// Exceptions and OpenMP: an exception that leaves a parallel region calls std::terminate, so
// every region whose body can throw (allocation, config checks, I/O) runs it through
// FirstFailure and rethrows the first failure once the region has ended.
#pragma once
#include <atomic>
#include <exception>

namespace moedmft {

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
