"""Cholesky factor and SPD solve for big batches of tiny matrices, as unrolled jnp code (and
the kernels of full-rank precgd's batch-last Newton loop: an unpivoted elimination for
S·X⁻ᵀ, and solves with the factor's rows).

On XLA CPU, ``jnp.linalg.cholesky`` and ``jax.scipy.linalg.cho_solve`` on a batch of tiny
matrices make one LAPACK call per matrix. Here the factorisation is written as straight-line
code over the ``n(n+1)/2`` entries, unrolled at trace time: every operation works on a whole
batch of one entry at a time, and XLA fuses the lot into a handful of loop kernels.

Internally the batch is moved to the LAST axis (``(n, n, batch)``), so that one entry of every
matrix is a contiguous vector; with the batch leading, each kernel reads one strided value per
2 KiB matrix and the unrolled form is slower than NumPy's stacked LAPACK loop already at 8x8.

The unrolled form only pays for tiny matrices. On XLA CPU (jax 0.10, one thread, float64,
10,000 matrices) it is 3-4x faster than ``numpy.linalg.cholesky`` at n=8 and 10x at n=3, but
at n=9 XLA's fusion of the output stops keeping intermediates in registers: it is 2.5x
SLOWER than NumPy at n=9, 6x slower at n=16, and compiles in 1.7 s (n=9) to 9 s (n=16).
Hence ``SMALL_N = 8``; callers use ``use_small(n)`` to choose this path and fall back to
``jnp.linalg.cholesky`` / ``jax.scipy.linalg.cho_solve`` above it.

Everything here is pure and works under ``jit``, ``vmap`` and ``grad`` for any leading batch
shape, in float32 and float64.
"""

from __future__ import annotations

import functools
import math
import operator

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from ._checks import as_float_array

SMALL_N = 8
"""The largest matrix size for which the unrolled forms are used (see the module docstring)."""


def use_small(n: int) -> bool:
    """Whether ``small_cholesky`` / ``small_spd_solve`` apply to (and pay off at) size ``n``."""
    return 1 <= n <= SMALL_N


# --- layout: (*batch, n, k) <-> (n, k, b) with the flattened batch last ---------------------


def _to_batch_last(X: jax.Array) -> jax.Array:
    rows, cols = X.shape[-2:]
    return jnp.moveaxis(X.reshape(-1, rows, cols), 0, -1)


def _from_batch_last(X: jax.Array, batch: tuple[int, ...]) -> jax.Array:
    return jnp.moveaxis(X, -1, 0).reshape(*batch, *X.shape[:2])


def _check_size(n: int, name: str, shape: tuple[int, ...]) -> None:
    if n > SMALL_N:
        raise ValueError(
            f"{name} has matrices of size n={n} (shape {shape}); the unrolled small_* functions "
            f"take n <= SMALL_N={SMALL_N}: use jnp.linalg.cholesky / jax.scipy.linalg.cho_solve "
            "for larger matrices (see use_small)"
        )


def _square(value: ArrayLike, name: str) -> jax.Array:
    arr = as_float_array(value, name)
    if arr.ndim < 2 or arr.shape[-1] != arr.shape[-2]:
        raise ValueError(f"{name} must have shape (..., n, n); got shape {arr.shape}")
    _check_size(arr.shape[-1], name, arr.shape)
    return arr


# --- the unrolled kernels, on lists of batch vectors ---------------------------------------


