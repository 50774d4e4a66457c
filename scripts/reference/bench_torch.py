#!/usr/bin/python3
"""Time PyTorch training steps (forward + backward + Adam update, float32) of the MoE network.

Uses the efficient top-K path of moe_reference (gather routed tokens per expert, index_add back).
Shapes: small (D=256, N=128, Ne=128, M=8, K=2, B=50, C=1) and
        large (D=1024, N=1024, Ne=1024, M=8, K=2, B=512, C=1); sigmoid gates, gelu, MSE, L=1.

FLOP count per step (matmuls only):
  forward  = 2*B*D*N + 2*B*N*M + sum_m 2*b_m*N*Ne*2 + 2*B*N*C    (sum_m b_m = B*K)
  backward = 2 x forward for every matmul except the input layer (weight gradient only, 1x)
  step     = forward + backward

Also measures sgemm throughput of torch.mm on a 1024x1024x1024 float32 product (ceiling).

Usage: /usr/bin/python3 scripts/reference/bench_torch.py [--threads 2] [--shapes small large]
                                                         [--repeats 7] [--json out.json]
Output: one line per shape, e.g. `torch small ms_per_step=1.234 gflops=21.5`, and
        `torch sgemm1024 ms=... gflops=...`.
"""

import argparse
import ctypes
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moe_reference as ref  # noqa: E402

SHAPES = {
    "small": dict(D=256, N=128, Ne=128, M=8, K=2, B=50, C=1),
    "large": dict(D=1024, N=1024, Ne=1024, M=8, K=2, B=512, C=1),
}
# (warm-up steps, steps per timed repeat) per shape
STEPS = {"small": (30, 50), "large": (3, 5)}


def set_threads(n):
    """torch intra-op threads and, if torch's BLAS is OpenBLAS, OpenBLAS's own thread pool."""
    torch.set_num_threads(n)
    blas = None
    for lib in ("libopenblas.so.0", "libopenblas.so"):
        try:
            h = ctypes.CDLL(lib)
            h.openblas_set_num_threads(ctypes.c_int(n))
            blas = lib
            break
        except (OSError, AttributeError):
            continue
    return blas


def flops_per_step(s):
    B, D, N, Ne, M, K, C = (s[k] for k in ("B", "D", "N", "Ne", "M", "K", "C"))
    f_in = 2 * B * D * N
    f_rest = 2 * B * N * M + 2 * (B * K) * N * Ne * 2 + 2 * B * N * C
    return (f_in + f_rest) + (f_in + 2 * f_rest)


def make_step(name, seed=0, device="cpu"):
    """The benchmark problem of a shape (also used by scripts/gpu/bench_torch_gpu.py): returns the
    shape and a function doing one Adam training step that returns the loss."""
    s = SHAPES[name]
    cfg = dict(ref.DEFAULT_CONFIG, **s)
    cfg.update(L=1, routing="topk", gate="sigmoid", activation="gelu", loss="mse",
               renormalize=0, residual=0)
    rng = np.random.default_rng(seed)
    params = ref.init_params(cfg, rng, dtype=torch.float32, router_std=s["N"] ** -0.5)
    x = torch.tensor(rng.standard_normal((s["B"], s["D"])), dtype=torch.float32, device=device)
    y = torch.tensor(rng.standard_normal((s["B"], s["C"])), dtype=torch.float32, device=device)
    p = {k: params[k].to(device).clone().requires_grad_(True) for k in ref.WEIGHT_NAMES}
    opt = torch.optim.Adam([{"params": [p[k]], "lr": 1e-4, "eps": 1e-8}
                            for k in ref.WEIGHT_NAMES], betas=(0.9, 0.999))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = ref.loss_fn(ref.forward(p, cfg, x, dense=False), y, cfg)
        loss.backward()
        opt.step()
        return loss

    return s, step


def time_steps(step, warm, nsteps, repeats, sync=lambda: None):
    """Seconds per step of each timed repeat (after `warm` untimed steps), and the last loss."""
    for _ in range(warm):
        step()
    sync()
    per_step = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(nsteps):
            loss = step()
        sync()
        per_step.append((time.perf_counter() - t0) / nsteps)
    return per_step, loss


def bench_shape(name, threads, repeats, seed=0):
    s, step = make_step(name, seed)
    warm, nsteps = STEPS[name]
    per_step, loss = time_steps(step, warm, nsteps, repeats)
    ms = 1e3 * statistics.median(per_step)
    fl = flops_per_step(s)
    return dict(impl="torch", shape=name, threads=threads, ms_per_step=ms,
                gflops=fl / (ms * 1e-3) / 1e9, flops_per_step=fl,
                ms_min=1e3 * min(per_step), ms_max=1e3 * max(per_step),
                repeats=repeats, steps_per_repeat=nsteps, final_loss=float(loss.item()),
                **s)


def bench_sgemm(threads, n=1024, repeats=7, inner=5):
    a = torch.randn(n, n, dtype=torch.float32)
    b = torch.randn(n, n, dtype=torch.float32)
    c = torch.empty(n, n, dtype=torch.float32)
    for _ in range(3):
        torch.mm(a, b, out=c)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            torch.mm(a, b, out=c)
        ts.append((time.perf_counter() - t0) / inner)
    ms = 1e3 * statistics.median(ts)
    return dict(impl="torch", shape=f"sgemm{n}", threads=threads, ms=ms,
                gflops=2.0 * n ** 3 / (ms * 1e-3) / 1e9)


def main():
    ap = argparse.ArgumentParser(description="PyTorch MoE training-step benchmark")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shapes", nargs="*", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-sgemm", action="store_true")
    ap.add_argument("--json", help="write all results to this JSON file")
    args = ap.parse_args()
    blas = set_threads(args.threads)
    print(f"# torch {torch.__version__} threads={torch.get_num_threads()} "
          f"openblas={'set via ' + blas if blas else 'not found'}", flush=True)
    results = []
    for name in args.shapes:
        r = bench_shape(name, args.threads, args.repeats)
        results.append(r)
        print(f"torch {name} ms_per_step={r['ms_per_step']:.3f} gflops={r['gflops']:.2f} "
              f"(min {r['ms_min']:.3f} max {r['ms_max']:.3f} ms, "
              f"{r['flops_per_step'] / 1e9:.4f} GFLOP/step, threads={args.threads})", flush=True)
    if not args.no_sgemm:
        r = bench_sgemm(args.threads)
        results.append(r)
        print(f"torch sgemm1024 ms={r['ms']:.3f} gflops={r['gflops']:.2f} "
              f"(threads={args.threads})", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
