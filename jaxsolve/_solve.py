"""``solve``: validate -> check and scale each matrix -> the method -> residual and status."""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.experimental import sparse

from ._checks import (
    as_float_array,
    as_square_matrices,
    check_bool,
    check_choice,
    check_int,
    check_key,
    check_rank,
    default_tol,
)
from ._closed_form import CLOSED_FORMS, symmetric_part, weighted_symmetric_part
from ._completion import completion_factor
from ._implicit import differentiated_implicitly
from ._iterative import (
    ITERATIVE_METHODS,
    check_iterative_options,
    iterative_factor,
    uses_lowrank,
)
from ._lowrank import lowrank_factor
from ._numerics import power_of_two_scale, relative, safe_norm, safe_sqrt
from ._observed import solve_observed
from ._solution import Solution, Status, worst_status

METHODS = (*CLOSED_FORMS, *ITERATIVE_METHODS)
PRECISIONS = ("highest", "high", "default")

ITERATIVE_OPTIONS = (
    "optimizer",
    "x0",
    "key",
    "rtol",
    "atol",
    "max_steps",
    "learning_rate",
)
"""The options of :func:`solve` that only the iterative methods take (a ValueError for a
closed form; :func:`compare` passes them to the iterative methods only)."""


def relative_residual(X: jax.Array, C: jax.Array) -> jax.Array:
    """‖X·Xᵀ − C‖_F / ‖C‖_F over the last two axes (absolute where ‖C‖_F = 0), computed in
    power-of-two scaled units, so that it neither overflows nor underflows whatever the
    scale of C."""
    h = power_of_two_scale(C)[..., None, None]
    Xs = X * h
    Cs = C * (h * h)
    error = safe_norm(Xs @ jnp.swapaxes(Xs, -1, -2) - Cs, (-2, -1))
    return relative(error, safe_norm(Cs, (-2, -1)))


class _Prepared(NamedTuple):
    """A stack of matrices made ready for a method, in units of C·h² (largest entries near
    1, h a power of two: X of C is X of S divided by h)."""

    S: jax.Array  # the symmetric target (the identity where C is not finite)
    M: jax.Array | None  # the mask's weights relative to the largest, or None
    W: jax.Array | None  # symmetric weights (M∘M + (M∘M)ᵀ)/2 of a mask, or None
    h: jax.Array  # (b,)
    finite: jax.Array  # (b,) no NaN/Inf among the (observed) entries
    skew_sq: jax.Array  # (b,) what no symmetric matrix can fit: ‖C − S‖², weighted
    norm_sq: jax.Array  # (b,) ‖C‖², weighted


def _prepare(C: jax.Array, M: jax.Array | None) -> _Prepared:
    """Check and scale a stack C (b, N, N) with weights M (unobserved entries of C set to 0
    already): the scale and the finiteness from the largest entry (a NaN or ±Inf entry
    makes it non-finite), then the symmetric part and every sum of squares on C·h², which
    can neither overflow nor underflow."""
    n = C.shape[-1]
    h = power_of_two_scale(C)
    finite = jnp.isfinite(jnp.max(jnp.abs(C), axis=(-2, -1)))  # (h's reduction: XLA shares it)
    Cs = C * (h * h)[:, None, None]
    if M is None:
        W = W_sym = None
        S = symmetric_part(Cs)
    else:
        # weights relative to the largest (before squaring): a uniform weight is the same
        # problem as none, and the steps are sized as without a mask
        top = jnp.max(M, axis=(-2, -1))
        finite &= jnp.isfinite(top)
        M = M / jnp.maximum(top, jnp.finfo(M.dtype).tiny)[:, None, None]
        W = M * M
        S, W_sym = weighted_symmetric_part(Cs, W)
    # S is formed once, in one pass over C and Cᵀ: the barrier keeps XLA from recomputing
    # it (and its costly transposed read) inside each consumer
    S = lax.optimization_barrier(jnp.where(finite[:, None, None], S, jnp.eye(n, dtype=C.dtype)))
    skew = Cs - S  # (not used where C is not finite)
    norm_sq = jnp.sum(Cs * Cs if W is None else W * Cs * Cs, axis=(-2, -1))
    skew_sq = jnp.sum(skew * skew if W is None else W * skew * skew, axis=(-2, -1))
    return _Prepared(S, M, W_sym, h, finite, skew_sq, norm_sq)


