#include "solver/dmft/replicates.hpp"

namespace moedmft::dmft {

namespace {
ReplicateSplit& current() {
  static ReplicateSplit split;  // set once at start-up (before any solve), read by every solve
  return split;
}
ReplicateProgressFn& progress_hook() {
  static ReplicateProgressFn progress;  // set around a solve by its caller, read by the solve
  return progress;
}
}  // namespace

void set_replicate_progress(ReplicateProgressFn progress) { progress_hook() = std::move(progress); }
const ReplicateProgressFn& replicate_progress() { return progress_hook(); }

void set_replicate_split(ReplicateSplit split) { current() = std::move(split); }
const ReplicateSplit& replicate_split() { return current(); }

}  // namespace moedmft::dmft
