// HDF5 wrapper implementation on the C API and the high-level dimension-scale API.
#include "data/h5/h5.hpp"

#include <hdf5_hl.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace moedmft::h5 {
namespace {

// HDF5 prints its own error stack to stderr by default; our exceptions carry the message.
void silence_hdf5() {
  static const bool done = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}
[[maybe_unused]] const bool kSilencedAtLoad = (silence_hdf5(), true);

std::string file_name_of(hid_t loc) {
  const ssize_t n = H5Fget_name(loc, nullptr, 0);
  if (n <= 0) return "?";
  std::string s(static_cast<size_t>(n) + 1, '\0');
  H5Fget_name(loc, s.data(), s.size());
  s.resize(static_cast<size_t>(n));
  return s;
}

bool is_self(const std::string& path) { return path.empty() || path == "." || path == "/"; }

// Absolute form of `path` for messages: relative paths are prefixed with loc's own name.
std::string full_path(hid_t loc, const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  std::string base = "/";
  const ssize_t n = H5Iget_name(loc, nullptr, 0);
  if (n > 0) {
    base.assign(static_cast<size_t>(n) + 1, '\0');
    H5Iget_name(loc, base.data(), base.size());
    base.resize(static_cast<size_t>(n));
  }
  if (is_self(path)) return base;
  return base == "/" ? "/" + path : base + "/" + path;
}

std::string with_reason(const std::string& message) {
  const std::string why = system_reason();
  return why.empty() ? message : message + " (" + why + ")";
}

[[noreturn]] void fail(hid_t loc, const std::string& path, const std::string& what) {
  throw std::runtime_error(with_reason("HDF5: " + what + " '" + full_path(loc, path) + "' in file '" +
                                       file_name_of(loc) + "'"));
}

Handle check(hid_t id, hid_t loc, const std::string& path, const std::string& what) {
  if (id < 0) fail(loc, path, what);
  return Handle(id);
}

void check_status(herr_t st, hid_t loc, const std::string& path, const std::string& what) {
  if (st < 0) fail(loc, path, what);
}

Handle open_dataset(hid_t loc, const std::string& path) {
  if (!exists(loc, path)) fail(loc, path, "no such dataset");
  return check(H5Dopen2(loc, path.c_str(), H5P_DEFAULT), loc, path, "cannot open dataset");
}

Handle open_object(hid_t loc, const std::string& path) {
  const std::string p = is_self(path) ? "." : path;
  if (!is_self(path) && !exists(loc, path)) fail(loc, path, "no such object");
  return check(H5Oopen(loc, p.c_str(), H5P_DEFAULT), loc, path, "cannot open object");
}

Handle utf8_string_type() {
  Handle t(H5Tcopy(H5T_C_S1));
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

std::vector<hsize_t> extent(hid_t space) {
  const int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(rank > 0 ? static_cast<size_t>(rank) : 0);
  if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return dims;
}

hsize_t count_of(const std::vector<hsize_t>& dims) {
  hsize_t n = 1;
  for (hsize_t d : dims) n *= d;
  return n;
}

// Scale names collected while iterating; detaching inside the iteration would modify
// the list being walked.
herr_t collect_scale(hid_t, unsigned, hid_t scale, void* out) {
  const ssize_t n = H5Iget_name(scale, nullptr, 0);
  if (n <= 0) return 0;
  std::string s(static_cast<size_t>(n) + 1, '\0');
  H5Iget_name(scale, s.data(), s.size());
  s.resize(static_cast<size_t>(n));
  static_cast<std::vector<std::string>*>(out)->push_back(s);
  return 0;
}

// Before a dataset is deleted, undo its dimension-scale links in both directions; otherwise
// the partner keeps a reference to a deleted object and later DS calls on it fail.
void detach_everything(hid_t ds) {
  if (H5Aexists(ds, "DIMENSION_LIST") > 0) {
    Handle space(H5Dget_space(ds));
    const int rank = H5Sget_simple_extent_ndims(space);
    for (int d = 0; d < rank; ++d) {
      std::vector<std::string> names;
      int start = 0;
      H5DSiterate_scales(ds, static_cast<unsigned>(d), &start, collect_scale, &names);
      for (const auto& name : names) {
        Handle scale(H5Dopen2(ds, name.c_str(), H5P_DEFAULT));
        if (scale.valid()) H5DSdetach_scale(ds, scale, static_cast<unsigned>(d));
      }
    }
  }
  if (H5Aexists(ds, "REFERENCE_LIST") > 0) {
    struct Entry {
      hobj_ref_t ref;
      int dim;
    };
    Handle attr(H5Aopen(ds, "REFERENCE_LIST", H5P_DEFAULT));
    Handle space(H5Aget_space(attr));
    const hssize_t n = H5Sget_simple_extent_npoints(space);
    if (!attr.valid() || n <= 0) return;
    Handle type(H5Tcreate(H5T_COMPOUND, sizeof(Entry)));
    H5Tinsert(type, "dataset", HOFFSET(Entry, ref), H5T_STD_REF_OBJ);
    H5Tinsert(type, "dimension", HOFFSET(Entry, dim), H5T_NATIVE_INT);
    std::vector<Entry> entries(static_cast<size_t>(n));
    if (H5Aread(attr, type, entries.data()) < 0) return;
    attr = Handle();  // detaching rewrites this attribute
    for (const Entry& e : entries) {
      Handle user(H5Rdereference2(ds, H5P_DEFAULT, H5R_OBJECT, &e.ref));
      if (user.valid()) H5DSdetach_scale(user, ds, static_cast<unsigned>(e.dim));
    }
  }
}

template <class T>
void write_numeric(hid_t loc, const std::string& path, const T* data, const std::vector<hsize_t>& dims,
                   hid_t mem_type, hid_t file_type) {
  remove(loc, path);
  Handle space = dims.empty()
                     ? check(H5Screate(H5S_SCALAR), loc, path, "cannot create dataspace for")
                     : check(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                             loc, path, "cannot create dataspace for");
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE));
  H5Pset_create_intermediate_group(lcpl, 1);
  Handle ds = check(H5Dcreate2(loc, path.c_str(), file_type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT),
                    loc, path, "cannot create dataset");
  if (count_of(dims) == 0) return;  // nothing to transfer (and data may be null)
  if (data == nullptr) fail(loc, path, "null data pointer for dataset");
  check_status(H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), loc, path,
               "cannot write dataset");
}

