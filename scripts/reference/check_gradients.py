#!/usr/bin/python3
"""Prove the reference right: for every fixture case, in float64,

 1. autograd gradients vs central finite differences (every weight entry, step 1e-6);
 2. the stored fixture values are reproduced by the reference (dense path);
 3. the stored SGD / Adam trajectories are reproduced by hand-written update rules
    (so the exact Adam formula the C++ side must match is pinned down here):
        m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  t = step (1-based)
        W -= lr * (m / (1-b1^t)) / (sqrt(v) / sqrt(1-b2^t) + eps)

Usage: /usr/bin/python3 scripts/reference/check_gradients.py [--fixtures DIR] [--h 1e-6]
"""

import argparse
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moe_reference as ref  # noqa: E402
import make_fixtures as mf  # noqa: E402

torch.set_default_dtype(torch.float64)


def loss_at(params, cfg, x, y):
    with torch.no_grad():
        return ref.loss_fn(ref.forward(params, cfg, x, dense=True), y, cfg).item()


def fd_check(cfg, params, x, y, h):
    _, grads = ref.loss_and_grads(params, cfg, x, y, dense=True)
    out = {}
    for k in ref.WEIGHT_NAMES:
        w = params[k]
        fd = torch.zeros_like(w)
        flat_w, flat_fd = w.view(-1), fd.view(-1)
        for i in range(flat_w.numel()):
            orig = flat_w[i].item()
            flat_w[i] = orig + h
            lp = loss_at(params, cfg, x, y)
            flat_w[i] = orig - h
            lm = loss_at(params, cfg, x, y)
            flat_w[i] = orig
            flat_fd[i] = (lp - lm) / (2 * h)
        ag = grads[k]
        abs_err = (ag - fd).abs().max().item()
        scale = max(ag.abs().max().item(), fd.abs().max().item())
        out[k] = (abs_err, abs_err / scale if scale > 1e-10 else float("nan"), scale)
    return out


def manual_train(params, cfg, x, y, opt, lr, eps, steps):
    w = {k: v.clone() for k, v in params.items()}
    b1, b2 = float(cfg["beta1"]), float(cfg["beta2"])
    m = {k: torch.zeros_like(v) for k, v in w.items()}
    v = {k: torch.zeros_like(v) for k, v in w.items()}
    losses = []
    for t in range(1, steps + 1):
        loss, g = ref.loss_and_grads(w, cfg, x, y, dense=True)
        losses.append(loss)
        for i, k in enumerate(ref.WEIGHT_NAMES):
            if opt == "sgd":
                w[k] = w[k] - lr[i] * g[k]
            else:
                m[k] = b1 * m[k] + (1 - b1) * g[k]
                v[k] = b2 * v[k] + (1 - b2) * g[k] * g[k]
                denom = v[k].sqrt() / math.sqrt(1 - b2 ** t) + eps[i]
                w[k] = w[k] - (lr[i] / (1 - b1 ** t)) * m[k] / denom
    return np.array(losses), w


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default=os.path.normpath(
        os.path.join(here, "..", "..", "tests", "fixtures")))
    ap.add_argument("--h", type=float, default=1e-6, help="finite-difference step")
    args = ap.parse_args()
    worst_rel = 0.0
    ok = True
    for name in mf.CASES:
        path = os.path.join(args.fixtures, name + ".h5")
        cfg, params, x, y, st = mf.read_case(path)
        res = fd_check(cfg, params, x, y, args.h)
        parts = []
        for k, (ae, re, sc) in res.items():
            parts.append(f"{k}: rel={re:.2e} abs={ae:.2e}" if sc > 1e-10
                         else f"{k}: abs={ae:.2e} (grad identically 0)")
            if sc > 1e-10:
                worst_rel = max(worst_rel, re)
                ok &= re < 1e-6
            else:
                ok &= ae < 1e-8
        print(f"[fd] {name}: " + "; ".join(parts))
        # stored values reproduced
        with torch.no_grad():
            f = ref.forward(params, cfg, x, dense=True)
        loss, grads = ref.loss_and_grads(params, cfg, x, y, dense=True)
        d_stored = max([(f - st["f"]).abs().max().item(), abs(loss - st["loss"])] +
                       [(grads[k] - st["grads"][k]).abs().max().item() for k in grads])
        # optimizers by hand
        d_opt = 0.0
        for opt in ("sgd", "adam"):
            lr = st[f"{opt}_lr"]
            eps = st["adam_eps"] if opt == "adam" else None
            losses, final = manual_train(params, cfg, x, y, opt, lr, eps, len(st[f"{opt}_losses"]))
            d_opt = max(d_opt, np.abs(losses - st[f"{opt}_losses"]).max())
            for k in ref.WEIGHT_NAMES:
                d_opt = max(d_opt, (final[k] - st[f"{opt}_final"][k]).abs().max().item())
        print(f"     stored-values maxdiff={d_stored:.2e}  manual SGD/Adam vs stored "
              f"trajectories maxdiff={d_opt:.2e}")
        ok &= d_stored < 1e-12 and d_opt < 1e-10
    print(f"max relative FD error over all cases and tensors: {worst_rel:.2e}")
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
