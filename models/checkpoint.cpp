#include "models/checkpoint.hpp"

#include <sstream>

#include "data/h5/h5.hpp"

namespace moedmft {
namespace {

std::string join(const std::string& group, const std::string& name) {
  if (group.empty() || group == "/") return name;
  return group.back() == '/' ? group + name : group + "/" + name;
}

std::string dims_text(const std::vector<hsize_t>& dims) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < dims.size(); ++i) s << (i ? "," : "") << dims[i];
  s << "]";
  return s.str();
}

}  // namespace

template <class T>
void save_weights(int64_t loc, const std::string& group, const MoeNetwork<T>& net) {
  for (const auto& p : net.params()) {
    std::vector<hsize_t> dims(p.dims.begin(), p.dims.end());
    h5::write(hid_t(loc), join(group, p.name), p.data.data(), dims);
  }
}

template <class T>
void load_weights(int64_t loc, const std::string& group, MoeNetwork<T>& net) {
  for (auto& p : net.params()) {
    const std::string path = join(group, p.name);
    if (!h5::exists(hid_t(loc), path)) {
      if (p.group == Group::bias) {
        p.data.setZero();
        continue;
      }
      throw ConfigError("init_from: dataset '" + path + "' is missing");
    }
    std::vector<hsize_t> dims;
    const std::vector<double> values = h5::read_double(hid_t(loc), path, &dims);
    const std::vector<hsize_t> expected(p.dims.begin(), p.dims.end());
    if (dims != expected)
      throw ConfigError("init_from: dataset '" + path + "' has shape " + dims_text(dims) + ", the model needs " +
                        dims_text(expected));
    for (size_t i = 0; i < values.size(); ++i) p.data[Eigen::Index(i)] = static_cast<T>(values[i]);
  }
}

template <class T>
void load_weights_file(const std::string& path, MoeNetwork<T>& net, const std::string& group) {
  h5::File file(path, h5::Mode::read);
  std::string chosen = group;
  if (chosen.empty()) {
    for (const char* candidate : {"/", "weights_init", "weights"})
      if (h5::exists(file.id(), join(candidate, "w_in"))) {
        chosen = candidate;
        break;
      }
    if (chosen.empty()) throw ConfigError("init_from: '" + path + "' holds no w_in at /, /weights_init or /weights");
  }
  load_weights(file.id(), chosen, net);
}

template void save_weights<float>(int64_t, const std::string&, const MoeNetwork<float>&);
template void save_weights<double>(int64_t, const std::string&, const MoeNetwork<double>&);
template void load_weights<float>(int64_t, const std::string&, MoeNetwork<float>&);
template void load_weights<double>(int64_t, const std::string&, MoeNetwork<double>&);
template void load_weights_file<float>(const std::string&, MoeNetwork<float>&, const std::string&);
template void load_weights_file<double>(const std::string&, MoeNetwork<double>&, const std::string&);

}  // namespace moedmft
