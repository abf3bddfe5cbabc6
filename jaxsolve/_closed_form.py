"""Closed-form factors of symmetric matrices (Cholesky, top-k eigh, symmetric root) and their
derivatives.

Every factor takes a stack ``S`` of shape ``(..., N, N)`` that is already symmetric, finite
and scaled so that its largest entries are near 1 (``solve`` does the validation, the
symmetrisation and the scaling), and returns a :class:`Factor`. They work on whole stacks
at once, as ``jnp.linalg`` does, so that a batch of tiny Cholesky factorisations can run as
the unrolled kernel of :mod:`jaxsolve._small_linalg`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from ._checks import as_square_matrices, default_tol
from ._numerics import safe_divide, safe_norm, safe_sqrt
from ._sequence import run_after
from ._small_linalg import SMALL_N, unrolled_cholesky
from ._solution import Status


class Factor(NamedTuple):
    """A closed form's answer for a stack of matrices S."""

    X: jax.Array  # (..., N, k)
    status: jax.Array  # (...) int32
    lost: jax.Array  # (...) ‖S − X·Xᵀ‖_F as the decomposition knows it (NaN if failed)


def symmetric_part(C: jax.Array) -> jax.Array:
    """``(C + Cᵀ)/2`` over the last two axes: the only part of C that X·Xᵀ can match."""
    return (C + jnp.swapaxes(C, -1, -2)) / 2