def _cholesky_entries(a: jax.Array) -> tuple[list[list[jax.Array]], jax.Array]:
    """Left-looking Cholesky of ``a`` (n, n, b), reading only ``a[i, j]`` with ``i >= j``.

    Returns the rows of L as lists of (b,) vectors (``L[i][j]`` for ``j <= i``) and a (b,)
    mask of the matrices whose pivots were all positive (NaN pivots count as failures).
    """
    n = a.shape[0]
    L: list[list[jax.Array]] = [[] for _ in range(n)]
    ok = None
    for j in range(n):
        d = a[j, j]
        for k in range(j):
            d = d - L[j][k] * L[j][k]
        ok_j = d > 0
        ok = ok_j if ok is None else ok & ok_j
        # Double where: a failed pivot is replaced by 1 before sqrt/1/x, so neither the value
        # nor the gradient of the (later masked) entries can be NaN/inf because of it.
        l_jj = jnp.sqrt(jnp.where(ok_j, d, 1))
        L[j].append(l_jj)
        inv = 1 / l_jj
        for i in range(j + 1, n):
            s = a[i, j]
            for k in range(j):
                s = s - L[i][k] * L[j][k]
            L[i].append(s * inv)
    return L, ok


def _cho_solve_rows(L: jax.Array, B: jax.Array) -> list[jax.Array]:
    """Rows of X with L·Lᵀ·X = B for ``L`` (n, n, b), or its rows as nested lists of (b,)
    vectors, and ``B`` (n, m, b)."""
    n = len(L)
    inv = [1 / L[i][i] for i in range(n)]
    y: list[jax.Array] = []
    for i in range(n):  # L·y = B
        s = B[i]
        for k in range(i):
            s = s - L[i][k] * y[k]
        y.append(s * inv[i])
    x: list[jax.Array | None] = [None] * n
    for i in reversed(range(n)):  # Lᵀ·x = y
        s = y[i]
        for k in range(i + 1, n):
            s = s - L[k][i] * x[k]
        x[i] = s * inv[i]
    return x  # type: ignore[return-value]


def materialized(x: jax.Array) -> jax.Array:
    """``x``, computed into a buffer of its own (outside ``vmap``). XLA:CPU otherwise keeps
    a transposed array in its source's layout and folds the transpose into every consumer
    fusion, each then reading it strided. A conditional is a boundary no fusion crosses;
    its predicate reads one entry (true unless that entry is NaN, when the other branch
    returns the same)."""
    if x.size == 0:
        return x
    first = x.reshape(-1)[0]
    return jax.lax.cond(first == first, lambda: x, lambda: x + 0)


def cholesky_rows_batch_last(A: jax.Array) -> tuple[list[list[jax.Array]], jax.Array]:
    """The unrolled Cholesky factor of a batch-last stack A (n, n, b), left as its rows
    (``L[i][j]``, j <= i, each a (b,) vector: no stacking, which XLA fuses badly into
    consumers that read it entry by entry), and the (b,) mask of successes."""
    return _cholesky_entries(A)


def cho_solve_vector_batch_last(L_rows: list[list[jax.Array]], v: jax.Array) -> jax.Array:
    """(L·Lᵀ)⁻¹·v for the rows of batch-last lower factors (see
    :func:`cholesky_rows_batch_last`) and vectors v (n, b)."""
    return jnp.stack(_cho_solve_rows(L_rows, v[:, None, :]))[:, 0, :]


def gram_residual_norm_batch_last(X: jax.Array, S: jax.Array) -> jax.Array:
    """‖X·Xᵀ − S‖_F for batch-last stacks X, S (n, n, b), S symmetric (its lower triangle
    is read), unrolled: (b,)."""
    n = X.shape[0]
    total = jnp.zeros(X.shape[2:], X.dtype)
    for i in range(n):
        for j in range(i + 1):
            r = functools.reduce(operator.add, [X[i, k] * X[j, k] for k in range(n)]) - S[i, j]
            total = total + (r * r if i == j else 2 * r * r)
    return jnp.sqrt(total)