def _symmetry_status(p: _Prepared, n: int) -> jax.Array:
    """NOT_SYMMETRIC where the skew part is beyond rounding of ‖C‖, else SUCCESS."""
    tol = default_tol(n, p.norm_sq.dtype)
    return jnp.where(p.skew_sq > tol**2 * p.norm_sq, Status.NOT_SYMMETRIC, Status.SUCCESS)


def _residual_from_decomposition(lost: jax.Array, p: _Prepared) -> jax.Array:
    """‖X·Xᵀ − C‖/‖C‖ from lost = ‖X·Xᵀ − S‖: ‖C − S‖² + ‖S − X·Xᵀ‖² = ‖X·Xᵀ − C‖² (the
    skew part is orthogonal to every symmetric matrix; with a mask, in the weighted norms
    of :func:`weighted_symmetric_part`), all in the scaled units."""
    return safe_sqrt(relative(lost**2 + p.skew_sq, p.norm_sq))


def _map_matrices(fn, args, batch_size: int | None):
    """``fn`` over the leading axis of every array in ``args`` (None passes through): a
    direct call for one matrix (so that ``lax.cond`` inside skips the branch not taken),
    else ``vmap``, or ``lax.map`` in chunks of ``batch_size``."""
    if args[0].shape[0] == 1:
        out = fn(*(None if a is None else a[0] for a in args))
        return jax.tree.map(lambda x: x[None], out)
    if batch_size is None:
        return jax.vmap(fn)(*args)
    return lax.map(lambda a: fn(*a), args, batch_size=batch_size)


def _per_matrix(method: str, rank: int, optimizer):
    """The iterative method on one matrix: (S, W, x0, key, opts) -> (X, status, steps,
    lost): Gauss–Newton completion, precgd's Rayleigh–Ritz rank-k path, or the descent
    loop of gd and precgd."""

    def run(S, W, x0, key, opts):
        if method == "gauss_newton":
            return completion_factor(S, W, x0, key, rank=rank, opts=opts)
        if uses_lowrank(method, W, rank, S.shape[-1], optimizer):
            return lowrank_factor(S, x0, key, rank, opts)
        return iterative_factor(
            S, W, x0, key, method=method, rank=rank, optimizer=optimizer, opts=opts
        )

    return run


@functools.partial(
    jax.jit,
    static_argnames=(
        "method",
        "rank",
        "optimizer",
        "precision",
        "measure_residual",
        "batch_size",
    ),
)
def _solve(
    C,
    M,
    x0,
    key,
    opts,
    *,
    method,
    rank,
    optimizer,
    precision,
    measure_residual,
    batch_size,
) -> Solution:
    """:func:`solve` after validation: C (..., N, N) with N ≥ 1, M None or of C's shape."""
    batch, n = C.shape[:-2], C.shape[-1]
    C, M, x0 = (None if a is None else a.reshape((-1, *a.shape[-2:])) for a in (C, M, x0))
    if M is not None:  # unobserved entries may hold anything, NaN included
        C = jnp.where(M > 0, C, 0.0)
    with jax.default_matmul_precision(precision):
        p = _prepare(C, M)
        if method in CLOSED_FORMS:
            X, status, lost = CLOSED_FORMS[method](p.S, rank)
            steps = jnp.zeros(status.shape, jnp.int32)
            if measure_residual:
                residual = relative_residual(X, C * (p.h * p.h)[:, None, None])
            else:
                residual = _residual_from_decomposition(lost, p)
        else:
            keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(C.shape[0]))
            x0 = None if x0 is None else x0 * p.h[:, None, None]
            run = differentiated_implicitly(_per_matrix(method, rank, optimizer))
            X, status, steps, lost = _map_matrices(
                lambda S, W, x0, key: run(S, W, x0, key, opts), (p.S, p.W, x0, keys), batch_size
            )
            residual = _residual_from_decomposition(lost, p)
    status = worst_status(_symmetry_status(p, n), status)
    status = jnp.where(p.finite, status, Status.NON_FINITE_INPUT)
    X = jnp.where(p.finite[:, None, None], X / p.h[:, None, None], jnp.nan)
    residual = jnp.where(p.finite, residual, jnp.nan)
    steps = jnp.where(p.finite, steps, 0)
    flat = Solution(X, residual, status.astype(jnp.int32), steps)
    return jax.tree.map(lambda a: a.reshape(batch + a.shape[1:]), flat)


