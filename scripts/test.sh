#!/usr/bin/env bash
# Set up (install what is missing, build) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cd build
# ctest runs test processes side by side on few cores: threads that sleep instead of spinning at
# OpenMP barriers keep them from starving each other.
export OMP_WAIT_POLICY=passive
ctest --output-on-failure --parallel "$(nproc)" --timeout 600
