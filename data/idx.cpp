// MNIST-layout IDX files (MNIST, Fashion-MNIST), gzipped or plain: zlib's gzopen reads a plain
// file transparently, so one reader serves both and nothing is unpacked on disk.
#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "data/dataset.hpp"
#include "models/memory_budget.hpp"

namespace moedmft {
namespace {

// Pixels per image: the largest input the model accepts (model.D's range).
constexpr uint64_t kMaxPixels = uint64_t{1} << 20;
constexpr unsigned kChunk = 1u << 24;  // gzread takes an unsigned length: read in chunks

std::string quoted(const std::string& path) { return "'" + path + "'"; }

struct GzFile {
  gzFile f = nullptr;
  ~GzFile() {
    if (f) gzclose(f);
  }
};

// One IDX array: magic 0x000008<dims>, then <dims> big-endian uint32 sizes, then unsigned bytes.
struct IdxArray {
  uint64_t count = 0;       // first dimension (images or labels) in the file
  uint64_t item_bytes = 1;  // product of the other dimensions
  std::vector<unsigned char> bytes;  // the first `kept` items
  uint64_t kept = 0;
};

class IdxReader {
 public:
  IdxReader(const std::string& path, const std::string& role) : path_(path), role_(role) {}

  ConfigError bad(const std::string& what) const { return ConfigError("IDX " + role_ + " file " + quoted(path_) + ": " + what); }

  // Reads the header (dims: 3 for images, 1 for labels), keeps the first min(count, max_items)
  // items and checks that the file holds exactly what the header promises.
  IdxArray read(int dims, int64_t max_items, uint64_t bytes_per_element_in_memory) {
    gz_.f = gzopen(path_.c_str(), "rb");
    if (!gz_.f) throw bad("cannot open");
    gzbuffer(gz_.f, 1u << 18);
    unsigned char header[16] = {};
    const uint64_t header_bytes = 4 + 4 * uint64_t(dims);
    if (read_some(header, header_bytes) != header_bytes) throw bad("truncated IDX header");
    const uint32_t magic = be32(header);
    const uint32_t expected_magic = 0x00000800u | uint32_t(dims);
    if (magic != expected_magic) {
      char text[96];
      std::snprintf(text, sizeof text, "bad magic number 0x%08x (expected 0x%08x)", magic, expected_magic);
      throw bad(text);
    }
    IdxArray a;
    a.count = be32(header + 4);
    for (int d = 1; d < dims; ++d) a.item_bytes = product(a.item_bytes, be32(header + 4 + 4 * d));
    const uint64_t payload = product(a.count, a.item_bytes);
    const std::string promise = std::to_string(a.count) + " items of " + std::to_string(a.item_bytes) + " bytes";
    // A plain file's size is known up front: refuse a wrong one before allocating anything.
    if (gzdirect(gz_.f)) {
      std::error_code ec;
      const uint64_t size = std::filesystem::file_size(path_, ec);
      if (!ec && (payload > UINT64_MAX - header_bytes || size != header_bytes + payload))
        throw bad("header promises " + promise + " (" + std::to_string(header_bytes) + " + " +
                  std::to_string(payload) + " bytes), file has " + std::to_string(size) + " bytes");
    }
    if (a.item_bytes > kMaxPixels)
      throw bad(std::to_string(a.item_bytes) + " values per item, more than the " + std::to_string(kMaxPixels) +
                " allowed (model.D)");
    a.kept = max_items >= 0 ? std::min<uint64_t>(a.count, uint64_t(max_items)) : a.count;
    if (a.kept > uint64_t(INT_MAX)) throw bad(std::to_string(a.kept) + " items, more than " + std::to_string(INT_MAX));
    // kept * item_bytes * bytes_per_element cannot overflow: each factor is below 2^31, 2^21, 2^4.
    const uint64_t need = a.kept * a.item_bytes * (1 + bytes_per_element_in_memory);
    const double avail = available_memory_bytes();
    if (double(need) > 0.9 * avail)
      throw bad(std::to_string(a.kept) + " items of " + std::to_string(a.item_bytes) + " values need " +
                gib(double(need)) + ", more than the " + gib(avail) +
                " available (data.max_points / data.test_points take subsets)");
    a.bytes.resize(a.kept * a.item_bytes);
    uint64_t got = read_some(a.bytes.data(), a.bytes.size());
    if (got == a.bytes.size()) got += drain();  // the rest is read only to check the length
    if (got < payload) throw bad("truncated: header promises " + promise + ", file holds " + std::to_string(got) + " bytes of them" + gz_error());
    if (got > payload) throw bad("trailing data after the " + promise + " its header promises");
    return a;
  }

 private:
  static uint32_t be32(const unsigned char* b) {
    return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | uint32_t{b[3]};
  }