template <class T>
std::vector<T> read_numeric(hid_t loc, const std::string& path, std::vector<hsize_t>* dims_out,
                            hid_t mem_type) {
  Handle ds = open_dataset(loc, path);
  Handle type(H5Dget_type(ds));
  const H5T_class_t cls = H5Tget_class(type);
  if (cls != H5T_INTEGER && cls != H5T_FLOAT) fail(loc, path, "non-numeric dataset");
  Handle space(H5Dget_space(ds));
  const std::vector<hsize_t> dims = extent(space);
  std::vector<T> out(static_cast<size_t>(count_of(dims)));
  if (!out.empty())
    check_status(H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), loc, path,
                 "cannot read (or convert) dataset");
  if (dims_out) *dims_out = dims;
  return out;
}

// Reads n strings of the stored string type (variable or fixed length) through `read`,
// which performs the H5Dread/H5Aread into a buffer of the given memory type.
template <class ReadFn>
bool read_string_values(hid_t stored, hid_t space, size_t n, ReadFn read, std::vector<std::string>& out) {
  out.clear();
  if (n == 0) return true;
  if (H5Tis_variable_str(stored) > 0) {
    Handle mem = utf8_string_type();
    std::vector<char*> ptrs(n, nullptr);
    if (read(mem.id(), static_cast<void*>(ptrs.data())) < 0) return false;
    for (char* p : ptrs) out.emplace_back(p ? p : "");
    H5Dvlen_reclaim(mem, space, H5P_DEFAULT, ptrs.data());
    return true;
  }
  const size_t len = H5Tget_size(stored);
  Handle mem(H5Tcopy(H5T_C_S1));
  H5Tset_size(mem, len);
  // NULLPAD keeps all len characters (NULLTERM would drop one for the terminator); HDF5
  // converts space-padded strings, and we cut at the first NUL below.
  H5Tset_strpad(mem, H5T_STR_NULLPAD);
  H5Tset_cset(mem, H5Tget_cset(stored));
  std::vector<char> buf(n * len + 1, '\0');
  if (read(mem.id(), static_cast<void*>(buf.data())) < 0) return false;
  for (size_t i = 0; i < n; ++i) {
    const char* p = buf.data() + i * len;
    size_t k = 0;
    while (k < len && p[k] != '\0') ++k;
    out.emplace_back(p, k);
  }
  return true;
}

// Opens attribute `name` on the object at `path`, failing with a message naming both.
Handle open_attr(hid_t loc, const std::string& path, const std::string& name) {
  Handle obj = open_object(loc, path);
  if (H5Aexists(obj, name.c_str()) <= 0) fail(loc, path, "no attribute '" + name + "' on");
  return check(H5Aopen(obj, name.c_str(), H5P_DEFAULT), loc, path,
               "cannot open attribute '" + name + "' on");
}

