#!/usr/bin/env bash
# Installs the Debian packages moedmft needs (only those missing; quiet when all are present)
# and configures + builds the project in ./build. Idempotent. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake ninja-build pkg-config
          libeigen3-dev libhdf5-dev libboost-dev catch2 libcli11-dev libtomlplusplus-dev libopenblas-dev zlib1g-dev
          python3 python3-numpy python3-h5py python3-matplotlib python3-xarray python3-h5netcdf
          slurm-wlm munge openmpi-bin libopenmpi-dev  # Slurm and MPI: docs/cluster.md and its tests
          dataset-fashion-mnist)  # /usr/share/datasets/fashion-mnist: docs/data.md and its tests
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

build_type=${MOEDMFT_BUILD_TYPE:-Release}
if [[ ! -f build/build.ninja ]]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="$build_type" >/dev/null
fi
if ! cmake --build build --parallel "$(nproc)" >build/build.log 2>&1; then
  tail -n 40 build/build.log >&2
  echo "setup: build failed (full log: build/build.log)" >&2
  exit 1
fi
