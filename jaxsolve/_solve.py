"""``solve``: validate -> guard non-finite input -> method -> residual + status."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import optax

from ._checks import (
    as_float_array,
    as_square_matrices,
    check_choice,
    check_int,
    check_rank,
    default_tol,
)
from ._closed_form import CLOSED_FORMS, symmetric_part
from ._iterative import ITERATIVE_METHODS, IterOptions, iterative_factor
from ._solution import Solution, Status, worst_status

METHODS = (*CLOSED_FORMS, *ITERATIVE_METHODS)
PRECISIONS = ("highest", "high", "default")
_DEFAULT_MAX_STEPS = {"gd": 5000, "precgd": 1000}


def relative_residual(X: jax.Array, C: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """‖X·Xᵀ − C‖_F / ‖C‖_F over the last two axes (absolute where ‖C‖_F = 0); with
    ``weights`` M (C given already multiplied by M) the masked ‖M∘(X·Xᵀ) − C‖ / ‖C‖."""
    XXt = X @ jnp.swapaxes(X, -1, -2)
    if weights is not None:
        XXt = weights * XXt
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


def _over_matrices(fn, *flat_args):
    """``vmap(fn)`` over the flattened batch, or a direct call for a single matrix, so that
    ``lax.cond`` inside (auto's Cholesky fallback, the iterative loop's occasional exact
    residual) really skips the branch not taken instead of becoming a ``select``."""
    if flat_args[0].shape[0] != 1:
        return jax.vmap(fn)(*flat_args)
    single = fn(*(None if a is None else a[0] for a in flat_args))
    return jax.tree.map(lambda x: x[None], single)


def _check_mask(mask: Any, shape: tuple[int, ...]) -> jax.Array:
    """The mask as float weights of C's shape (or broadcastable to it); ValueError if negative."""
    W = as_float_array(mask, "mask")
    if W.ndim < 2 or W.shape[-2:] != shape[-2:] or jnp.broadcast_shapes(W.shape, shape) != shape:
        raise ValueError(
            f"mask must have the shape of C, {shape} (or broadcast to it); got {W.shape}"
        )
    if not isinstance(W, jax.core.Tracer) and bool(jnp.any(W < 0) | ~jnp.all(jnp.isfinite(W))):
        raise ValueError(
            "mask must hold booleans or finite non-negative weights; got negative "
            "or non-finite entries"
        )
    return jnp.broadcast_to(W, shape)


def _iter_options(dtype, n, rtol, atol, max_steps, learning_rate, method, fixed_steps):
    eps = float(jnp.finfo(dtype).eps)
    if max_steps is None:
        max_steps = _DEFAULT_MAX_STEPS[method]
    if fixed_steps:
        max_steps = check_int(max_steps, "max_steps", low=0)
    if learning_rate is None:
        learning_rate = 0.5 if method == "precgd" else math.nan
    return IterOptions(
        rtol=jnp.asarray(10 * math.sqrt(max(n, 1)) * eps if rtol is None else rtol, dtype),
        atol=jnp.asarray(4 * math.sqrt(max(n, 1)) * eps if atol is None else atol, dtype),
        max_steps=max_steps if fixed_steps else jnp.asarray(max_steps, jnp.int32),
        learning_rate=jnp.asarray(learning_rate, dtype),
    )