  uint64_t product(uint64_t a, uint64_t b) const {
    uint64_t r;
    if (__builtin_mul_overflow(a, b, &r)) throw bad("header sizes overflow 64 bits (corrupt header)");
    return r;
  }

  // Bytes actually read (fewer at end of file or on a stream error).
  uint64_t read_some(unsigned char* out, uint64_t n) {
    uint64_t done = 0;
    while (done < n) {
      const unsigned want = static_cast<unsigned>(std::min<uint64_t>(kChunk, n - done));
      const int r = gzread(gz_.f, out + done, want);
      if (r <= 0) break;
      done += uint64_t(r);
    }
    return done;
  }

  uint64_t drain() {
    std::vector<unsigned char> sink(1u << 16);
    uint64_t total = 0;
    for (int r; (r = gzread(gz_.f, sink.data(), unsigned(sink.size()))) > 0;) total += uint64_t(r);
    return total;
  }

  std::string gz_error() const {
    int code = Z_OK;
    const char* msg = gzerror(gz_.f, &code);
    return code != Z_OK && msg && *msg ? std::string(" (zlib: ") + msg + ")" : std::string();
  }

  std::string path_, role_;
  GzFile gz_;
};

// "NAME.gz" if present, else "NAME"; "" when neither exists.
std::string find_member(const std::string& dir, const std::string& name) {
  for (const std::string& candidate : {name + ".gz", name}) {
    const std::string path = (std::filesystem::path(dir) / candidate).string();
    if (std::filesystem::is_regular_file(path)) return path;
  }
  return "";
}

}  // namespace

Dataset load_mnist_idx(const std::string& images_path, const std::string& labels_path, int max_points) {
  IdxReader image_reader(images_path, "images");
  const IdxArray images = image_reader.read(3, max_points, sizeof(double));
  IdxReader label_reader(labels_path, "labels");
  const IdxArray labels = label_reader.read(1, max_points, sizeof(int));
  if (labels.count != images.count)
    throw label_reader.bad(std::to_string(labels.count) + " labels but " + quoted(images_path) + " has " +
                           std::to_string(images.count) + " images");

  const int P = static_cast<int>(images.kept);
  const auto D = static_cast<Eigen::Index>(images.item_bytes);
  Dataset ds;
  ds.x.resize(P, D);
  ds.labels.resize(P);
  ds.num_classes = 10;
  for (int i = 0; i < P; ++i) {
    const unsigned char l = labels.bytes[i];
    if (l > 9) throw label_reader.bad("label " + std::to_string(i) + " is " + std::to_string(l) + ", outside 0..9");
    ds.labels[i] = l;
    const unsigned char* px = images.bytes.data() + size_t(i) * size_t(D);
    for (Eigen::Index j = 0; j < D; ++j) ds.x(i, j) = px[j] / 255.0;
  }
  ds.y = targets_from_labels(ds.labels, 10, false);
  ds.description = "idx " + images_path + " P=" + std::to_string(P);
  try {
    ds.validate();
  } catch (const ConfigError& e) {
    throw image_reader.bad(e.what());
  }
  return ds;
}

MnistFolder find_mnist_folder(const std::string& dir) {
  if (!std::filesystem::is_directory(dir))
    throw ConfigError("data.path: " + quoted(dir) + " is not a folder" +
                      (dir == kFashionMnistDir ? " (Debian package dataset-fashion-mnist installs it; run scripts/setup.sh)" : ""));
  MnistFolder f;
  const std::pair<std::string*, const char*> members[] = {{&f.train_images, "train-images-idx3-ubyte"},
                                                          {&f.train_labels, "train-labels-idx1-ubyte"},
                                                          {&f.test_images, "t10k-images-idx3-ubyte"},
                                                          {&f.test_labels, "t10k-labels-idx1-ubyte"}};
  for (const auto& [out, name] : members) {
    *out = find_member(dir, name);
    if (out->empty())
      throw ConfigError("data.path: no " + std::string(name) + "[.gz] in " + quoted(dir) +
                        " (expected the MNIST layout: train-/t10k- images-idx3-ubyte and labels-idx1-ubyte)");
  }
  return f;
}

TrainValSplit load_mnist_folder(const std::string& dir, int max_train, int max_test) {
  const MnistFolder f = find_mnist_folder(dir);
  TrainValSplit split;
  split.train = load_mnist_idx(f.train_images, f.train_labels, max_train);
  split.train.description = "idx " + dir + " train P=" + std::to_string(split.train.size());
  if (max_test == 0) return split;  // no validation set
  split.val = load_mnist_idx(f.test_images, f.test_labels, max_test);
  split.val.description = "idx " + dir + " test P=" + std::to_string(split.val.size());
  return split;
}

}  // namespace moedmft
