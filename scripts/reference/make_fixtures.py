#!/usr/bin/python3
"""Write the HDF5 test fixtures of the MoE network into tests/fixtures/ (float64, fixed seeds).

Usage:  /usr/bin/python3 scripts/reference/make_fixtures.py [--out DIR] [--check]

Every case file holds the config (root attributes), the initial weights, one batch, the output,
loss and gradients at the initial weights, and 10 full-batch SGD and Adam steps (losses before
each step and the final weights). See README.md in this directory for the layout.

Robustness: a case's seed is redrawn until, at every forward pass of the initial point and of
both training trajectories, (a) for relu no pre-activation is within MARGIN of zero, and (b) for
top-K routing the gap between the K-th and (K+1)-th largest router logit of every token exceeds
MARGIN. So an implementation that agrees to rounding cannot take a different relu branch or
select a different expert set.
"""

import argparse
import math
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moe_reference as ref  # noqa: E402

torch.set_default_dtype(torch.float64)

MARGIN = 1e-4
STEPS = 10

COMMON = dict(
    D=5, N=6, Ne=7, M=4, K=2, L=1, C=3, B=8,
    renormalize=0, residual=0,
    gate_factor=0.75, aggregation=1.25, residual_multiplier=1.0,
    s_in=1.3, s_router=0.7, s_expert1=0.9, s_expert2=1.1, s_out=0.8,
    beta1=0.9, beta2=0.999,
)

SGD_LR = [0.2, 0.1, 0.3, 0.25, 0.15]              # in, router, expert1, expert2, out
ADAM_LR = [3e-3, 5e-3, 2e-3, 4e-3, 1e-2]
ADAM_EPS = [1e-8, 1e-7, 1e-6, 3e-8, 5e-7]

CASES = {
    "soft_sigmoid_gelu_mse": dict(
        routing="soft", gate="sigmoid", activation="gelu", loss="mse", seed=1000),
    "topk_softmax_tanh_mse": dict(
        routing="topk", gate="softmax", activation="tanh", loss="mse", K=2, seed=2000),
    "topk_sigmoid_renorm_gelu_mse": dict(
        routing="topk", gate="sigmoid", activation="gelu", loss="mse", K=2, renormalize=1,
        seed=3000),
    "soft_linear_relu_ce_depth2": dict(
        routing="soft", gate="linear", activation="relu", loss="cross_entropy", L=2,
        residual=1, residual_multiplier=1.0 / math.sqrt(2.0), seed=4000),
    "topk_softmax_gelu_depth3_residual": dict(
        routing="topk", gate="softmax", activation="gelu", loss="mse", K=1, L=3, residual=1,
        seed=5000),
}


def case_config(name):
    spec = dict(CASES[name])
    seed = spec.pop("seed")
    cfg = dict(COMMON)
    cfg.update(spec)
    if cfg["routing"] == "soft":
        cfg["K"] = cfg["M"]
    return cfg, seed


def draw_data(cfg, seed):
    rng = np.random.default_rng(seed)
    params = ref.init_params(cfg, rng, router_std=0.5)
    B, D, C = cfg["B"], cfg["D"], cfg["C"]
    x = torch.tensor(rng.standard_normal((B, D)))
    if cfg["loss"] == "cross_entropy":
        y = torch.zeros(B, C)
        y[torch.arange(B), torch.tensor(rng.integers(0, C, size=B))] = 1.0
    else:
        y = torch.tensor(rng.standard_normal((B, C)))
    return params, x, y


def margins(trace, cfg):
    """(min |relu pre-activation|, min top-K logit gap) over a trace; inf where not applicable."""
    relu_m, gap_m = math.inf, math.inf
    for name, t in trace:
        if name in ("in_pre", "expert_pre") and cfg["activation"] == "relu":
            relu_m = min(relu_m, t.abs().min().item())
        if name == "psi" and cfg["routing"] == "topk" and cfg["K"] < cfg["M"]:
            s = torch.sort(t, dim=1, descending=True).values
            K = cfg["K"]
            gap_m = min(gap_m, (s[:, K - 1] - s[:, K]).min().item())
    return relu_m, gap_m


def build_case(name, max_tries=1000):
    cfg, seed0 = case_config(name)
    for attempt in range(max_tries):
        seed = seed0 + attempt
        params, x, y = draw_data(cfg, seed)
        trace = []
        with torch.no_grad():
            f = ref.forward(params, cfg, x, dense=True, trace=trace)
        loss, grads = ref.loss_and_grads(params, cfg, x, y, dense=True)
        sgd_losses, sgd_final = ref.train(params, cfg, x, y, "sgd", SGD_LR, steps=STEPS,
                                          trace=trace)
        adam_losses, adam_final = ref.train(params, cfg, x, y, "adam", ADAM_LR, ADAM_EPS,
                                            steps=STEPS, trace=trace)
        relu_m, gap_m = margins(trace, cfg)
        if relu_m > MARGIN and gap_m > MARGIN:
            break
    else:
        raise RuntimeError(f"{name}: no seed with margins > {MARGIN} in {max_tries} tries")
    assert abs(sgd_losses[0] - loss) < 1e-14 * max(1.0, abs(loss))
    assert abs(adam_losses[0] - loss) < 1e-14 * max(1.0, abs(loss))
    return dict(cfg=cfg, seed=seed, params=params, x=x, y=y, f=f, loss=loss, grads=grads,
                sgd_losses=sgd_losses, sgd_final=sgd_final,
                adam_losses=adam_losses, adam_final=adam_final,
                relu_margin=relu_m, topk_gap=gap_m)


