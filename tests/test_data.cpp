// Datasets: teacher generator statistics and determinism, validation, and file loaders.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "data/dataset.hpp"
#include "data/h5/h5.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace moedmft;

using moedmft::testing::config_error;
using moedmft::testing::put_be32;
using moedmft::testing::Scratch;

namespace {


void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}


bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

double mismatch_fraction(const std::vector<int>& a, const std::vector<int>& b) {
  int n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += a[i] != b[i];
  return static_cast<double>(n) / static_cast<double>(a.size());
}

}  // namespace

TEST_CASE("data: teacher datasets are deterministic in the seed", "[data]") {
  for (TeacherKind kind : {TeacherKind::dense, TeacherKind::moe}) {
    TeacherConfig cfg;
    cfg.kind = kind;
    cfg.P = 200;
    cfg.P_val = 50;
    cfg.D = 7;
    cfg.C = 3;
    cfg.label_noise = 0.1;
    cfg.seed = 11;
    const TrainValSplit a = make_teacher_dataset(cfg), b = make_teacher_dataset(cfg);
    CHECK(a.train.x == b.train.x);
    CHECK(a.train.y == b.train.y);
    CHECK(a.val.x == b.val.x);
    CHECK(a.val.y == b.val.y);
    CHECK(a.val.size() == 50);
    CHECK(a.train.description == b.train.description);
    a.train.validate();
    a.val.validate();

    cfg.seed = 12;
    const TrainValSplit c = make_teacher_dataset(cfg);
    CHECK(c.train.x != a.train.x);
    CHECK(c.train.y != a.train.y);

    // The training set does not depend on how many validation points are drawn.
    cfg.seed = 11;
    cfg.P_val = 0;
    const TrainValSplit d = make_teacher_dataset(cfg);
    CHECK(d.train.x == a.train.x);
    CHECK(d.train.y == a.train.y);
    CHECK(d.val.size() == 0);
  }
}

TEST_CASE("data: teacher description records the configuration", "[data]") {
  TeacherConfig cfg;
  cfg.P = 1024;
  CHECK(make_teacher_dataset(cfg).train.description == "teacher dense regression P=1024 D=16 C=1 hidden=64 noise=0 seed=1");
  cfg.kind = TeacherKind::moe;
  cfg.task = TaskKind::classification;
  cfg.P = 8;
  cfg.label_noise = 0.25;
  CHECK(make_teacher_dataset(cfg).train.description ==
        "teacher moe classification P=8 D=16 C=1 hidden=64 experts=4 noise=0.25 seed=1");
}

TEST_CASE("data: teacher inputs are standard normal", "[data]") {
  TeacherConfig cfg;
  cfg.P = 4000;
  cfg.D = 16;
  cfg.seed = 5;
  const Dataset ds = make_teacher_dataset(cfg).train;
  const double n = static_cast<double>(ds.x.size());
  const double mean = ds.x.mean();
  const double var = (ds.x.array() - mean).square().sum() / n;
  CHECK(std::abs(mean) < 5.0 / std::sqrt(n));
  CHECK(std::abs(var - 1.0) < 5.0 * std::sqrt(2.0 / n));
  // Per-feature check: no column is shifted or scaled (each has P samples).
  const double P = static_cast<double>(cfg.P);
  for (int j = 0; j < cfg.D; ++j) {
    const double m = ds.x.col(j).mean();
    CHECK(std::abs(m) < 5.0 / std::sqrt(P));
  }
  // Distinct features are uncorrelated.
  const double cov01 = ds.x.col(0).dot(ds.x.col(1)) / P;
  CHECK(std::abs(cov01) < 5.0 / std::sqrt(P));
}

TEST_CASE("data: regression noise adds the configured standard deviation", "[data]") {
  TeacherConfig cfg;
  cfg.P = 5000;
  cfg.D = 8;
  cfg.C = 2;
  cfg.seed = 3;
  const Dataset clean = make_teacher_dataset(cfg).train;
  cfg.label_noise = 0.5;
  const Dataset noisy = make_teacher_dataset(cfg).train;
  CHECK(noisy.x == clean.x);
  CHECK(clean.num_classes == 0);
  CHECK(clean.labels.empty());
  const double n = static_cast<double>(clean.y.size());
  const double sd = std::sqrt((noisy.y - clean.y).squaredNorm() / n);
  CHECK(std::abs(sd - 0.5) < 5.0 * 0.5 / std::sqrt(2.0 * n));
  // The clean teacher output has a non-trivial O(1) scale.
  const double scale = std::sqrt(clean.y.squaredNorm() / n);
  CHECK(scale > 0.05);
  CHECK(scale < 3.0);
}

