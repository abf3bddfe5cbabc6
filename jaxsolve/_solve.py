"""``solve``: validate -> guard non-finite input -> method -> residual + status."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ._checks import as_square_matrices, check_choice, check_rank, default_tol
from ._closed_form import CLOSED_FORMS, symmetric_part
from ._solution import Solution, Status, worst_status

METHODS = tuple(CLOSED_FORMS)


def relative_residual(X: jax.Array, C: jax.Array, precision: Any = None) -> jax.Array:
    """‖X·Xᵀ − C‖_F / ‖C‖_F over the last two axes (absolute where ‖C‖_F = 0)."""
    XXt = jnp.matmul(X, jnp.swapaxes(X, -1, -2), precision=precision)
    err = jnp.linalg.norm(XXt - C, axis=(-2, -1))
    norm = jnp.linalg.norm(C, axis=(-2, -1))
    return jnp.where(norm > 0, err / jnp.where(norm > 0, norm, 1.0), err)


def _symmetry_status(C: jax.Array, S: jax.Array) -> tuple[jax.Array, jax.Array]:
    """NOT_SYMMETRIC where the skew part of C is beyond rounding; and ‖C − S‖²_F."""
    skew_sq = jnp.sum((C - S) ** 2, axis=(-2, -1))
    norm_sq = jnp.sum(C**2, axis=(-2, -1))
    tol = default_tol(C.shape[-1], C.dtype)
    status = jnp.where(skew_sq > tol**2 * norm_sq, Status.NOT_SYMMETRIC, Status.SUCCESS)
    return status.astype(jnp.int32), skew_sq


def solve(
    C: jax.typing.ArrayLike,
    *,
    method: str = "auto",
    rank: int | None = None,
    measure_residual: bool = True,
) -> Solution:
    """Find X with X·Xᵀ ≈ C.

    Args:
        C: array of shape ``(..., N, N)``; any leading batch dimensions. Integers are
            promoted to the default float dtype. A non-symmetric C is solved for its
            symmetric part (C + Cᵀ)/2 (status NOT_SYMMETRIC); an indefinite one for the
            nearest PSD matrix (status NOT_PSD) by the eigen-methods.
        method: static. ``"cholesky"``, ``"eigh"`` (X = V·sqrt(max(Λ, 0)), largest
            eigenvalues first), ``"sqrt"`` (symmetric root V·sqrt(Λ₊)·Vᵀ) or ``"auto"``
            (Cholesky where it succeeds, else eigh).
        rank: static. Number of columns k of X (default N). ``eigh`` keeps the top-k
            eigenpairs, the Frobenius-optimal rank-k factor; ``cholesky`` needs k = N.
        measure_residual: static. If True (default) the residual is measured by forming
            X·Xᵀ. If False the closed forms report it from their eigenvalues (exact in exact
            arithmetic, rounding left out), saving an N³ product.

    Returns:
        :class:`Solution` with ``X`` of shape ``(..., N, k)``, ``residual`` =
        ‖X·Xᵀ − C‖_F/‖C‖_F, ``status`` (:class:`Status` codes) and ``steps``, each per matrix.

    Statuses: SUCCESS, NOT_SYMMETRIC, NOT_PSD, CHOLESKY_FAILED, NON_FINITE_INPUT (that
    matrix's X and residual are NaN; the rest of the batch is unaffected).

    Differentiable with ``jax.grad`` w.r.t. C; ``"sqrt"`` has a derivative that stays
    finite at repeated eigenvalues, ``"eigh"`` follows JAX's ``eigh`` derivative (NaN at
    repeated eigenvalues), ``"cholesky"`` is smooth where C is positive definite.

    >>> sol = jaxsolve.solve(jnp.array([[4.0, 2.0], [2.0, 3.0]]))  # doctest: +SKIP
    >>> sol.X @ sol.X.T, sol.status                                 # doctest: +SKIP
    """
    method = check_choice(method, "method", METHODS)
    C = as_square_matrices(C, "C")
    n = C.shape[-1]
    k = check_rank(rank, n)
    if method == "cholesky" and k != n:
        raise ValueError(f"rank must be None or N={n} for method='cholesky'; got {rank}")

    batch = C.shape[:-2]
    if n == 0:
        zeros = jnp.zeros(batch, C.dtype)
        return Solution(
            jnp.zeros((*batch, 0, 0), C.dtype),
            zeros,
            zeros.astype(jnp.int32),
            zeros.astype(jnp.int32),
        )

    finite = jnp.all(jnp.isfinite(C), axis=(-2, -1))
    safe_C = jnp.where(finite[..., None, None], C, jnp.eye(n, dtype=C.dtype))
    S = symmetric_part(safe_C)
    sym_status, skew_sq = _symmetry_status(safe_C, S)

    factor = CLOSED_FORMS[method]
    flat = S.reshape((-1, n, n))
    X, status, lost_sq = jax.vmap(lambda s: factor(s, k))(flat)
    X = X.reshape((*batch, n, X.shape[-1]))
    status, lost_sq = status.reshape(batch), lost_sq.reshape(batch)
    steps = jnp.zeros(batch, jnp.int32)

    if measure_residual:
        residual = relative_residual(X, safe_C)
    else:
        norm = jnp.linalg.norm(safe_C, axis=(-2, -1))
        err = jnp.sqrt(lost_sq + skew_sq)
        residual = jnp.where(norm > 0, err / jnp.where(norm > 0, norm, 1.0), err)

    status = worst_status(sym_status, status)
    status = jnp.where(finite, status, Status.NON_FINITE_INPUT).astype(jnp.int32)
    X = jnp.where(finite[..., None, None], X, jnp.nan)
    residual = jnp.where(finite, residual, jnp.nan)
    return Solution(X, residual, status, steps)
