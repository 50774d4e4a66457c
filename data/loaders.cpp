// Dataset files: HDF5 (ours or hand-made) and CIFAR-10 binary batches; MNIST IDX files in idx.cpp.
#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "data/dataset.hpp"
#include "data/h5/h5.hpp"
#include "models/memory_budget.hpp"

namespace moedmft {
namespace {

constexpr int kCifarPixels = 3 * 32 * 32;
constexpr int kCifarRecord = 1 + kCifarPixels;

std::string quoted(const std::string& path) { return "'" + path + "'"; }

std::vector<unsigned char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError("cannot open dataset file " + quoted(path));
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw ConfigError("cannot read dataset file " + quoted(path));
  return bytes;
}

// Runs validate() and prefixes any complaint with the file it came from.
void validate_from(const Dataset& ds, const std::string& path) {
  try {
    ds.validate();
  } catch (const ConfigError& e) {
    throw ConfigError("dataset file " + quoted(path) + ": " + e.what());
  }
}

int capped(uint64_t available, int max_points) {
  uint64_t n = available;
  if (max_points >= 0) n = std::min<uint64_t>(n, static_cast<uint64_t>(max_points));
  if (n > static_cast<uint64_t>(INT_MAX)) throw ConfigError("dataset too large: " + std::to_string(n) + " points");
  return static_cast<int>(n);
}

// ---- HDF5 ------------------------------------------------------------------------------

std::vector<int> labels_from(const std::vector<int64_t>& raw, const std::string& path, const char* name) {
  std::vector<int> out(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] < 0 || raw[i] > INT_MAX)
      throw ConfigError("dataset file " + quoted(path) + ": " + name + " row " + std::to_string(i) +
                        " has invalid class " + std::to_string(raw[i]));
    out[i] = static_cast<int>(raw[i]);
  }
  return out;
}

// A [P] or [P,1] integer dataset can hold class labels.
bool is_label_vector(hid_t f, const std::string& name) {
  if (!h5::exists(f, name) || !h5::is_integer_dataset(f, name)) return false;
  const auto dims = h5::dims_of(f, name);
  return dims.size() == 1 || (dims.size() == 2 && dims[1] == 1);
}

// A file may declare any shape (an unwritten chunked dataset costs nothing on disk): check the
// declared size against memory before reading a dataset.
void require_readable(hid_t f, const std::string& name, const std::string& path) {
  double values = 1;
  for (hsize_t d : h5::dims_of(f, name)) values *= double(d);
  // read as float64 into a buffer, then copied into the matrix: two copies at the peak
  require_memory(2 * 8 * values, "dataset file " + quoted(path) + " " + name, "reading it",
                 std::to_string(static_cast<long long>(values)) + " values declared, 8 bytes each, twice",
                 "use a smaller file");
}

