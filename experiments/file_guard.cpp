#include "experiments/file_guard.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <vector>
#include <stdexcept>

#include "data/h5/h5.hpp"
#include "models/types.hpp"

namespace moedmft {

namespace {

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  std::string h = buf;
  for (char& c : h)
    if (c == '.' || c == '/') c = '_';  // one path component; '.' separates the fields of a partial name
  return h;
}

std::string holder_of(int fd) {
  char buf[256] = {};
  const ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  std::string text = n > 0 ? std::string(buf, size_t(n)) : std::string();
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

}  // namespace

std::string process_partial(const std::string& path) {
  return path + ".partial." + host_name() + "." + std::to_string(getpid());
}

void write_h5_atomically(const std::string& path, const std::function<void(h5::File&)>& body) {
  namespace fs = std::filesystem;
  const std::string partial = process_partial(path);
  auto discard = [&] {
    std::error_code ignored;
    fs::remove(partial, ignored);
  };
  try {
    const fs::path target(path);
    if (target.has_parent_path()) fs::create_directories(target.parent_path());
    {
      h5::File f(partial, h5::Mode::memory);  // a failed body closes it unwritten
      body(f);
      f.commit();
    }
    fs::rename(partial, target);
  } catch (const ConfigError&) {
    discard();
    throw;
  } catch (const std::exception& e) {
    discard();
    throw std::runtime_error("cannot write '" + path + "': " + e.what());
  }
}

void write_text_atomically(const std::string& path, const std::string& text) {
  const std::string partial = process_partial(path);
  std::ofstream out(partial, std::ios::binary);
  out << text;
  out.close();
  std::error_code ec;
  if (out) std::filesystem::rename(partial, path, ec);
  if (!out || ec) {
    const std::string why = ec ? ec.message() : std::strerror(errno);
    std::filesystem::remove(partial, ec);
    throw std::runtime_error("cannot write '" + path + "': " + why);
  }
}

bool stale_partial(const std::string& filename) {
  const size_t mark = filename.rfind(".partial.");
  if (mark == std::string::npos) return false;
  const std::string rest = filename.substr(mark + 9);
  const size_t dot = rest.rfind('.');
  if (dot == std::string::npos || rest.substr(0, dot) != host_name()) return false;
  const std::string pid_text = rest.substr(dot + 1);
  if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos) return false;
  const long pid = std::stol(pid_text);
  return pid > 0 && kill(pid_t(pid), 0) != 0 && errno == ESRCH;
}

FileLock::FileLock(const std::string& path, Kind kind, const std::string& who) {
  fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error(who + ": cannot open the lock file '" + path + "': " + std::strerror(errno));
  if (flock(fd_, (kind == Kind::exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0) {
    if (kind == Kind::exclusive) {
      const std::string me = "pid " + std::to_string(getpid()) + " on host " + host_name() + "\n";
      if (ftruncate(fd_, 0) != 0 || pwrite(fd_, me.data(), me.size(), 0) != ssize_t(me.size()))
        std::cerr << "moedmft: " << who << ": could not record this process in '" << path << "'\n";
    }
    return;
  }
  const int err = errno;
  if (err != EWOULDBLOCK) {
    // NFS without lockd, some parallel file systems: run on, but say that nothing is detected.
    std::cerr << "moedmft: " << who << ": cannot lock '" << path << "' (" << std::strerror(err)
              << "); running without a lock, so a concurrent sweep on this output is not detected\n";
    close(fd_);
    fd_ = -1;
    return;
  }
  // Taken. An exclusive holder wrote its name; shared holders (running shards) did not.
  std::string holder;
  if (kind == Kind::exclusive && flock(fd_, LOCK_SH | LOCK_NB) == 0) {
    flock(fd_, LOCK_UN);
    holder = "running shards of a sweep (see the .shard-*.lock files next to it)";
  } else {
    holder = holder_of(fd_);
    if (holder.empty()) holder = "another process";
  }
  close(fd_);
  fd_ = -1;
  throw std::runtime_error(who + ": another sweep is using this output: '" + path + "' is held by " + holder);
}

FileLock::~FileLock() {
  if (fd_ >= 0) close(fd_);  // closing the descriptor releases the flock
}

namespace {

constexpr uint64_t kFnvOffset = 14695981039346656037ull, kFnvPrime = 1099511628211ull;

uint64_t fnv1a(uint64_t h, const char* data, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(data[i]);
    h *= kFnvPrime;
  }
  return h;
}

std::string hex(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

std::string text_digest(const std::string& bytes) { return hex(fnv1a(kFnvOffset, bytes.data(), bytes.size())); }

std::string file_digest(const std::string& path, const std::string& field) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(field + ": cannot read '" + path + "' to record its digest");
  uint64_t h = kFnvOffset;
  std::vector<char> chunk(1 << 20);  // streamed: datasets may be large
  while (in) {
    in.read(chunk.data(), std::streamsize(chunk.size()));
    h = fnv1a(h, chunk.data(), size_t(in.gcount()));
  }
  if (in.bad()) throw ConfigError(field + ": read error in '" + path + "' while recording its digest");
  return hex(h);
}

}  // namespace moedmft
