// In-memory datasets and the ways to obtain them: a seeded teacher-student generator and
// loaders for HDF5, CIFAR-10 binary and (gzipped) MNIST-layout IDX files.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "models/types.hpp"

namespace moedmft {

struct Dataset {
  Mat<double> x;            // [P, D]
  Mat<double> y;            // [P, C] regression targets, or one-hot / +-1 labels
  std::vector<int> labels;  // [P] class indices for classification, empty for regression
  int num_classes = 0;      // 0 for regression
  std::string description;  // provenance, recorded in outputs

  int size() const { return static_cast<int>(x.rows()); }
  int input_dim() const { return static_cast<int>(x.cols()); }
  int output_dim() const { return static_cast<int>(y.cols()); }
  Dataset rows(int begin, int count) const;  // contiguous slice
  void validate() const;                     // shapes agree, finite values; throws ConfigError
};

// Targets for classification: C == 1 and two classes -> +-1 (binary MSE convention);
// otherwise one-hot over num_classes.
Mat<double> targets_from_labels(const std::vector<int>& labels, int num_classes, bool binary_pm1);

enum class TeacherKind { dense, moe };
enum class TaskKind { regression, classification };

struct TeacherConfig {
  TeacherKind kind = TeacherKind::dense;
  TaskKind task = TaskKind::regression;
  int P = 1024;             // training points
  int P_val = 0;            // extra validation points drawn from the same teacher
  int D = 16;               // input dimension; x ~ N(0, I_D)
  int C = 1;                // outputs (classes for classification; C == 1 means binary +-1)
  int hidden = 64;          // teacher hidden width (per expert for the MoE teacher)
  int experts = 4;          // MoE teacher experts (soft softmax routing)
  double label_noise = 0.0; // regression: additive N(0, noise^2); classification: flip prob.
  uint64_t seed = 1;
};

struct TrainValSplit {
  Dataset train;
  Dataset val;  // empty (0 rows) when P_val == 0
};

// Deterministic in (config, seed), independent of thread count.
TrainValSplit make_teacher_dataset(const TeacherConfig& cfg);

// HDF5: /x [P,D] float; /y either [P] integer classes or [P,C] float targets.
Dataset load_hdf5_dataset(const std::string& path);
void save_hdf5_dataset(const std::string& path, const Dataset& ds);
// The same layout into an open file (`loc`: the file), for writers that make it atomic.
void write_hdf5_dataset(int64_t loc, const Dataset& ds);

// CIFAR-10 binary: records of 1 label byte + 3072 pixel bytes; pixels scaled to [0,1].
Dataset load_cifar10_binary(const std::vector<std::string>& files, int max_points = -1);
// MNIST-layout IDX files (images idx3-ubyte, labels idx1-ubyte), gzipped or plain; pixels scaled
// to [0,1]; the first max_points images (-1: all). Bad files (wrong magic, truncated, sizes that
// overflow or exceed memory, count mismatch) are one-line ConfigErrors naming the file.
Dataset load_mnist_idx(const std::string& images_path, const std::string& labels_path, int max_points = -1);

// Where Debian's dataset-fashion-mnist package puts the four gzipped IDX files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// The four files of an MNIST-layout folder (NAME.gz preferred over NAME).
struct MnistFolder {
  std::string train_images, train_labels, test_images, test_labels;
};
MnistFolder find_mnist_folder(const std::string& dir);
// Both splits: train (first max_train, -1: all) and test as `val` (first max_test; 0: none).
TrainValSplit load_mnist_folder(const std::string& dir, int max_train = -1, int max_test = -1);

// Standardise inputs to zero mean / unit variance per feature using the given statistics source.
void standardize_inputs(Dataset& target, const Dataset& statistics_from);

// Dispatch on a path: ".h5"/".hdf5" -> HDF5, "*idx3*" (also .gz) -> MNIST (labels beside it),
// ".bin" -> CIFAR-10. Throws ConfigError naming the path on failure.
Dataset load_dataset_file(const std::string& path, int max_points = -1);

}  // namespace moedmft
