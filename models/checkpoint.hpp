// Weights in HDF5 with the names and row-major layouts of model.md section 2, so they move
// to and from PyTorch (h5py) unchanged.
#pragma once
#include <cstdint>
#include <string>

#include "models/network.hpp"

namespace moedmft {

// loc is an HDF5 hid_t. Writes w_in, w_router, w_expert1, w_expert2, w_out, b_router under `group` of `loc`.
template <class T>
void save_weights(int64_t loc, const std::string& group, const MoeNetwork<T>& net);

// Reads them back, checking every dataset's shape against the network's; a missing
// b_router is taken as zero (PyTorch models without Jiang biases).
template <class T>
void load_weights(int64_t loc, const std::string& group, MoeNetwork<T>& net);

// Loads from a file. group "" picks the first that exists of: the root (a bare weight file,
// e.g. written by h5py), "weights_init" (a training output: reproduces that run), "weights".
template <class T>
void load_weights_file(const std::string& path, MoeNetwork<T>& net, const std::string& group = "");

}  // namespace moedmft