TEST_CASE("data: binary teacher labels are balanced and match +-1 targets", "[data]") {
  for (TeacherKind kind : {TeacherKind::dense, TeacherKind::moe}) {
    TeacherConfig cfg;
    cfg.kind = kind;
    cfg.task = TaskKind::classification;
    cfg.P = 10000;
    cfg.D = 10;
    cfg.seed = 9;
    const Dataset ds = make_teacher_dataset(cfg).train;
    REQUIRE(ds.num_classes == 2);
    REQUIRE(ds.output_dim() == 1);
    int ones = 0;
    for (int i = 0; i < ds.size(); ++i) {
      ones += ds.labels[i];
      REQUIRE(ds.y(i, 0) == (ds.labels[i] == 1 ? 1.0 : -1.0));
    }
    const double frac = static_cast<double>(ones) / cfg.P;
    if (kind == TeacherKind::dense) {
      // Without biases the dense teacher is odd in x, so classes balance in expectation.
      CHECK(std::abs(frac - 0.5) < 5.0 * 0.5 / std::sqrt(static_cast<double>(cfg.P)));
    } else {
      // Input-dependent gates break the symmetry; only ask for both classes in quantity.
      CHECK(frac > 0.2);
      CHECK(frac < 0.8);
    }
  }
}

TEST_CASE("data: multi-class teacher gives one-hot targets for every class", "[data]") {
  TeacherConfig cfg;
  cfg.task = TaskKind::classification;
  cfg.P = 3000;
  cfg.C = 4;
  cfg.seed = 2;
  const Dataset ds = make_teacher_dataset(cfg).train;
  REQUIRE(ds.num_classes == 4);
  REQUIRE(ds.output_dim() == 4);
  std::vector<int> counts(4, 0);
  for (int i = 0; i < ds.size(); ++i) {
    ++counts[ds.labels[i]];
    REQUIRE(ds.y.row(i).sum() == 1.0);
    REQUIRE(ds.y(i, ds.labels[i]) == 1.0);
  }
  for (int c : counts) CHECK(c > cfg.P / 20);  // no class is (nearly) empty
}

TEST_CASE("data: label noise replaces the expected fraction of labels", "[data]") {
  for (int C : {1, 5}) {
    TeacherConfig cfg;
    cfg.task = TaskKind::classification;
    cfg.P = 20000;
    cfg.D = 6;
    cfg.C = C;
    cfg.seed = 21;
    const Dataset clean = make_teacher_dataset(cfg).train;
    cfg.label_noise = 0.3;
    const Dataset noisy = make_teacher_dataset(cfg).train;
    REQUIRE(noisy.x == clean.x);
    // A replacement draws any of K classes, so only (K-1)/K of them change the label.
    const double K = C == 1 ? 2.0 : C;
    const double expected = 0.3 * (K - 1.0) / K;
    const double tol = 5.0 * std::sqrt(expected * (1.0 - expected) / cfg.P);
    CHECK(std::abs(mismatch_fraction(clean.labels, noisy.labels) - expected) < tol);
    cfg.label_noise = 1.0;
    const Dataset random = make_teacher_dataset(cfg).train;
    const double e1 = (K - 1.0) / K;
    CHECK(std::abs(mismatch_fraction(clean.labels, random.labels) - e1) < 5.0 * std::sqrt(e1 * (1 - e1) / cfg.P));
  }
}

