#!/usr/bin/env bash
# Training-step benchmark: moedmft (C++) against the PyTorch reference of the same model, both
# float32 with 2 threads, and OpenBLAS sgemm measured in the same run. Needs python3-torch
# (apt-get install python3-torch), which the project itself never requires.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${THREADS:-2}
python=/usr/bin/python3; [[ -x $python ]] || python=python3
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads
ours=$(./build/experiments/moedmft_bench)
theirs=$("$python" scripts/reference/bench_torch.py --threads "$threads" --no-sgemm)
echo "$ours"
echo "$theirs" | grep -v '^#'
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
# The machine's sgemm rate: the faster of OpenBLAS and Eigen on the same square product.
sgemm=$( (echo "$ours" | grep '^openblas' | field gflops; echo "$ours" | grep '^eigen sgemm' | field gflops) |
  sort -g | tail -1)
printf '\n%-6s %14s %14s %12s %12s %10s %14s\n' shape "moedmft ms" "torch ms" "moedmft GF/s" "torch GF/s" speedup "% of sgemm"
for shape in small large; do
  m_ms=$(echo "$ours" | grep "^moedmft $shape" | field ms_per_step)
  m_gf=$(echo "$ours" | grep "^moedmft $shape" | field gflops)
  t_ms=$(echo "$theirs" | grep "^torch $shape" | field ms_per_step)
  t_gf=$(echo "$theirs" | grep "^torch $shape" | field gflops)
  awk -v s="$shape" -v a="$m_ms" -v b="$t_ms" -v c="$m_gf" -v d="$t_gf" -v g="$sgemm" \
    'BEGIN { printf "%-6s %14.3f %14.3f %12.1f %12.1f %9.1fx %13.0f%%\n", s, a, b, c, d, b / a, 100 * c / g }'
done
echo "(sgemm n=1024, the faster of OpenBLAS and Eigen: $sgemm GFLOP/s; threads=$threads)"