void write_attr_raw(hid_t loc, const std::string& path, const std::string& name, hid_t file_type,
                    hid_t mem_type, const void* value) {
  Handle obj = open_object(loc, path);
  if (H5Aexists(obj, name.c_str()) > 0)
    check_status(H5Adelete(obj, name.c_str()), loc, path, "cannot replace attribute '" + name + "' on");
  Handle space(H5Screate(H5S_SCALAR));
  Handle attr = check(H5Acreate2(obj, name.c_str(), file_type, space, H5P_DEFAULT, H5P_DEFAULT), loc,
                      path, "cannot create attribute '" + name + "' on");
  check_status(H5Awrite(attr, mem_type, value), loc, path, "cannot write attribute '" + name + "' on");
}

template <class T>
T read_attr_numeric(hid_t loc, const std::string& path, const std::string& name, hid_t mem_type) {
  Handle attr = open_attr(loc, path, name);
  Handle type(H5Aget_type(attr));
  const H5T_class_t cls = H5Tget_class(type);
  if (cls != H5T_INTEGER && cls != H5T_FLOAT) fail(loc, path, "non-numeric attribute '" + name + "' on");
  Handle space(H5Aget_space(attr));
  if (H5Sget_simple_extent_npoints(space) != 1)
    fail(loc, path, "attribute '" + name + "' is not a single value on");
  T value{};
  check_status(H5Aread(attr, mem_type, &value), loc, path, "cannot read attribute '" + name + "' on");
  return value;
}

}  // namespace

// ---- Handle ----------------------------------------------------------------------------

Handle::Handle(hid_t id) : id_(id < 0 ? -1 : id) {}

Handle::~Handle() {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    default: H5Idec_ref(id_); break;
  }
}

Handle::Handle(Handle&& o) noexcept : id_(o.id_) { o.id_ = -1; }

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    Handle old(id_);  // closes the previous id on scope exit
    id_ = o.id_;
    o.id_ = -1;
  }
  return *this;
}

// ---- File ------------------------------------------------------------------------------

std::string system_reason() {
  // The sec2 driver's message reads "... errno = 27, error message = 'File too large', ...".
  std::string found;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, [](unsigned, const H5E_error2_t* e, void* out) -> herr_t {
    const std::string desc = e->desc ? e->desc : "";
    const std::string key = "error message = '";
    const size_t at = desc.find(key);
    if (at != std::string::npos) {
      const size_t end = desc.find('\'', at + key.size());
      *static_cast<std::string*>(out) = desc.substr(at + key.size(), end - at - key.size());
      return 1;  // the innermost system error is enough
    }
    return 0;
  }, &found);
  return found;
}

File::File(const std::string& path, Mode mode) : path_(path) {
  silence_hdf5();
  hid_t id = -1;
  if (mode == Mode::read) {
    id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (id < 0) throw std::runtime_error("cannot open HDF5 file '" + path + "' for reading");
  } else if (mode == Mode::memory) {
    Handle fapl(H5Pcreate(H5P_FILE_ACCESS));
    if (!fapl.valid() || H5Pset_fapl_core(fapl, size_t(8) << 20, 0) < 0)
      throw std::runtime_error("cannot set up an in-memory HDF5 file for '" + path + "'");
    id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (id < 0) throw std::runtime_error(with_reason("cannot create HDF5 file '" + path + "' in memory"));
  } else {
    struct stat st {};
    const bool present = ::stat(path.c_str(), &st) == 0;
    if (mode == Mode::read_write && present)
      id = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    else
      id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (id < 0) throw std::runtime_error("cannot open HDF5 file '" + path + "' for writing");
  }
  handle_ = Handle(id);
}

void File::flush() {
  if (H5Fflush(handle_, H5F_SCOPE_LOCAL) < 0)
    throw std::runtime_error(with_reason("cannot flush HDF5 file '" + path_ + "'"));
}

