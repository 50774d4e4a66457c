"""Independent PyTorch reference of the moedmft MLP-MoE block network.

Model (science/model.md sections 2 and 5, plus the binding semantics of the fixture brief):

    h = phi(x @ (s_in * w_in))                                   # [B,N]
    for each block l = 1..L (weights of block l):
        psi = h @ (s_router * w_router)                          # [B,M]
        S   = all experts (soft) | indices of the K largest psi (topk; no grad through selection)
        q_m = sigmoid(psi_m) | psi_m (linear) | softmax over the logits in S (softmax)
        if renormalize: q_m <- q_m / sum_{j in S} q_j
        g_m = c * q_m for m in S, else 0
        a_m = phi(h @ (s_expert1 * w_expert1[m]))                # [B,Ne]
        o_m = a_m @ (s_expert2 * w_expert2[m])                   # [B,N]
        moe = a * sum_m g_m * o_m
        h   = (h if residual else 0) + r * moe
    f = h @ (s_out * w_out)                                      # [B,C]

Parameters (row-major, PyTorch layout): w_in [D,N], w_router [N,M], w_expert1 [M,N,Ne],
w_expert2 [M,Ne,N], w_out [N,C]; for L > 1 the router / expert tensors carry a leading [L] axis.

Two forward implementations are provided:
  * forward(..., dense=True)  -- every expert is evaluated on every token and the
    non-selected ones are masked by a zero gate. Simple; used for the fixtures, so it is an
    independent check of the C++ gather/scatter path.
  * forward(..., dense=False) -- the top-K path gathers the tokens routed to each expert, runs
    the expert on them only and index_adds the gated outputs back. Used by the benchmark.
Both are differentiable by autograd and agree to rounding (see selftest()).
"""

import math

import torch
import torch.nn.functional as F

WEIGHT_NAMES = ("w_in", "w_router", "w_expert1", "w_expert2", "w_out")
GROUP_NAMES = ("in", "router", "expert1", "expert2", "out")

# Default configuration (keys are the fixture attribute names).
DEFAULT_CONFIG = dict(
    D=5, N=6, Ne=7, M=4, K=2, L=1, C=3, B=8,
    routing="soft", gate="sigmoid", activation="gelu", loss="mse",
    renormalize=0, residual=0,
    gate_factor=1.0, aggregation=1.0, residual_multiplier=1.0,
    s_in=1.0, s_router=1.0, s_expert1=1.0, s_expert2=1.0, s_out=1.0,
    beta1=0.9, beta2=0.999,
)


def activation_fn(name):
    if name == "gelu":
        return lambda z: F.gelu(z)  # exact erf form (torch default approximate='none')
    if name == "tanh":
        return torch.tanh
    if name == "relu":
        return torch.relu
    if name == "identity":
        return lambda z: z
    raise ValueError(f"unknown activation {name!r}")


def block_weights(params, cfg, l):
    """Router / expert weights of block l (0-based)."""
    if int(cfg["L"]) == 1:
        return params["w_router"], params["w_expert1"], params["w_expert2"]
    return params["w_router"][l], params["w_expert1"][l], params["w_expert2"][l]


def gates(psi, cfg):
    """Gate matrix g [B,M] (zero for non-selected experts) and the selection.

    Returns (g, idx, g_sel): idx [B,K] selected expert indices (None for soft routing) and
    g_sel [B,K] the gates of the selected experts (None for soft routing).
    """
    c = float(cfg["gate_factor"])
    gate = cfg["gate"]
    renorm = int(cfg["renormalize"])
    if cfg["routing"] == "soft":
        if gate == "sigmoid":
            q = torch.sigmoid(psi)
        elif gate == "softmax":
            q = torch.softmax(psi, dim=1)
        elif gate == "linear":
            q = psi
        else:
            raise ValueError(f"unknown gate {gate!r}")
        if renorm:
            q = q / q.sum(dim=1, keepdim=True)
        return c * q, None, None
    if cfg["routing"] != "topk":
        raise ValueError(f"unknown routing {cfg['routing']!r}")
    K = int(cfg["K"])
    with torch.no_grad():  # no gradient through the selection itself
        idx = torch.topk(psi.detach(), K, dim=1, largest=True, sorted=True).indices
    psi_sel = torch.gather(psi, 1, idx)  # gradient flows through the selected logits
    if gate == "sigmoid":
        q = torch.sigmoid(psi_sel)
    elif gate == "softmax":
        q = torch.softmax(psi_sel, dim=1)  # over the K selected logits only
    elif gate == "linear":
        q = psi_sel
    else:
        raise ValueError(f"unknown gate {gate!r}")
    if renorm:
        q = q / q.sum(dim=1, keepdim=True)
    g_sel = c * q
    g = torch.zeros_like(psi).scatter(1, idx, g_sel)
    return g, idx, g_sel


