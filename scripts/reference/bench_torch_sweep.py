#!/usr/bin/python3
"""PyTorch side of the sweep benchmark (issue 16): R small top-K MoE runs trained the ways a torch
user would, timed against experiments/bench/bench_multirun.cpp on the same problem.

Problem (as bench_multirun.cpp): D=16, N=Ne=width, M=8, K=2, C=1, B=32, L=1, top-K routing,
sigmoid gates, GELU, MSE, plain SGD with a different LR per run, float32.

Modes:
  sequential  the runs one after another, each with moe_reference's sparse top-K path (gather the
              routed tokens per expert) and torch.optim.SGD: what a sweep script does.
  stacked     all R runs as one computation (a hand-written vmap): weights stacked along a run
              axis, every product a batched matmul over runs (and experts). Top-K gives every
              expert a data-dependent token count, which a batched matmul cannot hold, so the
              experts run dense on all B tokens and the gates mask them: M/K = 4x the FLOPs.
  vmap        functorch.vmap(grad(loss)) over the stacked runs with the same dense masked
              forward (torch.func in torch >= 2.0; functorch in 1.13).

GFLOP/s count the useful (sparse) FLOPs, the formula of bench_multirun.cpp, for every mode.
Usage: /usr/bin/python3 scripts/reference/bench_torch_sweep.py [--widths 64 128 256] [--runs 24]
           [--steps 100] [--threads 2] [--repeats 3] [--modes sequential stacked vmap]
Output: one line per width and mode: `torch-sweep N=64 mode=stacked s=... gflops=...`.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_torch  # noqa: E402  (set_threads)
import moe_reference as ref  # noqa: E402

D, M, K, B, C = 16, 8, 2, 32, 1


def step_flops(n):
    routed = B * K
    f_in = 2 * B * D * n
    f_rest = 2 * B * n * M + 2 * routed * n * n * 2 + 2 * B * n * C
    return (f_in + f_rest) + (f_in + 2 * f_rest)


def run_lr(r):
    return 0.01 * (1 + r % 6)


def problem(n, runs, steps, seed=11):
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.standard_normal((steps, B, D)), dtype=torch.float32)
    y = torch.tensor(rng.standard_normal((steps, B, C)), dtype=torch.float32)
    cfg = dict(ref.DEFAULT_CONFIG, D=D, N=n, Ne=n, M=M, K=K, C=C, L=1, routing="topk", gate="sigmoid",
               activation="gelu", loss="mse", renormalize=0, residual=0)
    params = [ref.init_params(cfg, np.random.default_rng(100 + r), dtype=torch.float32, router_std=n ** -0.5)
              for r in range(runs)]
    return cfg, x, y, params


def sequential(cfg, x, y, params):
    total = 0.0
    for r, p0 in enumerate(params):
        p = {k: p0[k].clone().requires_grad_(True) for k in ref.WEIGHT_NAMES}
        opt = torch.optim.SGD(list(p.values()), lr=run_lr(r))
        for s in range(x.shape[0]):
            opt.zero_grad(set_to_none=True)
            loss = ref.loss_fn(ref.forward(p, cfg, x[s], dense=False), y[s], cfg)
            loss.backward()
            opt.step()
            total += float(loss)
    return total


def stacked_weights(params):
    return {k: torch.stack([p[k] for p in params]) for k in ref.WEIGHT_NAMES}


def dense_masked_forward(w, x):
    """f [R,B,C] of stacked runs w (every tensor with a leading run axis); the experts run dense
    and unselected experts get gate 0."""
    h = torch.nn.functional.gelu(torch.einsum("bd,rdn->rbn", x, w["w_in"]))
    psi = torch.bmm(h, w["w_router"])                                     # [R,B,M]
    idx = torch.topk(psi.detach(), K, dim=-1).indices
    g = torch.zeros_like(psi).scatter(-1, idx, torch.sigmoid(torch.gather(psi, -1, idx)))
    act = torch.nn.functional.gelu(torch.einsum("rbn,rmne->rmbe", h, w["w_expert1"]))
    o = torch.einsum("rmbe,rmen->rmbn", act, w["w_expert2"])
    return torch.bmm(torch.einsum("rbm,rmbn->rbn", g, o), w["w_out"])


def stacked(cfg, x, y, params):
    w = {k: v.clone().requires_grad_(True) for k, v in stacked_weights(params).items()}
    lrs = torch.tensor([run_lr(r) for r in range(len(params))], dtype=torch.float32)
    total = 0.0
    for s in range(x.shape[0]):
        per_run = ((dense_masked_forward(w, x[s]) - y[s]) ** 2).mean(dim=(1, 2))  # [R]
        grads = torch.autograd.grad(per_run.sum(), list(w.values()))  # run r's loss sees only its weights
        with torch.no_grad():
            for v, gv in zip(w.values(), grads):
                v -= lrs.view(-1, *([1] * (v.dim() - 1))) * gv
        total += float(per_run.sum())
    return total


def vmapped(cfg, x, y, params):
    try:
        from torch.func import grad_and_value, vmap
    except ImportError:
        from functorch import grad_and_value, vmap

    def one_run_loss(w, xb, yb):
        one = {k: v.unsqueeze(0) for k, v in w.items()}
        return ((dense_masked_forward(one, xb)[0] - yb) ** 2).mean()

    step = vmap(grad_and_value(one_run_loss), in_dims=(0, None, None))
    w = stacked_weights(params)
    lrs = torch.tensor([run_lr(r) for r in range(len(params))], dtype=torch.float32)
    total = 0.0
    for s in range(x.shape[0]):
        grads, losses = step(w, x[s], y[s])
        w = {k: v - lrs.view(-1, *([1] * (v.dim() - 1))) * grads[k] for k, v in w.items()}
        total += float(losses.sum())
    return total


MODES = {"sequential": sequential, "stacked": stacked, "vmap": vmapped}


def main():
    ap = argparse.ArgumentParser(description="PyTorch sweep-of-small-runs benchmark")
    ap.add_argument("--widths", type=int, nargs="*", default=[64, 128, 256])
    ap.add_argument("--runs", type=int, default=24)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES))
    args = ap.parse_args()
    bench_torch.set_threads(args.threads)
    print(f"# torch {torch.__version__} threads={torch.get_num_threads()} runs={args.runs} steps={args.steps}",
          flush=True)
    for n in args.widths:
        cfg, x, y, params = problem(n, args.runs, args.steps)
        flops = step_flops(n) * args.runs * args.steps
        for mode in args.modes:
            times, check = [], None
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                try:
                    check = MODES[mode](cfg, x, y, params)
                except Exception as e:  # e.g. an op without a vmap rule in this torch
                    print(f"torch-sweep N={n} mode={mode} failed: {type(e).__name__}: {str(e).splitlines()[0]}")
                    break
                times.append(time.perf_counter() - t0)
            if times:
                sec = statistics.median(times)
                print(f"torch-sweep N={n} mode={mode} s={sec:.3f} gflops={flops / sec / 1e9:.2f} "
                      f"loss-sum={check:.6f}", flush=True)


if __name__ == "__main__":
    main()
