// Guards for outputs that several processes may touch at once (sweep shards on a cluster, a sweep
// started twice by mistake): advisory file locks, per-process temporary names, content digests.
#pragma once
#include <functional>
#include <string>

namespace moedmft {

namespace h5 {
class File;
}

// Writes the HDF5 file `path` so that it is either complete or not there: `body` fills a
// process_partial temporary, which is closed with every result checked and renamed onto `path`
// only when all succeeded. On failure the temporary is removed, the file already under `path` (if
// any) is untouched, and std::runtime_error "cannot write 'PATH': REASON" is thrown (a ConfigError
// from `body` is passed on as it is). Parent folders are created.
void write_h5_atomically(const std::string& path, const std::function<void(h5::File&)>& body);
// The same for a text file (a generated table, a job script).
void write_text_atomically(const std::string& path, const std::string& text);

// "<path>.partial.<host>.<pid>": a file being written, private to this process, renamed onto
// `path` when complete. Two processes writing the same file never write the same temporary.
std::string process_partial(const std::string& path);

// True for a "<something>.partial.<host>.<pid>" name whose writer ran on this host and is gone
// (a partial of another host, or of a live process, is never stale: it may be in flight).
bool stale_partial(const std::string& filename);

// An advisory flock(2) held while the object lives. Exclusive holders record "pid P on host H" in
// the file for the message a refused process prints. A file system without flock support gives
// a warning on stderr and no lock (the per-process partial names still keep writers apart).
class FileLock {
 public:
  enum class Kind { shared, exclusive };
  // Throws std::runtime_error naming the lock file and its holder when the lock is taken.
  FileLock(const std::string& path, Kind kind, const std::string& who);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

// 64-bit FNV-1a of a byte string, as 16 hex digits: a change detector, not a cryptographic hash.
std::string text_digest(const std::string& bytes);
// The same digest of a file's contents; throws ConfigError naming `field` if it cannot be read.
std::string file_digest(const std::string& path, const std::string& field);

}  // namespace moedmft
