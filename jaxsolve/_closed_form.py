"""Closed-form factors of a symmetric matrix: Cholesky, eigendecomposition, symmetric root.

Every function here takes an already symmetrised, finite matrix ``S`` of shape ``(N, N)``
(``solve`` does the validation, symmetrisation and non-finite guarding) and returns the
factor with an integer status. They are written for one matrix and batched with ``vmap``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from ._checks import as_square_matrices, default_tol
from ._sequence import after
from ._small_linalg import cholesky_lower, cholesky_succeeded
from ._solution import Status


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
    WC = W * C
    pair = W + jnp.swapaxes(W, -1, -2)
    total = WC + jnp.swapaxes(WC, -1, -2)
    S = jnp.where(pair > 0, total / jnp.where(pair > 0, pair, 1.0), 0.0)
    return S, pair / 2


def symmetric_eigh(S: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(eigenvalues ascending, eigenvectors) of an already symmetric S (..., N, N), from its
    lower triangle: ``jnp.linalg.eigh`` would symmetrise a second time (a transposed pass).
    2×2 matrices in closed form (:func:`eigh_2x2`), the rest by LAPACK/cuSOLVER; both with
    :func:`_eigh_tangents` as their derivative."""
    if S.shape[-1] == 2:
        return eigh_2x2(S)
    return _lapack_eigh(S)


def _eigh_tangents(lam, V, dS):
    """The derivative of (Λ, V) = eigh(S) along dS (taken to be symmetric, as S is):
    dΛ = diag(Vᵀ·dS·V), dV = V·(F ∘ Vᵀ·dS·V), F_ij = 1/(λ_j − λ_i) off the diagonal (∞ at
    repeated eigenvalues, as in JAX) and 0 on it. ``lax.linalg.eigh``'s own rule forms
    1/((1 + λ_j) − λ_i), whose diagonal is 1/0 = ∞ once |λ| > 1/eps (2^24 in float32,
    2^53 in float64): a NaN gradient (∞·0) for such matrices; the gap is taken first here."""
    inner = jnp.swapaxes(V, -1, -2) @ dS @ V
    gap = lam[..., None, :] - lam[..., :, None]
    eye = jnp.eye(lam.shape[-1], dtype=lam.dtype)
    F = 1 / (gap + eye) - eye
    return jnp.diagonal(inner, axis1=-2, axis2=-1), V @ (F * inner)


def _with_eigh_derivative(decompose: Callable) -> Callable:
    """``decompose`` (S ↦ (eigenvalues ascending, eigenvectors)) with
    :func:`_eigh_tangents` as its derivative."""
    decomposition = jax.custom_jvp(decompose)

    @decomposition.defjvp
    def _jvp(primals, tangents):
        (S,), (dS,) = primals, tangents
        lam, V = decomposition(S)
        return (lam, V), _eigh_tangents(lam, V, dS)

    return decomposition


@_with_eigh_derivative
def _lapack_eigh(S: jax.Array) -> tuple[jax.Array, jax.Array]:
    V, lam = lax.linalg.eigh(S, symmetrize_input=False)
    return lam, V


def _eigh_2x2_values(S: jax.Array) -> tuple[jax.Array, jax.Array]:
    """LAPACK's ``dlaev2`` on whole arrays: the eigenvalues and unit eigenvectors of
    [[a, b], [b, c]] (a = S₀₀, b = S₁₀, c = S₁₁) by one Jacobi rotation, with its care for
    cancellation (the smaller eigenvalue from the determinant over the larger; the
    rotation's tangent from the larger of two candidate quotients, at most 1 in magnitude).
    Entries up to a quarter of the largest float (``solve`` passes C·h², entries near 1);
    every ``where`` masks its own denominator."""
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