def weighted_symmetric_part(C: jax.Array, W: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The symmetric problem equivalent to fitting C with weights W ≥ 0 (last two axes).

    For symmetric P, w_ij·(P_ij − c_ij)² + w_ji·(P_ji − c_ji)² equals
    (w_ij + w_ji)·(P_ij − s_ij)² plus a constant, with s_ij = (w_ij·c_ij + w_ji·c_ji) /
    (w_ij + w_ji): returns (S, (W + Wᵀ)/2), S = 0 where both weights are 0. An entry
    observed on one side only counts fully; with W = 1 this is (C + Cᵀ)/2. C must be
    finite where W > 0 (and should be 0 elsewhere)."""
    pair = W + jnp.swapaxes(W, -1, -2)
    WC = W * C
    S = safe_divide(WC + jnp.swapaxes(WC, -1, -2), pair)
    return S, pair / 2


# --- Cholesky --------------------------------------------------------------------------------


def cholesky_succeeded(L: jax.Array) -> jax.Array:
    """Whether each Cholesky factor of a stack succeeded: a failed one has a NaN or
    non-positive pivot on its diagonal."""
    diag = jnp.diagonal(L, axis1=-2, axis2=-1)
    return jnp.all(jnp.isfinite(diag) & (diag > 0), axis=-1)


@jax.custom_jvp
def cholesky_lower(S: jax.Array) -> jax.Array:
    """Lower Cholesky factors of a stack S (..., N, N), read from its lower triangles; NaN
    on and below the diagonal of a matrix that is not positive definite. Stacks of N ≤
    ``SMALL_N`` take the unrolled kernel (:func:`unrolled_cholesky`), larger ones LAPACK.
    The derivative is the standard one, and 0 (not NaN) for a failed factor, so that a
    branch that discards it (auto's fallback to eigh) keeps a finite gradient."""
    if S.shape[-1] <= SMALL_N:
        return unrolled_cholesky(S)
    return lax.linalg.cholesky(S, symmetrize_input=False)


@cholesky_lower.defjvp
def _cholesky_lower_jvp(primals, tangents):
    # dL = L·Φ(L⁻¹·dS·L⁻ᵀ), Φ = the lower triangle with its diagonal halved (dS symmetric),
    # computed with the identity in place of a failed L and then zeroed.
    (S,), (dS,) = primals, tangents
    L = cholesky_lower(S)
    ok = cholesky_succeeded(L)[..., None, None]
    L_safe = jnp.where(ok, L, jnp.eye(L.shape[-1], dtype=L.dtype))
    inner = lax.linalg.triangular_solve(L_safe, dS, left_side=False, lower=True, transpose_a=True)
    inner = lax.linalg.triangular_solve(L_safe, inner, left_side=True, lower=True)
    phi = jnp.tril(inner) - 0.5 * jnp.eye(L.shape[-1], dtype=L.dtype) * inner
    return L, jnp.where(ok, L_safe @ phi, 0.0)


# --- eigendecomposition ----------------------------------------------------------------------


def eigh_2x2(S: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(eigenvalues ascending, eigenvectors) of symmetric 2×2 matrices S (..., 2, 2) from
    their lower triangles in closed form: LAPACK's ``dlaev2`` on whole arrays, one Jacobi
    rotation with its care for cancellation (the smaller eigenvalue from the determinant
    over the larger; the rotation's tangent from the larger of two candidate quotients).
    A handful of elementwise operations against a LAPACK call per matrix."""
    a, b, c = S[..., 0, 0], S[..., 1, 0], S[..., 1, 1]
    one = jnp.ones_like(a)
    sm, df, tb = a + c, a - c, b + b
    rt = jnp.hypot(df, tb)
    s1 = jnp.where(sm < 0, -one, one)
    rt1 = 0.5 * (sm + s1 * rt)  # the eigenvalue of larger magnitude
    bigger = jnp.abs(a) > jnp.abs(c)
    acmx, acmn = jnp.where(bigger, a, c), jnp.where(bigger, c, a)
    nonzero = sm != 0
    r = jnp.where(nonzero, rt1, one)
    rt2 = jnp.where(nonzero, (acmx / r) * acmn - (b / r) * b, -0.5 * rt)
    s2 = jnp.where(df >= 0, one, -one)
    cs = df + s2 * rt
    by_cs = jnp.abs(cs) > jnp.abs(tb)
    diagonal = ~by_cs & (tb == 0)
    ct = -tb / jnp.where(by_cs, cs, one)  # |ct| < 1
    tn = -cs / jnp.where(by_cs | diagonal, one, tb)  # |tn| <= 1
    sn_ct = lax.rsqrt(1 + ct * ct)
    cs_tn = lax.rsqrt(1 + tn * tn)
    cs1 = jnp.where(by_cs, ct * sn_ct, jnp.where(diagonal, one, cs_tn))
    sn1 = jnp.where(by_cs, sn_ct, jnp.where(diagonal, 0 * one, tn * cs_tn))
    same = s1 == s2
    cs1, sn1 = jnp.where(same, -sn1, cs1), jnp.where(same, cs1, sn1)
    # (cs1, sn1) belongs to rt1, (−sn1, cs1) to rt2; ascending order
    swap = rt1 > rt2
    lam = jnp.stack([jnp.where(swap, rt2, rt1), jnp.where(swap, rt1, rt2)], axis=-1)
    lo = (jnp.where(swap, -sn1, cs1), jnp.where(swap, cs1, sn1))
    hi = (jnp.where(swap, cs1, -sn1), jnp.where(swap, sn1, cs1))
    V = jnp.stack([jnp.stack([lo[0], hi[0]], -1), jnp.stack([lo[1], hi[1]], -1)], -2)
    return lam, V


def symmetric_eigh(S: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(eigenvalues ascending, eigenvectors) of a symmetric stack S (..., N, N), read from
    its lower triangles (no second symmetrisation); 2×2 matrices in closed form. Not
    differentiated directly: :func:`spectral_root` carries the derivative."""
    if S.shape[-1] == 2:
        return eigh_2x2(S)
    V, lam = lax.linalg.eigh(S, symmetrize_input=False)
    return lam, V


def _kept(n: int, rank: int) -> jax.Array:
    """Which of the ascending eigenvalues the rank-k factor keeps (the k largest)."""
    return jnp.arange(n) >= n - rank


def _root_and_slope(lam: jax.Array, rank: int) -> tuple[jax.Array, jax.Array]:
    """g(λ) = sqrt(max(λ, 0)) on the kept eigenvalues (0 elsewhere) and its derivative g'
    (0 at and below zero, where the true one is infinite or undefined)."""
    kept = _kept(lam.shape[-1], rank)
    g = jnp.where(kept, safe_sqrt(lam), 0.0)
    slope = jnp.where(kept & (lam > 0), safe_divide(0.5, g), 0.0)
    return g, slope


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def spectral_root(S: jax.Array, rank: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(B, λ, V)`` for a symmetric stack S = V·Λ·Vᵀ: B = V·g(Λ) with g = sqrt(max(λ, 0))
    on the ``rank`` largest eigenvalues and 0 on the rest (columns in ascending order).

    B·Bᵀ is the best rank-k PSD approximation of S, B·Vᵀ its symmetric root, and the kept
    columns of B its eigh factor. The derivative is the Daleckii–Krein one, finite at
    repeated eigenvalues: dB = V·(G ∘ Vᵀ·dS·V) with G_ij the divided difference
    (g(λi) − g(λj))/(λi − λj), g' where λi ≈ λj; dλ = diag(Vᵀ·dS·V); V is a constant for
    differentiation. Then d(B·Bᵀ), d(B·Vᵀ) and d(X·Xᵀ) for the eigh factor X are exact
    wherever the function is differentiable (not where λ_k = λ_{k+1} with k < N, nor at
    λ = 0, where sqrt is not); the derivative of X itself is that of V·g(Λ) with V held
    fixed."""
    lam, V = symmetric_eigh(S)
    return V * _root_and_slope(lam, rank)[0][..., None, :], lam, V


@spectral_root.defjvp
def _spectral_root_jvp(rank, primals, tangents):
    (S,), (dS,) = primals, tangents
    B, lam, V = spectral_root(S, rank)
    g, slope = _root_and_slope(lam, rank)
    gap = lam[..., :, None] - lam[..., None, :]
    scale = jnp.max(jnp.abs(lam), axis=-1, initial=0.0)[..., None, None]
    close = jnp.abs(gap) <= default_tol(lam.shape[-1], lam.dtype) * scale
    mean_slope = 0.5 * (slope[..., :, None] + slope[..., None, :])
    G = jnp.where(close, mean_slope, safe_divide(g[..., :, None] - g[..., None, :], gap))
    inner = jnp.swapaxes(V, -1, -2) @ symmetric_part(dS) @ V
    dB = V @ (G * inner)
    return (B, lam, V), (dB, jnp.diagonal(inner, axis1=-2, axis2=-1), jnp.zeros_like(V))


def psd_status(lam: jax.Array) -> jax.Array:
    """NOT_PSD where the smallest eigenvalue (``lam`` ascending) is negative beyond
    rounding, NON_FINITE where the decomposition failed (NaN eigenvalues), else SUCCESS."""
    smallest, largest = lam[..., 0], lam[..., -1]
    scale = jnp.maximum(jnp.abs(smallest), jnp.abs(largest))
    negative = smallest < -default_tol(lam.shape[-1], lam.dtype) * scale
    status = jnp.where(negative, Status.NOT_PSD, Status.SUCCESS)
    return jnp.where(jnp.isfinite(scale), status, Status.NON_FINITE).astype(jnp.int32)


def _lost(lam: jax.Array, rank: int) -> jax.Array:
    """The norm of the eigenvalues a rank-k PSD factor cannot keep: the negative ones and
    those beyond the ``rank`` largest."""
    return safe_norm(jnp.where(_kept(lam.shape[-1], rank), jnp.minimum(lam, 0.0), lam), axis=-1)


def nearest_psd(C: jax.typing.ArrayLike) -> jax.Array:
    """The nearest positive-semidefinite matrix to ``C`` in Frobenius norm (Higham 1988).

    Symmetrises, ``S = (C + Cᵀ)/2``, and clips the negative eigenvalues of S to zero:
    ``V·max(Λ, 0)·Vᵀ``. ``C`` has shape ``(..., N, N)``; the result has the same shape.
    Differentiable, with finite derivatives at repeated eigenvalues. Non-finite input gives
    non-finite output (use :func:`jaxsolve.solve` for a status per matrix).

    >>> nearest_psd(jnp.array([[1.0, 0.0], [0.0, -1.0]]))  # doctest: +SKIP
    Array([[1., 0.], [0., 0.]], dtype=float32)
    """
    S = symmetric_part(as_square_matrices(C, "C"))
    if S.shape[-1] == 0:
        return S
    B = spectral_root(S, S.shape[-1])[0]
    return B @ jnp.swapaxes(B, -1, -2)


# --- the factor methods: (S, rank) -> Factor ---------------------------------------------------


def cholesky_factor(S: jax.Array, rank: int) -> Factor:
    """Lower-triangular L with L·Lᵀ = S; CHOLESKY_FAILED (X all NaN) where S is not PD."""
    del rank  # always N; checked by solve
    L = cholesky_lower(S)
    ok = cholesky_succeeded(L)
    status = jnp.where(ok, Status.SUCCESS, Status.CHOLESKY_FAILED).astype(jnp.int32)
    lost = jnp.where(ok, 0.0, jnp.nan).astype(S.dtype)
    return Factor(jnp.where(ok[..., None, None], L, jnp.nan), status, lost)


def eigh_factor(S: jax.Array, rank: int) -> Factor:
    """``X = V_k·sqrt(max(Λ_k, 0))`` from the top-``rank`` eigenpairs, largest first: the
    Frobenius-optimal rank-k PSD factor (Eckart–Young on the PSD part). NOT_PSD if S has
    negative eigenvalues."""
    B, lam, _ = spectral_root(S, rank)
    return Factor(B[..., ::-1][..., :rank], psd_status(lam), _lost(lam, rank))


def sqrt_factor(S: jax.Array, rank: int) -> Factor:
    """The symmetric PSD square root ``V·sqrt(Λ₊)·Vᵀ`` (N×N); with ``rank=k`` the root of
    the best rank-k PSD approximation. NOT_PSD if S has negative eigenvalues."""
    B, lam, V = spectral_root(S, rank)
    return Factor(B @ jnp.swapaxes(V, -1, -2), psd_status(lam), _lost(lam, rank))


def auto_factor(S: jax.Array, rank: int) -> Factor:
    """Cholesky where it succeeds, else the eigh factor (below full rank: eigh). On a stack,
    the eigendecompositions run only if some Cholesky factor failed: one ``lax.cond`` on
    the whole stack, the failed matrices then taken from eigh."""
    if rank < S.shape[-1]:
        return eigh_factor(S, rank)
    chol = cholesky_factor(S, rank)
    ok = chol.status == Status.SUCCESS

    def with_eigh():
        # under a further vmap both branches run: eigh waits for the Cholesky (_sequence)
        eig = eigh_factor(run_after(S, chol.X), rank)

        def pick(c, e):
            return jnp.where(ok.reshape(ok.shape + (1,) * (c.ndim - ok.ndim)), c, e)

        return jax.tree.map(pick, chol, eig)

    return lax.cond(jnp.all(ok), lambda: chol, with_eigh)


CLOSED_FORMS: dict[str, Callable[[jax.Array, int], Factor]] = {
    "cholesky": cholesky_factor,
    "eigh": eigh_factor,
    "sqrt": sqrt_factor,
    "auto": auto_factor,
}
