#!/usr/bin/env bash
# `mpirun -np 2 moedmft dmft` and `dmft-moe` (regimes I, II and III) spread their replicates over the
# ranks; each file must equal the one-process solve bit for bit. 3 replicates over 2 ranks, so the
# split is uneven. With --mpi-split samples the ranks split every replicate's samples instead, and
# the file must equal the one-process file to round-off. Usage: check_mpi_dmft.sh MOEDMFT MPIEXEC CONFIG_DIR
set -euo pipefail
moedmft=$(realpath "$1")
mpiexec=$2
configs=$(realpath "$3")
here=$(cd "$(dirname "$0")" && pwd)
python=/usr/bin/python3; [[ -x $python ]] || python=python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Root in CI containers; shared memory only (no network in a container); two ranks on any machine.
mpi=("$mpiexec" -np 2 --oversubscribe --allow-run-as-root --mca btl self,vader --mca btl_vader_single_copy_mechanism none)
export OMP_NUM_THREADS=1  # the same threads per process in both runs (two ranks on few cores)

# Both runs write "<name>.h5" from their own directory: the output path is part of the recorded config.
mkdir "$work/one" "$work/mpi"
check() {  # name, then the moedmft arguments; RTOL=r in the environment: equal to r, not bitwise
  local name=$1
  shift
  (cd "$work/one" && "$moedmft" "$@" -q -o "$name.h5" >/dev/null)
  (cd "$work/mpi" && "${mpi[@]}" "$moedmft" "$@" -q -o "$name.h5" > "../$name.out" 2>&1) ||
    { cat "$work/$name.out" >&2; echo "check_mpi_dmft: $name: mpirun failed" >&2; exit 1; }
  "$python" "$here/h5_same.py" --rtol "${RTOL:-0}" "$work/one/$name.h5" "$work/mpi/$name.h5" ||
    { echo "check_mpi_dmft: $name: the 2-rank file differs from the one-process file" >&2; exit 1; }
  # Rank 0 alone printed the output path.
  [[ $(grep -c "^$name.h5\$" "$work/$name.out") == 1 ]] ||
    { cat "$work/$name.out" >&2; echo "check_mpi_dmft: $name: expected one line naming the file" >&2; exit 1; }
  echo "check_mpi_dmft: $name: 2 ranks == 1 process${RTOL:+ (to $RTOL)}"
}
small=(--set train.steps=6 --set data.P=6 --set model.M=4 --set model.K=4 --set dmft.samples=128
       --set dmft.replicates=3 --set dmft.expert_samples=64)
check regime1 dmft-moe -c "$configs/dmft_moe_regime1.toml" "${small[@]}"
check regime2 dmft-moe -c "$configs/dmft_moe_regime2.toml" "${small[@]}" --set optim.lr=0.001
check regime3 dmft-moe -c "$configs/dmft_moe_regime3.toml" "${small[@]}" --set optim.lr=0.001 \
      --set dmft.expert_samples=8 --set dmft.neuron_samples=64
dense=(--set dmft.T=8 --set dmft.samples=256 --set dmft.replicates=3 --set data.P=6)
check dense dmft "${dense[@]}"
check deep dmft --set dmft.T=4 --set dmft.L=2 --set dmft.samples=128 --set dmft.replicates=3 --set data.P=4

# The samples of every replicate split over the ranks (a collective sum at every step). The
# tolerance covers round-off after the march's Cholesky factors; a wrong split is off by O(1).
export RTOL=1e-7
check samples_regime1 dmft-moe -c "$configs/dmft_moe_regime1.toml" "${small[@]}" --mpi-split samples
check samples_regime2 dmft-moe -c "$configs/dmft_moe_regime2.toml" "${small[@]}" --set optim.lr=0.001 --mpi-split samples
check samples_regime3 dmft-moe -c "$configs/dmft_moe_regime3.toml" "${small[@]}" --set optim.lr=0.001 \
      --set dmft.expert_samples=8 --set dmft.neuron_samples=64 --mpi-split samples
check samples_dense dmft "${dense[@]}" --mpi-split samples
# auto: one replicate and two ranks split the samples
check samples_deep dmft --set dmft.T=4 --set dmft.L=2 --set dmft.samples=128 --set dmft.replicates=1 --set data.P=4
unset RTOL