def moe_dense(h, g, w1, w2, cfg, phi, trace=None):
    """All experts on all tokens; non-selected experts have g = 0 (mask)."""
    pre = torch.einsum("bn,mne->mbe", h, float(cfg["s_expert1"]) * w1)  # [M,B,Ne]
    if trace is not None:
        trace.append(("expert_pre", pre.detach()))
    act = phi(pre)
    o = torch.einsum("mbe,men->mbn", act, float(cfg["s_expert2"]) * w2)  # [M,B,N]
    return float(cfg["aggregation"]) * torch.einsum("bm,mbn->bn", g, o)


def moe_sparse(h, g, idx, g_sel, w1, w2, cfg, phi):
    """Efficient top-K path: gather routed tokens per expert, index_add outputs back.

    Forward multipliers are applied to the (smaller) activations rather than to the weights;
    mathematically identical to h @ (s * W).
    """
    s1 = float(cfg["s_expert1"])
    s2a = float(cfg["s_expert2"]) * float(cfg["aggregation"])
    if idx is None:  # soft routing: every token visits every expert -> batched dense
        act = phi(torch.matmul(h.unsqueeze(0), w1) * s1)      # [M,B,Ne]
        o = torch.matmul(act, w2)                             # [M,B,N]
        return s2a * torch.einsum("bm,mbn->bn", g, o)
    B, K = idx.shape
    M = w1.shape[0]
    flat = idx.reshape(-1)                                    # [B*K], entry t*K+k
    order = torch.argsort(flat)
    counts = torch.bincount(flat, minlength=M).tolist()
    tok = torch.div(order, K, rounding_mode="floor")          # token of each routed slot
    gflat = g_sel.reshape(-1)[order]                          # gate of each routed slot
    out = torch.zeros_like(h)
    # unbind once: its backward stacks the per-expert gradients (w1[m] per expert would
    # materialise a full [M,N,Ne] zero gradient per expert in SelectBackward)
    w1s, w2s = w1.unbind(0), w2.unbind(0)
    start = 0
    for m in range(M):
        n_m = counts[m]
        if n_m == 0:
            continue
        t_m = tok[start:start + n_m]
        hm = h.index_select(0, t_m)                           # gather [b_m,N]
        am = phi(torch.mm(hm, w1s[m]) * s1)                    # [b_m,Ne]
        om = torch.mm(am, w2s[m])                            # [b_m,N]
        om = om * (s2a * gflat[start:start + n_m]).unsqueeze(1)
        out.index_add_(0, t_m, om)                            # scatter back
        start += n_m
    return out


def forward(params, cfg, x, dense=True, trace=None):
    """Network output f [B,C]. params: dict of tensors (WEIGHT_NAMES); cfg: dict (DEFAULT_CONFIG keys).

    trace: optional list that receives (name, tensor) of pre-activations, router logits and the
    top-K margins (used by the fixture generator to avoid kinks and near-ties).
    """
    phi = activation_fn(cfg["activation"])
    pre_in = x @ (float(cfg["s_in"]) * params["w_in"])
    if trace is not None:
        trace.append(("in_pre", pre_in.detach()))
    h = phi(pre_in)
    r = float(cfg["residual_multiplier"])
    for l in range(int(cfg["L"])):
        wr, w1, w2 = block_weights(params, cfg, l)
        psi = h @ (float(cfg["s_router"]) * wr)
        if trace is not None:
            trace.append(("psi", psi.detach()))
        g, idx, g_sel = gates(psi, cfg)
        if dense:
            moe = moe_dense(h, g, w1, w2, cfg, phi, trace)
        else:
            moe = moe_sparse(h, g, idx, g_sel, w1, w2, cfg, phi)
        h = (h if int(cfg["residual"]) else 0.0) + r * moe
    return h @ (float(cfg["s_out"]) * params["w_out"])