void File::commit() {
  if (!handle_.valid()) throw std::logic_error("h5::File::commit: '" + path_ + "' is not open");
  const hid_t id = handle_.release();
  std::vector<char> image;
  const ssize_t size = H5Fflush(id, H5F_SCOPE_LOCAL) >= 0 ? H5Fget_file_image(id, nullptr, 0) : -1;
  if (size > 0) image.resize(size_t(size));
  const bool built = size > 0 && H5Fget_file_image(id, image.data(), image.size()) == size;
  const std::string why = built ? std::string() : system_reason();
  H5Fclose(id);  // in memory: nothing left to fail
  if (!built)
    throw std::runtime_error("HDF5: cannot build the contents of '" + path_ + "'" + (why.empty() ? "" : " (" + why + ")"));
  const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(std::string("cannot create the file: ") + std::strerror(errno));
  size_t done = 0;
  while (done < image.size()) {
    const ssize_t n = ::write(fd, image.data() + done, image.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw std::runtime_error(std::strerror(err));
    }
    done += size_t(n);
  }
  // quotas and network file systems may report a full disk only here
  if (::fsync(fd) != 0 || ::close(fd) != 0) throw std::runtime_error(std::strerror(errno));
}

// ---- groups and links ------------------------------------------------------------------

bool exists(hid_t loc, const std::string& path) {
  if (is_self(path)) return true;
  // H5Lexists fails (rather than returning false) when an intermediate link is missing,
  // so test each prefix in turn.
  size_t pos = path[0] == '/' ? 1 : 0;
  while (pos <= path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string::npos) next = path.size();
    if (next > pos) {
      const std::string prefix = path.substr(0, next);
      if (H5Lexists(loc, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    }
    pos = next + 1;
  }
  return true;
}

Handle open_or_create_group(hid_t loc, const std::string& path) {
  silence_hdf5();
  if (is_self(path)) {
    const std::string p = path == "/" ? "/" : ".";
    return check(H5Gopen2(loc, p.c_str(), H5P_DEFAULT), loc, path, "cannot open group");
  }
  if (exists(loc, path))
    return check(H5Gopen2(loc, path.c_str(), H5P_DEFAULT), loc, path, "cannot open group");
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE));
  H5Pset_create_intermediate_group(lcpl, 1);
  return check(H5Gcreate2(loc, path.c_str(), lcpl, H5P_DEFAULT, H5P_DEFAULT), loc, path,
               "cannot create group");
}

void remove(hid_t loc, const std::string& path) {
  if (is_self(path)) fail(loc, path, "cannot remove the location itself");
  if (!exists(loc, path)) return;
  {
    Handle obj(H5Oopen(loc, path.c_str(), H5P_DEFAULT));
    if (obj.valid() && H5Iget_type(obj) == H5I_DATASET) detach_everything(obj);
  }
  check_status(H5Ldelete(loc, path.c_str(), H5P_DEFAULT), loc, path, "cannot delete");
}

// ---- datasets --------------------------------------------------------------------------

void write(hid_t loc, const std::string& path, const double* data, const std::vector<hsize_t>& dims) {
  write_numeric(loc, path, data, dims, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE);
}
void write(hid_t loc, const std::string& path, const float* data, const std::vector<hsize_t>& dims) {
  write_numeric(loc, path, data, dims, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE);
}
void write(hid_t loc, const std::string& path, const int64_t* data, const std::vector<hsize_t>& dims) {
  write_numeric(loc, path, data, dims, H5T_NATIVE_INT64, H5T_STD_I64LE);
}
void write(hid_t loc, const std::string& path, const uint8_t* data, const std::vector<hsize_t>& dims) {
  write_numeric(loc, path, data, dims, H5T_NATIVE_UINT8, H5T_STD_U8LE);
}

void write_strings(hid_t loc, const std::string& path, const std::vector<std::string>& values) {
  std::vector<const char*> ptrs;
  ptrs.reserve(values.size());
  for (const auto& v : values) ptrs.push_back(v.c_str());
  Handle type = utf8_string_type();
  write_numeric(loc, path, ptrs.data(), {static_cast<hsize_t>(values.size())}, type, type);
}

std::vector<hsize_t> dims_of(hid_t loc, const std::string& path) {
  Handle ds = open_dataset(loc, path);
  Handle space(H5Dget_space(ds));
  return extent(space);
}

std::vector<double> read_double(hid_t loc, const std::string& path, std::vector<hsize_t>* dims) {
  return read_numeric<double>(loc, path, dims, H5T_NATIVE_DOUBLE);
}
std::vector<float> read_float(hid_t loc, const std::string& path, std::vector<hsize_t>* dims) {
  return read_numeric<float>(loc, path, dims, H5T_NATIVE_FLOAT);
}
std::vector<int64_t> read_int64(hid_t loc, const std::string& path, std::vector<hsize_t>* dims) {
  return read_numeric<int64_t>(loc, path, dims, H5T_NATIVE_INT64);
}