TEST_CASE("data: teacher config errors name the field", "[data]") {
  const auto err = [](const std::function<void(TeacherConfig&)>& edit) {
    TeacherConfig cfg;
    cfg.P = 16;
    edit(cfg);
    return config_error([&] { make_teacher_dataset(cfg); });
  };
  CHECK(contains(err([](TeacherConfig& c) { c.P = 0; }), "data.P"));
  CHECK(contains(err([](TeacherConfig& c) { c.P_val = -1; }), "data.P_val"));
  CHECK(contains(err([](TeacherConfig& c) { c.D = 0; }), "data.D"));
  CHECK(contains(err([](TeacherConfig& c) { c.C = 0; }), "data.C"));
  CHECK(contains(err([](TeacherConfig& c) { c.hidden = 0; }), "data.hidden"));
  CHECK(contains(err([](TeacherConfig& c) {
                   c.kind = TeacherKind::moe;
                   c.experts = 0;
                 }),
                 "data.experts"));
  CHECK(contains(err([](TeacherConfig& c) { c.label_noise = -0.1; }), "data.label_noise"));
  CHECK(contains(err([](TeacherConfig& c) { c.label_noise = NAN; }), "data.label_noise"));
  CHECK(contains(err([](TeacherConfig& c) {
                   c.task = TaskKind::classification;
                   c.label_noise = 1.5;
                 }),
                 "data.label_noise"));
  CHECK(err([](TeacherConfig& c) { c.label_noise = 1.5; }).empty());  // fine for regression
}

TEST_CASE("data: validate, rows and targets_from_labels", "[data]") {
  Dataset ds;
  ds.x = Mat<double>::Ones(5, 2);
  ds.labels = {0, 1, 2, 1, 0};
  ds.num_classes = 3;
  ds.y = targets_from_labels(ds.labels, 3, true);  // three classes: one-hot despite the flag
  REQUIRE(ds.y.cols() == 3);
  ds.validate();

  const Dataset mid = ds.rows(1, 3);
  CHECK(mid.size() == 3);
  CHECK(mid.labels == std::vector<int>{1, 2, 1});
  CHECK(mid.y(1, 2) == 1.0);
  CHECK_THROWS_AS(ds.rows(3, 3), std::out_of_range);

  const Mat<double> pm = targets_from_labels({1, 0, 1}, 2, true);
  CHECK(pm.cols() == 1);
  CHECK(pm(0, 0) == 1.0);
  CHECK(pm(1, 0) == -1.0);
  CHECK(targets_from_labels({1, 0}, 2, false).cols() == 2);
  CHECK_THROWS_AS(targets_from_labels({3}, 2, false), ConfigError);

  Dataset bad = ds;
  bad.x(3, 1) = NAN;
  CHECK(config_error([&] { bad.validate(); }) == "data.x: row 3 contains a non-finite value");
  bad = ds;
  bad.y(2, 0) = INFINITY;
  CHECK(contains(config_error([&] { bad.validate(); }), "data.y: row 2"));
  bad = ds;
  bad.labels[4] = 3;
  CHECK(contains(config_error([&] { bad.validate(); }), "data.labels"));
  bad = ds;
  bad.labels.pop_back();
  CHECK(contains(config_error([&] { bad.validate(); }), "data.labels"));
  bad = ds;
  bad.y = Mat<double>::Zero(4, 3);
  CHECK(contains(config_error([&] { bad.validate(); }), "data.y"));
  CHECK(contains(config_error([] { Dataset().validate(); }), "data.x"));
}

TEST_CASE("data: standardize_inputs uses the statistics source", "[data]") {
  TeacherConfig cfg;
  cfg.P = 500;
  cfg.P_val = 100;
  cfg.D = 4;
  TrainValSplit s = make_teacher_dataset(cfg);
  s.train.x.col(1) = s.train.x.col(1) * 3.0 + Eigen::VectorXd::Constant(cfg.P, 7.0);
  s.train.x.col(2).setConstant(2.0);  // constant feature: centred, not divided by zero
  const Mat<double> before = s.train.x;
  standardize_inputs(s.val, s.train);
  standardize_inputs(s.train, s.train);
  for (int j = 0; j < 4; ++j) {
    CHECK(std::abs(s.train.x.col(j).mean()) < 1e-12);
    if (j != 2) CHECK(std::abs(s.train.x.col(j).squaredNorm() / cfg.P - 1.0) < 1e-12);
  }
  CHECK(s.train.x.col(2).isZero());
  CHECK(s.val.x.allFinite());
  CHECK(std::abs(s.train.x(0, 1) - (before(0, 1) - before.col(1).mean()) /
                                       std::sqrt((before.col(1).array() - before.col(1).mean()).square().mean())) < 1e-12);
  Dataset other;
  other.x = Mat<double>::Zero(3, 5);
  CHECK_THROWS_AS(standardize_inputs(other, s.train), ConfigError);
}

