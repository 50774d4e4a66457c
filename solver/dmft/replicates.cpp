#include "solver/dmft/replicates.hpp"

namespace moedmft::dmft {

namespace {
ReplicateSplit& current() {
  static ReplicateSplit split;  // set once at start-up (before any solve), read by every solve
  return split;
}
}  // namespace

void set_replicate_split(ReplicateSplit split) { current() = std::move(split); }
const ReplicateSplit& replicate_split() { return current(); }

}  // namespace moedmft::dmft
