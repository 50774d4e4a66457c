#include "experiments/progress.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>

namespace moedmft {

std::string clock_text(double seconds) {
  if (seconds < 0) return "--:--";
  const long s = long(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%02ld:%02ld", s / 60, s % 60);
  return buf;
}

std::string long_run_warning(const std::string& label, double flops, const std::string& knobs) {
  const double seconds = flops / kAssumedFlopRate;
  if (!(seconds > 60.0)) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, "about %.3g TFLOP", flops / 1e12);
  return label + ": " + buf + ", roughly " + clock_text(seconds) + " at " +
         std::to_string(int(kAssumedFlopRate / 1e9)) + " GFLOP/s; " + knobs + " set the cost";
}

namespace {
ProgressLine::Io stderr_io() {
  ProgressLine::Io io;
  io.write = [](const std::string& text) {
    std::fputs(text.c_str(), stderr);
    std::fflush(stderr);
  };
  io.now = [] { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); };
  io.tty = isatty(fileno(stderr));
  return io;
}
}  // namespace

ProgressLine::ProgressLine(std::string label, long total, const std::string& unit, bool enabled)
    : ProgressLine(std::move(label), total, unit, stderr_io()) {
  enabled_ = enabled;
}

ProgressLine::ProgressLine(std::string label, long total, const std::string& unit, Io io)
    : label_(std::move(label)), unit_(unit), total_(total), io_(std::move(io)) {
  start_ = last_print_ = io_.now();
}

ProgressLine::~ProgressLine() {
  // An exception unwound past the run: end the terminal's line so that the error starts a new one.
  if (enabled_ && drawn_ && !finished_ && io_.tty) io_.write("\n");
}

void ProgressLine::set_total(long total) {
  std::lock_guard<std::mutex> lock(mutex_);
  total_ = total;
}

std::string ProgressLine::render(long done, long resumed, const std::string& detail, double now) const {
  const double elapsed = now - start_;
  const long fresh = done - resumed;
  const double eta = done >= total_ ? 0.0 : fresh > 0 ? elapsed / double(fresh) * double(total_ - done) : -1.0;
  char pct[16] = "";
  if (total_ > 0) std::snprintf(pct, sizeof pct, " (%3.0f%%)", 100.0 * double(done) / double(total_));
  std::string s = label_ + ": " + std::to_string(done) + "/" + std::to_string(total_) + " " + unit_ + pct +
                  "  elapsed " + clock_text(elapsed) + "  eta " + clock_text(eta);
  if (resumed > 0) s += "  (" + std::to_string(resumed) + " resumed)";
  if (!detail.empty()) s += "  " + detail;
  return s;
}

void ProgressLine::update(long done, const std::string& detail, long resumed) {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  if (finished_) return;
  last_done_ = done;
  last_resumed_ = resumed;
  last_detail_ = detail;
  const double now = io_.now();
  if (now - last_print_ < (io_.tty ? kTtyInterval : kLogInterval) && (drawn_ || !io_.tty)) return;
  last_print_ = now;
  std::string line = render(done, resumed, detail, now);
  if (io_.tty) {
    const size_t width = line.size();
    if (width < last_width_) line += std::string(last_width_ - width, ' ');  // erase a longer line's tail
    last_width_ = width;
    io_.write("\r" + line);
  } else {
    io_.write(line + "\n");
  }
  drawn_ = true;
}

void ProgressLine::finish(const std::string& detail) {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  if (finished_) return;
  finished_ = true;
  std::string line = render(last_done_, last_resumed_, detail.empty() ? last_detail_ : detail, io_.now());
  if (io_.tty) {
    if (line.size() < last_width_) line += std::string(last_width_ - line.size(), ' ');
    io_.write("\r" + line + "\n");
  } else {
    io_.write(line + "\n");
  }
}

}  // namespace moedmft