std::vector<std::string> read_strings(hid_t loc, const std::string& path) {
  Handle ds = open_dataset(loc, path);
  Handle type(H5Dget_type(ds));
  if (H5Tget_class(type) != H5T_STRING) fail(loc, path, "not a string dataset");
  Handle space(H5Dget_space(ds));
  const size_t n = static_cast<size_t>(count_of(extent(space)));
  std::vector<std::string> out;
  const auto read = [&](hid_t mem, void* buf) { return H5Dread(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf); };
  if (!read_string_values(type, space, n, read, out)) fail(loc, path, "cannot read string dataset");
  return out;
}

bool is_integer_dataset(hid_t loc, const std::string& path) {
  Handle ds = open_dataset(loc, path);
  Handle type(H5Dget_type(ds));
  return H5Tget_class(type) == H5T_INTEGER;
}

// ---- attributes ------------------------------------------------------------------------

void write_attr(hid_t loc, const std::string& path, const std::string& name, const std::string& value) {
  Handle type = utf8_string_type();
  const char* p = value.c_str();
  write_attr_raw(loc, path, name, type, type, &p);
}
void write_attr(hid_t loc, const std::string& path, const std::string& name, double value) {
  write_attr_raw(loc, path, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}
void write_attr(hid_t loc, const std::string& path, const std::string& name, int64_t value) {
  write_attr_raw(loc, path, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

bool has_attr(hid_t loc, const std::string& path, const std::string& name) {
  if (!is_self(path) && !exists(loc, path)) return false;
  Handle obj(H5Oopen(loc, is_self(path) ? "." : path.c_str(), H5P_DEFAULT));
  return obj.valid() && H5Aexists(obj, name.c_str()) > 0;
}

std::string read_attr_string(hid_t loc, const std::string& path, const std::string& name) {
  Handle attr = open_attr(loc, path, name);
  Handle type(H5Aget_type(attr));
  if (H5Tget_class(type) != H5T_STRING) fail(loc, path, "attribute '" + name + "' is not a string on");
  Handle space(H5Aget_space(attr));
  if (H5Sget_simple_extent_npoints(space) != 1)
    fail(loc, path, "attribute '" + name + "' is not a single string on");
  std::vector<std::string> out;
  const auto read = [&](hid_t mem, void* buf) { return H5Aread(attr, mem, buf); };
  if (!read_string_values(type, space, 1, read, out)) fail(loc, path, "cannot read attribute '" + name + "' on");
  return out[0];
}

double read_attr_double(hid_t loc, const std::string& path, const std::string& name) {
  return read_attr_numeric<double>(loc, path, name, H5T_NATIVE_DOUBLE);
}
int64_t read_attr_int64(hid_t loc, const std::string& path, const std::string& name) {
  return read_attr_numeric<int64_t>(loc, path, name, H5T_NATIVE_INT64);
}

// ---- dimension scales ------------------------------------------------------------------

void make_scale(hid_t loc, const std::string& scale_path, const std::string& dim_name) {
  Handle ds = open_dataset(loc, scale_path);
  check_status(H5DSset_scale(ds, dim_name.c_str()), loc, scale_path, "cannot make dimension scale of");
}

void attach_scale(hid_t loc, const std::string& dataset_path, const std::string& scale_path, unsigned axis) {
  Handle ds = open_dataset(loc, dataset_path);
  Handle scale = open_dataset(loc, scale_path);
  Handle space(H5Dget_space(ds));
  if (axis >= extent(space).size())
    fail(loc, dataset_path, "axis " + std::to_string(axis) + " out of range for dataset");
  if (H5DSis_scale(scale) <= 0) fail(loc, scale_path, "not a dimension scale (call make_scale first):");
  check_status(H5DSattach_scale(ds, scale, axis), loc, dataset_path,
               "cannot attach scale '" + scale_path + "' to");
}

void write_index_scale(hid_t loc, const std::string& path, hsize_t n) {
  std::vector<int64_t> v(n);
  for (hsize_t i = 0; i < n; ++i) v[i] = int64_t(i);
  write(loc, path, v.data(), {n});
  make_scale(loc, path, path.substr(path.find_last_of('/') + 1));
}

void attach_scales(hid_t loc, const std::string& dataset_path, const std::vector<std::string>& scales) {
  for (size_t d = 0; d < scales.size(); ++d) attach_scale(loc, dataset_path, scales[d], unsigned(d));
}

void describe(hid_t loc, const std::string& path, const std::string& long_name, const std::string& units) {
  write_attr(loc, path, "long_name", long_name);
  write_attr(loc, path, "units", units);
}

}  // namespace moedmft::h5
