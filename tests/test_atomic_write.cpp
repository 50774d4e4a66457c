// Outputs are complete or absent: write_h5_atomically under a failing body and under a file size
// limit (the in-process twin of check_failed_write.sh).
#include <signal.h>
#include <sys/resource.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <vector>

#include "data/h5/h5.hpp"
#include "experiments/file_guard.hpp"
#include "test_support.hpp"

using namespace moedmft;
using moedmft::testing::Scratch;
namespace fs = std::filesystem;

namespace {

size_t entries(const fs::path& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

void write_values(h5::File& f, size_t n) {
  const std::vector<double> v(n, 1.5);
  h5::write(f, "/v", v.data(), {hsize_t(n)});
}

}  // namespace

TEST_CASE("atomic write: a complete file appears under the final name, nothing else", "[h5][atomic]") {
  Scratch s("atomic_ok");
  const std::string path = s.file("sub/out.h5");
  write_h5_atomically(path, [](h5::File& f) { write_values(f, 10); });
  h5::File back(path, h5::Mode::read);
  CHECK(h5::read_double(back, "/v").size() == 10);
  CHECK(entries(s.dir / "sub") == 1);
}

TEST_CASE("atomic write: a failing body removes the temporary and keeps the previous file", "[h5][atomic]") {
  Scratch s("atomic_body");
  const std::string path = s.file("out.h5");
  write_h5_atomically(path, [](h5::File& f) { write_values(f, 3); });
  CHECK_THROWS_WITH(write_h5_atomically(path, [](h5::File& f) {
                      write_values(f, 5);
                      throw std::runtime_error("boom");
                    }),
                    "cannot write '" + path + "': boom");
  CHECK_THROWS_AS(write_h5_atomically(path, [](h5::File&) { throw ConfigError("x: bad"); }), ConfigError);
  CHECK(entries(s.dir) == 1);
  h5::File back(path, h5::Mode::read);
  CHECK(h5::read_double(back, "/v").size() == 3);
  CHECK(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 1);  // only `back`
}

TEST_CASE("atomic write: a file size limit fails the write with the reason, leaving nothing", "[h5][atomic]") {
  Scratch s("atomic_limit");
  const std::string path = s.file("big.h5");
  rlimit old{};
  REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
  void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);  // write() then fails with EFBIG, as on a full disk
  rlimit small = old;
  small.rlim_cur = 64 * 1024;
  REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
  std::string message;
  try {
    write_h5_atomically(path, [](h5::File& f) { write_values(f, 1 << 17); });  // 1 MiB
  } catch (const std::runtime_error& e) {
    message = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, old_handler);
  CHECK(message == "cannot write '" + path + "': File too large");
  CHECK(message.find('\n') == std::string::npos);
  CHECK(entries(s.dir) == 0);
  CHECK(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0);  // no handle outlives the failed close
}
