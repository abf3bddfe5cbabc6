"""Rank-k factors of a dense symmetric S at Krylov speed: block Rayleigh–Ritz (LOBPCG).

Minimising f(X) = ¼‖X·Xᵀ − S‖²_F over the factors X = Q·Y whose columns lie in the span of
an orthonormal basis Q is the top-k eigenproblem of QᵀSQ: X = Q·U_k·sqrt(max(Θ_k, 0)). Each
step solves that small problem exactly for the basis [V, W, P]: V the current m Ritz vectors
(k wanted + a few guard vectors), W the orthonormalised residual S·V − V·Θ (it spans, beside
V, the preconditioned gradient g·(XᵀX)⁻¹ of precgd), P the previous step's direction. That is
LOBPCG without preconditioner (Knyazev 2001), whose eigenvector error contracts like
(1 − √ξ)/(1 + √ξ) a step, ξ = (λ_k − λ_{m+1})/(λ_k − λ_min): Krylov speed, where the
gradient step contracts like λ_{m+1}/λ_k.

Stability (Hetmaniuk & Lehoucq 2006; Duersch, Shao, Yang & Gu 2018): W is projected out of
[V, P] and orthonormalised twice by :func:`orthonormal_columns` (SVQB), which drops the
directions that are numerically dependent instead of inverting an ill-conditioned Gram; P is
built in the small space as the part of the new Ritz vectors outside the old V, made
orthogonal to them there, so that [V, W, P] stays orthonormal and S·P follows from products
already taken: one product S·W (N×(m+1)) a step. The Rayleigh–Ritz solve corrects for the
basis's Gram (I up to rounding), so that rounding in the basis does not accumulate.

The stopping rule is :func:`._iterative._decide`'s: SUCCESS once the relative residual is at
most ``atol``, or once precgd's step ½·∇f·(XᵀX + δI)⁻¹ would change X·Xᵀ by at most
``rtol·‖S‖`` (certified with an exact product S·V: a step whose products came from the
recurrence is re-measured with a fresh one first). Works on one matrix in ``solve``'s
scaled units; static shapes throughout (``vmap`` and ``jit``).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from ._checks import default_tol
from ._iterative import IterOptions, _decide, _Measured, product_change_norm
from ._numerics import relative, safe_norm, safe_sqrt
from ._solution import Status

GUARD_VECTORS = 4
"""Ritz vectors kept beyond the k wanted: they speed up the k-th when λ_{k+1} ≈ λ_k is
followed by a drop, and make a start orthogonal to the top eigenvectors (an x0 at a saddle)
escape through their random columns."""
ACTIVE_COLUMNS = 16
"""Columns a step works on once the leading Ritz vectors are locked (see locking_split)."""
LOCK_FRACTION = 0.1
"""Lock a Ritz vector once its residual is this fraction of rtol·‖S‖/sqrt(k)."""


# --- small pieces ----------------------------------------------------------------------------


def _drop_tolerance(dtype, columns: int) -> float:
    """Directions of a column-scaled Gram below this fraction of its largest eigenvalue are
    numerically dependent: orthonormalising them would amplify rounding by 1/sqrt(s)."""
    return 10.0 * columns * float(jnp.finfo(dtype).eps)


def _dependence_ratio(dtype, columns: int) -> float:
    """A column whose norm a projection shrinks below this fraction was in the span
    projected out, up to rounding."""
    return 100.0 * math.sqrt(columns) * float(jnp.finfo(dtype).eps)


def project_out(W: jax.Array, *bases: jax.Array) -> jax.Array:
    """W minus its components along each orthonormal basis B (B·Bᵀ·W, one after another)."""
    for B in bases:
        W = W - B @ (B.T @ W)
    return W


def orthonormal_columns(W: jax.Array) -> tuple[jax.Array, jax.Array]:
    """SVQB (Stathopoulos & Wu 2002): W·D·U·s^(-1/2) from the eigendecomposition
    U·diag(s)·Uᵀ of the Gram of W's columns scaled to unit norm (D). Returns (Q, kept): Q has
    W's shape, orthonormal columns where ``kept`` and zero columns where the direction was
    numerically dependent on the others (s ≤ tol·max s) or W had none (a zero column)."""
    G = W.T @ W
    d = jnp.diagonal(G)
    tiny = jnp.finfo(W.dtype).tiny
    d_inv = jnp.where(d > tiny, 1 / jnp.sqrt(jnp.where(d > tiny, d, 1.0)), 0.0)
    s, U = jnp.linalg.eigh(G * d_inv[:, None] * d_inv[None, :])
    kept = s > _drop_tolerance(W.dtype, W.shape[-1]) * jnp.max(s)
    scale = jnp.where(kept, 1 / jnp.sqrt(jnp.where(kept, s, 1.0)), 0.0)
    return W @ ((d_inv[:, None] * U) * scale), kept


def _orthonormal_twice(W: jax.Array, *bases: jax.Array) -> tuple[jax.Array, jax.Array]:
    """W projected out of ``bases`` and orthonormalised, twice ("twice is enough"). A column
    that the projection shrinks to rounding (by more than :func:`_dependence_ratio`) lies in
    the bases' span: its remainder is noise with components along them, and it is dropped
    (zeroed) instead of normalised."""
    ratio = _dependence_ratio(W.dtype, W.shape[-1])

    def once(_, carry):
        W = carry[0]
        before = safe_norm(W, axis=0)
        W = project_out(W, *bases)
        W = jnp.where(safe_norm(W, axis=0) > ratio * before, W, 0.0)
        return orthonormal_columns(W)

    return lax.fori_loop(0, 2, once, (W, jnp.zeros(W.shape[-1], bool)))


class _Ritz(NamedTuple):
    """A Rayleigh–Ritz solve over a basis Q (q columns): the kept Ritz values (the top m
    descending, then the smallest), their coordinates Y (q, m + 1), the maps to and from
    coordinates in which the basis is orthonormal, Y there (orthonormal columns), and every
    Ritz value, descending (those of invalid directions, ``floor``, at the bottom)."""

    theta: jax.Array  # (m + 1,)
    Y: jax.Array  # (q, m + 1)
    to_orthonormal: jax.Array  # (q, q) ≈ G^(1/2)
    from_orthonormal: jax.Array  # (q, q) ≈ G^(-1/2)
    kept: jax.Array  # (q, m + 1) = to_orthonormal·Y
    every: jax.Array  # (q,)


def rayleigh_ritz(Q: jax.Array, SQ: jax.Array, ok: jax.Array, m: int, floor) -> _Ritz:
    """The top m Ritz pairs of S over span(Q), and the smallest (which tracks λ_min for the
    PSD check at the cost of one more column). Only the columns where ``ok`` count; the
    others (zero columns) are decoupled with Ritz value ``floor``, below every real one.

    Q is orthonormal up to rounding (G = QᵀQ = I + E, ‖E‖ a few eps): the solve runs in
    the coordinates T·y, T = (3I − G)/2 = G^(-1/2) + O(‖E‖²) (a Newton–Schulz step), so
    that the new Ritz vectors are orthonormal to O(eps) whatever rounding the basis
    carries, and nothing accumulates from step to step."""
    q = Q.shape[-1]
    both = ok[:, None] & ok[None, :]
    eye = jnp.eye(q, dtype=Q.dtype)
    E = jnp.where(both, Q.T @ Q, eye) - eye
    inv_root, root = eye - 0.5 * E, eye + 0.5 * E
    H = Q.T @ SQ
    H = jnp.where(both, 0.5 * (H + H.T), eye * jnp.where(ok, 0.0, floor))
    theta, U = jnp.linalg.eigh(inv_root @ H @ inv_root)
    theta, U = theta[::-1], U[:, ::-1]
    smallest = jnp.sum(ok) - 1  # (the invalid values come after it)
    cols = jnp.concatenate([jnp.arange(m), smallest[None]])
    kept = U[:, cols]
    return _Ritz(theta[cols], inv_root @ kept, root, inv_root, kept, theta)


def _next_direction(r: _Ritz, ok: jax.Array, m: int) -> tuple[jax.Array, jax.Array]:
    """Coordinates Z (q, m) of the next P: the part of the new Ritz vectors outside the old
    V (its first m rows), made orthogonal to them and orthonormal in the Gram's metric, so
    that Q·Z is orthonormal and orthogonal to the new V. Returns (Z, kept)."""
    outside = r.Y.at[:m].set(0.0)
    Zt = r.to_orthonormal @ outside
    Zt = jnp.where(ok[:, None], Zt, 0.0)  # (no weight on the zero columns of Q)
    Zt, kept = _orthonormal_twice(Zt, r.kept)
    return r.from_orthonormal @ Zt, kept


def _spectral_estimate(theta: jax.Array, k: int) -> jax.Array:
    """An estimate of ‖X·Xᵀ − S‖₂ at the Ritz factor from the kept Ritz values: the largest
    |value| outside the top k (the (k+1)-th and the smallest) and the clipped negative part
    of the top k."""
    return jnp.maximum(jnp.max(jnp.abs(theta[k:])), jnp.max(-theta[:k], initial=0.0))


# --- measuring a Ritz factor ----------------------------------------------------------------


class _Check(NamedTuple):
    lost: jax.Array  # ‖X·Xᵀ − S‖
    rel: jax.Array
    change: jax.Array  # ‖precgd's step on X·Xᵀ‖, the stationarity certificate


def ritz_factor(V: jax.Array, theta: jax.Array, k: int) -> jax.Array:
    """X = V_k·sqrt(max(Θ_k, 0)), the factor of the top k Ritz pairs."""
    return V[:, :k] * safe_sqrt(theta[:k])


def _check(S, S_norm, V, SV, theta, spectral, k, rtol) -> _Check:
    """lost, relative residual and the certificate of X = V_k·sqrt(Θ₊), from S·V (O(N·k²);
    ∇f = X·XᵀX − S·X, ‖R‖² = ‖XᵀX‖² − 2·tr(XᵀSX) + ‖S‖²). That formula cancels below about
    sqrt(eps) (relative): there the N×N residual is formed to measure it.

    precgd's step scales a column of X by θ/(θ + δ), δ = ½·``spectral``: it barely sees a
    Ritz pair of the top k with θ ≤ δ (one clipped to zero, not at all). The certificate is
    infinite until the largest such pair has converged (‖S·v − θ·v‖ ≤ rtol·‖S‖: S has no
    eigenvalue left above it, the Ritz values converging from below in order); else a
    subspace that has not yet found S's positive eigenvalues (a random start) would pass
    for the answer."""
    root = safe_sqrt(theta[:k])
    X, SX = V[:, :k] * root, SV[:, :k] * root
    gram = X.T @ X
    lost = safe_sqrt(jnp.sum(gram * gram) - 2 * jnp.sum(X * SX) + S_norm**2)
    near = relative(lost, S_norm) < 1e3 * jnp.sqrt(jnp.finfo(S.dtype).eps)
    lost = lax.cond(near, lambda: safe_norm(X @ X.T - S), lambda: lost)
    grad = X @ gram - SX
    # (XᵀX + δI)⁻¹ with XᵀX = Θ₊ (V orthonormal to rounding, see rayleigh_ritz) and
    # right_precondition's floor relative to the Gram's size
    finfo = jnp.finfo(S.dtype)
    d = jnp.diagonal(gram) + 0.5 * spectral + finfo.eps * jnp.trace(gram) + finfo.tiny
    step = 0.5 * grad / d
    change = product_change_norm(step, X, True)
    top = theta[:k]
    residual = safe_norm(SV[:, :k] - V[:, :k] * top, axis=0)
    seen = top > 0.5 * spectral  # (a prefix: Θ is descending)
    first_unseen = jnp.sum(seen)
    settled = jnp.all(seen) | (residual[jnp.minimum(first_unseen, k - 1)] <= rtol * S_norm)
    return _Check(lost, relative(lost, S_norm), jnp.where(settled, change, jnp.inf))


# --- the loop ---------------------------------------------------------------------------------


class _Block(NamedTuple):
    V: jax.Array  # (N, m + 1) orthonormal Ritz vectors: the top m descending, the smallest
    SV: jax.Array  # S·V (from the recurrence unless ``exact``)
    theta: jax.Array  # (m + 1,)
    P: (
        jax.Array
    )  # (N, m + 1) previous direction: orthonormal, orthogonal to V (zero columns where not ok)
    SP: jax.Array
    p_ok: jax.Array  # (m + 1,)
    spectral: jax.Array  # estimate of ‖X·Xᵀ − S‖₂
    lam_min: jax.Array  # smallest Ritz value seen (≥ λ_min(S))
    lam_max: jax.Array  # largest Ritz value seen (≤ λ_max(S))
    exact: jax.Array  # SV is a fresh product


class _State(NamedTuple):
    block: _Block
    lost: jax.Array
    steps: jax.Array
    start: jax.Array
    status: jax.Array
    done: jax.Array


def _start_block(S, V0, k, floor) -> _Block:
    """The block at an orthonormal start V0 (N, m + 1): the Ritz pairs of S over its span
    (the top m and the smallest), an exact S·V; no P."""
    SV0 = S @ V0
    m1 = V0.shape[-1]
    r = rayleigh_ritz(V0, SV0, jnp.ones((m1,), bool), m1 - 1, floor)
    theta = r.theta
    return _Block(
        V=V0 @ r.Y,
        SV=SV0 @ r.Y,
        theta=theta,
        P=jnp.zeros_like(V0),
        SP=jnp.zeros_like(V0),
        p_ok=jnp.zeros((m1,), bool),
        spectral=_spectral_estimate(theta, k),
        lam_min=jnp.min(theta),
        lam_max=jnp.max(theta),
        exact=jnp.asarray(True),
    )


def lobpcg_step(S, b: _Block, k: int, floor, locked: int = 0) -> _Block:
    """One Rayleigh–Ritz step over [V_a, W, P] for the active Ritz vectors V_a (all but the
    first ``locked``, static), W their orthonormalised residual S·V_a − V_a·Θ_a projected
    out of every V and P; one product S·W. The locked vectors stay as they are, and the
    basis orthogonal to them."""
    m = b.V.shape[-1] - 1 - locked  # active: m and the smallest
    Va, SVa, theta_a = b.V[:, locked:], b.SV[:, locked:], b.theta[locked:]
    W, w_ok = _orthonormal_twice(SVa - Va * theta_a, b.V, b.P)
    SW = S @ W
    Q = jnp.concatenate([Va, W, b.P], axis=1)
    SQ = jnp.concatenate([SVa, SW, b.SP], axis=1)
    ok = jnp.concatenate([jnp.ones((m + 1,), bool), w_ok, b.p_ok])
    r = rayleigh_ritz(Q, SQ, ok, m, floor)
    Z, p_ok = _next_direction(r, ok, m + 1)
    theta = jnp.concatenate([b.theta[:locked], r.theta])
    return _Block(
        V=jnp.concatenate([b.V[:, :locked], Q @ r.Y], axis=1),
        SV=jnp.concatenate([b.SV[:, :locked], SQ @ r.Y], axis=1),
        theta=theta,
        P=Q @ Z,
        SP=SQ @ Z,
        p_ok=p_ok,
        spectral=_spectral_estimate(theta, k),
        lam_min=jnp.minimum(b.lam_min, r.theta[-1]),
        lam_max=jnp.maximum(b.lam_max, theta[0]),
        exact=jnp.asarray(False),
    )


def locking_split(k: int, columns: int) -> int:
    """How many leading Ritz vectors the second phase locks (0: one phase). With many
    columns the top ones converge long before the k-th (their gaps to λ_{m+1} are wider),
    and a step over ACTIVE_COLUMNS costs a fraction of one over all: a second phase locks
    the rest once their residuals are far below the tolerance."""
    return columns - ACTIVE_COLUMNS if columns >= 2 * ACTIVE_COLUMNS else 0


def _start_basis(S, X0, key, m) -> jax.Array:
    """An orthonormal (N, m) start: x0's columns (if given; a negligible x0 replaced by
    noise) and Gaussian columns for the rest, orthonormalised by Householder QR."""
    n = S.shape[-1]
    noise = jax.random.normal(key, (n, m), S.dtype)
    if X0 is None:
        B = noise
    else:
        k = X0.shape[-1]
        scale = safe_norm(S)
        negligible = jnp.sum(X0 * X0) <= jnp.finfo(S.dtype).eps * scale
        B = jnp.concatenate([jnp.where(negligible, noise[:, :k], X0), noise[:, k:]], axis=1)
    return jnp.linalg.qr(B)[0]


def lowrank_factor(
    S: jax.Array,
    X0: jax.Array | None,
    key: jax.Array,
    rank: int,
    opts: IterOptions,
    *,
    guard: int = GUARD_VECTORS,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """The best rank-``rank`` PSD factor of symmetric S (N, N), X = V_k·sqrt(max(Λ_k, 0)),
    by LOBPCG over k + ``guard`` Ritz vectors and the smallest (at most N) from ``X0``
    (N, k) or a Gaussian start; with many columns, in two phases (:func:`locking_split`).
    Returns (X, status, steps, lost), lost = ‖X·Xᵀ − S‖.

    Statuses: SUCCESS (residual ≤ atol, or certified stationary, see the module doc);
    NOT_PSD on a success where a Ritz value seen lies below −tol·λ_max (Ritz values lie
    inside the spectrum: it has such an eigenvalue); MAX_STEPS; NON_FINITE where a step
    turns non-finite (the last finite X kept); DIVERGED is never reached by a
    Rayleigh–Ritz step but kept by the shared rule."""
    n = S.shape[-1]
    k = rank
    m = min(n - 1, k + guard)  # (and the smallest: m + 1 ≤ N columns)
    S_norm = safe_norm(S)
    floor = -2.0 * S_norm - 1.0  # below every eigenvalue: ‖S‖₂ ≤ ‖S‖_F
    V0 = _start_basis(S, X0, key, m + 1)

    def check(b: _Block) -> _Check:
        return _check(S, S_norm, b.V, b.SV, b.theta, b.spectral, k, opts.rtol)

    def refresh(b: _Block) -> _Block:
        # the certificate then measures the same X with an exact S·X
        return b._replace(SV=S @ b.V, exact=jnp.asarray(True))

    def iterate(state: _State, locked: int) -> _State:
        b = state.block
        c = check(b)
        stop_now, stationary, status, start = _decide(
            _Measured(c.lost, c.rel, None, None), c.change, S_norm, state, opts
        )
        verify = stationary & ~b.exact  # certified on recurrence products: measure again
        stop = stop_now | (stationary & b.exact)
        branch = jnp.where(stop, 0, jnp.where(verify, 1, 2))
        step = functools.partial(lobpcg_step, S, k=k, floor=floor, locked=locked)
        nxt = lax.switch(branch, [lambda b: b, refresh, step], b)
        finite = jnp.all(jnp.isfinite(nxt.V)) & jnp.all(jnp.isfinite(nxt.theta))
        stepped = (branch == 2) & finite
        status = jnp.where(stop | finite, status, Status.NON_FINITE)
        nxt = jax.tree.map(lambda new, old: jnp.where(finite, new, old), nxt, b)
        return _State(
            block=nxt,
            lost=c.lost,
            steps=state.steps + stepped.astype(jnp.int32),
            start=start,
            status=jnp.where(stop | ~finite, status, Status.SUCCESS).astype(jnp.int32),
            done=stop | ~finite,
        )

    def lockable(b: _Block, lead: int) -> jax.Array:
        residual = safe_norm(b.SV[:, :lead] - b.V[:, :lead] * b.theta[:lead], axis=0)
        return jnp.all(residual <= LOCK_FRACTION * opts.rtol * S_norm / math.sqrt(k))

    init = _State(
        block=_start_block(S, V0, k, floor),
        lost=jnp.full((), jnp.nan, S.dtype),
        steps=jnp.zeros((), jnp.int32),
        start=jnp.full((), jnp.inf, S.dtype),
        status=jnp.asarray(Status.SUCCESS, jnp.int32),
        done=jnp.asarray(False),
    )
    lead = locking_split(k, m + 1)
    if not lead:
        final = lax.while_loop(lambda s: ~s.done, lambda s: iterate(s, 0), init)
    else:
        first = lax.while_loop(
            lambda s: ~s.done & ~lockable(s.block, lead), lambda s: iterate(s, 0), init
        )
        b = first.block
        active = m + 1 - lead
        zeros = jnp.zeros((n, active), S.dtype)
        # (the locked vectors' S·V is kept from here on: take it exact)
        SV = lax.cond(first.done, lambda: b.SV, lambda: S @ b.V)
        b = b._replace(SV=SV, P=zeros, SP=zeros, p_ok=jnp.zeros((active,), bool))
        final = lax.while_loop(
            lambda s: ~s.done, lambda s: iterate(s, lead), first._replace(block=b)
        )
    b = final.block
    not_psd = b.lam_min < -default_tol(n, S.dtype) * jnp.maximum(b.lam_max, 0.0)
    status = jnp.where(not_psd & (final.status == Status.SUCCESS), Status.NOT_PSD, final.status)
    return ritz_factor(b.V, b.theta, k), status.astype(jnp.int32), final.steps, final.lost