def check_mask(mask: Any, shape: tuple[int, ...]) -> jax.Array:
    """The mask as float weights of C's shape (or broadcastable to it); ValueError where
    concrete and negative or non-finite."""
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
    precision: str = "highest",
    measure_residual: bool = False,
    batch_size: int | None = None,
) -> Solution:
    """Find X with X·Xᵀ ≈ C.

    Args:
        C: array of shape ``(..., N, N)``; any leading batch dimensions. Integers are
            promoted to the default float dtype. Or the observed entries of one matrix as
            a ``jax.experimental.sparse.BCOO`` (N, N) (completion at O(|Ω|·k) a step,
            never an N×N array: :func:`jaxsolve.solve_observed`, whose extra options
            ``chunk_size`` and ``mesh`` it takes). A non-symmetric C is solved for its
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
              does not grow with the condition number. With rank < N, no mask and no
              ``optimizer`` it is block Rayleigh–Ritz instead (LOBPCG on the factored
              objective: each step minimises f exactly over span[X, preconditioned
              gradient, previous direction]), whose steps grow like
              1/sqrt(1 − λ_{k+1}/λ_k). At full rank, without a mask, ``x0``,
              ``optimizer`` and at the default learning rate ½, it starts with the same
              step undamped, computed as ½·(X + C·X⁻ᵀ) (Newton's polar iteration, scaled:
              5–8 steps for κ = 10…1e16), and the damped loop finishes whatever is left.
            - ``"gauss_newton"``: PSD completion (a ``mask`` or observed entries are
              required): Riemannian Gauss–Newton on the rank-k PSD matrices, each step a
              least-squares fit over the tangent space by preconditioned conjugate
              gradients; robust to the condition number and to few observed entries (no
              ``optimizer`` or ``learning_rate``).
            - ``"auto"``: Cholesky where it succeeds, else eigh; gauss_newton when a mask
              is given; on observed entries, see :func:`jaxsolve.solve_observed`.
              On a batch, the eigendecompositions run only if a Cholesky factor failed.
        rank: static. Number of columns k of X (default N). ``eigh`` keeps the top-k
            eigenpairs, the Frobenius-optimal rank-k factor; ``cholesky`` needs k = N. The
            iterative methods never form more than N×N and cost O(N²k) a step.
        mask: boolean or non-negative weights of C's shape: only those entries count (PSD
            matrix completion); unobserved entries may be anything, NaN included.
            Iterative methods only; the residual is then measured on the masked entries,
            ‖M∘(X·Xᵀ − C)‖/‖M∘C‖, and NOT_PSD means that no PSD matrix fits them.
        optimizer: static. An optax ``GradientTransformation`` for ``"gd"`` (and, after the
            preconditioner, for ``"precgd"``) that replaces the default step.
        x0: initial factor, shape ``(..., N, k)``. key: PRNG key for the random or
            sketched start (default ``PRNGKey(0)``).
        rtol, atol: stop with SUCCESS when the relative residual is at most ``atol``, or
            when the preconditioned step (precgd's, whatever the method) would change
            X·Xᵀ by at most ``rtol·‖C‖`` (a stationary point: the nearest PSD or best
            rank-k answer). Defaults 10·sqrt(N)·eps and 4·sqrt(N)·eps; non-negative.
            Iterative methods only (a ValueError for a closed form), like ``optimizer``,
            ``x0``, ``key``, ``max_steps`` and ``learning_rate``.
        max_steps: iteration cap (default 5000 for gd, 1000 for precgd, 200 for
            gauss_newton; Newton steps count), at most 2³¹ − 1.
        learning_rate: step size > 0; for gd absolute (default 1/(3·λ_max)), for precgd
            the fraction of the preconditioned step (default 0.5; the Rayleigh–Ritz path
            of precgd with rank < N has none).
        precision: static. Matmul precision ("highest" default: float32 matmuls stay
            float32 on GPU/TPU instead of TF32/bfloat16, so the residual targets hold).
        measure_residual: static; closed forms only (the iterative methods always measure).
            By default a closed form's residual comes from its decomposition: ‖C − S‖ for
            the non-symmetric part, the clipped and dropped eigenvalues for eigh/sqrt, 0
            for a successful Cholesky. That is ‖X·Xᵀ − C‖ in exact arithmetic; the
            rounding error of the computed X (about N·eps relative) is left out, and the
            call costs no more than the factorisation. True forms X·Xᵀ and measures it.
        batch_size: static; iterative methods on a batch: solve this many matrices at a
            time (``lax.map``) instead of the whole batch under ``vmap``, to bound memory.

    Returns:
        :class:`Solution` with ``X`` of shape ``(..., N, k)``, ``residual`` =
        ‖X·Xᵀ − C‖_F/‖C‖_F (see ``measure_residual``), ``status`` (:class:`Status` codes)
        and ``steps``, each per matrix. Residuals and statuses are the same for C and s·C
        for any s > 0 that keeps C finite (C is scaled by a power of two inside).

    Statuses: SUCCESS, NOT_SYMMETRIC, NOT_PSD, CHOLESKY_FAILED, MAX_STEPS, DIVERGED,
    NON_FINITE, NON_FINITE_INPUT (that matrix's X and residual are NaN; the rest of the
    batch is unaffected). An iterative SUCCESS always means a finite residual at most
    ``atol`` or a certified stationary point.

    Differentiable w.r.t. C: the closed forms everywhere their answer is (Cholesky where C
    is positive definite; ``eigh`` and ``sqrt`` with a derivative that stays finite and
    right at repeated eigenvalues: derivatives of functions of X·Xᵀ are exact, and the
    derivative of the eigh factor X itself is that of V·sqrt(Λ) with the eigenvectors V
    held fixed); the iterative methods by the implicit function theorem at the returned X
    (forward and reverse mode, no unrolling; see :mod:`jaxsolve._implicit`): the derivative
    of the solution, not of the iteration, whatever the number of steps. X is unique only
    up to an orthogonal factor: derivatives of functions of X·Xᵀ are exact; the derivative
    of an iterative X itself is the one with Xᵀ·dX symmetric. Where the solve did not
    converge (MAX_STEPS, DIVERGED, NON_FINITE) the derivative is that of the stationarity
    condition at the returned X, meaningful only as far as X is near a solution.

    >>> sol = jaxsolve.solve(jnp.array([[4.0, 2.0], [2.0, 3.0]]))  # doctest: +SKIP
    >>> sol.X @ sol.X.T, sol.status                                 # doctest: +SKIP
    """
    if isinstance(C, sparse.BCOO):
        return solve_observed(
            C,
            method=method,
            rank=rank,
            mask=mask,
            optimizer=optimizer,
            x0=x0,
            key=key,
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
            learning_rate=learning_rate,
            precision=precision,
            measure_residual=measure_residual,
            batch_size=batch_size,
        )
    method = check_choice(method, "method", METHODS)
    precision = check_choice(precision, "precision", PRECISIONS)
    measure_residual = check_bool(measure_residual, "measure_residual")
    C = as_square_matrices(C, "C")
    batch, n = C.shape[:-2], C.shape[-1]
    k = check_rank(rank, n)
    M = None if mask is None else check_mask(mask, C.shape).astype(C.dtype)
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size", low=1)
    if method == "auto" and M is not None:
        method = "gauss_newton"
    if M is not None and method in CLOSED_FORMS:
        raise ValueError(
            f"mask is supported by the iterative methods {ITERATIVE_METHODS}; got method={method!r}"
        )
    if method == "gauss_newton" and M is None:
        raise ValueError("method='gauss_newton' is PSD completion: it needs a mask; got none")
    if method == "cholesky" and k != n:
        raise ValueError(f"rank must be None or N={n} for method='cholesky'; got {rank}")
    if optimizer is not None and not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"optimizer must be an optax GradientTransformation; got {optimizer!r}")
    given = dict(optimizer=optimizer, x0=x0, key=key, rtol=rtol, atol=atol)
    given.update(max_steps=max_steps, learning_rate=learning_rate)
    if method not in ITERATIVE_METHODS:
        for name in ITERATIVE_OPTIONS:
            if given[name] is not None:
                raise ValueError(
                    f"{name} applies to methods {ITERATIVE_METHODS}; got method={method!r}"
                )
    if x0 is not None:
        x0 = as_float_array(x0, "x0").astype(C.dtype)
        if x0.shape != (*batch, n, k):
            raise ValueError(f"x0 must have shape (..., N, k) = {(*batch, n, k)}; got {x0.shape}")
    opts = None
    if method in ITERATIVE_METHODS:
        opts = check_iterative_options(
            C.dtype,
            n,
            method,
            rtol=rtol,
            atol=atol,
            max_steps=max_steps,
            learning_rate=learning_rate,
            optimizer=optimizer,
        )
        key = check_key(key)
    if n == 0 or math.prod(batch) == 0:
        zeros = jnp.zeros(batch, C.dtype)
        int_zeros = zeros.astype(jnp.int32)
        return Solution(jnp.zeros((*batch, n, k), C.dtype), zeros, int_zeros, int_zeros)
    return _solve(
        C,
        M,
        x0,
        key,
        opts,
        method=method,
        rank=k,
        optimizer=optimizer,
        precision=precision,
        measure_residual=measure_residual,
        batch_size=batch_size,
    )