@_with_eigh_derivative
def eigh_2x2(S: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(eigenvalues ascending, eigenvectors) of symmetric 2×2 matrices S (..., 2, 2) from
    their lower triangles, in closed form: a handful of elementwise operations, against a
    LAPACK call per matrix (10,000 2×2: 8–14× faster than ``jnp.linalg.eigh`` on two
    cores, 15–25× on one, float64 and float32). Accurate as LAPACK (the same formulas); a
    NaN entry gives NaN eigenvalues. Its derivative is :func:`_eigh_tangents` (that of
    ``lax.linalg.eigh`` for symmetric perturbations)."""
    return _eigh_2x2_values(S)


def psd_status(eigenvalues: jax.Array) -> jax.Array:
    """NOT_PSD where the smallest eigenvalue is negative beyond rounding, NON_FINITE where
    the decomposition failed (JAX returns NaN eigenvalues then), else SUCCESS.
    ``eigenvalues`` ascending (as ``eigh`` returns them; N ≥ 1): the extremes are the
    first and last, no reduction."""
    n = eigenvalues.shape[-1]
    smallest, largest = eigenvalues[..., 0], eigenvalues[..., -1]
    scale = jnp.maximum(jnp.abs(smallest), jnp.abs(largest))
    negative = smallest < -default_tol(n, eigenvalues.dtype) * scale
    status = jnp.where(negative, Status.NOT_PSD, Status.SUCCESS)
    return jnp.where(jnp.isfinite(scale), status, Status.NON_FINITE).astype(jnp.int32)


# --- spectral functions with a derivative that is finite at repeated eigenvalues -----------


def _spectral_function(f: Callable, df: Callable) -> Callable:
    """``S ↦ (V·f(Λ)·Vᵀ, Λ)`` for symmetric S, with the Daleckii–Krein derivative.

    JAX's derivative of ``eigh`` divides by eigenvalue gaps and is NaN for repeated
    eigenvalues; the matrix function itself is smooth there. Its JVP is
    ``V·(G ∘ (Vᵀ·dS·V))·Vᵀ`` with ``G_ij`` the divided difference ``(f(λi)−f(λj))/(λi−λj)``,
    replaced by ``f'`` at (numerically) equal eigenvalues; the eigenvalues' own tangent is
    ``diag(Vᵀ·dS·V)``.
    """

    @jax.custom_jvp
    def fun(S):
        lam, V = symmetric_eigh(S)
        return (V * f(lam)) @ V.T, lam

    @fun.defjvp
    def fun_jvp(primals, tangents):
        (S,), (dS,) = primals, tangents
        lam, V = symmetric_eigh(S)
        f_lam = f(lam)
        gap = lam[:, None] - lam[None, :]
        scale = jnp.max(jnp.abs(lam), initial=0.0)
        close = jnp.abs(gap) <= default_tol(lam.shape[-1], lam.dtype) * scale
        divided = (f_lam[:, None] - f_lam[None, :]) / jnp.where(close, 1.0, gap)
        G = jnp.where(close, df((lam[:, None] + lam[None, :]) / 2), divided)
        inner = V.T @ symmetric_part(dS) @ V
        return ((V * f_lam) @ V.T, lam), (V @ (G * inner) @ V.T, jnp.diagonal(inner))

    return fun


def _relu_derivative(lam):
    return (lam > 0).astype(lam.dtype)


def safe_sqrt(lam):
    """sqrt(max(λ, 0)) whose derivative is 0, not NaN (∞·0), at and below zero: finite
    gradients through clipped and zero eigenvalues (the one-sided choice _sqrt_derivative
    also makes)."""
    positive = lam > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, lam, 1.0)), 0.0)


def _sqrt_derivative(lam):
    # 1/(2√λ) for λ > 0; set to 0 at and below zero, where the true derivative is infinite
    # (one-sided), so gradients stay finite on singular input.
    positive = lam > 0
    return jnp.where(positive, 0.5 / jnp.sqrt(jnp.where(positive, lam, 1.0)), 0.0)


_psd_projection = _spectral_function(lambda lam: jnp.maximum(lam, 0.0), _relu_derivative)
_psd_sqrt = _spectral_function(safe_sqrt, _sqrt_derivative)


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
    return _batched(lambda s: _psd_projection(s)[0], S)


def _batched(fun: Callable, S: jax.Array) -> jax.Array:
    batch = S.shape[:-2]
    flat = S.reshape((-1, *S.shape[-2:]))
    return jax.vmap(fun)(flat).reshape((*batch, *S.shape[-2:]))


# --- the factor methods: (S, rank) -> (X, status, lost, total), one matrix ----------------
# ``lost`` is ‖S − X·Xᵀ‖_F and ``total`` ‖S‖_F as far as the decomposition knows them
# (exact in exact arithmetic; ``total`` NaN where it does not): what ``solve`` reports by
# default instead of forming X·Xᵀ. S comes in solve's scaled units (C·h², largest entries
# of order 1: |λ| ≤ 4N on the exact checks' path), so the squares of the eigenvalues cannot
# overflow, and what underflows is far below rounding of ‖C‖ in those units.


Factor = tuple[jax.Array, jax.Array, jax.Array, jax.Array]  # (X, status, lost, total)


def sqrt_of_norm_sq(x: jax.Array) -> jax.Array:
    """sqrt(x) of a squared norm x ≥ 0 with derivative 0 at x = 0 (an exact fit, a PSD
    matrix that loses nothing) instead of ∞·0 = NaN; NaN stays NaN (a failed factor)."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), x * 0)


def _norm(v: jax.Array) -> jax.Array:
    """‖v‖₂ over the last axis (of a spectrum in solve's scaled units: see above)."""
    return sqrt_of_norm_sq(jnp.sum(v * v, axis=-1))


def _lost(lam: jax.Array, rank: int) -> jax.Array:
    """The norm of the eigenvalues a rank-k PSD factor cannot keep: the negative ones and
    those beyond the ``rank`` largest. ``lam`` ascending, as ``eigh`` returns it."""
    kept = jnp.arange(lam.shape[-1]) >= lam.shape[-1] - rank
    return _norm(jnp.where(kept, jnp.minimum(lam, 0.0), lam))


def cholesky_factor(S: jax.Array, rank: int) -> Factor:
    """Lower-triangular L with L·Lᵀ = S; CHOLESKY_FAILED (and X all NaN) if S is not PD."""
    del rank  # always full; checked by solve
    # S is symmetrised by solve(). JAX's own failure value keeps zeros above the diagonal,
    # hence the ``where`` (one elementwise pass, fused with solve's own).
    L = cholesky_lower(S)  # LAPACK, or unrolled for big batches of tiny matrices
    ok = cholesky_succeeded(L)
    status = jnp.where(ok, Status.SUCCESS, Status.CHOLESKY_FAILED).astype(jnp.int32)
    L = jnp.where(ok, L, jnp.nan)
    nan = jnp.full((), jnp.nan, S.dtype)
    return L, status, jnp.where(ok, 0.0, nan), nan


def eigh_factor(S: jax.Array, rank: int) -> Factor:
    """``X = V_k·sqrt(max(Λ_k, 0))`` from the top-``rank`` eigenpairs, largest first: the
    Frobenius-optimal rank-k PSD factor (Eckart–Young on the PSD part). NOT_PSD if S has
    negative eigenvalues."""
    lam, V = symmetric_eigh(S)
    X = (V * safe_sqrt(lam))[:, ::-1][:, :rank]
    return X, psd_status(lam), _lost(lam, rank), _norm(lam)


def sqrt_factor(S: jax.Array, rank: int) -> Factor:
    """The symmetric PSD square root ``V·sqrt(Λ₊)·Vᵀ`` (N×N); with ``rank=k`` the root of the
    best rank-k PSD approximation. NOT_PSD if S has negative eigenvalues."""
    if rank == S.shape[-1]:
        X, lam = _psd_sqrt(S)
    else:
        lam, V = symmetric_eigh(S)
        top = jnp.arange(lam.shape[-1]) >= lam.shape[-1] - rank
        X = (V * jnp.where(top, safe_sqrt(lam), 0.0)) @ V.T
    return X, psd_status(lam), _lost(lam, rank), _norm(lam)


def auto_factor(S: jax.Array, rank: int) -> Factor:
    """Cholesky where it succeeds, else the eigh factor; the choice is ``lax.cond`` on the
    data, so no Python branch on traced values (under ``vmap`` both sides are computed)."""
    if rank < S.shape[-1]:
        return eigh_factor(S, rank)
    chol = cholesky_factor(S, rank)
    # under vmap both sides run: the eigendecomposition waits for the Cholesky (_sequence)
    return lax.cond(
        chol[1] == Status.SUCCESS, lambda: chol, lambda: eigh_factor(after(S, chol[0]), rank)
    )


def auto_factor_batch(make_S: Callable[[], jax.Array], rank: int, then: Callable) -> Any:
    """``then(*factor)`` for :func:`auto_factor` of a whole batch S (b, N, N) at once: the
    batch's Cholesky factors, and eigh factors only if one of them failed (``lax.cond`` on
    the batch: under ``vmap`` a per-matrix ``cond`` becomes a select that always pays for
    both). A batch of PD matrices costs a batched Cholesky (10,000 8×8: 41 → 2.7 ms).
    ``then`` runs inside each branch, so that what it computes (solve's last pass over X)
    is written where the cond's result lives instead of copied there. S comes as
    ``make_S()``, called again inside the eigh branch: S itself as the branch's operand
    would be written out for it, where the Cholesky alone reads it fused from solve's C
    (auto on 10,000 8×8 float64: 1.3–1.4× → 1.0–1.1× NumPy's stacked Cholesky, as
    method="cholesky" in the same rounds)."""
    S = make_S()
    if rank < S.shape[-1]:
        return then(*jax.vmap(eigh_factor, in_axes=(0, None))(S, rank))
    chol = jax.vmap(cholesky_factor, in_axes=(0, None))(S, rank)
    ok = chol[1] == Status.SUCCESS

    def with_eigh():
        eig = jax.vmap(eigh_factor, in_axes=(0, None))(after(make_S(), chol[0]), rank)
        merged = jax.tree.map(
            lambda c, e: jnp.where(ok.reshape(ok.shape + (1,) * (c.ndim - 1)), c, e), chol, eig
        )
        return then(*merged)

    return lax.cond(jnp.all(ok), lambda: then(*chol), with_eigh)


def first_factor(method: str, n: int, rank: int) -> str:
    """The ``CLOSED_FORMS`` entry a batch of N×N solves (rank k) starts with: the method
    itself, but for auto its Cholesky at full rank, and eigh below."""
    if method != "auto":
        return method
    return "cholesky" if rank == n else "eigh"


def starts_with_batched_eigh(method: str, n: int, rank: int) -> bool:
    """Whether ``CLOSED_FORMS[method]`` on a batch of N×N matrices (rank k) starts with
    LAPACK's (cuSOLVER's) batched eigendecomposition (:func:`first_factor`): eigh, sqrt, and
    auto below full rank, for N > 2 (N = 2 has :func:`eigh_2x2`; 1×1 batches, whose
    factorisation is trivial, are checked first as before)."""
    return first_factor(method, n, rank) != "cholesky" and n > 2


CLOSED_FORMS: dict[str, Callable[[jax.Array, int], Factor]] = {
    "cholesky": cholesky_factor,
    "eigh": eigh_factor,
    "sqrt": sqrt_factor,
    "auto": auto_factor,
}
