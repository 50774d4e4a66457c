#include "models/checkpoint.hpp"

#include <map>
#include <sstream>
#include <stdexcept>

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

// The named dimensions of one group's tensor; a deep network's extra leading axis is "block".
std::vector<std::string> dim_names(Group g, size_t rank) {
  static const std::map<Group, std::vector<std::string>> names = {
      {Group::in, {"feature", "hidden"}},
      {Group::router, {"hidden", "expert"}},
      {Group::expert1, {"expert", "hidden", "expert_hidden"}},
      {Group::expert2, {"expert", "expert_hidden", "hidden"}},
      {Group::out, {"hidden", "output"}},
      {Group::bias, {"expert"}}};
  std::vector<std::string> d = names.at(g);
  if (rank == d.size() + 1) d.insert(d.begin(), "block");
  if (rank != d.size()) throw std::logic_error("save_weights: unexpected rank of a parameter tensor");
  return d;
}

}  // namespace

template <class T>
void save_weights(int64_t loc, const std::string& group, const MoeNetwork<T>& net) {
  // Index scales inside the group, so xarray opens it alone with named dimensions.
  std::map<std::string, hsize_t> sizes;
  for (const auto& p : net.params()) {
    const auto names = dim_names(p.group, p.dims.size());
    for (size_t a = 0; a < names.size(); ++a) sizes[names[a]] = hsize_t(p.dims[a]);
  }
  for (const auto& [name, n] : sizes) h5::write_index_scale(hid_t(loc), join(group, name), n);
  for (const auto& p : net.params()) {
    std::vector<hsize_t> dims(p.dims.begin(), p.dims.end());
    const std::string path = join(group, p.name);
    h5::write(hid_t(loc), path, p.data.data(), dims);
    std::vector<std::string> scales;
    for (const auto& n : dim_names(p.group, p.dims.size())) scales.push_back(join(group, n));
    h5::attach_scales(hid_t(loc), path, scales);
    h5::describe(hid_t(loc), path, std::string("weights of parameter group ") + group_name(p.group));
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
