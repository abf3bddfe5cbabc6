"""Coordinates from sparse observed distances: O(|Ω|) a step, no N×N array.

``sparse_mds`` places N points from a few dozen measured distances each (sensor-network or
molecule localization), in two stages:

1. Start: landmark MDS (de Silva & Tenenbaum 2004) on graph distances. Shortest paths
   from ``landmarks`` points through the observed pairs (Bellman–Ford rounds, each a
   ``segment_min`` over the pairs: O(|Ω|·L)), classical MDS of the L×L landmark block, and
   every point triangulated from its L distances. Path lengths over-estimate long
   distances, so this is a start with the right global shape, not the answer.
2. Refinement: the raw stress ``Σ_{(i,j) ∈ Ω} (‖y_i − y_j‖ − D_ij)²`` over the observed
   pairs by L-BFGS (optax, zoom line search) in a ``lax.while_loop``: each evaluation
   gathers the two points of every pair and scatters the gradient back, O(|Ω|·dim).

Everything runs in the unit of the largest observed distance (a power of two), as the
dense :func:`jaxsolve.transforms.mds` does.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from .._checks import check_int, check_real
from .._numerics import safe_sqrt
from .._observed import observed_pairs
from .._solution import Status, worst_status
from ._distances import unit_scale
from ._mds import MDSResult

DEFAULT_LANDMARKS = 32


def _pair_distances(Y, rows, cols):
    diff = Y[rows] - Y[cols]
    sq = diff[:, 0] * diff[:, 0]
    for c in range(1, Y.shape[1]):  # (unrolled: see jaxsolve._observed._row_dots)
        sq = sq + diff[:, c] * diff[:, c]
    return safe_sqrt(sq)


def raw_stress(Y, rows, cols, D, use) -> jax.Array:
    """``Σ_pairs use·(‖y_i − y_j‖ − D_ij)²``, one term per unordered observed pair."""
    r = _pair_distances(Y, rows, cols) - D
    return jnp.sum(jnp.where(use, r * r, 0.0))


def graph_distances(rows, cols, D, use, sources, n: int) -> jax.Array:
    """Shortest-path lengths (N, L) from each of ``sources`` through the pairs (``use``),
    by Bellman–Ford rounds until nothing changes (at most N); unreachable: +inf."""
    src = jnp.concatenate([rows, cols])
    dst = jnp.concatenate([cols, rows])
    w = jnp.where(use, D, jnp.inf)
    w = jnp.concatenate([w, w])[:, None]
    L = sources.shape[0]
    dist = jnp.full((n, L), jnp.inf, D.dtype).at[sources, jnp.arange(L)].set(0.0)

    def body(state):
        dist, _, k = state
        reached = jax.ops.segment_min(dist[src] + w, dst, num_segments=n)
        new = jnp.minimum(dist, reached)
        return new, jnp.any(new < dist), k + 1

    dist, _, _ = lax.while_loop(
        lambda s: s[1] & (s[2] < n), body, (dist, jnp.asarray(True), jnp.zeros((), jnp.int32))
    )
    return dist


def landmark_mds(delta_sq: jax.Array, landmarks: jax.Array, dim: int) -> jax.Array:
    """Landmark MDS: classical MDS of the landmarks' squared distances, then each point
    from its squared distances ``delta_sq`` (N, L) to them:
    y = −½·Λ^(−½)·Vᵀ·(δ − mean column of the landmark block)."""
    block = delta_sq[landmarks]  # (L, L)
    block = (block + block.T) / 2
    mean = jnp.mean(block, axis=1)
    centered = block - mean[None, :] - mean[:, None] + jnp.mean(block)
    lam, V = jnp.linalg.eigh(-0.5 * centered)
    lam, V = lam[::-1][:dim], V[:, ::-1][:, :dim]
    positive = lam > 0
    inv_root = jnp.where(positive, 1 / jnp.sqrt(jnp.where(positive, lam, 1.0)), 0.0)
    return -0.5 * (delta_sq - mean[None, :]) @ (V * inv_root)


def _refine(Y0, rows, cols, D, use, max_steps, gtol):
    """L-BFGS on the stress normalised by Σ D²; stops when the gradient's norm is at most
    ``gtol`` (SUCCESS), at ``max_steps`` (MAX_STEPS) or on a non-finite value (NON_FINITE,
    the last finite Y kept)."""
    total = jnp.sum(jnp.where(use, D * D, 0.0))
    total = jnp.where(total > 0, total, 1.0)

    def f(Y):
        return raw_stress(Y, rows, cols, D, use) / total

    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(f)

    def body(state):
        Y, opt_state, _, k, _ = state
        value, grad = value_and_grad(Y, state=opt_state)
        updates, opt_state = opt.update(grad, opt_state, Y, value=value, grad=grad, value_fn=f)
        Y_new = optax.apply_updates(Y, updates)
        finite = jnp.all(jnp.isfinite(Y_new))
        gnorm = optax.tree.norm(grad)
        return jnp.where(finite, Y_new, Y), opt_state, gnorm, k + 1, finite

    def cond(state):
        _, _, gnorm, k, finite = state
        return (gnorm > gtol) & (k < max_steps) & finite

    inf = jnp.asarray(jnp.inf, D.dtype)
    init = (Y0, opt.init(Y0), inf, jnp.zeros((), jnp.int32), jnp.asarray(True))
    Y, _, gnorm, steps, finite = lax.while_loop(cond, body, init)
    status = jnp.select(
        [~finite, gnorm <= gtol], [Status.NON_FINITE, Status.SUCCESS], Status.MAX_STEPS
    )
    return Y, status.astype(jnp.int32), steps


@functools.partial(jax.jit, static_argnames=("n", "dim", "landmarks"))
def _sparse_mds(pairs, init, gtol, max_steps, *, n, dim, landmarks):
    rows, cols, D = pairs.rows, pairs.cols, pairs.values
    use = (pairs.count > 0) & (rows != cols)
    finite = jnp.all(jnp.isfinite(jnp.where(use, D, 0.0))) & pairs.valid
    negative = jnp.any(use & (D < 0))
    h = unit_scale(jnp.max(jnp.where(use & jnp.isfinite(D), jnp.abs(D), 0.0)))
    hD = jnp.where(use & finite, D * h, 0.0)
    if init is None:
        L = min(landmarks, n)
        sources = jax.random.choice(jax.random.key(0), n, (L,), replace=False)
        paths = graph_distances(rows, cols, hD, use, sources, n)
        largest = jnp.max(jnp.where(jnp.isfinite(paths), paths, 0.0))
        paths = jnp.where(jnp.isfinite(paths), paths, 2 * largest)  # (disconnected parts)
        Y0 = landmark_mds(paths * paths, sources, dim)
    else:
        Y0 = init * h
    Y0 = Y0 - jnp.mean(Y0, axis=0)
    Y, status, steps = _refine(Y0, rows, cols, hD, use, max_steps, gtol)
    Y = Y - jnp.mean(Y, axis=0)
    stress = raw_stress(Y, rows, cols, hD, use) / (h * h)
    skew = jnp.max(jnp.where(use, jnp.abs(pairs.skew), 0.0) * h)
    input_status = worst_status(
        jnp.where(negative, Status.NOT_PSD, Status.SUCCESS),
        jnp.where(skew > 10 * n * jnp.finfo(D.dtype).eps, Status.NOT_SYMMETRIC, Status.SUCCESS),
    )
    status = jnp.where(finite, worst_status(status, input_status), Status.NON_FINITE_INPUT)
    return MDSResult(
        jnp.where(finite, Y / h, jnp.nan),
        jnp.where(finite, stress, jnp.nan),
        status.astype(jnp.int32),
        steps,
    )


def _check_distances(pairs) -> None:
    """ValueError naming the first observed distance that is negative or not finite."""
    values = np.asarray(pairs.values)
    bad = ~(np.isfinite(values) & (values >= 0)) & (np.asarray(pairs.count) > 0)
    if bad.any():
        at = int(np.argmax(bad))
        i, j = int(pairs.rows[at]), int(pairs.cols[at])
        raise ValueError(
            f"D must hold finite, non-negative distances; D[{i}, {j}] = {values[at]} "
            "(pass check=False to get a status instead)"
        )


def sparse_mds(
    D: Any,
    dim: int = 3,
    *,
    init: jax.typing.ArrayLike | None = None,
    landmarks: int = DEFAULT_LANDMARKS,
    max_steps: int = 20_000,
    gtol: float | jax.Array | None = None,
    check: bool = True,
) -> MDSResult:
    """Coordinates (N, dim) from sparse observed distances by stress minimisation.

    Args:
        D: the observed distances: a ``jax.experimental.sparse.BCOO`` (N, N) matrix or a
            tuple ``(rows, cols, distances, N)``; each pair once or both ways (see
            :func:`jaxsolve._observed.observed_pairs` for repeats and indices out of
            range); diagonal entries are ignored. The graph of pairs should be connected
            and rigid in ``dim`` dimensions (a few dozen distances a point is plenty).
        dim: static; coordinates per point (default 3).
        init: optional start (N, dim) in D's units; default: landmark MDS on shortest
            paths through the observed pairs (see the module docstring).
        landmarks: static; points the default start measures paths from (default 32).
        max_steps: L-BFGS iterations at most (traced: changing it does not recompile).
        gtol: stop once the gradient of the stress normalised by Σ D² has norm at most
            this (default 1e-3·sqrt(eps): 1.5e-11 in float64, 3.5e-7 in float32).
        check: with concrete distances, a negative or non-finite one raises
            ``ValueError`` naming it (as :func:`jaxsolve.transforms.mds` does); under
            ``jit`` or with ``check=False`` they are statuses.

    Each step costs O(|Ω|·dim) (a few function evaluations of the line search), memory
    O(|Ω| + N·(dim + L)); no N×N array is formed.

    Returns:
        :class:`jaxsolve.transforms.MDSResult`: centred ``Y``, raw ``stress`` over the
        observed pairs (each unordered pair once), ``status`` (SUCCESS, MAX_STEPS,
        NON_FINITE; NOT_PSD for a negative distance, NOT_SYMMETRIC where (i, j) and (j, i)
        were both given and differ, their mean being used; NON_FINITE_INPUT for a
        non-finite distance, Y NaN) and ``steps``.

    >>> res = sparse_mds((rows, cols, dist, n))                    # doctest: +SKIP
    >>> align(res.Y, truth, reflection=True).rmsd                  # doctest: +SKIP
    """
    pairs = observed_pairs(D)
    n = pairs.n
    if check and not isinstance(pairs.values, jax.core.Tracer):
        _check_distances(pairs)
    dim = check_int(dim, "dim", low=1)
    landmarks = check_int(landmarks, "landmarks", low=dim + 1)
    max_steps = check_int(max_steps, "max_steps", low=0)
    dtype = pairs.values.dtype
    gtol = check_real(
        gtol, "gtol", dtype, default=1e-3 * float(jnp.finfo(dtype).eps) ** 0.5, low=0.0
    )
    if init is not None:
        init = jnp.asarray(init, dtype)
        if init.shape != (n, dim):
            raise ValueError(f"init must have shape (N, dim) = {(n, dim)}; got {init.shape}")
    steps = jnp.asarray(max_steps, jnp.int32)
    return _sparse_mds(pairs, init, gtol, steps, n=n, dim=dim, landmarks=landmarks)
