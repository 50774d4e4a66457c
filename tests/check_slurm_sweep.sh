#!/usr/bin/env bash
# End to end on a real Slurm: starts munged, slurmctld and slurmd on localhost from a one-node
# configuration written to a temporary directory, submits a sweep with the scripts that
# `moedmft sweep --slurm 3` writes (an array job of 3 shards, then the gather as a job that
# depends on it with afterok), and checks that the gathered file equals the same sweep run in one
# process, bit for bit except the wall times. Stops every daemon it started. Daemons that do not
# start make the test fail with the reason; it never passes without running the jobs.
set -euo pipefail
moedmft=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
python=/usr/bin/python3; [[ -x $python ]] || python=python3

work=""
pids=()
fail() {
  echo "check_slurm_sweep: FAIL: $*" >&2
  if [[ -n $work ]]; then
    for log in "$work"/*.log "$work"/out/*.slurm/*.out; do
      [[ -f $log ]] && { echo "--- $log" >&2; tail -n 15 "$log" >&2; }
    done
  fi
  exit 1
}
stop_daemons() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  stop_daemons
  [[ -n $work ]] && rm -rf "$work"
}
trap cleanup EXIT

for tool in munged munge unmunge slurmctld slurmd sbatch squeue scontrol sinfo; do
  command -v "$tool" >/dev/null || fail "'$tool' not found: install slurm-wlm and munge (scripts/setup.sh does)"
done
work=$(mktemp -d /tmp/moedmft_slurm.XXXXXX)
chmod 700 "$work"
mkdir -p "$work/munge" "$work/state" "$work/spool" "$work/out"
chmod 700 "$work/munge"

# munge: a fresh key, its own socket (the system's munged, if any, is left alone).
head -c 1024 /dev/urandom > "$work/munge/munge.key"
chmod 400 "$work/munge/munge.key"
socket=$work/munge/munge.sock
munged -F --force --socket="$socket" --key-file="$work/munge/munge.key" --pid-file="$work/munge/munged.pid" \
  --log-file="$work/munged.log" --seed-file="$work/munge/munged.seed" 2>>"$work/munged.log" &
pids+=($!)
for _ in $(seq 100); do
  munge -n --socket="$socket" 2>/dev/null | unmunge --socket="$socket" >/dev/null 2>&1 && break
  sleep 0.1
done
munge -n --socket="$socket" | unmunge --socket="$socket" >/dev/null 2>&1 || fail "munged did not start"

read -r ctld_port slurmd_port < <("$python" - <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)
host=$(hostname -s)
export SLURM_CONF=$work/slurm.conf
cat > "$SLURM_CONF" <<CONF
ClusterName=moedmfttest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
MinJobAge=600
NodeName=moedmftnode NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=moedmft Nodes=moedmftnode Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -D -f "$SLURM_CONF" >>"$work/slurmctld.log" 2>&1 &
pids+=($!)
slurmd -D -N moedmftnode -f "$SLURM_CONF" >>"$work/slurmd.log" 2>&1 &
pids+=($!)
state=""
for _ in $(seq 300); do
  state=$(sinfo -h -n moedmftnode -o %T 2>/dev/null || true)
  [[ $state == idle ]] && break
  sleep 0.1
done
[[ $state == idle ]] || fail "slurmctld + slurmd did not bring the node up (state '${state:-none}')"

# A tiny sweep: 6 points, 3 shards of 2.
cp "$here/tiny_sweep.toml" "$work/sweep.toml"
cd "$work"
"$moedmft" sweep -q -c sweep.toml -o out/sharded.h5 --slurm 3 --partition moedmft --time 00:10:00 \
  --cpus-per-task 1 > scripts.txt
grep -q -- '--array=0-2' out/sharded.h5.slurm/array.sbatch || fail "array.sbatch has no --array=0-2"
ids=$(bash out/sharded.h5.slurm/submit.sh) || fail "submit.sh failed: $ids"
[[ $ids =~ ^array=([0-9]+)\ gather=([0-9]+)$ ]] || fail "submit.sh printed '$ids'"
array=${BASH_REMATCH[1]}
gather=${BASH_REMATCH[2]}
scontrol show job "$gather" | grep -q "Dependency=afterok:${array}" || fail "the gather job does not depend on the array"
echo "check_slurm_sweep: array job $array, gather job $gather"

# The one-process sweep runs while the jobs do.
"$moedmft" sweep -q -c sweep.toml -o out/single.h5 >/dev/null

for _ in $(seq 1800); do
  [[ -z $(squeue -h -j "$array,$gather" 2>/dev/null) ]] && break
  sleep 0.1
done
[[ -z $(squeue -h -j "$array,$gather" 2>/dev/null) ]] || fail "the jobs did not finish in 180 s"
tasks=$(scontrol show job "$array" | grep -c "JobState=COMPLETED" || true)
[[ $tasks == 3 ]] || fail "$tasks of the 3 array tasks completed: $(scontrol show job "$array" | grep -o 'JobState=[A-Z]*' | tr '\n' ' ')"
scontrol show job "$gather" | grep -q "JobState=COMPLETED" || fail "the gather job did not complete"
# Each point was trained by the array task of its shard (index % 3).
"$python" - <<'PY' || fail "the point files were not written by their shards"
import h5py
for i in range(6):
    with h5py.File(f"out/sharded.h5.points/p{i}.h5", "r") as f:
        got = f.attrs["command_line"]
        got = got.decode() if isinstance(got, bytes) else got
        assert got == f"moedmft sweep --shard {i % 3}/3", (i, got)
PY
[[ -f out/sharded.h5 ]] || fail "the gather job wrote no out/sharded.h5"
"$python" "$here/h5_same.py" out/single.h5 out/sharded.h5 --ignore wall_seconds --ignore points_dir ||
  fail "the gathered file differs from the one-process sweep"
stop_daemons
echo "check_slurm_sweep: 3 array tasks and the dependent gather ran on Slurm; the gathered file equals the one-process sweep"