def solve(
    C: jax.typing.ArrayLike,
    *,
    method: str = "auto",
    rank: int | None = None,
    mask: jax.typing.ArrayLike | None = None,
    optimizer: optax.GradientTransformation | None = None,
    x0: jax.typing.ArrayLike | None = None,
    key: jax.Array | None = None,
    rtol: float | jax.Array | None = None,
    atol: float | jax.Array | None = None,
    max_steps: int | jax.Array | None = None,
    learning_rate: float | jax.Array | None = None,
    fixed_steps: bool = False,
    precision: str = "highest",
    measure_residual: bool = True,
) -> Solution:
    """Find X with X·Xᵀ ≈ C.

    Args:
        C: array of shape ``(..., N, N)``; any leading batch dimensions. Integers are
            promoted to the default float dtype. A non-symmetric C is solved for its
            symmetric part (C + Cᵀ)/2 (status NOT_SYMMETRIC); an indefinite one for the
            nearest PSD matrix (status NOT_PSD) by every method but Cholesky.
        method: static.

            - ``"cholesky"``: lower-triangular L, L·Lᵀ = C; CHOLESKY_FAILED unless PD.
            - ``"eigh"``: X = V·sqrt(max(Λ, 0)), largest eigenvalues first.
            - ``"sqrt"``: the symmetric PSD root V·sqrt(Λ₊)·Vᵀ.
            - ``"gd"``: gradient descent on f(X) = ¼‖M∘(X·Xᵀ − C)‖²_F with ``optimizer``
              (default: plain GD, step 1/(3·λ_max) from a Lanczos estimate, random start).
            - ``"precgd"``: the step g·(XᵀX + δI)⁻¹ (ScaledGD with PrecGD damping,
              :func:`jaxsolve.scaled_gradient`), step 0.5, spectral start; its step count
              does not grow with the condition number.
            - ``"auto"``: Cholesky where it succeeds, else eigh; precgd when a mask is given.
        rank: static. Number of columns k of X (default N). ``eigh`` keeps the top-k
            eigenpairs, the Frobenius-optimal rank-k factor; ``cholesky`` needs k = N. The
            iterative methods never form more than N×N and cost O(N²k) a step.
        mask: boolean or non-negative weights of C's shape: only those entries count (PSD
            matrix completion); unobserved entries may be anything, NaN included.
            Iterative methods only; the residual is then measured on the masked entries,
            ‖M∘(X·Xᵀ − C)‖/‖M∘C‖.
        optimizer: static. An optax ``GradientTransformation`` for ``"gd"`` (and, after the
            preconditioner, for ``"precgd"``) that replaces the default step.
        x0: initial factor, shape ``(..., N, k)``. key: PRNG key for the random or
            sketched start (default ``PRNGKey(0)``).
        rtol, atol: stop when the relative residual is <= atol, or a step changes X by
            at most rtol·‖X‖ while ‖∇f‖ <= rtol·‖C‖·‖X‖ (defaults 4·sqrt(N)·eps and
            10·sqrt(N)·eps).
        max_steps: iteration cap (default 5000 for gd, 1000 for precgd).
        learning_rate: step size; for gd absolute (default 1/(3·λ_max)), for precgd the
            fraction of the preconditioned step (default 0.5).
        fixed_steps: static. Run exactly ``max_steps`` steps with ``fori_loop`` (freezing X
            once converged) so that ``jax.grad`` can differentiate through the solve;
            ``max_steps`` must then be a Python int. The default ``while_loop`` is
            forward-differentiable only.
        precision: static. Matmul precision ("highest" default: float32 matmuls stay
            float32 on GPU/TPU instead of TF32/bfloat16, so the residual targets hold).
        measure_residual: static. If False the closed forms report the residual from their
            eigenvalues (exact in exact arithmetic) instead of forming X·Xᵀ.

    Returns:
        :class:`Solution` with ``X`` of shape ``(..., N, k)``, ``residual`` =
        ‖X·Xᵀ − C‖_F/‖C‖_F, ``status`` (:class:`Status` codes) and ``steps``, each per matrix.

    Statuses: SUCCESS, NOT_SYMMETRIC, NOT_PSD, CHOLESKY_FAILED, MAX_STEPS, DIVERGED,
    NON_FINITE, NON_FINITE_INPUT (that matrix's X and residual are NaN; the rest of the
    batch is unaffected).

    Differentiable w.r.t. C: ``"sqrt"`` has a derivative that stays finite at repeated
    eigenvalues, ``"eigh"`` follows JAX's ``eigh`` derivative (NaN at repeated
    eigenvalues), ``"cholesky"`` is smooth where C is positive definite, and the iterative
    methods with ``fixed_steps=True``. X is unique only up to an orthogonal factor:
    differentiate functions of X·Xᵀ.

    >>> sol = jaxsolve.solve(jnp.array([[4.0, 2.0], [2.0, 3.0]]))  # doctest: +SKIP
    >>> sol.X @ sol.X.T, sol.status                                 # doctest: +SKIP
    """
    method = check_choice(method, "method", METHODS)
    precision = check_choice(precision, "precision", PRECISIONS)
    C = as_square_matrices(C, "C")
    n = C.shape[-1]
    k = check_rank(rank, n)
    W = None if mask is None else _check_mask(mask, C.shape)
    if method == "auto" and W is not None:
        method = "precgd"
    if W is not None and method in CLOSED_FORMS:
        raise ValueError(
            f"mask is supported by the iterative methods {ITERATIVE_METHODS}; got method={method!r}"
        )
    if method == "cholesky" and k != n:
        raise ValueError(f"rank must be None or N={n} for method='cholesky'; got {rank}")
    if optimizer is not None and not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"optimizer must be an optax GradientTransformation; got {optimizer!r}")
    for name, value in (("optimizer", optimizer), ("x0", x0), ("key", key)):
        if value is not None and method not in ITERATIVE_METHODS:
            raise ValueError(f"{name} applies to methods {ITERATIVE_METHODS}; got {method!r}")
    batch = C.shape[:-2]
    if x0 is not None:
        x0 = as_float_array(x0, "x0").astype(C.dtype)
        if x0.shape != (*batch, n, k):
            raise ValueError(f"x0 must have shape (..., N, k) = {(*batch, n, k)}; got {x0.shape}")

    if n == 0:
        zeros = jnp.zeros(batch, C.dtype)
        int_zeros = zeros.astype(jnp.int32)
        return Solution(jnp.zeros((*batch, 0, 0), C.dtype), zeros, int_zeros, int_zeros)

    if W is not None:
        # Unobserved entries may hold anything (NaN is a common way to write "unknown").
        C = jnp.where(W > 0, C, 0.0)
    finite = jnp.all(jnp.isfinite(C), axis=(-2, -1))
    safe_C = jnp.where(finite[..., None, None], C, jnp.eye(n, dtype=C.dtype))
    S = symmetric_part(safe_C)
    sym_status, skew_sq = _symmetry_status(safe_C, S)
    flat_S = S.reshape((-1, n, n))

    with jax.default_matmul_precision(precision):
        if method in CLOSED_FORMS:
            X, status, lost_sq = _over_matrices(lambda s: CLOSED_FORMS[method](s, k), flat_S)
            steps = jnp.zeros(flat_S.shape[0], jnp.int32)
        else:
            opts = _iter_options(
                C.dtype, n, rtol, atol, max_steps, learning_rate, method, fixed_steps
            )
            key = jax.random.PRNGKey(0) if key is None else key
            keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(flat_S.shape[0]))
            flat_W = None if W is None else symmetric_part(W * W).reshape((-1, n, n))
            flat_x0 = None if x0 is None else x0.reshape((-1, n, k))

            def one(s, w, x, key):
                return iterative_factor(
                    s,
                    w,
                    x,
                    key,
                    method=method,
                    rank=k,
                    optimizer=optimizer,
                    opts=opts,
                    fixed_steps=fixed_steps,
                    precision=None,
                )

            X, status, steps = _over_matrices(one, flat_S, flat_W, flat_x0, keys)
            lost_sq = None

        X = X.reshape((*batch, n, X.shape[-1]))
        status, steps = status.reshape(batch), steps.reshape(batch)
        if W is not None:
            residual = relative_residual(X, W * safe_C, weights=W)
        elif measure_residual or lost_sq is None:
            residual = relative_residual(X, safe_C)
        else:
            norm = jnp.linalg.norm(safe_C, axis=(-2, -1))
            err = jnp.sqrt(lost_sq.reshape(batch) + skew_sq)
            residual = jnp.where(norm > 0, err / jnp.where(norm > 0, norm, 1.0), err)

    status = worst_status(sym_status if W is None else 0, status)
    status = jnp.where(finite, status, Status.NON_FINITE_INPUT).astype(jnp.int32)
    X = jnp.where(finite[..., None, None], X, jnp.nan)
    residual = jnp.where(finite, residual, jnp.nan)
    steps = jnp.where(finite, steps, 0)
    return Solution(X, residual, status, steps)