Dataset load_hdf5_unchecked(const std::string& path) {
  h5::File f(path, h5::Mode::read);
  const auto bad = [&](const std::string& what) { return ConfigError("dataset file " + quoted(path) + ": " + what); };
  if (!h5::exists(f, "/x")) throw bad("missing dataset /x");
  for (const char* name : {"/x", "/y", "/labels"})
    if (h5::exists(f, name)) require_readable(f, name, path);
  std::vector<hsize_t> xd;
  const std::vector<double> x = h5::read_double(f, "/x", &xd);
  if (xd.size() != 2) throw bad("/x must be a 2-d array [P, D], found rank " + std::to_string(xd.size()));
  const auto P = static_cast<Eigen::Index>(xd[0]);

  Dataset ds;
  ds.x = ConstMatMap<double>(x.data(), P, static_cast<Eigen::Index>(xd[1]));

  const bool have_labels = h5::exists(f, "/labels");
  const std::string label_name = have_labels ? "/labels" : "/y";
  if (have_labels || is_label_vector(f, "/y")) {
    if (have_labels && !is_label_vector(f, "/labels")) throw bad("/labels must be a [P] integer array");
    ds.labels = labels_from(h5::read_int64(f, label_name), path, label_name.c_str());
    if (static_cast<Eigen::Index>(ds.labels.size()) != P)
      throw bad(label_name + " has " + std::to_string(ds.labels.size()) + " entries for " + std::to_string(P) +
                " points");
    int K = 2;
    for (int l : ds.labels) K = std::max(K, l + 1);
    for (const char* owner : {label_name.c_str(), "/"})
      if (h5::has_attr(f, owner, "num_classes")) {
        K = static_cast<int>(h5::read_attr_int64(f, owner, "num_classes"));
        break;
      }
    ds.num_classes = K;
    // Keep stored float targets when they fit the labels (e.g. one-hot for two classes);
    // otherwise derive them: two classes -> +-1, more -> one-hot.
    bool stored_y = false;
    if (have_labels && h5::exists(f, "/y") && !h5::is_integer_dataset(f, "/y")) {
      const auto yd = h5::dims_of(f, "/y");
      stored_y = yd.size() == 2 && static_cast<Eigen::Index>(yd[0]) == P &&
                 (static_cast<int>(yd[1]) == K || (yd[1] == 1 && K == 2));
      if (stored_y) ds.y = ConstMatMap<double>(h5::read_double(f, "/y").data(), P, static_cast<Eigen::Index>(yd[1]));
    }
    if (!stored_y) {
      for (size_t i = 0; i < ds.labels.size(); ++i)
        if (ds.labels[i] >= K)
          throw bad(label_name + " row " + std::to_string(i) + " has class " + std::to_string(ds.labels[i]) +
                    " but num_classes = " + std::to_string(K));
      ds.y = targets_from_labels(ds.labels, K, K == 2);
    }
  } else {
    if (!h5::exists(f, "/y")) throw bad("missing dataset /y (targets) or /labels (classes)");
    std::vector<hsize_t> yd;
    const std::vector<double> y = h5::read_double(f, "/y", &yd);
    if (yd.empty() || yd.size() > 2) throw bad("/y must be [P] or [P, C], found rank " + std::to_string(yd.size()));
    const Eigen::Index C = yd.size() == 2 ? static_cast<Eigen::Index>(yd[1]) : 1;
    if (static_cast<Eigen::Index>(yd[0]) != P)
      throw bad("/y has " + std::to_string(yd[0]) + " rows for " + std::to_string(P) + " points");
    ds.y = ConstMatMap<double>(y.data(), P, C);
  }

  ds.description = "hdf5 " + path;
  if (h5::has_attr(f, "/", "description")) {
    const std::string stored = h5::read_attr_string(f, "/", "description");
    if (!stored.empty()) ds.description += " (" + stored + ")";
  }
  return ds;
}

}  // namespace

Dataset load_hdf5_dataset(const std::string& path) {
  Dataset ds;
  try {
    ds = load_hdf5_unchecked(path);
  } catch (const ConfigError&) {
    throw;
  } catch (const std::runtime_error& e) {  // HDF5 wrapper errors already name the file
    throw ConfigError(e.what());
  }
  validate_from(ds, path);
  return ds;
}

void save_hdf5_dataset(const std::string& path, const Dataset& ds) {
  h5::File f(path, h5::Mode::truncate);
  write_hdf5_dataset(f.id(), ds);
  f.flush();
}

void write_hdf5_dataset(int64_t f, const Dataset& ds) {
  ds.validate();
  const auto P = static_cast<hsize_t>(ds.size());
  // Index scales so that xarray opens the file with named dimensions; the loader ignores them.
  h5::write_index_scale(f, "/point", P);
  h5::write_index_scale(f, "/feature", static_cast<hsize_t>(ds.input_dim()));
  h5::write_index_scale(f, "/output", static_cast<hsize_t>(ds.output_dim()));
  h5::write(f, "/x", ds.x.data(), {P, static_cast<hsize_t>(ds.input_dim())});
  h5::attach_scales(f, "/x", {"/point", "/feature"});
  h5::describe(f, "/x", "inputs");
  h5::write(f, "/y", ds.y.data(), {P, static_cast<hsize_t>(ds.output_dim())});
  h5::attach_scales(f, "/y", {"/point", "/output"});
  h5::describe(f, "/y", "targets");
  if (ds.num_classes > 0) {
    const std::vector<int64_t> labels(ds.labels.begin(), ds.labels.end());
    h5::write(f, "/labels", labels.data(), {P});
    h5::write_attr(f, "/labels", "num_classes", static_cast<int64_t>(ds.num_classes));
    h5::attach_scales(f, "/labels", {"/point"});
    h5::describe(f, "/labels", "class labels");
  }
  h5::write_attr(f, "/", "description", ds.description);
}

