// Internal to the sweep sources (sweep_spec.cpp, sweep.cpp, sweep_gather.cpp).
#pragma once
#include <string>

#include "experiments/sweep.hpp"
#include "experiments/toml_section.hpp"

namespace moedmft::detail {

// A TOML value as text; floats in their shortest exact form ("0.1", "2.0").
std::string node_text(const toml::node& node);

// gather_sweep without taking the output's lock (run_sweep already holds it).
void gather_unlocked(const SweepSpec& spec);

}  // namespace moedmft::detail
