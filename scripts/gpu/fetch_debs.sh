#!/usr/bin/env bash
# Download (not install) the Debian packages the moedmft build needs, with their library
# dependencies, into .debs/ (git-ignored), for a GPU machine that has CUDA, CMake, ninja and
# PyTorch but none of our -dev packages and no network. Run on a Debian 12 machine with network:
#
#   bash scripts/gpu/fetch_debs.sh            # -> .debs/*.deb and .debs/MANIFEST
#
# Then carry .debs/ to the GPU machine and run scripts/gpu/build_on_device.sh there.
# Packages already present on any Linux base system (libc, libstdc++, libgcc, ...) are skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.debs
mkdir -p "$out"

# What CMakeLists.txt asks for: Eigen, HDF5 (serial C + HL), Boost headers (Odeint), Catch2 v2,
# CLI11, toml++, OpenBLAS (+ the OpenMP runtime).
top=(libeigen3-dev libhdf5-dev libhdf5-103-1 libhdf5-hl-100 libboost-dev libboost1.74-dev catch2 libcli11-dev
     libtomlplusplus-dev libopenblas-dev libopenblas0-pthread libopenblas-pthread-dev libgomp1)

# Never shipped: base-system packages (the GPU machine has its own), the OpenMP and serial
# OpenBLAS variants (we use pthread), sanitizer runtimes, HDF5's C++/Fortran bindings and the
# -dev alternatives of libcurl / ssl / jpeg that libhdf5-dev names but our build never reads. This
# keeps .debs/ near 40 MB, under the 64 MiB a device run can carry.
skip='^(libopenblas0-openmp|libopenblas0-serial|libopenblas-openmp-dev|libopenblas-serial-dev|libasan[0-9]+|libtsan[0-9]+|liblsan[0-9]+|libubsan[0-9]+|libhdf5-fortran-.*|libhdf5-hl-fortran-.*|libhdf5-cpp-.*|libhdf5-hl-cpp-.*|libcurl4-.*-dev|libcurl3-nss|libnss3|libnspr4|nss-plugin-pem|libssl-dev|libjpeg-dev|libjpeg62-turbo-dev|pkg-config|pkgconf|pkgconf-bin|libpkgconf3|libc6|libc6-dev|libc-dev-bin|libgcc-s1|libgcc-[0-9]+-dev|gcc-[0-9]+-base|libstdc\+\+6|libstdc\+\+-[0-9]+-dev|linux-libc-dev|libcrypt1|libcrypt-dev|libnsl.*|libtirpc.*|rpcsvc-proto|debconf|dpkg|perl.*|libperl.*|tar|coreutils|bash|dash|sed|grep|base-files|debianutils|sensible-utils|install-info|zlib1g|mpi-default.*|openmpi.*|libopenmpi.*|gfortran.*|libgfortran-[0-9]+-dev|python3.*|libpython3.*)$'

echo "resolving dependencies of: ${top[*]}"
mapfile -t pkgs < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
                       --no-replaces --no-enhances "${top[@]}" 2>/dev/null |
                     grep -v '^ ' | grep -v '^<' | sort -u | grep -Ev "$skip" || true)
# Keep only amd64/all packages that apt can actually download (virtual names drop out).
echo "${#pkgs[@]} packages to download"
printf '%s\n' "${pkgs[@]}" > "$out/MANIFEST"
(
  cd "$out"
  rm -f FAILED
  for p in "${pkgs[@]}"; do
    compgen -G "${p}_*.deb" >/dev/null && continue  # already fetched (re-runs resume)
    apt-get download "$p" >/dev/null 2>&1 || echo "$p" >> FAILED
  done
)
if [[ -f "$out/FAILED" ]]; then
  echo "could not download (virtual or unavailable; usually harmless):"
  sed 's/^/  /' "$out/FAILED"
fi
n=$(ls "$out"/*.deb 2>/dev/null | wc -l)
echo "$n .deb files in $out ($(du -sh "$out" | cut -f1))"
[[ "$n" -gt 0 ]]
