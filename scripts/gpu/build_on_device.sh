#!/usr/bin/env bash
# On the GPU machine (CUDA, CMake, ninja, PyTorch; no network, none of our -dev packages):
# unpack the .deb files fetched by scripts/gpu/fetch_debs.sh into a private prefix, configure
# and build with the CUDA backend, run the CUDA tests (then the whole suite), and the GPU
# benchmarks. Everything it writes stays in the repository: .gpu-prefix/, build-gpu/ and
# results/gpu/.
#
#   bash scripts/gpu/build_on_device.sh            # all steps
#   STEPS="configure build test" bash scripts/gpu/build_on_device.sh   (steps: unpack configure build test bench)
#   CUDA_ARCH=90 BUILD_DIR=build-gpu JOBS=16 ...   # defaults
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
prefix=${MOEDMFT_DEB_PREFIX:-$root/.gpu-prefix}
build=${BUILD_DIR:-build-gpu}
arch=${CUDA_ARCH:-90}
jobs=${JOBS:-$(nproc)}
steps=${STEPS:-"unpack configure build test bench"}
out=$root/results/gpu
mkdir -p "$out"
has() { [[ " $steps " == *" $1 "* ]]; }
# On the device machine of a session's `run` tool, logs come back only from $OUT.
trap 'if [[ -n "${OUT:-}" && -d "${OUT:-}" ]]; then cp -r "$out" "$OUT/"; fi' EXIT

# --- unpack -------------------------------------------------------------------------------
extract_deb() {  # dpkg-deb when present, else a small ar reader in Python
  if command -v dpkg-deb >/dev/null; then
    dpkg-deb -x "$1" "$2"
  else
    python3 - "$1" "$2" <<'PY'
import io, sys, tarfile
deb, dest = sys.argv[1], sys.argv[2]
data = open(deb, "rb").read()
assert data[:8] == b"!<arch>\n", deb
pos = 8
while pos < len(data):
    name = data[pos:pos + 16].decode().strip().rstrip("/")
    size = int(data[pos + 48:pos + 58].decode().strip())
    body = data[pos + 60:pos + 60 + size]
    pos += 60 + size + (size & 1)
    if name.startswith("data.tar"):
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as tf:
            tf.extractall(dest)
PY
  fi
}

lib=$prefix/usr/lib/x86_64-linux-gnu
if has unpack; then
  ls .debs/*.deb >/dev/null 2>&1 || { echo "no .debs/*.deb: run scripts/gpu/fetch_debs.sh on a machine with network first"; exit 1; }
  mkdir -p "$prefix"
  for d in .debs/*.deb; do extract_deb "$d" "$prefix"; done
  # Absolute symlinks point into the real /usr: re-point them into the prefix.
  find "$prefix" -type l | while read -r l; do
    t=$(readlink "$l")
    if [[ "$t" == /* && ! -e "$l" ]]; then ln -sfn "$prefix$t" "$l"; fi
  done
  # Debian names the serial HDF5 libhdf5_serial*; give FindHDF5 a plain layout.
  mkdir -p "$prefix/hdf5/lib"
  ln -sfn "$prefix/usr/include/hdf5/serial" "$prefix/hdf5/include"
  ln -sfn "$lib/libhdf5_serial.so" "$prefix/hdf5/lib/libhdf5.so"
  ln -sfn "$lib/libhdf5_serial_hl.so" "$prefix/hdf5/lib/libhdf5_hl.so"
  echo "unpacked $(ls .debs/*.deb | wc -l) packages into $prefix"
fi
export LD_LIBRARY_PATH="$lib:$lib/openblas-pthread:$prefix/hdf5/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OMP_WAIT_POLICY=passive

# --- configure and build ------------------------------------------------------------------
if has configure; then
  boost_dir=$(ls -d "$lib"/cmake/Boost-* 2>/dev/null | head -1 || true)
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$prefix/usr" \
    -DCMAKE_INCLUDE_PATH="$prefix/usr/include" \
    -DCMAKE_LIBRARY_PATH="$lib;$lib/openblas-pthread" \
    -DHDF5_ROOT="$prefix/hdf5" -DHDF5_PREFER_PARALLEL=OFF \
    -DBLA_VENDOR=OpenBLAS \
    ${boost_dir:+-DBoost_DIR="$boost_dir"} \
    -DCMAKE_CUDA_ARCHITECTURES="$arch" -DMOEDMFT_WITH_CUDA=ON 2>&1 | tee "$out/configure.log"
  grep -q "CUDA backend enabled" "$out/configure.log" || { echo "CUDA backend not enabled (see $out/configure.log)"; exit 1; }
fi
if has build; then
  cmake --build "$build" -j"$jobs" 2>&1 | tee "$out/build.log" | tail -5
fi

# --- tests --------------------------------------------------------------------------------
if has test; then
  nvidia-smi -L || true
  # The CUDA tests first: a "skipped" line here would mean the device was not seen.
  # Failures are reported, not fatal, so that the benchmarks still run.
  "$build/tests/moedmft_tests" "[cuda]" > "$out/test_cuda_verbose.log" 2>&1 || echo "CUDA TESTS FAILED"
  grep -E "skipped|FAILED|passed|failed" "$out/test_cuda_verbose.log" | sort | uniq -c | head -20 || true
  (cd "$build" && ctest -R cuda --output-on-failure) > "$out/test_cuda.log" 2>&1 || echo "ctest -R cuda FAILED"
  tail -5 "$out/test_cuda.log"
  (cd "$build" && ctest -j"$jobs" --output-on-failure) > "$out/ctest_all.log" 2>&1 || echo "ctest (all) FAILED"
  grep -E "tests passed|Failed" "$out/ctest_all.log" | tail -15 || true
fi

# --- benchmarks ---------------------------------------------------------------------------
if has bench; then
  "$build/moedmft_bench_gpu" all 2>&1 | tee "$out/bench_gpu.log" || true
  "$build/moedmft_bench_gpu" shapes --tf32 2>&1 | tee "$out/bench_gpu_tf32.log" || true
  python3 scripts/gpu/bench_torch_gpu.py --json "$out/bench_torch_gpu.json" 2>&1 | tee "$out/bench_torch_gpu.log" || true
  python3 scripts/gpu/bench_torch_gpu.py --tf32 2>&1 | tee "$out/bench_torch_gpu_tf32.log" || true
  "$build/experiments/moedmft_bench" 2>&1 | tee "$out/bench_cpu.log" || true
  echo "results in $out"
fi