# The work is really split: give rank 1 another seed (MPMD launch). Rank 1 solves replicate 1
# only, so the file holds seed 2's replicate 1 between seed 1's replicates 0 and 2.
(cd "$work/one" && "$moedmft" dmft "${dense[@]}" --set dmft.seed=2 -q -o seed2.h5 >/dev/null)
(cd "$work/mpi" && "${mpi[0]}" "${mpi[@]:3}" -np 1 "$moedmft" dmft "${dense[@]}" -q -o mixed.h5 : \
   -np 1 "$moedmft" dmft "${dense[@]}" --set dmft.seed=2 -q -o mixed.h5 > "../mixed.out" 2>&1) ||
  { cat "$work/mixed.out" >&2; echo "check_mpi_dmft: the MPMD launch failed" >&2; exit 1; }
"$python" - "$work/one/dense.h5" "$work/one/seed2.h5" "$work/mpi/mixed.h5" <<'PY' ||
import sys
import h5py
import numpy as np
seed1, seed2, mixed = (h5py.File(p, "r")["f_replicates"][()] for p in sys.argv[1:])
assert np.array_equal(mixed[0], seed1[0]) and np.array_equal(mixed[2], seed1[2]), "rank 0's replicates"
assert np.array_equal(mixed[1], seed2[1]) and not np.array_equal(mixed[1], seed1[1]), "rank 1's replicate"
PY
  { echo "check_mpi_dmft: replicate 1 did not come from rank 1" >&2; exit 1; }
echo "check_mpi_dmft: replicates 0, 2 came from rank 0 and replicate 1 from rank 1"

# The samples are really split: rank 1 draws from seed 2, so its half of every population differs
# and the solve matches neither seed's one-process file (replicates alone would leave seed 1's).
(cd "$work/mpi" && "${mpi[0]}" "${mpi[@]:3}" -np 1 "$moedmft" dmft "${dense[@]}" --mpi-split samples -q -o blend.h5 : \
   -np 1 "$moedmft" dmft "${dense[@]}" --mpi-split samples --set dmft.seed=2 -q -o blend.h5 > "../blend.out" 2>&1) ||
  { cat "$work/blend.out" >&2; echo "check_mpi_dmft: the samples MPMD launch failed" >&2; exit 1; }
"$python" - "$work/one/dense.h5" "$work/one/seed2.h5" "$work/mpi/blend.h5" <<'PY' ||
import sys
import h5py
import numpy as np
seed1, seed2, blend = (h5py.File(p, "r")["f_replicates"][()] for p in sys.argv[1:])
for r in range(3):
    for other in (seed1, seed2):
        gap = np.abs(blend[r] - other[r]).max() / np.abs(other[r]).max()
        assert gap > 1e-4, f"replicate {r}: the blend equals a one-seed solve (gap {gap:.2e})"
PY
  { echo "check_mpi_dmft: the samples of a replicate were not split over the ranks" >&2; exit 1; }
echo "check_mpi_dmft: every replicate's samples came from both ranks"

# A split that cannot be made is refused in one line on rank 0.
if "${mpi[@]}" "$moedmft" dmft "${dense[@]}" --set dmft.samples=2 --mpi-split samples -q -o "$work/tiny.h5" \
    > "$work/tiny.out" 2>&1; then
  echo "check_mpi_dmft: 2 samples over 2 ranks were not refused" >&2; exit 1
fi
grep -q "dmft.samples: 2 samples cannot be split over 2 MPI ranks" "$work/tiny.out" ||
  { cat "$work/tiny.out" >&2; echo "check_mpi_dmft: no refusal naming dmft.samples" >&2; exit 1; }

# Commands that cannot share work refuse a multi-rank launch instead of writing one file twice.
if "${mpi[@]}" "$moedmft" train -q -o "$work/train.h5" > "$work/train.out" 2>&1; then
  echo "check_mpi_dmft: 'mpirun -np 2 moedmft train' was not refused" >&2; exit 1
fi
grep -q "only dmft and dmft-moe spread over MPI ranks" "$work/train.out" ||
  { cat "$work/train.out" >&2; echo "check_mpi_dmft: no refusal message" >&2; exit 1; }