def log_det_and_times_inverse_transpose_batch_last(
    X: jax.Array, S: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """(log|det X|, S·X⁻ᵀ) for a batch-last stack X, S of shape (n, n, b), S symmetric:
    Gaussian elimination WITHOUT pivoting on the rows of [X | S], then back substitution,
    unrolled: S·X⁻ᵀ = (X⁻¹·S)ᵀ. Each step works on whole rows (2n, b) at once.

    Only for X close to symmetric positive definite, where elimination without pivoting
    is backward stable (full-rank precgd's Newton iterates from the identity start, which
    are functions of S: see ``newton_phase``). A zero pivot gives inf/NaN in that matrix
    only. Measured for 10,000 8×8 (float64, one thread): 4.5 ms, against 8.5 ms for LAPACK's
    LU and two triangular solves per matrix; the same with partial pivoting by selects was
    36 ms."""
    n = X.shape[0]
    rows = [jnp.concatenate([X[i], S[i]], axis=0) for i in range(n)]
    log_det = jnp.zeros(X.shape[2:], X.dtype)
    for j in range(n):
        pivot = rows[j][j]
        log_det = log_det + jnp.log(jnp.abs(pivot))
        inv = 1 / pivot
        for i in range(j + 1, n):
            rows[i] = rows[i] - (rows[i][j] * inv) * rows[j]
    z: list[jax.Array | None] = [None] * n
    for i in reversed(range(n)):
        acc = rows[i][n:]
        for k in range(i + 1, n):
            acc = acc - rows[i][k] * z[k]
        z[i] = acc / rows[i][i]
    return log_det, jnp.swapaxes(jnp.stack(z), 0, 1)  # type: ignore[arg-type]


# --- public functions -----------------------------------------------------------------------


def small_cholesky(A: ArrayLike) -> jax.Array:
    """Lower-triangular ``L`` with ``L·Lᵀ = A`` for a batch of tiny SPD matrices.

    Args:
        A: shape ``(..., n, n)`` with ``1 <= n <= SMALL_N``, real floating (integers are
            promoted). Only the lower triangle is read, as in LAPACK ``potrf``: ``A`` is
            taken to be symmetric.

    Returns:
        ``L`` of the same shape and dtype, zero above the diagonal. As with
        ``jax.lax.linalg.cholesky``, a matrix that is not positive definite (a pivot ``<= 0``
        or NaN) gives NaN on and below the diagonal of its ``L`` (zeros above) and leaves the
        rest of the batch unaffected. A NaN anywhere in the lower triangle reaches a later
        pivot, so it fails the whole matrix (CPU LAPACK may instead return a partly-NaN
        factor). Forward and reverse derivatives are finite where ``A``
        is PD.

    Raises:
        TypeError: ``A`` is not real. ValueError: not ``(..., n, n)`` or ``n > SMALL_N``.

    Example:
        >>> L = small_cholesky(jnp.array([[4.0, 0.0], [2.0, 2.0]]))  # [[2, 0], [1, 1]]
    """
    A = _square(A, "A")
    batch, n = A.shape[:-2], A.shape[-1]
    if math.prod(batch) == 0 or n == 0:
        return jnp.zeros_like(A)
    rows, ok = _cholesky_entries(_to_batch_last(A))
    zero = jnp.zeros_like(rows[0][0])
    L = jnp.stack([jnp.stack(row + [zero] * (n - len(row))) for row in rows])
    # failed matrices: NaN on and below the diagonal, zeros above (as lax.linalg.cholesky)
    keep = ok | ~np.tri(n, dtype=bool)[:, :, None]
    L = jnp.where(keep, L, jnp.nan)
    return _from_batch_last(L, batch)


def small_cho_solve(L: ArrayLike, B: ArrayLike) -> jax.Array:
    """``X`` with ``(L·Lᵀ)·X = B`` by unrolled forward and back substitution.

    Args:
        L: lower-triangular factors, shape ``(..., n, n)`` with ``1 <= n <= SMALL_N`` (only
            the lower triangle is read), e.g. from ``small_cholesky``.
        B: right-hand sides, shape ``(..., n, m)``; for a single vector ``b`` pass
            ``b[..., None]``. The batch shapes of ``L`` and ``B`` broadcast.

    Returns:
        ``X`` of shape ``(broadcast batch, n, m)`` in the promoted dtype. A NaN in ``L`` (a
        failed factorisation) gives NaN in that matrix's ``X`` only; a zero on the diagonal
        of ``L`` gives inf/NaN, as with ``jax.scipy.linalg.cho_solve``.

    Raises:
        TypeError: non-real input. ValueError: shapes as above violated.

    Example:
        >>> X = small_cho_solve(small_cholesky(G), B)
    """
    L = _square(L, "L")
    B = as_float_array(B, "B")
    n = L.shape[-1]
    if B.ndim < 2 or B.shape[-2] != n:
        raise ValueError(
            f"B must have shape (..., n, m) with n={n} matching L of shape {L.shape}; got shape "
            f"{B.shape} (for a single right-hand side vector b pass b[..., None])"
        )
    try:
        batch = jnp.broadcast_shapes(L.shape[:-2], B.shape[:-2])
    except ValueError as err:
        raise ValueError(
            f"the batch shapes of L {L.shape} and B {B.shape} do not broadcast"
        ) from err
    dtype = jnp.result_type(L, B)
    m = B.shape[-1]
    if math.prod(batch) == 0 or n == 0 or m == 0:
        return jnp.zeros((*batch, n, m), dtype)
    L = jnp.broadcast_to(L.astype(dtype), (*batch, n, n))
    B = jnp.broadcast_to(B.astype(dtype), (*batch, n, m))
    x = _cho_solve_rows(_to_batch_last(L), _to_batch_last(B))
    return _from_batch_last(jnp.stack(x), batch)


def small_spd_solve(G: ArrayLike, B: ArrayLike) -> jax.Array:
    """``X = G⁻¹·B`` for tiny SPD ``G`` (..., n, n) and ``B`` (..., n, m), via Cholesky.

    ``small_cho_solve(small_cholesky(G), B)``: only the lower triangle of ``G`` is read; a
    matrix that is not positive definite gives an all-NaN ``X`` for that matrix only.
    Differentiable in both arguments (finite gradients where ``G`` is PD).

    Example:
        >>> x = small_spd_solve(G, b[..., None])[..., 0]
    """
    return small_cho_solve(small_cholesky(G), B)


def cholesky_succeeded(L: jax.Array) -> jax.Array:
    """Whether a Cholesky factor is a success: a failed factorisation has a NaN or
    non-positive pivot, so the diagonal decides (O(N), no pass over L).

    Not the last pivot alone, though a failure reaches it too: one entry read from the
    unrolled kernel of a batch of tiny matrices made XLA compute that kernel twice
    (10,000 8×8 float64 solve: 2.3 → 7 ms)."""
    diag = jnp.diagonal(L, axis1=-2, axis2=-1)
    return jnp.all(jnp.isfinite(diag) & (diag > 0), axis=-1)


@jax.custom_jvp
def cholesky_lower(S: jax.Array) -> jax.Array:
    """Lower Cholesky factor of ONE symmetric matrix (its lower triangle is read); NaN on
    and below the diagonal where it is not positive definite, as ``lax.linalg.cholesky``.

    Written to be ``vmap``-ped by per-matrix code such as ``solve``'s pipeline: a single
    matrix goes to LAPACK, and the batching rule hands a whole batch of n ≤ SMALL_N
    matrices to :func:`small_cholesky` (batch-last inside) instead of letting ``vmap``
    batch every unrolled scalar operation with the batch leading (several times slower),
    larger ones to LAPACK's batched call. Differentiable: the standard Cholesky derivative,
    and 0 for a failed factorisation (not NaN, which would poison the gradient of a branch
    that discards it, such as auto's fallback to eigh)."""
    return _cholesky_lower_batchable(S)


@cholesky_lower.defjvp
def _cholesky_lower_jvp(primals, tangents):
    # dL = L·Φ(L⁻¹·dS·L⁻ᵀ), Φ = lower triangle with the diagonal halved (dS symmetric),
    # computed with the identity in place of a failed L and then zeroed.
    (S,), (dS,) = primals, tangents
    L = cholesky_lower(S)
    ok = cholesky_succeeded(L)
    L_safe = jnp.where(ok, L, jnp.eye(L.shape[-1], dtype=L.dtype))
    tri = jax.lax.linalg.triangular_solve
    inner = tri(L_safe, dS, left_side=False, lower=True, transpose_a=True)  # dS·L⁻ᵀ
    inner = tri(L_safe, inner, left_side=True, lower=True)  # L⁻¹·dS·L⁻ᵀ
    phi = jnp.tril(inner) - 0.5 * jnp.diag(jnp.diagonal(inner))
    return L, jnp.where(ok, L_safe @ phi, 0.0)


@jax.custom_batching.custom_vmap
def _cholesky_lower_batchable(S: jax.Array) -> jax.Array:
    # one matrix, not vmapped: LAPACK's potrf beats the unrolled scalar graph
    return jax.lax.linalg.cholesky(S, symmetrize_input=False)


@_cholesky_lower_batchable.def_vmap
def _cholesky_lower_vmap(axis_size, in_batched, S):
    del axis_size
    if use_small(S.shape[-1]):
        return small_cholesky(S), in_batched[0]
    return jax.lax.linalg.cholesky(S, symmetrize_input=False), in_batched[0]


@jax.custom_jvp
def cho_solve_lower(L: jax.Array, B: jax.Array) -> jax.Array:
    """``G⁻¹·B`` for ONE SPD matrix G = L·Lᵀ given its lower Cholesky factor ``L`` (n, n) and
    ``B`` (n, m), like ``jax.scipy.linalg.cho_solve((L, True), B)``.

    The companion of :func:`cholesky_lower` for per-matrix code that gets ``vmap``-ped: the
    batching rule hands a batch of n ≤ SMALL_N systems to :func:`small_cho_solve`
    (batch-last, unrolled) instead of one triangular solve per matrix. Differentiable in
    both arguments (dX = G⁻¹·(dB − dG·X), dG = dL·Lᵀ + L·dLᵀ)."""
    return _cho_solve_batchable(L, B)


@cho_solve_lower.defjvp
def _cho_solve_lower_jvp(primals, tangents):
    (L, B), (dL, dB) = primals, tangents
    X = cho_solve_lower(L, B)
    dG = dL @ L.mT + L @ dL.mT
    return X, jax.scipy.linalg.cho_solve((L, True), dB - dG @ X)


@jax.custom_batching.custom_vmap
def _cho_solve_batchable(L: jax.Array, B: jax.Array) -> jax.Array:
    return jax.scipy.linalg.cho_solve((L, True), B)


@_cho_solve_batchable.def_vmap
def _cho_solve_vmap(axis_size, in_batched, L, B):
    L, B = (
        x if batched else jnp.broadcast_to(x, (axis_size, *x.shape))
        for x, batched in zip((L, B), in_batched, strict=True)
    )
    if use_small(L.shape[-1]):
        return small_cho_solve(L, B), True
    return jax.scipy.linalg.cho_solve((L, True), B), True


def spd_solve(G: jax.Array, B: jax.Array) -> jax.Array:
    """``G⁻¹·B`` for ONE symmetric positive definite G (lower triangle read) by Cholesky;
    NaN where G is not PD. Batches of tiny matrices take the unrolled path under ``vmap``
    (see :func:`cholesky_lower`, :func:`cho_solve_lower`). A stack of matrices passed
    directly (G of shape (..., k, k)) goes to ``jax.scipy.linalg.cho_solve``."""
    if G.ndim > 2:
        return jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(G, lower=True), B)
    return cho_solve_lower(cholesky_lower(G), B)