TEST_CASE("data: HDF5 datasets round trip", "[data]") {
  Scratch dir("data_hdf5");
  TeacherConfig cfg;
  cfg.P = 40;
  cfg.D = 5;
  for (auto [task, C] : {std::pair{TaskKind::regression, 3}, std::pair{TaskKind::classification, 1},
                         std::pair{TaskKind::classification, 2}, std::pair{TaskKind::classification, 4}}) {
    cfg.task = task;
    cfg.C = C;
    const Dataset ds = make_teacher_dataset(cfg).train;
    const std::string path = dir.file("ds.h5");
    save_hdf5_dataset(path, ds);
    const Dataset back = load_hdf5_dataset(path);
    CHECK(back.x == ds.x);
    CHECK(back.y == ds.y);
    CHECK(back.labels == ds.labels);
    CHECK(back.num_classes == ds.num_classes);
    CHECK(contains(back.description, ds.description));
    const Dataset capped = load_dataset_file(path, 7);
    CHECK(capped.size() == 7);
    CHECK(capped.x == ds.x.topRows(7));
  }
}

TEST_CASE("data: hand-made HDF5 files with float32 inputs and integer labels", "[data]") {
  Scratch dir("data_handmade");
  const std::string path = dir.file("hand.hdf5");
  const std::vector<float> x = {0.5f, 1.0f, -1.0f, 2.0f, 0.25f, 0.0f};
  {
    h5::File f(path, h5::Mode::truncate);
    h5::write(f, "/x", x.data(), {3, 2});
    const std::vector<int64_t> y = {1, 0, 1};
    h5::write(f, "/y", y.data(), {3});
  }
  Dataset ds = load_dataset_file(path);
  CHECK(ds.num_classes == 2);
  CHECK(ds.output_dim() == 1);
  CHECK(ds.y(0, 0) == 1.0);
  CHECK(ds.y(1, 0) == -1.0);
  CHECK(ds.x(1, 1) == 2.0);
  {
    h5::File f(path, h5::Mode::read_write);
    const std::vector<uint8_t> y = {0, 3, 1};
    h5::write(f, "/y", y.data(), {3});
  }
  ds = load_hdf5_dataset(path);
  CHECK(ds.num_classes == 4);
  CHECK(ds.output_dim() == 4);
  CHECK(ds.labels == std::vector<int>{0, 3, 1});
  {
    h5::File f(path, h5::Mode::read_write);
    const std::vector<double> y = {0.5, 1.5, 2.5};
    h5::write(f, "/y", y.data(), {3});
  }
  ds = load_hdf5_dataset(path);
  CHECK(ds.num_classes == 0);
  CHECK(ds.y(2, 0) == 2.5);
  {
    h5::File f(path, h5::Mode::read_write);
    const std::vector<double> y = {0.5, NAN, 2.5};
    h5::write(f, "/y", y.data(), {3});
  }
  const std::string msg = config_error([&] { load_hdf5_dataset(path); });
  CHECK(contains(msg, path));
  CHECK(contains(msg, "data.y: row 1"));
  {
    h5::File f(path, h5::Mode::read_write);
    h5::remove(f, "/x");
  }
  CHECK(contains(config_error([&] { load_hdf5_dataset(path); }), "/x"));
  const std::string missing = dir.file("absent.h5");
  CHECK(contains(config_error([&] { load_dataset_file(missing); }), missing));
}

