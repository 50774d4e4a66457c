#!/usr/bin/env python3
"""Straightforward NumPy reference of the dense DMFT solver (solver/dmft, docs/dmft.md).

Conventions (same as the C++ solver): loss L = 0.5 * sum_mu (y_mu - f_mu)^2, DMFT learning rate eta
(network: eta_net = gamma0^2 N eta), f = <z phi(h^L)> / gamma0, K^x = x x^T / D, steps t = 0..T.

  two_layer(x, y, T, S, gamma0, eta, act, seed)   L = 1 march (exact width-S network)
  deep_sweep(x, y, L, T, S, gamma0, eta, act, seed) L >= 2 causal sweep (lower Cholesky grown by one
                                                   block row per step, Stein responses)
  python3 dmft_numpy.py bench [S]                 time per sweep and GFLOP/s at n = P(T+1) ~ 2000, 4000
  python3 dmft_numpy.py check                     quick statistical self-checks
Use /usr/bin/python3 (it has numpy).
"""
import sys
import time

import numpy as np

try:
    from scipy.linalg import solve_triangular
except ImportError:  # plain solve is correct, only slower
    def solve_triangular(a, b, lower=True):
        return np.linalg.solve(a, b)
from math import erf, sqrt, pi

_erf = np.vectorize(erf)


def act_both(name, h):
    if name == "tanh":
        t = np.tanh(h)
        return t, 1.0 - t * t
    if name == "relu":
        return np.maximum(h, 0.0), (h > 0).astype(float)
    if name == "identity":
        return h.copy(), np.ones_like(h)
    if name == "gelu":
        cdf = 0.5 * (1.0 + _erf(h / sqrt(2.0)))
        return h * cdf, cdf + h * np.exp(-0.5 * h * h) / sqrt(2.0 * pi)
    raise ValueError(name)


def sample_fields(Kx, S, rng, antithetic=True):
    """u ~ N(0, Kx) rows, z ~ N(0,1); antithetic pairs (u, z), (u, -z)."""
    P = Kx.shape[0]
    w, V = np.linalg.eigh(Kx)
    R = V * np.sqrt(np.maximum(w, 0.0))
    xi = rng.standard_normal((S, P))
    z = rng.standard_normal(S)
    if antithetic:
        xi[1::2] = xi[0::2]
        z[1::2] = -z[0::2]
    return xi @ R.T, z


def two_layer(x, y, T, S, gamma0, eta, act="tanh", seed=0, H=None, z=None):
    P, D = x.shape
    Kx = x @ x.T / D
    rng = np.random.default_rng(seed)
    if H is None:
        H, z = sample_fields(Kx, S, rng)
    H, z = H.copy(), z.copy()
    S = H.shape[0]
    f_hist, loss, Phi, G = [], [], [], []
    for t in range(T + 1):
        A, Dp = act_both(act, H)
        g = Dp * z[:, None]
        f = A.T @ z / (gamma0 * S)
        delta = y - f
        f_hist.append(f)
        loss.append(0.5 * delta @ delta)
        Phi.append(A.T @ A / S)
        G.append(g.T @ g / S)
        if t == T:
            break
        H = H + eta * gamma0 * (g * delta) @ Kx
        z = z + eta * gamma0 * A @ delta
    return np.array(f_hist), np.array(loss), Phi, G


class CausalChol:
    """Lower Cholesky factor grown one block row at a time; dead (zero) pivots are skipped."""

    def __init__(self, n, floor):
        self.L = np.zeros((n, n))
        self.dead = np.zeros(n, bool)
        self.floor = floor

    def extend(self, C, K0, P):
        L = self.L
        if K0 > 0:
            L00 = L[:K0, :K0]
            X = solve_triangular(L00, C[:, :K0].T, lower=True).T  # C L00^{-T}
            X[:, self.dead[:K0]] = 0.0
            L[K0:K0 + P, :K0] = X
        Sd = C[:, K0:K0 + P] - L[K0:K0 + P, :K0] @ L[K0:K0 + P, :K0].T
        fl = self.floor * max(np.abs(np.diag(C[:, K0:K0 + P])).max(), 1e-300)
        Lkk = np.zeros((P, P))
        for j in range(P):
            d = Sd[j, j] - Lkk[j, :j] @ Lkk[j, :j]
            if not d > fl:
                self.dead[K0 + j] = True
                Lkk[j, j] = 1.0
                continue
            Lkk[j, j] = sqrt(d)
            for i in range(j + 1, P):
                Lkk[i, j] = (Sd[i, j] - Lkk[i, :j] @ Lkk[j, :j]) / Lkk[j, j]
        L[K0:K0 + P, K0:K0 + P] = Lkk

    def whiten(self, F, W, K0, P):
        R = F[:, K0:K0 + P] - W[:, :K0] @ self.L[K0:K0 + P, :K0].T
        Wk = solve_triangular(self.L[K0:K0 + P, K0:K0 + P], R.T, lower=True).T
        Wk[:, self.dead[K0:K0 + P]] = 0.0
        W[:, K0:K0 + P] = Wk

    def sample(self, noise, K0, P):
        noise[:, K0:K0 + P][:, self.dead[K0:K0 + P]] = 0.0
        return noise[:, :K0 + P] @ self.L[K0:K0 + P, :K0 + P].T