// ---- CIFAR-10 --------------------------------------------------------------------------

Dataset load_cifar10_binary(const std::vector<std::string>& files, int max_points) {
  if (files.empty()) throw ConfigError("data.files: no CIFAR-10 batch files given");
  std::vector<std::vector<unsigned char>> contents;
  uint64_t total = 0;
  std::string names;
  for (const auto& path : files) {
    if (max_points >= 0 && total >= static_cast<uint64_t>(max_points)) break;
    contents.push_back(read_bytes(path));
    const size_t size = contents.back().size();
    if (size % kCifarRecord != 0)
      throw ConfigError("CIFAR-10 file " + quoted(path) + " has " + std::to_string(size) +
                        " bytes, not a whole number of " + std::to_string(kCifarRecord) + "-byte records");
    total += size / kCifarRecord;
    names += (names.empty() ? "" : ",") + path;
  }
  const int P = capped(total, max_points);
  require_memory(8.0 * P * kCifarPixels, "data.max_points", "the CIFAR-10 images",
                 std::to_string(P) + " images of " + std::to_string(kCifarPixels) + " float64 values");

  Dataset ds;
  ds.x.resize(P, kCifarPixels);
  ds.labels.resize(P);
  ds.num_classes = 10;
  int row = 0;
  for (size_t k = 0; k < contents.size() && row < P; ++k) {
    const auto& bytes = contents[k];
    for (size_t at = 0; at + kCifarRecord <= bytes.size() && row < P; at += kCifarRecord, ++row) {
      if (bytes[at] > 9)
        throw ConfigError("CIFAR-10 file " + quoted(files[k]) + ": record " + std::to_string(at / kCifarRecord) +
                          " has label " + std::to_string(bytes[at]) + " outside 0..9");
      ds.labels[row] = bytes[at];
      for (int j = 0; j < kCifarPixels; ++j) ds.x(row, j) = bytes[at + 1 + j] / 255.0;
    }
  }
  ds.y = targets_from_labels(ds.labels, 10, false);
  ds.description = "cifar10 " + names + " P=" + std::to_string(P);
  validate_from(ds, files.front());
  return ds;
}

// ---- dispatch --------------------------------------------------------------------------

Dataset load_dataset_file(const std::string& path, int max_points) {
  const std::string name = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  const auto ends_with = [&](const std::string& s) {
    return lower.size() >= s.size() && lower.compare(lower.size() - s.size(), s.size(), s) == 0;
  };
  if (std::filesystem::is_directory(path))
    throw ConfigError("dataset file " + quoted(path) +
                      " is a folder (for an MNIST-layout folder set data.source = \"fashion-mnist\" and data.path)");
  try {
    if (ends_with(".h5") || ends_with(".hdf5")) {
      Dataset ds = load_hdf5_dataset(path);
      if (max_points >= 0 && max_points < ds.size()) ds = ds.rows(0, max_points);
      return ds;
    }
    if (lower.find("idx3") != std::string::npos) {
      // The labels file sits beside the images: train-images-idx3-ubyte -> train-labels-idx1-ubyte.
      const std::string dir = path.substr(0, path.size() - name.size());
      std::string labels = name;
      size_t at = labels.find("images-idx3-ubyte");
      if (at != std::string::npos) {
        labels.replace(at, 17, "labels-idx1-ubyte");
      } else {
        at = lower.find("idx3");
        labels.replace(at, 4, "idx1");
      }
      return load_mnist_idx(path, dir + labels, max_points);
    }
    if (ends_with(".bin")) return load_cifar10_binary({path}, max_points);
  } catch (const ConfigError&) {
    throw;
  } catch (const std::runtime_error& e) {
    throw ConfigError("dataset file " + quoted(path) + ": " + e.what());
  }
  throw ConfigError("dataset file " + quoted(path) +
                    ": unknown format (expected .h5/.hdf5, an MNIST *idx3-ubyte[.gz] file or a CIFAR-10 .bin batch)");
}

}  // namespace moedmft