INT_ATTRS = ("D", "N", "Ne", "M", "K", "L", "C", "B", "renormalize", "residual")
STR_ATTRS = ("routing", "gate", "activation", "loss")
DBL_ATTRS = ("gate_factor", "aggregation", "residual_multiplier", "s_in", "s_router",
             "s_expert1", "s_expert2", "s_out", "beta1", "beta2")


def np64(t):
    return np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float64))


def write_case(path, c):
    cfg = c["cfg"]
    with h5py.File(path, "w") as h:
        for k in INT_ATTRS:
            h.attrs[k] = np.int64(cfg[k])
        for k in STR_ATTRS:
            h.attrs[k] = str(cfg[k])  # h5py: variable-length UTF-8 scalar string attribute
        for k in DBL_ATTRS:
            h.attrs[k] = np.float64(cfg[k])
        h.attrs["seed"] = np.int64(c["seed"])
        for k in ref.WEIGHT_NAMES:
            h.create_dataset(f"weights/{k}", data=np64(c["params"][k]))
        h.create_dataset("batch/x", data=np64(c["x"]))
        h.create_dataset("batch/y", data=np64(c["y"]))
        h.create_dataset("f", data=np64(c["f"]))
        h.create_dataset("loss", data=np.float64(c["loss"]))  # scalar dataspace
        for k in ref.WEIGHT_NAMES:
            h.create_dataset(f"grads/{k}", data=np64(c["grads"][k]))
        h.create_dataset("sgd/lr", data=np.array(SGD_LR, dtype=np.float64))
        h.create_dataset("sgd/losses", data=np.array(c["sgd_losses"], dtype=np.float64))
        h.create_dataset("adam/lr", data=np.array(ADAM_LR, dtype=np.float64))
        h.create_dataset("adam/eps", data=np.array(ADAM_EPS, dtype=np.float64))
        h.create_dataset("adam/losses", data=np.array(c["adam_losses"], dtype=np.float64))
        for k in ref.WEIGHT_NAMES:
            h.create_dataset(f"sgd/final_weights/{k}", data=np64(c["sgd_final"][k]))
            h.create_dataset(f"adam/final_weights/{k}", data=np64(c["adam_final"][k]))


def read_case(path):
    """Read a fixture back: (cfg, params, x, y, dict of stored results)."""
    with h5py.File(path, "r") as h:
        cfg = {}
        for k in INT_ATTRS:
            cfg[k] = int(h.attrs[k])
        for k in STR_ATTRS:
            v = h.attrs[k]
            cfg[k] = v.decode() if isinstance(v, bytes) else str(v)
        for k in DBL_ATTRS:
            cfg[k] = float(h.attrs[k])
        params = {k: torch.tensor(h[f"weights/{k}"][()]) for k in ref.WEIGHT_NAMES}
        x = torch.tensor(h["batch/x"][()])
        y = torch.tensor(h["batch/y"][()])
        stored = {
            "f": torch.tensor(h["f"][()]),
            "loss": float(h["loss"][()]),
            "grads": {k: torch.tensor(h[f"grads/{k}"][()]) for k in ref.WEIGHT_NAMES},
            "sgd_lr": h["sgd/lr"][()], "sgd_losses": h["sgd/losses"][()],
            "adam_lr": h["adam/lr"][()], "adam_eps": h["adam/eps"][()],
            "adam_losses": h["adam/losses"][()],
            "sgd_final": {k: torch.tensor(h[f"sgd/final_weights/{k}"][()])
                          for k in ref.WEIGHT_NAMES},
            "adam_final": {k: torch.tensor(h[f"adam/final_weights/{k}"][()])
                           for k in ref.WEIGHT_NAMES},
        }
    return cfg, params, x, y, stored


def verify_file(path):
    """Recompute a fixture from its own contents with the sparse (gather/scatter) path."""
    cfg, params, x, y, st = read_case(path)
    worst = 0.0
    with torch.no_grad():
        f = ref.forward(params, cfg, x, dense=False)
    worst = max(worst, (f - st["f"]).abs().max().item())
    loss, grads = ref.loss_and_grads(params, cfg, x, y, dense=False)
    worst = max(worst, abs(loss - st["loss"]))
    for k in ref.WEIGHT_NAMES:
        worst = max(worst, (grads[k] - st["grads"][k]).abs().max().item())
    for opt, lr, eps in (("sgd", st["sgd_lr"], None),
                         ("adam", st["adam_lr"], st["adam_eps"])):
        losses, final = ref.train(params, cfg, x, y, opt, lr, eps, steps=STEPS, dense=False)
        worst = max(worst, np.abs(np.array(losses) - st[f"{opt}_losses"]).max())
        for k in ref.WEIGHT_NAMES:
            worst = max(worst, (final[k] - st[f"{opt}_final"][k]).abs().max().item())
    return worst


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.normpath(os.path.join(here, "..", "..", "tests", "fixtures"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=default_out, help="output directory (tests/fixtures)")
    ap.add_argument("--only", nargs="*", help="case names to (re)generate")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name in CASES:
        if args.only and name not in args.only:
            continue
        c = build_case(name)
        path = os.path.join(args.out, name + ".h5")
        write_case(path, c)
        diff = verify_file(path)
        size = os.path.getsize(path)
        print(f"{name}: seed={c['seed']} size={size}B loss={c['loss']:.6f} "
              f"sgd {c['sgd_losses'][0]:.6f}->{c['sgd_losses'][-1]:.6f} "
              f"adam {c['adam_losses'][0]:.6f}->{c['adam_losses'][-1]:.6f} "
              f"relu_margin={c['relu_margin']:.3g} topk_gap={c['topk_gap']:.3g} "
              f"sparse_recheck_maxdiff={diff:.2e}")
        assert size < 100_000, f"{path} is {size} bytes"
        assert diff < 1e-10, f"{name}: sparse path disagrees with stored fixture ({diff})"


if __name__ == "__main__":
    main()