TEST_CASE("data: CIFAR-10 binary batches", "[data]") {
  Scratch dir("data_cifar");
  // Record r: label (r * 3) % 10, pixel j = (j + r) % 256.
  const auto batch = [](int records, int first) {
    std::vector<uint8_t> b;
    for (int r = first; r < first + records; ++r) {
      b.push_back(static_cast<uint8_t>((r * 3) % 10));
      for (int j = 0; j < 3072; ++j) b.push_back(static_cast<uint8_t>((j + r) % 256));
    }
    return b;
  };
  const std::string a = dir.file("data_batch_1.bin"), b = dir.file("data_batch_2.bin");
  write_bytes(a, batch(3, 0));
  write_bytes(b, batch(2, 3));
  const Dataset ds = load_cifar10_binary({a, b});
  REQUIRE(ds.size() == 5);
  CHECK(ds.input_dim() == 3072);
  CHECK(ds.num_classes == 10);
  CHECK(ds.output_dim() == 10);
  CHECK(ds.labels == std::vector<int>{0, 3, 6, 9, 2});
  CHECK(ds.y(3, 9) == 1.0);
  CHECK(ds.y.row(3).sum() == 1.0);
  CHECK(ds.x(0, 0) == 0.0);
  CHECK(ds.x(4, 1) == 5.0 / 255.0);          // record 4 (first of file b), pixel 1
  CHECK(ds.x(1, 3070) == 1.0);  // (3070 + 1) % 256 = 255: file order kept
  CHECK(ds.x.maxCoeff() == 1.0);

  CHECK(load_cifar10_binary({a, b}, 4).size() == 4);
  CHECK(load_dataset_file(a, 2).labels == std::vector<int>{0, 3});

  std::vector<uint8_t> cut = batch(2, 0);
  cut.pop_back();
  const std::string t = dir.file("truncated.bin");
  write_bytes(t, cut);
  const std::string msg = config_error([&] { load_cifar10_binary({a, t}); });
  CHECK(contains(msg, t));
  CHECK(contains(config_error([&] { load_dataset_file(t); }), t));
  const std::string none = dir.file("none.bin");
  CHECK(contains(config_error([&] { load_cifar10_binary({none}); }), none));
}

TEST_CASE("data: MNIST IDX files", "[data]") {
  Scratch dir("data_mnist");
  const uint32_t count = 3, rows = 2, cols = 3;
  std::vector<uint8_t> images;
  put_be32(images, 0x00000803);
  put_be32(images, count);
  put_be32(images, rows);
  put_be32(images, cols);
  for (uint32_t i = 0; i < count * rows * cols; ++i) images.push_back(static_cast<uint8_t>(i * 10));
  std::vector<uint8_t> labels;
  put_be32(labels, 0x00000801);
  put_be32(labels, count);
  for (uint8_t l : {7, 0, 9}) labels.push_back(l);
  const std::string img = dir.file("train-images-idx3-ubyte"), lab = dir.file("train-labels-idx1-ubyte");
  write_bytes(img, images);
  write_bytes(lab, labels);

  const Dataset ds = load_dataset_file(img);  // finds the labels file beside the images
  REQUIRE(ds.size() == 3);
  CHECK(ds.input_dim() == 6);
  CHECK(ds.labels == std::vector<int>{7, 0, 9});
  CHECK(ds.num_classes == 10);
  CHECK(ds.y(0, 7) == 1.0);
  CHECK(ds.x(1, 2) == 80.0 / 255.0);
  CHECK(load_mnist_idx(img, lab, 2).size() == 2);

  // Alternative naming: "idx3" -> "idx1".
  const std::string img2 = dir.file("t10k.idx3"), lab2 = dir.file("t10k.idx1");
  write_bytes(img2, images);
  write_bytes(lab2, labels);
  CHECK(load_dataset_file(img2).labels == ds.labels);

  std::vector<uint8_t> bad = images;
  bad[3] = 0x01;
  const std::string bad_magic = dir.file("bad-images-idx3-ubyte");
  write_bytes(bad_magic, bad);
  CHECK(contains(config_error([&] { load_mnist_idx(bad_magic, lab, -1); }), bad_magic));

  bad = images;
  bad.resize(bad.size() - 1);
  const std::string truncated = dir.file("cut-images-idx3-ubyte");
  write_bytes(truncated, bad);
  CHECK(contains(config_error([&] { load_mnist_idx(truncated, lab, -1); }), truncated));

  std::vector<uint8_t> short_labels = labels;
  short_labels.pop_back();
  short_labels[7] = 2;  // header count 2 with 2 labels: consistent, but disagrees with images
  const std::string lab_short = dir.file("short-labels-idx1-ubyte");
  write_bytes(lab_short, short_labels);
  CHECK(contains(config_error([&] { load_mnist_idx(img, lab_short, -1); }), lab_short));

  std::vector<uint8_t> bad_labels = labels;
  bad_labels[3] = 0x03;
  const std::string lab_magic = dir.file("magic-labels-idx1-ubyte");
  write_bytes(lab_magic, bad_labels);
  CHECK(contains(config_error([&] { load_mnist_idx(img, lab_magic, -1); }), lab_magic));
}

TEST_CASE("data: load_dataset_file rejects unknown formats", "[data]") {
  const std::string msg = config_error([] { load_dataset_file("/nonexistent/dir/data.csv"); });
  CHECK(contains(msg, "/nonexistent/dir/data.csv"));
}
