// Dataset slicing, validation, label targets and input standardisation.
#include "data/dataset.hpp"

#include <cmath>
#include <stdexcept>

namespace moedmft {
namespace {

// Names the first non-finite entry of m, as "<field>: row r contains a non-finite value".
void require_finite(const Mat<double>& m, const char* field) {
  for (Eigen::Index r = 0; r < m.rows(); ++r)
    if (!m.row(r).allFinite())
      throw ConfigError(std::string(field) + ": row " + std::to_string(r) + " contains a non-finite value");
}

}  // namespace

Dataset Dataset::rows(int begin, int count) const {
  if (begin < 0 || count < 0 || begin + count > size())
    throw std::out_of_range("Dataset::rows(" + std::to_string(begin) + ", " + std::to_string(count) +
                            ") outside a dataset of " + std::to_string(size()) + " points");
  Dataset out;
  out.x = x.middleRows(begin, count);
  out.y = y.middleRows(begin, count);
  if (!labels.empty()) out.labels.assign(labels.begin() + begin, labels.begin() + begin + count);
  out.num_classes = num_classes;
  out.description = description;
  return out;
}

void Dataset::validate() const {
  const int P = size();
  if (P <= 0) throw ConfigError("data.x: the dataset has no points (P = 0)");
  if (x.cols() <= 0) throw ConfigError("data.x: the inputs have no features (D = 0)");
  if (y.rows() != P)
    throw ConfigError("data.y: " + std::to_string(y.rows()) + " rows but data.x has " + std::to_string(P));
  if (y.cols() <= 0) throw ConfigError("data.y: the targets have no columns (C = 0)");
  if (num_classes < 0) throw ConfigError("data.num_classes: must be >= 0, got " + std::to_string(num_classes));
  if (num_classes > 0) {
    if (num_classes < 2)
      throw ConfigError("data.num_classes: classification needs >= 2 classes, got " + std::to_string(num_classes));
    if (static_cast<int>(labels.size()) != P)
      throw ConfigError("data.labels: " + std::to_string(labels.size()) + " labels for " + std::to_string(P) +
                        " points");
    for (int i = 0; i < P; ++i)
      if (labels[i] < 0 || labels[i] >= num_classes)
        throw ConfigError("data.labels: row " + std::to_string(i) + " has class " + std::to_string(labels[i]) +
                          " outside [0, " + std::to_string(num_classes) + ")");
    const bool pm1 = num_classes == 2 && y.cols() == 1;
    if (!pm1 && y.cols() != num_classes)
      throw ConfigError("data.y: " + std::to_string(y.cols()) + " columns for " + std::to_string(num_classes) +
                        " classes (expected " + std::to_string(num_classes) + ", or 1 for two classes)");
  } else if (!labels.empty()) {
    throw ConfigError("data.labels: labels given for a regression dataset (num_classes = 0)");
  }
  require_finite(x, "data.x");
  require_finite(y, "data.y");
}

Mat<double> targets_from_labels(const std::vector<int>& labels, int num_classes, bool binary_pm1) {
  if (num_classes < 1) throw ConfigError("data.num_classes: must be >= 1, got " + std::to_string(num_classes));
  const Eigen::Index P = static_cast<Eigen::Index>(labels.size());
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] < 0 || labels[i] >= num_classes)
      throw ConfigError("data.labels: row " + std::to_string(i) + " has class " + std::to_string(labels[i]) +
                        " outside [0, " + std::to_string(num_classes) + ")");
  if (binary_pm1 && num_classes == 2) {
    Mat<double> y(P, 1);
    for (Eigen::Index i = 0; i < P; ++i) y(i, 0) = labels[i] == 1 ? 1.0 : -1.0;
    return y;
  }
  Mat<double> y = Mat<double>::Zero(P, num_classes);
  for (Eigen::Index i = 0; i < P; ++i) y(i, labels[i]) = 1.0;
  return y;
}

void standardize_inputs(Dataset& target, const Dataset& statistics_from) {
  const Eigen::Index D = statistics_from.x.cols(), P = statistics_from.x.rows();
  if (P == 0) throw ConfigError("data.x: cannot standardise with statistics from an empty dataset");
  if (target.x.cols() != D)
    throw ConfigError("data.x: cannot standardise " + std::to_string(target.x.cols()) +
                      " features with statistics of " + std::to_string(D));
  const Eigen::RowVectorXd mean = statistics_from.x.colwise().mean();
  Eigen::RowVectorXd sd = (statistics_from.x.rowwise() - mean).colwise().squaredNorm() / static_cast<double>(P);
  // Constant features (e.g. always-black MNIST border pixels) are only centred.
  for (Eigen::Index j = 0; j < D; ++j) sd(j) = sd(j) > 0.0 ? std::sqrt(sd(j)) : 1.0;
  target.x = (target.x.rowwise() - mean).array().rowwise() / sd.array();
  target.description += " standardized";
}

}  // namespace moedmft
