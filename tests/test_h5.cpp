// HDF5 wrapper: round trips, replacement, attributes, dimension scales and error messages.
#include <hdf5_hl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "data/h5/h5.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
namespace h5 = moedmft::h5;

using moedmft::testing::Scratch;

namespace {


std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("h5: numeric datasets round trip with shape and conversion", "[h5]") {
  Scratch s("h5_numeric");
  const std::string path = s.file("a.h5");
  const std::vector<double> d = {1.5, -2.25, 3.0, 1e-300, 1e300, -0.0};
  const std::vector<float> f = {0.5f, -1.25f, 3.5f, 7.0f};
  const std::vector<int64_t> i = {std::numeric_limits<int64_t>::min(), -1, 0, std::numeric_limits<int64_t>::max()};
  const std::vector<uint8_t> u = {0, 7, 255};
  {
    h5::File file(path, h5::Mode::truncate);
    h5::write(file, "/d", d.data(), {2, 3});
    h5::write(file, "f", f.data(), {4});
    h5::write(file, "/g/sub/i", i.data(), {2, 2});
    h5::write(file, "u", u.data(), {3});
  }
  h5::File file(path, h5::Mode::read);
  std::vector<hsize_t> dims;
  CHECK(h5::read_double(file, "/d", &dims) == d);
  CHECK(dims == std::vector<hsize_t>{2, 3});
  CHECK(h5::read_float(file, "/f", &dims) == f);
  CHECK(dims == std::vector<hsize_t>{4});
  CHECK(h5::read_int64(file, "/g/sub/i", &dims) == i);
  CHECK(dims == std::vector<hsize_t>{2, 2});
  CHECK(h5::read_int64(file, "/u") == std::vector<int64_t>{0, 7, 255});
  // Conversions from the stored type.
  CHECK(h5::read_double(file, "/f") == std::vector<double>{0.5, -1.25, 3.5, 7.0});
  CHECK(h5::read_double(file, "/u") == std::vector<double>{0.0, 7.0, 255.0});
  CHECK(h5::read_int64(file, "/f")[3] == 7);
  CHECK(h5::is_integer_dataset(file, "/g/sub/i"));
  CHECK(h5::is_integer_dataset(file, "/u"));
  CHECK_FALSE(h5::is_integer_dataset(file, "/f"));
  // Intermediate groups were created; relative paths work from a group handle.
  CHECK(h5::exists(file, "/g/sub"));
  CHECK_FALSE(h5::exists(file, "/g/missing/i"));
  h5::Handle g = h5::open_or_create_group(file, "/g");
  CHECK(h5::read_int64(g, "sub/i") == i);
  CHECK(h5::dims_of(g, "sub/i") == std::vector<hsize_t>{2, 2});
}

TEST_CASE("h5: scalars and empty arrays", "[h5]") {
  Scratch s("h5_scalar");
  h5::File file(s.file("s.h5"), h5::Mode::truncate);
  const double pi = 3.25;
  const int64_t n = -42;
  h5::write(file, "/pi", &pi, {});
  h5::write(file, "/n", &n, {});
  h5::write(file, "/empty", static_cast<const double*>(nullptr), {0, 3});
  std::vector<hsize_t> dims = {9};
  CHECK(h5::read_double(file, "/pi", &dims) == std::vector<double>{3.25});
  CHECK(dims.empty());
  CHECK(h5::dims_of(file, "/n").empty());
  CHECK(h5::read_int64(file, "/n") == std::vector<int64_t>{-42});
  CHECK(h5::read_double(file, "/empty", &dims).empty());
  CHECK(dims == std::vector<hsize_t>{0, 3});
}

TEST_CASE("h5: strings and attributes round trip", "[h5]") {
  Scratch s("h5_strings");
  const std::string path = s.file("s.h5");
  const std::vector<std::string> names = {"alpha", "", "\xce\xb1\xce\xb2 utf-8", "with space "};
  {
    h5::File file(path, h5::Mode::truncate);
    h5::write_strings(file, "/meta/names", names);
    const double v = 1.0;
    h5::write(file, "/data", &v, {});
    h5::write_attr(file, "/", "title", std::string("run \xe2\x9c\x93"));
    h5::write_attr(file, ".", "version", int64_t{3});
    h5::write_attr(file, "/data", "scale", 0.125);
    h5::write_attr(file, "/data", "scale", 0.5);  // replaces
    h5::write_attr(file, "/data", "unit", std::string("nats"));
    h5::write_attr(file, "/data", "unit", std::string("bits"));
  }
  h5::File file(path, h5::Mode::read);
  CHECK(h5::read_strings(file, "/meta/names") == names);
  CHECK(h5::read_attr_string(file, "/", "title") == "run \xe2\x9c\x93");
  CHECK(h5::read_attr_int64(file, "/", "version") == 3);
  CHECK(h5::read_attr_double(file, "/", "version") == 3.0);  // converted
  CHECK(h5::read_attr_double(file, "/data", "scale") == 0.5);
  CHECK(h5::read_attr_string(file, "/data", "unit") == "bits");
  CHECK(h5::has_attr(file, "/data", "unit"));
  CHECK_FALSE(h5::has_attr(file, "/data", "missing"));
  CHECK_FALSE(h5::has_attr(file, "/nothing", "unit"));
  CHECK_THROWS_AS(h5::read_attr_double(file, "/data", "missing"), std::runtime_error);
  CHECK_THROWS_AS(h5::read_attr_double(file, "/data", "unit"), std::runtime_error);
  CHECK_THROWS_AS(h5::read_strings(file, "/data"), std::runtime_error);
  CHECK_THROWS_AS(h5::read_double(file, "/meta/names"), std::runtime_error);
}

TEST_CASE("h5: writing an existing dataset replaces it; read_write keeps the rest", "[h5]") {
  Scratch s("h5_replace");
  const std::string path = s.file("r.h5");
  {
    h5::File file(path, h5::Mode::truncate);
    const std::vector<double> a = {1, 2, 3, 4, 5, 6};
    h5::write(file, "/grp/a", a.data(), {2, 3});
    h5::write_attr(file, "/grp/a", "note", std::string("old"));
    const std::vector<int64_t> b = {7, 8};
    h5::write(file, "/grp/a", b.data(), {2});  // different type and shape
    h5::write(file, "/keep", b.data(), {2});
  }
  {
    h5::File file(path, h5::Mode::read_write);
    CHECK(h5::dims_of(file, "/grp/a") == std::vector<hsize_t>{2});
    CHECK(h5::is_integer_dataset(file, "/grp/a"));
    CHECK_FALSE(h5::has_attr(file, "/grp/a", "note"));  // replaced, not overwritten in place
    const std::vector<float> c = {9.5f};
    h5::write(file, "/grp/a", c.data(), {1});
    h5::remove(file, "/keep/not_there");  // no-op
    h5::remove(file, "/grp/missing");     // no-op
    file.flush();
  }
  {
    h5::File file(path, h5::Mode::read);
    CHECK(h5::read_float(file, "/grp/a") == std::vector<float>{9.5f});
    CHECK(h5::read_int64(file, "/keep") == std::vector<int64_t>{7, 8});
  }
  // Truncate starts afresh.
  h5::File fresh(path, h5::Mode::truncate);
  CHECK_FALSE(h5::exists(fresh, "/keep"));
}

TEST_CASE("h5: dimension scales attach and survive rewrites", "[h5]") {
  Scratch s("h5_scales");
  h5::File file(s.file("d.h5"), h5::Mode::truncate);
  const std::vector<double> steps = {0, 10, 20}, widths = {64, 128};
  const std::vector<double> loss = {1, 2, 3, 4, 5, 6};
  h5::write(file, "/axes/step", steps.data(), {3});
  h5::write(file, "/axes/N", widths.data(), {2});
  h5::write(file, "/loss", loss.data(), {3, 2});
  h5::make_scale(file, "/axes/step", "step");
  h5::make_scale(file, "/axes/N", "N");
  h5::attach_scale(file, "/loss", "/axes/step", 0);
  h5::attach_scale(file, "/loss", "/axes/N", 1);

  const auto attached = [&](const char* scale, unsigned axis) {
    h5::Handle ds(H5Dopen2(file, "/loss", H5P_DEFAULT));
    h5::Handle sc(H5Dopen2(file, scale, H5P_DEFAULT));
    return H5DSis_attached(ds, sc, axis) > 0;
  };
  CHECK(attached("/axes/step", 0));
  CHECK(attached("/axes/N", 1));
  CHECK_FALSE(attached("/axes/N", 0));
  {
    h5::Handle sc(H5Dopen2(file, "/axes/N", H5P_DEFAULT));
    char name[16] = {};
    REQUIRE(H5DSget_scale_name(sc, name, sizeof(name)) > 0);
    CHECK(std::string(name) == "N");
  }
  // Rewriting the data, then the scale, must leave no dangling references behind.
  h5::write(file, "/loss", loss.data(), {3, 2});
  h5::attach_scale(file, "/loss", "/axes/step", 0);
  CHECK(attached("/axes/step", 0));
  h5::write(file, "/axes/step", steps.data(), {3});
  h5::make_scale(file, "/axes/step", "step");
  h5::attach_scale(file, "/loss", "/axes/step", 0);
  CHECK(attached("/axes/step", 0));

  CHECK_THROWS_AS(h5::attach_scale(file, "/loss", "/axes/N", 2), std::runtime_error);
  CHECK_THROWS_AS(h5::make_scale(file, "/axes/none", "x"), std::runtime_error);
}

TEST_CASE("h5: failures throw one-line messages naming file and object", "[h5]") {
  Scratch s("h5_errors");
  const std::string missing = s.file("missing.h5");
  CHECK(message_of([&] { h5::File f(missing, h5::Mode::read); }) ==
        "cannot open HDF5 file '" + missing + "' for reading");
  const std::string text = s.file("not_hdf5.h5");
  std::ofstream(text) << "plain text, not HDF5\n";
  CHECK(message_of([&] { h5::File f(text, h5::Mode::read); }) == "cannot open HDF5 file '" + text + "' for reading");

  const std::string path = s.file("e.h5");
  h5::File file(path, h5::Mode::truncate);
  const std::string msg = message_of([&] { h5::read_double(file, "/grp/nothing"); });
  CHECK(msg.find(path) != std::string::npos);
  CHECK(msg.find("/grp/nothing") != std::string::npos);
  CHECK(msg.find('\n') == std::string::npos);
  h5::Handle g = h5::open_or_create_group(file, "/grp");
  const std::string rel = message_of([&] { h5::dims_of(g, "inner"); });
  CHECK(rel.find("/grp/inner") != std::string::npos);
  CHECK(rel.find(path) != std::string::npos);
  CHECK(message_of([&] { h5::read_attr_string(file, "/grp", "a"); }).find(path) != std::string::npos);
}

TEST_CASE("h5: fixed-length strings written by other tools are read in full", "[h5]") {
  Scratch s("h5_fixed");
  h5::File file(s.file("f.h5"), h5::Mode::truncate);
  // numpy/h5py store bytes strings as NULLPAD fixed-length strings with no terminator.
  h5::Handle type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type, 4);
  H5Tset_strpad(type, H5T_STR_NULLPAD);
  const hsize_t n = 2;
  h5::Handle space(H5Screate_simple(1, &n, nullptr));
  h5::Handle ds(H5Dcreate2(file, "/fixed", type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  const char data[] = {'a', 'b', 'c', 'd', 'e', '\0', '\0', '\0'};
  REQUIRE(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
  h5::Handle scalar(H5Screate(H5S_SCALAR));
  h5::Handle root(H5Gopen2(file, "/", H5P_DEFAULT));
  h5::Handle attr(H5Acreate2(root, "label", type, scalar, H5P_DEFAULT, H5P_DEFAULT));
  REQUIRE(H5Awrite(attr, type, data) >= 0);
  CHECK(h5::read_strings(file, "/fixed") == std::vector<std::string>{"abcd", "e"});
  CHECK(h5::read_attr_string(file, "/", "label") == "abcd");
}

TEST_CASE("h5: no identifiers stay open after the file is closed", "[h5]") {
  Scratch s("h5_leaks");
  const std::string path = s.file("l.h5");
  {
    h5::File file(path, h5::Mode::truncate);
    const std::vector<double> v = {1, 2};
    h5::write(file, "/a/b", v.data(), {2});
    h5::write(file, "/a/b", v.data(), {2});
    h5::write(file, "/s", v.data(), {2});
    h5::make_scale(file, "/s", "s");
    h5::attach_scale(file, "/a/b", "/s", 0);
    h5::write(file, "/s", v.data(), {2});  // replacing a scale detaches it first
    h5::write_strings(file, "/names", {"x", "y"});
    h5::write_attr(file, "/a", "t", std::string("z"));
    (void)h5::read_strings(file, "/names");
    (void)h5::read_attr_string(file, "/a", "t");
    (void)h5::read_double(file, "/a/b");
    CHECK_THROWS(h5::read_double(file, "/missing"));
    CHECK_THROWS(h5::read_attr_string(file, "/a/b", "none"));
    h5::Handle g = h5::open_or_create_group(file, "/new/group");
  }
  CHECK(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0);
  h5::File again(path, h5::Mode::read);  // reopening works: the file was really closed
  CHECK(h5::exists(again, "/new/group"));
}
