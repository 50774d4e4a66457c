#!/usr/bin/env python3
"""Time PyTorch training steps of the moedmft MoE network on a CUDA device (the GPU twin of
scripts/reference/bench_torch.py, for comparison with build*/moedmft_bench_gpu).

Same model, shapes and FLOP count as scripts/reference/bench_torch.py (float32, top-K with the
gather / index_add path of moe_reference, sigmoid gates, gelu, MSE, L = 1, Adam), so the TFLOP/s
numbers are comparable with moedmft_bench_gpu's. Also times torch.mm sgemm n = 4096 (the ceiling).

Usage: python3 scripts/gpu/bench_torch_gpu.py [--shapes small large] [--repeats 7] [--tf32]
                                              [--json out.json]
Output: `torch_gpu small ms_per_step=... tflops=...` per shape, `torch_gpu sgemm4096 ...`.
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from bench_torch import SHAPES, flops_per_step, make_step, time_steps  # noqa: E402

STEPS = {"small": (30, 100), "large": (10, 50)}  # (warm-up steps, steps per timed repeat)


def bench_shape(name, repeats, dev, seed=0):
    s, step = make_step(name, seed, device=dev)
    warm, nsteps = STEPS[name]
    per_step, loss = time_steps(step, warm, nsteps, repeats, sync=torch.cuda.synchronize)
    ms = 1e3 * statistics.median(per_step)
    fl = flops_per_step(s)
    return dict(impl="torch_gpu", shape=name, ms_per_step=ms, tflops=fl / (ms * 1e-3) / 1e12, flops_per_step=fl,
                ms_min=1e3 * min(per_step), ms_max=1e3 * max(per_step), repeats=repeats,
                steps_per_repeat=nsteps, final_loss=float(loss.item()), **s)


def bench_sgemm(dev, n=4096, repeats=7, inner=20):
    a = torch.randn(n, n, dtype=torch.float32, device=dev)
    b = torch.randn(n, n, dtype=torch.float32, device=dev)
    c = torch.empty(n, n, dtype=torch.float32, device=dev)
    for _ in range(3):
        torch.mm(a, b, out=c)
    torch.cuda.synchronize()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            torch.mm(a, b, out=c)
        torch.cuda.synchronize()
        ts.append((time.perf_counter() - t0) / inner)
    ms = 1e3 * statistics.median(ts)
    return dict(impl="torch_gpu", shape=f"sgemm{n}", ms=ms, tflops=2.0 * n ** 3 / (ms * 1e-3) / 1e12)


def main():
    ap = argparse.ArgumentParser(description="PyTorch MoE training-step benchmark on CUDA")
    ap.add_argument("--shapes", nargs="*", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--tf32", action="store_true", help="allow TF32 in float32 matmuls")
    ap.add_argument("--json", help="write all results to this JSON file")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("torch_gpu: no CUDA device visible to PyTorch; nothing to benchmark")
        return
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    print(f"# torch {torch.__version__} device={torch.cuda.get_device_name(0)} tf32={int(args.tf32)}", flush=True)
    results = []
    for name in args.shapes:
        r = bench_shape(name, args.repeats, dev)
        results.append(r)
        print(f"torch_gpu {name} ms_per_step={r['ms_per_step']:.4f} tflops={r['tflops']:.4f} "
              f"(min {r['ms_min']:.4f} max {r['ms_max']:.4f} ms, {r['flops_per_step'] / 1e9:.4f} GFLOP/step)",
              flush=True)
    r = bench_sgemm(dev)
    results.append(r)
    print(f"torch_gpu sgemm4096 ms={r['ms']:.3f} tflops={r['tflops']:.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
