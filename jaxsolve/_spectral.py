"""Spectral estimates and starts for the iterative solvers: Lanczos extremes, a randomized
range-finder start, a scaled Gaussian start, and the nudge off the saddle at X = 0.

``S`` may be a dense (N, N) array or any symmetric operator with ``@``, ``shape`` and
``dtype`` (the observed-entries operator of :mod:`._observed`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._numerics import safe_divide, safe_norm, safe_sqrt


def lanczos_extremes(S: jax.Array, steps: int = 32) -> tuple[jax.Array, jax.Array]:
    """Estimates of (λ_min, λ_max) of symmetric S from ``min(N, steps)`` Lanczos steps with
    full reorthogonalisation from a fixed start: O(N²·steps). Ritz values lie inside the
    spectrum and the extremes converge first; exact (LAPACK) when N ≤ ``steps``."""
    n = S.shape[-1]
    if n <= steps:
        lam = jnp.linalg.eigvalsh(S)
        return lam[0], lam[-1]
    rng = np.random.default_rng(0x1A2C)
    v = rng.standard_normal(n) + 1.0
    Q = jnp.zeros((steps + 1, n), S.dtype).at[0].set(jnp.asarray(v / np.linalg.norm(v), S.dtype))
    # fresh directions for a breakdown (an invariant subspace found: the Krylov space of an
    # identity is one vector); T then splits into blocks, each with Ritz values in the spectrum
    fresh = jnp.asarray(rng.standard_normal((steps, n)), S.dtype)
    eps = jnp.finfo(S.dtype).eps

    def orthogonalised(w, Q):
        w = w - Q.T @ (Q @ w)
        return w - Q.T @ (Q @ w)

    def body(j, carry):
        Q, alpha, beta = carry
        Sq = S @ Q[j]
        w = orthogonalised(Sq, Q)
        b = safe_norm(w)
        breakdown = b <= 1e3 * eps * safe_norm(Sq)
        w = jnp.where(breakdown, orthogonalised(fresh[j], Q), w)
        q = safe_divide(w, safe_norm(w))
        alpha = alpha.at[j].set(jnp.dot(Sq, Q[j]))
        return Q.at[j + 1].set(q), alpha, beta.at[j].set(jnp.where(breakdown, 0.0, b))

    zeros = jnp.zeros(steps, S.dtype)
    _, alpha, beta = lax.fori_loop(0, steps, body, (Q, zeros, zeros))
    off = beta[: steps - 1]
    theta = jnp.linalg.eigvalsh(jnp.diag(alpha) + jnp.diag(off, 1) + jnp.diag(off, -1))
    return theta[0], theta[-1]


def spectral_init(S: jax.Array, rank: int, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A rank-``rank`` factor from a randomized eigendecomposition of S (Halko, Martinsson &
    Tropp 2011): range finder with 10 extra columns and two power steps, then Rayleigh–Ritz,
    O(N²·(k + 10)); the start ScaledGD assumes. Also returns the Ritz values (ascending):
    they lie inside S's spectrum, pulled towards its eigenvalues of largest magnitude."""
    n = S.shape[-1]
    Y = S @ jax.random.normal(key, (n, min(n, rank + 10)), S.dtype)
    for _ in range(2):
        Y = S @ jnp.linalg.qr(Y)[0]
    Q = jnp.linalg.qr(Y)[0]
    theta, W = jnp.linalg.eigh(Q.T @ S @ Q)
    top_vals, top_vecs = theta[::-1][:rank], W[:, ::-1][:, :rank]
    return (Q @ top_vecs) * safe_sqrt(top_vals), theta


def random_init(n: int, rank: int, key: jax.Array, lam_max: jax.Array, dtype) -> jax.Array:
    """A Gaussian factor with ‖X‖₂² about λ_max/4: small enough that gd's default step is
    stable from it (the curvature of f grows with ‖X‖₂²), large enough to leave the saddle
    at 0 quickly."""
    scale = 0.5 * safe_sqrt(lam_max) / (math.sqrt(n) + math.sqrt(rank))
    return scale * jax.random.normal(key, (n, rank), dtype)


def nudged_from_zero(X0: jax.Array, lam_max: jax.Array) -> jax.Array:
    """X0, or a small constant Gaussian factor where X·Xᵀ is negligible (‖X0‖² ≤ eps·λ_max):
    X = 0 is a saddle of f, near which gradient and step vanish, and a solve would pass
    for stationary."""
    n, k = X0.shape
    direction = np.random.default_rng(0x0DD6E).standard_normal((n, k)).astype(X0.dtype)
    nudge = 1e-3 * safe_sqrt(lam_max / n) * direction
    negligible = jnp.sum(X0 * X0) <= jnp.finfo(X0.dtype).eps * lam_max
    return jnp.where(negligible, nudge, X0)