def loss_fn(f, y, cfg):
    if cfg["loss"] == "mse":
        return F.mse_loss(f, y, reduction="mean")
    if cfg["loss"] == "cross_entropy":
        return F.cross_entropy(f, y.argmax(dim=1), reduction="mean")
    raise ValueError(f"unknown loss {cfg['loss']!r}")


def loss_and_grads(params, cfg, x, y, dense=True):
    """Loss (python float) and dict of gradients w.r.t. every weight tensor."""
    p = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    loss = loss_fn(forward(p, cfg, x, dense=dense), y, cfg)
    gr = torch.autograd.grad(loss, [p[k] for k in WEIGHT_NAMES])
    return loss.item(), dict(zip(WEIGHT_NAMES, gr))


def train(params, cfg, x, y, optimizer, lr, eps=None, steps=10, dense=True, trace=None):
    """Full-batch training on (x, y). Returns (losses before each step, final weights).

    optimizer 'sgd': W <- W - lr_g * grad. optimizer 'adam': torch.optim.Adam with one parameter
    group per weight group (lr_g, eps_g), betas (beta1, beta2), no weight decay.
    """
    p = {k: params[k].detach().clone().requires_grad_(True) for k in WEIGHT_NAMES}
    if optimizer == "sgd":
        opt = torch.optim.SGD([{"params": [p[k]], "lr": float(lr[i])}
                               for i, k in enumerate(WEIGHT_NAMES)], lr=float(lr[0]))
    elif optimizer == "adam":
        opt = torch.optim.Adam([{"params": [p[k]], "lr": float(lr[i]), "eps": float(eps[i])}
                                for i, k in enumerate(WEIGHT_NAMES)],
                               betas=(float(cfg["beta1"]), float(cfg["beta2"])), weight_decay=0.0)
    else:
        raise ValueError(optimizer)
    losses = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(forward(p, cfg, x, dense=dense, trace=trace), y, cfg)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    if trace is not None:  # also check the final weights' forward pass
        with torch.no_grad():
            forward(p, cfg, x, dense=dense, trace=trace)
    return losses, {k: v.detach().clone() for k, v in p.items()}


def init_params(cfg, rng, dtype=torch.float64, router_std=0.5):
    """Weights ~ N(0, 1/fan_in) (router std router_std), drawn with a numpy Generator."""
    import numpy as np
    D, N, Ne, M, L, C = (int(cfg[k]) for k in ("D", "N", "Ne", "M", "L", "C"))
    lead = (L,) if L > 1 else ()

    def draw(shape, std):
        return torch.tensor(rng.standard_normal(shape) * std, dtype=dtype)

    return {
        "w_in": draw((D, N), 1.0 / math.sqrt(D)),
        "w_router": draw(lead + (N, M), router_std),
        "w_expert1": draw(lead + (M, N, Ne), 1.0 / math.sqrt(N)),
        "w_expert2": draw(lead + (M, Ne, N), 1.0 / math.sqrt(Ne)),
        "w_out": draw((N, C), 1.0 / math.sqrt(N)),
    }


def selftest():
    """Dense (masked) and sparse (gather/scatter) paths agree in value and gradient."""
    import numpy as np
    worst = 0.0
    for routing, gate, renorm, L in [("soft", "sigmoid", 0, 1), ("topk", "softmax", 0, 2),
                                     ("topk", "sigmoid", 1, 3), ("topk", "linear", 0, 1)]:
        cfg = dict(DEFAULT_CONFIG, routing=routing, gate=gate, renormalize=renorm, L=L,
                   residual=int(L > 1), gate_factor=0.75, aggregation=1.25, s_in=1.3)
        rng = np.random.default_rng(1)
        params = init_params(cfg, rng)
        x = torch.tensor(rng.standard_normal((cfg["B"], cfg["D"])))
        y = torch.tensor(rng.standard_normal((cfg["B"], cfg["C"])))
        l0, g0 = loss_and_grads(params, cfg, x, y, dense=True)
        l1, g1 = loss_and_grads(params, cfg, x, y, dense=False)
        worst = max(worst, abs(l0 - l1))
        for k in WEIGHT_NAMES:
            worst = max(worst, (g0[k] - g1[k]).abs().max().item())
    print(f"dense vs sparse max abs difference: {worst:.3e}")
    assert worst < 1e-12
    return worst


if __name__ == "__main__":
    selftest()