def deep_sweep(x, y, L, T, S, gamma0, eta, act="tanh", seed=0, floor=1e-10):
    """Single causal sweep for L >= 2 hidden layers (same equations as solver/dmft/deep.cpp)."""
    P, D = x.shape
    n = (T + 1) * P
    Kx = x @ x.T / D
    rng = np.random.default_rng(seed)
    u1, z0 = sample_fields(Kx, S, rng)
    zeta = [None] + [rng.standard_normal((S, n)) for _ in range(L - 1)]
    rho = [rng.standard_normal((S, n)) for _ in range(L - 1)] + [None]
    for a in range(1, L):
        zeta[a][1::2] = zeta[a][0::2]
    for a in range(L - 1):
        rho[a][1::2] = -rho[a][0::2]
    z = lambda: np.zeros((S, n))
    phi, dphi, g, gd, pd = ([z() for _ in range(L)] for _ in range(5))
    X = [z() for _ in range(L)]
    Y = [z() for _ in range(L)]
    Lphi = [CausalChol(n, floor) for _ in range(L)]
    LG = [CausalChol(n, floor) for _ in range(L)]
    H1, zL = u1.copy(), z0.copy()
    step = eta * gamma0
    f_hist, loss = [], []
    for k in range(T + 1):
        K0, sl = k * P, slice(k * P, k * P + P)
        phi[0][:, sl], dphi[0][:, sl] = act_both(act, H1)
        for a in range(L - 1):
            pk = phi[a][:, sl]
            C = pk.T @ phi[a][:, :K0 + P] / S
            Lphi[a].extend(C, K0, P)
            Lphi[a].whiten(phi[a], X[a], K0, P)
            h = Lphi[a].sample(zeta[a + 1], K0, P)
            if k > 0:
                CA = rho[a][:, :K0].T @ pk / S
                h += Y[a + 1][:, :K0] @ CA
                h += step * gd[a + 1][:, :K0] @ C[:, :K0].T
            phi[a + 1][:, sl], dphi[a + 1][:, sl] = act_both(act, h)
        pL = phi[L - 1][:, sl]
        f = pL.T @ zL / (gamma0 * S)
        delta = y - f
        f_hist.append(f)
        loss.append(0.5 * delta @ delta)
        g[L - 1][:, sl] = dphi[L - 1][:, sl] * zL[:, None]
        for a in range(L - 2, -1, -1):
            gk = g[a + 1][:, sl]
            C = gk.T @ g[a + 1][:, :K0 + P] / S
            LG[a + 1].extend(C, K0, P)
            LG[a + 1].whiten(g[a + 1], Y[a + 1], K0, P)
            zz = LG[a + 1].sample(rho[a], K0, P)
            CB = zeta[a + 1][:, :K0 + P].T @ gk / S
            zz += X[a][:, :K0 + P] @ CB
            if k > 0:
                zz += step * pd[a][:, :K0] @ C[:, :K0].T
            g[a][:, sl] = dphi[a][:, sl] * zz
        for a in range(L):
            gd[a][:, sl] = g[a][:, sl] * delta
            pd[a][:, sl] = phi[a][:, sl] * delta
        H1 = H1 + step * gd[0][:, sl] @ Kx
        zL = zL + step * pL @ delta
    return np.array(f_hist), np.array(loss)


def linear_cov_discrete(Kx, y, gamma0, eta, T):
    P = Kx.shape[0]
    Sig = np.zeros((P + 1, P + 1))
    Sig[:P, :P] = Kx
    Sig[P, P] = 1.0
    out = []
    for _ in range(T + 1):
        f = Sig[:P, P] / gamma0
        out.append(f)
        d = y - f
        A = np.eye(P + 1)
        A[:P, P] += eta * gamma0 * Kx @ d
        A[P, :P] += eta * gamma0 * d
        Sig = A @ Sig @ A.T
    return np.array(out)


def check():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((3, 5)), rng.standard_normal(3)
    Kx = x @ x.T / 5
    ref = linear_cov_discrete(Kx, y, 1.0, 0.05, 40)
    runs = np.array([two_layer(x, y, 40, 4096, 1.0, 0.05, "identity", seed=s)[0] for s in range(8)])
    z = np.abs(runs.mean(0) - ref) / (runs.std(0, ddof=1) / np.sqrt(8) + 1e-300)
    print("two-layer linear vs exact covariance recursion: max z = %.2f" % z[1:].max())
    runs = np.array([deep_sweep(x[:2], y[:2], 2, 6, 1024, 1.0, 0.2, "tanh", seed=s)[0] for s in range(4)])
    print("deep sweep L=2 tanh f(T) = %s +- %s" % (runs.mean(0)[-1], runs.std(0, ddof=1)[-1] / 2))


def bench(S=512):
    for P, T in ((20, 99), (40, 99)):
        n = P * (T + 1)
        rng = np.random.default_rng(2)
        x, y = rng.standard_normal((P, 16)), rng.standard_normal(P)
        t0 = time.perf_counter()
        deep_sweep(x, y, 2, T, S, 1.0, 0.05, "tanh")
        dt = time.perf_counter() - t0
        flops = 12.0 * S * n * n + 2.0 * n ** 3 / 3
        print("numpy deep sweep L=2 P=%d T=%d n=%d S=%d: %.2f s, %.2f GFLOP/s" % (P, T, n, S, dt, flops / dt * 1e-9))
    m = 2000
    A, B = np.random.rand(m, m), np.random.rand(m, m)
    A @ B
    t0 = time.perf_counter()
    A @ B
    dt = time.perf_counter() - t0
    print("numpy dgemm %d^3: %.1f GFLOP/s" % (m, 2 * m ** 3 / dt * 1e-9))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "bench":
        bench(int(sys.argv[2]) if len(sys.argv) > 2 else 512)
    else:
        check()
