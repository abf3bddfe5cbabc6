"""Memory-light losses between the distance matrix of Y and a target, for large N.

``pairwise_distances(Y)`` builds an ``N×N×d`` difference array (and its backward pass keeps
it): 30 GB at N = 50,000 in float32. Two lighter forms:

* :func:`distance_loss` forms squared distances as ``‖a‖² + ‖b‖² − 2a·b`` from centred
  coordinates: ``N×N`` memory, no ``N×N×d``. The target is an ``N×N`` array.
* :func:`blocked_distance_loss` never forms ``N×N`` either: it scans over blocks of rows
  with ``jax.checkpoint``, so the forward *and* backward pass use ``O(N·block)`` memory. The
  target is given as coordinates (its distances are computed block by block) or as a
  function returning rows of the target.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from .._checks import as_square_matrices, check_int
from ._distances import DEFAULT_DIM, as_coordinates, safe_sqrt, squared_differences

_HIGHEST = lax.Precision.HIGHEST


def _identity(x: jax.Array) -> jax.Array:
    return x


def distance_loss(
    Y: jax.typing.ArrayLike,
    target: jax.typing.ArrayLike,
    *,
    mask: jax.typing.ArrayLike | None = None,
    squared: bool = False,
    transform: Callable[[jax.Array], jax.Array] | None = None,
    dim: int | None = DEFAULT_DIM,
) -> jax.Array:
    """Mean squared error between ``f(distances of Y)`` and a target matrix, in ``O(N²)`` memory.

    Equals ``jnp.mean((f(pairwise_distances(Y)) − target)**2)`` (over all ``N²`` entries, or
    over ``mask`` True entries) without the ``N×N×d`` intermediate.

    Args:
        Y: coordinates ``(..., N, d)``.
        target: ``(..., N, N)``.
        mask: optional boolean ``(..., N, N)``; mean over True entries only.
        squared: static; compare squared distances (no square root).
        transform: optional elementwise ``f`` applied to the distances (e.g. a soft contact
            map ``lambda d: jax.nn.sigmoid((8.0 - d) / 1.0)``); default identity.
        dim: static; expected d (default 3).

    Squared distances come from ``‖a‖² + ‖b‖² − 2a·b`` on centred Y (matmul at HIGHEST
    precision): absolute error ≈ ``eps·‖y‖²``, so distances much shorter than
    ``sqrt(eps)·spread`` lose relative accuracy — harmless for a loss, and the diagonal is
    exactly 0. Gradients are finite everywhere (guarded square root).
    """
    Y = as_coordinates(Y, "Y", dim)
    T = as_square_matrices(target, "target")
    if T.shape[-1] != Y.shape[-2]:
        raise ValueError(
            f"target must be (..., N, N) with N = {Y.shape[-2]} to match Y {Y.shape}; got {T.shape}"
        )
    f = _identity if transform is None else transform
    Yc = Y - jnp.mean(Y, axis=-2, keepdims=True)
    norms = jnp.sum(Yc * Yc, axis=-1)
    inner = jnp.matmul(Yc, jnp.swapaxes(Yc, -1, -2), precision=_HIGHEST)
    sq = jnp.maximum(norms[..., :, None] + norms[..., None, :] - 2 * inner, 0.0)
    n = Y.shape[-2]
    sq = jnp.where(jnp.eye(n, dtype=bool), 0.0, sq)
    err = (f(sq if squared else safe_sqrt(sq)) - T) ** 2
    if mask is None:
        return jnp.mean(err, axis=(-2, -1))
    m = jnp.broadcast_to(jnp.asarray(mask, bool), err.shape)
    count = jnp.sum(m, axis=(-2, -1))
    return jnp.sum(jnp.where(m, err, 0.0), axis=(-2, -1)) / jnp.maximum(count, 1)


def blocked_distance_loss(
    Y: jax.typing.ArrayLike,
    target: jax.typing.ArrayLike | Callable[[jax.Array], jax.Array],
    *,
    block_size: int = 256,
    squared: bool = False,
    transform: Callable[[jax.Array], jax.Array] | None = None,
    rows: jax.typing.ArrayLike | None = None,
    dim: int | None = DEFAULT_DIM,
) -> jax.Array:
    """Mean squared error between ``f(distances of Y)`` and a target, in ``O(N·block)`` memory.

    Args:
        Y: coordinates ``(N, d)`` (``vmap`` for a batch).
        target: either target *coordinates* ``(N, d')`` (the target is ``f`` of their
            distance matrix), or a function ``rows ↦ (len(rows), N)`` array returning the
            target rows for an int array of row indices (it is traced: write it with
            ``jax.numpy``; index into a memory-mapped/host array with
            ``jax.pure_callback`` if the target does not fit). Non-finite entries returned
            by the function are treated as missing and left out of the mean.
        block_size: static; rows per block (memory ≈ ``block_size·N·(d + 4)`` floats).
        squared: static; compare squared distances.
        transform: optional elementwise ``f`` on the distances (default identity).
        rows: optional int array of row indices (traced; its length is static): the loss
            over those rows only (all N columns), an unbiased estimate of the full loss
            when drawn at random — minibatch training at ``O(len(rows)·N)`` cost per step
            instead of ``O(N²)``.
        dim: static; expected d (default 3).

    Returns:
        The scalar mean over the ``N²`` entries (diagonal included, as in
        ``jnp.mean((f(pairwise_distances(Y)) − T)**2)``) or over the finite target entries.

    Implementation: ``lax.scan`` over row blocks; each block is ``jax.checkpoint``-ed, so
    the backward pass recomputes its distances instead of storing ``N×N`` residuals.
    Distances are formed from differences (exact for close points).
    """
    Y = as_coordinates(Y, "Y", dim)
    if Y.ndim != 2:
        raise ValueError(f"Y must have shape (N, d); got {Y.shape} (use jax.vmap for a batch)")
    block_size = check_int(block_size, "block_size", low=1)
    n = Y.shape[0]
    f = _identity if transform is None else transform

    if callable(target):
        target_rows = target
        Z = None
    else:
        Z = as_coordinates(target, "target", None)
        if Z.shape != (n, Z.shape[-1]) or Z.ndim != 2:
            raise ValueError(
                f"target coordinates must have shape (N, d') with N = {n} to match Y {Y.shape}; "
                f"got {Z.shape}. Pass a function rows -> (len(rows), N) for a target matrix."
            )
        target_rows = None
    if n == 0:
        return jnp.zeros((), Y.dtype)
    if rows is None:
        selected = jnp.arange(n)
    else:
        selected = jnp.asarray(rows)
        if selected.ndim != 1 or not jnp.issubdtype(selected.dtype, jnp.integer):
            raise ValueError(
                f"rows must be a 1-D integer array of row indices; got {selected.dtype} "
                f"{selected.shape}"
            )
    m = selected.shape[0]
    if m == 0:
        return jnp.zeros((), Y.dtype)
    b = min(block_size, m)
    n_blocks = -(-m // b)
    slots = jnp.arange(n_blocks * b)
    valid = (slots < m).reshape(n_blocks, b)
    rows = selected[jnp.minimum(slots, m - 1)].reshape(n_blocks, b)

    def dist(P, idx):
        sq = squared_differences(P[idx], P)
        return f(sq if squared else safe_sqrt(sq))

    @jax.checkpoint
    def block(Y, Z, idx, ok):
        pred = dist(Y, idx)
        if target_rows is None:
            tgt = dist(Z, idx)
        else:
            tgt = jnp.asarray(target_rows(idx), pred.dtype)
            if tgt.shape != pred.shape:
                raise ValueError(
                    f"target(rows) must return shape (len(rows), N) = {pred.shape}; got {tgt.shape}"
                )
        use = ok[:, None] & jnp.isfinite(tgt)
        err = jnp.where(use, pred - jnp.where(use, tgt, 0.0), 0.0)
        return jnp.sum(err * err), jnp.sum(use, dtype=Y.dtype)

    def body(carry, xs):
        sse, count = block(Y, Z, *xs)
        return (carry[0] + sse, carry[1] + count), None

    zero = jnp.zeros((), Y.dtype)
    (sse, count), _ = lax.scan(body, (zero, zero), (rows, valid))
    return sse / jnp.maximum(count, 1)
