// Gzipped MNIST-layout IDX files: generated folders (both splits, subsets, standardisation,
// validation on the test split), bad files with one-line errors naming them, and the installed
// Fashion-MNIST package's real files.
#include <zlib.h>

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
#include "experiments/sweep.hpp"
#include "experiments/trainer.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace moedmft;
using moedmft::testing::config_error;
using moedmft::testing::put_be32;
using moedmft::testing::Scratch;

namespace {

using Bytes = std::vector<uint8_t>;

void write_gz(const std::string& path, const Bytes& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  if (!bytes.empty()) REQUIRE(gzwrite(f, bytes.data(), unsigned(bytes.size())) == int(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

void write_plain(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

Bytes image_header(uint32_t count, uint32_t rows, uint32_t cols) {
  Bytes b;
  for (uint32_t v : {0x00000803u, count, rows, cols}) put_be32(b, v);
  return b;
}

// count images of rows x cols; pixel j of image i is (7 i + 3 j + seed) mod 256.
Bytes images(uint32_t count, uint32_t rows, uint32_t cols, int seed) {
  Bytes b = image_header(count, rows, cols);
  for (uint32_t i = 0; i < count; ++i)
    for (uint32_t j = 0; j < rows * cols; ++j) b.push_back(static_cast<uint8_t>((7 * i + 3 * j + seed) % 256));
  return b;
}

Bytes labels(uint32_t count, int seed) {
  Bytes b;
  put_be32(b, 0x00000801u);
  put_be32(b, count);
  for (uint32_t i = 0; i < count; ++i) b.push_back(static_cast<uint8_t>((i + seed) % 10));
  return b;
}

// A Fashion-MNIST-layout folder of 2x3 images: 40 train, 20 test.
void write_folder(const fs::path& dir) {
  fs::create_directories(dir);
  write_gz((dir / "train-images-idx3-ubyte.gz").string(), images(40, 2, 3, 1));
  write_gz((dir / "train-labels-idx1-ubyte.gz").string(), labels(40, 0));
  write_gz((dir / "t10k-images-idx3-ubyte.gz").string(), images(20, 2, 3, 5));
  write_gz((dir / "t10k-labels-idx1-ubyte.gz").string(), labels(20, 3));
}

// The error names the file, fits on one line and says `what`.
void check_error(const std::string& msg, const std::string& file, const std::string& what) {
  INFO(msg);
  CHECK(msg.find(file) != std::string::npos);
  CHECK(msg.find(what) != std::string::npos);
  CHECK(msg.find('\n') == std::string::npos);
}

}  // namespace

TEST_CASE("data: gzipped IDX folders load both splits with subsets", "[data][idx]") {
  Scratch scratch("idx_folder");
  const fs::path dir = scratch.dir / "fmnist";
  write_folder(dir);

  const TrainValSplit s = load_mnist_folder(dir.string());
  REQUIRE(s.train.size() == 40);
  REQUIRE(s.val.size() == 20);
  CHECK(s.train.input_dim() == 6);
  CHECK(s.train.num_classes == 10);
  CHECK(s.train.x(3, 4) == double((7 * 3 + 3 * 4 + 1) % 256) / 255.0);
  CHECK(s.val.x(19, 5) == double((7 * 19 + 3 * 5 + 5) % 256) / 255.0);
  CHECK(s.train.labels[13] == 3);
  CHECK(s.val.labels[13] == 6);
  CHECK(s.val.y(13, 6) == 1.0);
  CHECK(s.val.y.row(13).sum() == 1.0);
  CHECK(s.train.description == "idx " + dir.string() + " train P=40");

  const TrainValSplit sub = load_mnist_folder(dir.string(), 7, 0);
  CHECK(sub.train.size() == 7);
  CHECK(sub.val.size() == 0);
  CHECK(sub.train.x == s.train.x.topRows(7));
  CHECK(load_mnist_folder(dir.string(), -1, 5).val.x == s.val.x.topRows(5));

  // Plain files read the same through gzopen; a .gz path dispatches (labels found beside it).
  const std::string plain = scratch.file("train-images-idx3-ubyte");
  write_plain(plain, images(40, 2, 3, 1));
  write_plain(scratch.file("train-labels-idx1-ubyte"), labels(40, 0));
  CHECK(load_dataset_file(plain).x == s.train.x);
  const Dataset gz = load_dataset_file((dir / "t10k-images-idx3-ubyte.gz").string(), 4);
  CHECK(gz.x == s.val.x.topRows(4));
  CHECK(gz.labels == std::vector<int>{3, 4, 5, 6});

  fs::remove(dir / "t10k-labels-idx1-ubyte.gz");
  check_error(config_error([&] { load_mnist_folder(dir.string()); }), dir.string(), "t10k-labels-idx1-ubyte[.gz]");
  check_error(config_error([&] { load_dataset_file(dir.string()); }), dir.string(), "data.source = \"fashion-mnist\"");
}

TEST_CASE("data: bad IDX files give one-line errors naming the file", "[data][idx]") {
  Scratch scratch("idx_bad");
  const std::string good_labels = scratch.file("labels-idx1-ubyte.gz");
  write_gz(good_labels, labels(4, 0));
  const auto load = [&](const std::string& img) { return config_error([&] { load_mnist_idx(img, good_labels); }); };
  const Bytes good = images(4, 2, 3, 0);

  Bytes bad_magic = good;
  bad_magic[3] = 0x02;
  const std::string magic = scratch.file("magic.gz");
  write_gz(magic, bad_magic);
  check_error(load(magic), magic, "bad magic number 0x00000802 (expected 0x00000803)");

  const std::string cut = scratch.file("cut.gz");
  write_gz(cut, Bytes(good.begin(), good.end() - 1));
  check_error(load(cut), cut, "truncated: header promises 4 items of 6 bytes, file holds 23 bytes");

  const std::string extra = scratch.file("extra.gz");
  Bytes longer = good;
  longer.push_back(0);
  write_gz(extra, longer);
  check_error(load(extra), extra, "trailing data");

  const std::string header_only = scratch.file("header.gz");
  write_gz(header_only, Bytes(good.begin(), good.begin() + 10));
  check_error(load(header_only), header_only, "truncated IDX header");

  // A compressed stream cut short: zlib reports it, the loader names the file.
  const std::string stream = scratch.file("stream.gz");
  write_gz(stream, images(400, 28, 28, 0));
  fs::resize_file(stream, fs::file_size(stream) / 2);
  check_error(load(stream), stream, "truncated");

  // rows = cols = 2^31: a 2^62-byte payload must not pass the size check (16-byte plain file),
  // and with 2^32 - 1 images the 64-bit product overflows.
  const std::string huge = scratch.file("huge-idx3-ubyte");
  write_plain(huge, image_header(1, 1u << 31, 1u << 31));
  check_error(load(huge), huge, "header promises 1 items of 4611686018427387904 bytes");
  const std::string huge_gz = scratch.file("huge.gz");
  write_gz(huge_gz, image_header(1, 1u << 31, 1u << 31));
  check_error(load(huge_gz), huge_gz, "4611686018427387904 values per item, more than the 1048576 allowed");
  const std::string overflow = scratch.file("overflow.gz");
  write_gz(overflow, image_header(0xffffffffu, 1u << 31, 1u << 31));
  check_error(load(overflow), overflow, "overflow 64 bits");

  // A header whose data would not fit in memory is refused before anything is allocated.
  const std::string absurd = scratch.file("absurd.gz");
  write_gz(absurd, image_header(2000000000u, 1000, 1000));
  check_error(load(absurd), absurd, "available (data.max_points");

  const std::string fine = scratch.file("images-idx3-ubyte.gz");
  write_gz(fine, good);
  const std::string few = scratch.file("few-labels.gz");
  write_gz(few, labels(3, 0));
  check_error(config_error([&] { load_mnist_idx(fine, few); }), few, "3 labels but '" + fine + "' has 4 images");
  Bytes bad_label = labels(4, 0);
  bad_label[9] = 10;
  const std::string ten = scratch.file("ten-labels.gz");
  write_gz(ten, bad_label);
  check_error(config_error([&] { load_mnist_idx(fine, ten); }), ten, "label 1 is 10, outside 0..9");
  const std::string none = scratch.file("missing.gz");
  check_error(config_error([&] { load_mnist_idx(none, good_labels); }), none, "cannot open");
  CHECK(load_mnist_idx(fine, good_labels).size() == 4);  // the fixtures themselves are fine
}

TEST_CASE("config: data.source fashion-mnist validates on the test split, standardised", "[data][idx][config]") {
  Scratch scratch("idx_config");
  const fs::path dir = scratch.dir / "fmnist";
  write_folder(dir);

  const RunConfig defaults = parse_run_config("[data]\nsource = \"fashion-mnist\"\n", {});
  CHECK(defaults.data.path == kFashionMnistDir);
  CHECK(defaults.data.standardize);
  CHECK(defaults.data.test_points == -1);
  CHECK(!parse_run_config("", {}).data.standardize);
  check_error(config_error([] { parse_run_config("", {"data.source=\"fashion-mnist\"", "data.val_points=10"}); }),
              "data.val_points", "data.test_points");
  check_error(config_error([] { parse_run_config("", {"data.test_points=-2"}); }), "data.test_points", "-1");

  const std::vector<std::string> sets = {"data.source=\"fashion-mnist\"", "data.path=\"" + dir.string() + "\"",
                                         "data.max_points=30", "data.test_points=12", "model.N=8", "model.Ne=8",
                                         "model.M=2", "model.K=1", "model.loss=\"cross_entropy\"",
                                         "train.steps=6", "train.batch_size=5", "train.diag_every=3",
                                         "train.probe_size=5"};
  RunConfig cfg = parse_run_config("", sets);
  const RunData data = prepare_data(cfg, sets);
  CHECK(cfg.shape.D == 6);  // the files decide D and C
  CHECK(cfg.shape.C == 10);
  REQUIRE(data.train.size() == 30);
  REQUIRE(data.val.size() == 12);
  // Standardised with the training statistics: train columns have mean 0, sd 1; test does not.
  for (int j = 0; j < 6; ++j) {
    CHECK(std::abs(data.train.x.col(j).mean()) < 1e-12);
    CHECK(data.train.x.col(j).squaredNorm() / 30 == Approx(1.0).epsilon(1e-12));
  }
  CHECK(std::abs(data.val.x.col(0).mean()) > 1e-3);

  const ResolvedParam p = resolve_run_param(cfg);
  MoeNetwork<double> net = build_network<double>(cfg, p);
  const RunOutcome out = train_run(cfg, data, net);
  REQUIRE(out.diag_steps == std::vector<long>{0, 3, 6});
  for (size_t k = 0; k < out.diag_steps.size(); ++k) {
    CHECK(std::isfinite(out.val_loss[k]));
    CHECK(out.val_loss[k] > 0.0);
    // top-1 accuracy over 12 test points: a multiple of 1/12 in [0, 1]
    CHECK(out.val_accuracy[k] >= 0.0);
    CHECK(out.val_accuracy[k] <= 1.0);
    CHECK(std::abs(out.val_accuracy[k] * 12 - std::round(out.val_accuracy[k] * 12)) < 1e-9);
  }
}

// A sweep on file data: the file decides D and C in each point's recorded config, the data is
// loaded once for all points, and gather and --resume accept the points (they once compared the
// config before the file's dims, refusing every point of a file sweep).
TEST_CASE("sweep: points on an IDX folder gather and resume and equal a lone train run", "[data][idx][sweep]") {
  Scratch scratch("idx_sweep");
  const fs::path dir = scratch.dir / "fmnist";
  write_folder(dir);
  const std::string spec_text = "output = \"" + scratch.file("s.h5") + "\"\nparallel = 2\n"
                                "[base.data]\nsource = \"fashion-mnist\"\npath = \"" + dir.string() + "\"\n"
                                "test_points = 12\n[base.model]\nN = 8\nNe = 8\nM = 2\nK = 1\n"
                                "loss = \"cross_entropy\"\n[base.train]\nsteps = 6\nbatch_size = 5\n"
                                "diag_every = 3\nprobe_size = 5\n"
                                "[[axis]]\nname = \"param\"\nkey = \"param.table\"\nvalues = [\"sp\", \"mup-I-sgd\"]\n"
                                "[[axis]]\nname = \"lr\"\nkey = \"optim.lr\"\nvalues = [0.05, 0.2]\n";
  const SweepSpec spec = parse_sweep_spec(spec_text, {});
  CHECK(run_sweep(spec, {}).trained == 4);
  REQUIRE(fs::exists(spec.output));
  SweepOptions resume;
  resume.resume = true;
  CHECK(run_sweep(spec, resume).skipped == 4);
  gather_sweep(spec);

  h5::File f(spec.output, h5::Mode::read);
  const std::vector<std::string> configs = h5::read_strings(f, "config_toml");
  REQUIRE(configs.size() == 4);
  // Point 3 (mup-I-sgd, lr 0.2) trained alone from its recorded config gives the same losses.
  RunConfig cfg = parse_run_config(configs[3], {}, "point 3");
  CHECK(cfg.shape.D == 6);
  CHECK(cfg.shape.C == 10);
  const RunData data = prepare_data(cfg, {});
  const ResolvedParam p = resolve_run_param(cfg);
  MoeNetwork<double> net = build_network<double>(cfg, p);
  const RunOutcome alone = train_run(cfg, data, net);
  const std::vector<double> losses = h5::read_double(f, "train_loss");  // [point, step]
  REQUIRE(losses.size() == 4 * alone.train_loss.size());
  const size_t T = alone.train_loss.size();
  for (size_t t = 0; t < T; ++t) CHECK(losses[3 * T + t] == alone.train_loss[t]);
  const std::vector<double> accuracy = h5::read_double(f, "val_accuracy");  // [point, diag_step]
  REQUIRE(accuracy.size() == 4 * alone.val_accuracy.size());
  for (size_t r = 0; r < alone.val_accuracy.size(); ++r)
    CHECK(accuracy[3 * alone.val_accuracy.size() + r] == alone.val_accuracy[r]);
}

// The real files: scripts/setup.sh installs dataset-fashion-mnist, so their absence is a failure.
TEST_CASE("data: the installed Fashion-MNIST files", "[data][idx][fashion-mnist]") {
  if (!fs::is_directory(kFashionMnistDir))
    FAIL("Debian package dataset-fashion-mnist is not installed (" << kFashionMnistDir << " missing); run scripts/setup.sh");
  const TrainValSplit s = load_mnist_folder(kFashionMnistDir);
  REQUIRE(s.train.size() == 60000);
  REQUIRE(s.val.size() == 10000);
  CHECK(s.train.input_dim() == 784);
  CHECK(s.val.input_dim() == 784);
  std::vector<int> train_counts(10), test_counts(10);
  for (int l : s.train.labels) ++train_counts.at(l);
  for (int l : s.val.labels) ++test_counts.at(l);
  CHECK(train_counts == std::vector<int>(10, 6000));
  CHECK(test_counts == std::vector<int>(10, 1000));
  // Measured once with numpy on the raw bytes: mean pixel 72.94035223214286 (train),
  // 73.14656658163265 (test); the first training image (an ankle boot, label 9) sums to 76247.
  // Tolerance 1e-10: the /255 scaling rounds (~3e-12), one pixel off by one shifts it by 3e-10.
  CHECK(s.train.x.mean() * 255.0 == Approx(72.94035223214286).epsilon(1e-10));
  CHECK(s.val.x.mean() * 255.0 == Approx(73.14656658163265).epsilon(1e-10));
  CHECK(std::round(s.train.x.row(0).sum() * 255.0) == 76247.0);
  CHECK(std::vector<int>(s.train.labels.begin(), s.train.labels.begin() + 5) == std::vector<int>{9, 0, 0, 3, 0});
}
