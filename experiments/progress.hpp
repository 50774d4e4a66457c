// One progress line for every subcommand. On a terminal: a single line redrawn with '\r'
// (count, percentage, elapsed, ETA) at most every 0.2 s. Anywhere else (a log file, a pipe):
// never a '\r', at most one line every 10 s, plus the final line. Thread-safe: update() may be
// called from OpenMP threads (a mutex; it never throws out of a worker on its own).
#pragma once
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>

namespace moedmft {

// "mm:ss" or "h:mm:ss"; "--:--" for a negative (unknown) duration.
std::string clock_text(double seconds);

// Warning for a computation estimated at `flops` that would take over a minute on two cores
// (at kAssumedFlopRate): "<label>: about 12 TFLOP, roughly 04:00 ...; <knobs> set the cost".
// Empty when shorter.
constexpr double kAssumedFlopRate = 50e9;
std::string long_run_warning(const std::string& label, double flops, const std::string& knobs);

class ProgressLine {
 public:
  struct Io {
    std::function<void(const std::string&)> write;  // raw text, as it goes to the stream
    std::function<double()> now;                    // seconds on a monotonic clock
    bool tty = false;
  };
  // Writes to stderr; tty from isatty(stderr). enabled = false (--quiet): prints nothing.
  ProgressLine(std::string label, long total, const std::string& unit, bool enabled = true);
  ProgressLine(std::string label, long total, const std::string& unit, Io io);
  ~ProgressLine();
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  // `done` of `total` units; `resumed` of them were done before this run (not in the rate).
  void update(long done, const std::string& detail = "", long resumed = 0);
  // The final line (once); a terminal's line is ended with '\n'.
  void finish(const std::string& detail = "");
  void set_total(long total);
  // (done, total) -> set_total + update: e.g. for dmft::ScopedReplicateProgress.
  std::function<void(int, int)> counter() {
    return [this](int done, int total) {
      set_total(total);
      update(done);
    };
  }

  static constexpr double kTtyInterval = 0.2, kLogInterval = 10.0;

 private:
  std::string render(long done, long resumed, const std::string& detail, double now) const;
  std::string label_, unit_;
  long total_, last_done_ = 0, last_resumed_ = 0;
  std::string last_detail_;
  Io io_;
  bool enabled_ = true, drawn_ = false, finished_ = false;
  double start_ = 0, last_print_ = 0;
  size_t last_width_ = 0;
  std::mutex mutex_;
};

}  // namespace moedmft
