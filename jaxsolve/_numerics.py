"""Guarded numerics: the one home of safe square roots, norms, divisions, power-of-two scaling
and the conjugate-gradient solve.

Each function is finite where its plain form would give ``inf`` or ``NaN`` at a singular
point (``sqrt`` at 0, a division by 0), and its derivative is finite there too (the "double
``where``": mask the input, then the output). NaN input stays NaN, so that a failed
computation upstream is never hidden.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def safe_sqrt(x: jax.Array) -> jax.Array:
    """``sqrt(max(x, 0))`` with derivative 0, not ``inf·0 = NaN``, at and below 0; NaN stays
    NaN. Used for clipped eigenvalues and for squared norms that may be exactly 0."""
    positive = x > 0
    root = jnp.sqrt(jnp.where(positive, x, 1.0))
    return jnp.where(positive, root, jnp.where(jnp.isnan(x), x, 0.0))


def safe_norm(A: jax.Array, axis=None, weights: jax.Array | None = None) -> jax.Array:
    """``sqrt(Σ w·a²)`` over ``axis`` (every axis by default; ``weights`` 1 if None), with
    derivative 0 at A = 0 (a solve that fits exactly must not give NaN gradients)."""
    squares = A * A if weights is None else weights * A * A
    return safe_sqrt(jnp.sum(squares, axis=axis))


def safe_divide(numerator: jax.Array, denominator: jax.Array, fallback=0.0) -> jax.Array:
    """``numerator / denominator`` where the denominator is non-zero, ``fallback`` where it is
    0 (finite values and derivatives either way)."""
    nonzero = denominator != 0
    quotient = numerator / jnp.where(nonzero, denominator, 1.0)
    return jnp.where(nonzero, quotient, fallback)


def relative(error: jax.Array, scale: jax.Array) -> jax.Array:
    """``error / scale`` where ``scale > 0``, the absolute ``error`` where it is 0: the
    convention of every relative residual in jaxsolve."""
    return safe_divide(error, scale, fallback=error)


def power_of_two_scale(A: jax.Array, axis=(-2, -1)) -> jax.Array:
    """h = 2^(−⌊e/2⌋) for ``max |A| = f·2^e`` (``frexp``) over ``axis``; 1 where that is 0 or
    not finite. A constant for differentiation.

    Multiplying A by h² (exact: a power of two) brings its largest entries into [½, 2), so
    that sums of squares of it can neither overflow nor underflow whatever A's scale, and a
    factor X of A·h² divided by h is a factor of A, bit for bit where nothing under- or
    overflows. h² is kept a normal number (8 binades inside the exponent range)."""
    largest = jnp.max(jnp.abs(A), axis=axis)
    usable = jnp.isfinite(largest) & (largest > 0)
    _, exponent = jnp.frexp(jnp.where(usable, largest, 1.0))
    limit = (jnp.finfo(A.dtype).maxexp - 1) // 2 - 8
    half = jnp.clip(exponent // 2, -limit, limit)
    return lax.stop_gradient(jnp.ldexp(jnp.ones_like(largest), -half))


def row_dots(A: jax.Array, B: jax.Array, k: int) -> jax.Array:
    """``Σ_{c<k} A[:, c]·B[:, c]``, unrolled over the k columns: XLA's CPU reduction over a
    short minor axis is about 30× slower than this one fused elementwise kernel."""
    out = A[:, 0] * B[:, 0]
    for c in range(1, k):
        out = out + A[:, c] * B[:, c]
    return out


def conjugate_gradient(matvec, precondition, b, x0, target, max_steps):
    """x with ``matvec(x) ≈ b`` for symmetric positive semidefinite ``matvec`` (on arrays
    of b's shape, in the Frobenius inner product) and b in its range, by conjugate
    gradients preconditioned with the symmetric positive definite ``precondition``, from
    ``x0``. Stops once ‖b − matvec(x)‖ ≤ ``target``, at ``max_steps``, or before a direction
    of non-positive curvature (``matvec`` not semidefinite there: the iterate so far is
    kept). From x0 = 0 a consistent singular system converges to a solution. Returns
    (x, steps)."""

    def inner(u, v):
        return jnp.sum(u * v)

    def unfinished(c):
        _, r, _, _, steps, curved = c
        return curved & (steps < max_steps) & (inner(r, r) > target * target)

    def step(c):
        x, r, p, rz, steps, _ = c
        Ap = matvec(p)
        pAp = inner(p, Ap)
        curved = (pAp > 0) & jnp.isfinite(pAp)
        alpha = jnp.where(curved, safe_divide(rz, pAp), 0.0)
        x, r = x + alpha * p, r - alpha * Ap
        z = precondition(r)
        rz_next = inner(r, z)
        return x, r, z + safe_divide(rz_next, rz) * p, rz_next, steps + curved, curved

    r = b - matvec(x0)
    z = precondition(r)
    init = (x0, r, z, inner(r, z), jnp.zeros((), jnp.int32), jnp.asarray(True))
    x, _, _, _, steps, _ = lax.while_loop(unfinished, step, init)
    return x, steps
