// Thin RAII layer over the HDF5 C API: files, groups, whole-array datasets, attributes and
// dimension scales. Every failure throws std::runtime_error naming the file and object.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace moedmft::h5 {

// Owns one hid_t and closes it with the matching H5*close.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id);
  ~Handle();
  Handle(Handle&& o) noexcept;
  Handle& operator=(Handle&& o) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t id() const { return id_; }
  operator hid_t() const { return id_; }
  bool valid() const { return id_ >= 0; }
  hid_t release() { const hid_t id = id_; id_ = -1; return id; }  // the caller closes it

 private:
  hid_t id_ = -1;
};

// memory: a new file built in RAM (HDF5 core driver) and written out by commit(): HDF5 itself then
// never writes to disk, so a full disk cannot leave it with a half-flushed file (HDF5 1.10 cannot
// close such a file, and crashes at exit trying again).
enum class Mode { read, read_write, truncate, memory };

class File {
 public:
  File(const std::string& path, Mode mode);
  hid_t id() const { return handle_.id(); }
  operator hid_t() const { return handle_.id(); }
  const std::string& path() const { return path_; }
  void flush();
  // Mode::memory only: writes the file's bytes to path() with every write, the fsync and the
  // close checked, and closes the file (also on failure: no handle outlives it). Throws
  // std::runtime_error with the system's reason ("File too large", "No space left on device").
  void commit();

 private:
  std::string path_;
  Handle handle_;
};

// Paths are '/'-separated relative to loc; intermediate groups are created on write.
bool exists(hid_t loc, const std::string& path);
Handle open_or_create_group(hid_t loc, const std::string& path);
void remove(hid_t loc, const std::string& path);  // no-op if absent

// Whole-array datasets in row-major (C) order. Writing replaces an existing dataset.
void write(hid_t loc, const std::string& path, const double* data, const std::vector<hsize_t>& dims);
void write(hid_t loc, const std::string& path, const float* data, const std::vector<hsize_t>& dims);
void write(hid_t loc, const std::string& path, const int64_t* data, const std::vector<hsize_t>& dims);
void write(hid_t loc, const std::string& path, const uint8_t* data, const std::vector<hsize_t>& dims);
void write_strings(hid_t loc, const std::string& path, const std::vector<std::string>& values);

std::vector<hsize_t> dims_of(hid_t loc, const std::string& path);
// Reads converting from the stored numeric type.
std::vector<double> read_double(hid_t loc, const std::string& path, std::vector<hsize_t>* dims = nullptr);
std::vector<float> read_float(hid_t loc, const std::string& path, std::vector<hsize_t>* dims = nullptr);
std::vector<int64_t> read_int64(hid_t loc, const std::string& path, std::vector<hsize_t>* dims = nullptr);
std::vector<std::string> read_strings(hid_t loc, const std::string& path);
bool is_integer_dataset(hid_t loc, const std::string& path);

// The operating system's reason for the last failed HDF5 call ("File too large"), from the
// library's error stack, or "" when the failure was not a system call's.
std::string system_reason();

// Attributes on the object at `path` ("." or "/" for loc itself). Writing replaces.
void write_attr(hid_t loc, const std::string& path, const std::string& name, const std::string& value);
void write_attr(hid_t loc, const std::string& path, const std::string& name, double value);
void write_attr(hid_t loc, const std::string& path, const std::string& name, int64_t value);
bool has_attr(hid_t loc, const std::string& path, const std::string& name);
std::string read_attr_string(hid_t loc, const std::string& path, const std::string& name);
double read_attr_double(hid_t loc, const std::string& path, const std::string& name);
int64_t read_attr_int64(hid_t loc, const std::string& path, const std::string& name);

// Dimension scales (HDF5 high-level DS API): make `scale_path` a scale named `dim_name`
// and attach it to dimension `axis` of `dataset_path`.
void make_scale(hid_t loc, const std::string& scale_path, const std::string& dim_name);
void attach_scale(hid_t loc, const std::string& dataset_path, const std::string& scale_path, unsigned axis);
// An int64 index axis 0..n-1 at `path`, made a scale named after the path's last component.
void write_index_scale(hid_t loc, const std::string& path, hsize_t n);
// Attaches scales[d] to axis d of `dataset_path`, for every d.
void attach_scales(hid_t loc, const std::string& dataset_path, const std::vector<std::string>& scales);
// The CF attributes xarray and plotting tools show: `long_name` and `units` ("1": dimensionless).
void describe(hid_t loc, const std::string& path, const std::string& long_name, const std::string& units = "1");

}  // namespace moedmft::h5
