"""Completion from observed entries: C given as a sparse set of its entries, O(|Ω|·k) a step.

C (N, N) comes as a ``jax.experimental.sparse.BCOO`` matrix, or as ``(rows, cols, values,
N)``; only those entries count. C is symmetric: an entry given once as (i, j) counts for
(j, i) too. The entries are brought into one canonical form, :class:`ObservedPairs` (each
unordered pair {i, j} once, sorted by its smaller index), and the solve runs on pairs only:

* the objective is ``f(X) = ¼·Σ_{(i,j) ∈ Ω} w·(x_i·x_j − C_ij)²`` over the ordered observed
  entries, w = 1/p (p = |Ω|/N², the sampling rate), so that the gradient
  ``(W∘R)·X`` is an unbiased estimate of the full ``R·X`` and precgd's step ½ means what it
  means without a mask (a uniform weight does not change the minimiser);
* :func:`pair_measure` gathers the rows of X at each pair, forms the residual per pair and
  scatters ``(W∘R)·X`` back with ``segment_sum``: O(|Ω|·k) time, O(N·k) memory beyond the
  pairs, over blocks of ``chunk_size`` pairs (a ``scan``) so that the gathered rows take
  O(chunk·k), never O(|Ω|·k) nor N×N;
* the start, the step sizes and the NOT_PSD check use :class:`PairOperator`, ``V ↦ (W∘A)·V``
  for a pair-valued A, in the same loops as the dense path (``spectral_init``,
  ``lanczos_extremes`` of :mod:`._spectral` take any operator with ``@``);
* the loop, its stopping rule and statuses are :func:`jaxsolve._iterative.run_descent`'s.

With a ``Mesh`` the pairs are split over its devices (X and the gradient replicated: each
device gathers and scatters its share, one ``psum`` of the N×(k+1) partial products a
measure), so the pairs, the largest array, take |Ω|/D on each device.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.experimental import sparse
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._checks import (
    as_float_array,
    check_bool,
    check_choice,
    check_int,
    check_key,
    check_rank,
    default_tol,
)
from ._completion import ListedObservations, completion_start, gauss_newton
from ._implicit import Objective, differentiated_implicitly
from ._iterative import (
    IterOptions,
    _default_optimizer,
    _Measured,
    check_iterative_options,
    run_descent,
    scaled_gradient,
)
from ._numerics import power_of_two_scale, relative, row_dots, safe_sqrt
from ._sequence import run_after
from ._solution import Solution, Status, worst_status
from ._spectral import lanczos_extremes, nudged_from_zero, random_init, spectral_init

DEFAULT_CHUNK_SIZE = 1 << 18
"""Pairs per block of a measure: the gathered rows of a block take chunk·(k + 1) numbers."""
GAUSS_NEWTON_WORKSPACE = 1 << 27
"""``method="auto"`` on observed entries is Gauss–Newton where its inner solve's workspace,
2·|Ω|·k² numbers (a k×k outer product per listed entry), is at most this (1 GiB in float64),
else precgd, whose memory ``chunk_size`` bounds."""
_DENSE_LANCZOS_N = 32  # lanczos_extremes is exact (a dense eigvalsh) at N at most this


# --- the canonical form --------------------------------------------------------------------


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["rows", "cols", "values", "skew", "count", "valid"],
    meta_fields=["n"],
)
@dataclasses.dataclass(frozen=True)
class ObservedPairs:
    """The observed entries of a symmetric N×N matrix, each unordered pair once (a pytree).

    Attributes:
        rows, cols: (m,) int32, ``rows ≤ cols``, sorted by (rows, cols).
        values: (m,) the symmetric part ``(C_ij + C_ji)/2`` where both were given, else the
            one given.
        skew: (m,) ``(C_ij − C_ji)/2`` where both were given and differ, else 0.
        count: (m,) ordered entries the pair stands for: 2 off the diagonal, 1 on it, 0 for
            padding (padding sits at the end, at (N−1, N−1)).
        valid: () whether every index was in range (False only for traced input; concrete
            input raises instead).
        n: N (static).
    """

    rows: jax.Array
    cols: jax.Array
    values: jax.Array
    skew: jax.Array
    count: jax.Array
    valid: jax.Array
    n: int


def _canonical_arrays(rows, cols, values, n: int):
    """Sort the entries by unordered pair and merge each pair's orientations (jit-able, the
    shapes stay (m,)). Returns the merged pairs (leaders first, then padding), the number of
    pairs, whether an orientation was given twice, and whether every index is in range."""
    m = values.shape[0]
    in_range = jnp.all((rows >= 0) & (rows < n) & (cols >= 0) & (cols < n))
    rows, cols = jnp.clip(rows, 0, n - 1), jnp.clip(cols, 0, n - 1)
    lo, hi = jnp.minimum(rows, cols), jnp.maximum(rows, cols)
    upper = rows <= cols
    order = jnp.lexsort((hi, lo))
    lo, hi, upper, values = lo[order], hi[order], upper[order], values[order]
    new = jnp.concatenate([jnp.ones(1, bool), (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])])
    group = jnp.cumsum(new) - 1
    pairs = group[-1] + 1

    def per_group(x):
        return jax.ops.segment_sum(x, group, num_segments=m, indices_are_sorted=True)

    n_up, n_low = per_group(upper.astype(jnp.int32)), per_group((~upper).astype(jnp.int32))
    sum_up = per_group(jnp.where(upper, values, 0.0))
    sum_low = per_group(jnp.where(upper, 0.0, values))
    repeated = jnp.any((n_up > 1) | (n_low > 1))
    both = (n_up > 0) & (n_low > 0)
    # each group's indices, scattered from its entries (all of a group's are the same)
    used = jnp.arange(m) < pairs
    g_lo = jnp.full(m, n - 1, jnp.int32).at[group].set(lo.astype(jnp.int32))
    g_hi = jnp.full(m, n - 1, jnp.int32).at[group].set(hi.astype(jnp.int32))
    value = jnp.where(both, 0.5 * (sum_up + sum_low), sum_up + sum_low)
    skew = jnp.where(both, 0.5 * (sum_up - sum_low), 0.0)
    count = jnp.where(used, jnp.where(g_lo == g_hi, 1.0, 2.0), 0.0).astype(values.dtype)
    return (g_lo, g_hi, value, skew, count), pairs, repeated, in_range


_canonical_jit = jax.jit(_canonical_arrays, static_argnames="n")


def _is_concrete(*arrays) -> bool:
    return not any(isinstance(a, jax.core.Tracer) for a in arrays)


def _as_index_array(value: Any, name: str) -> jax.Array:
    arr = value if isinstance(value, jax.Array) else np.asarray(value)
    if arr.ndim != 1 or not jnp.issubdtype(arr.dtype, jnp.integer):
        raise TypeError(
            f"{name} must be a 1-D array of integers; got dtype {arr.dtype}, shape {arr.shape}"
        )
    return jnp.asarray(arr)


def _entries(C: Any) -> tuple[jax.Array, jax.Array, jax.Array, int]:
    """(rows, cols, values, N) of a BCOO matrix or a ``(rows, cols, values, N)`` tuple,
    checked for shapes and dtypes."""
    if isinstance(C, sparse.BCOO):
        if C.ndim != 2 or C.shape[0] != C.shape[1] or C.n_batch or C.n_dense:
            raise ValueError(
                "C as a BCOO matrix must be one square (N, N) matrix without batch or dense "
                f"dimensions; got shape {C.shape}, n_batch={C.n_batch}, n_dense={C.n_dense}"
            )
        rows, cols, values, n = C.indices[:, 0], C.indices[:, 1], C.data, C.shape[0]
    elif isinstance(C, tuple) and len(C) == 4:
        rows, cols, values, n = C
        n = check_int(n, "N (the fourth element of C)", low=0)
    else:
        raise TypeError(
            "C must be a jax.experimental.sparse.BCOO (N, N) matrix or a tuple "
            f"(rows, cols, values, N); got {type(C).__name__}"
        )
    rows, cols = _as_index_array(rows, "C's rows"), _as_index_array(cols, "C's cols")
    values = as_float_array(values, "C's values")
    if values.ndim != 1 or not (rows.shape == cols.shape == values.shape):
        raise ValueError(
            "C's rows, cols and values must be 1-D of one length; got shapes "
            f"{rows.shape}, {cols.shape}, {values.shape}"
        )
    return rows, cols, values, n


def observed_pairs(C: Any) -> ObservedPairs:
    """C's observed entries in canonical form (:class:`ObservedPairs`).

    Args:
        C: a ``jax.experimental.sparse.BCOO`` (N, N) matrix, a tuple ``(rows, cols,
            values, N)`` of 1-D arrays of one length and an int, or an
            :class:`ObservedPairs` (returned as it is).

    An entry given once as (i, j) counts for (j, i). Both orientations of a pair may be
    given: where they differ, the pair's symmetric part is fitted and the solve reports
    NOT_SYMMETRIC (as for a dense C). With concrete indices, an index outside [0, N) and an
    orientation given twice (BCOO would sum them: call ``C.sum_duplicates()`` first if that
    is meant) raise ``ValueError``, and the canonical form holds only the pairs. Under
    ``jit`` (traced indices) nothing can raise: repeated orientations are summed, as
    ``C.todense()`` does, and an index out of range makes the solve's status
    NON_FINITE_INPUT (invalid input); the form keeps its input's length, padded.
    """
    if isinstance(C, ObservedPairs):
        return C
    rows, cols, values, n = _entries(C)
    if values.shape[0] == 0:
        raise ValueError("C must have at least one observed entry; got none")
    if n == 0:
        raise ValueError("C has observed entries but N = 0")
    if _is_concrete(rows, cols):
        host_r, host_c = np.asarray(rows), np.asarray(cols)
        bad = (host_r < 0) | (host_r >= n) | (host_c < 0) | (host_c >= n)
        if bad.any():
            at = int(np.argmax(bad))
            raise ValueError(
                f"C's indices must lie in [0, N) = [0, {n}); entry {at} is "
                f"({int(host_r[at])}, {int(host_c[at])})"
            )
    (lo, hi, value, skew, count), pairs, repeated, in_range = _canonical_jit(
        rows, cols, values, n=n
    )
    if _is_concrete(rows, cols):
        if bool(repeated):
            raise ValueError(
                "C gives an entry more than once (the same (i, j) twice); BCOO would sum "
                "them: call C.sum_duplicates() first if that is meant, or drop the repeats"
            )
        g = int(pairs)
        lo, hi, value, skew, count = (a[:g] for a in (lo, hi, value, skew, count))
    return ObservedPairs(lo, hi, value, skew, count, jnp.asarray(in_range), n)


def observed_entries(rows, cols, values, n: int) -> sparse.BCOO:
    """The BCOO (N, N) matrix of entries ``C[rows[t], cols[t]] = values[t]``, the form
    :func:`jaxsolve.solve` takes for completion from observed entries."""
    rows, cols, values, n = _entries((rows, cols, values, n))
    indices = jnp.stack([rows, cols], axis=1).astype(jnp.int32)
    return sparse.BCOO((values, indices), shape=(n, n))


# --- the pair kernels ----------------------------------------------------------------------


class _Blocks:
    """The pairs as (blocks, chunk) arrays, and how to sum a per-block function over them:
    a ``scan`` over blocks, inside a ``shard_map`` over the chunk axis with a mesh (each
    device sums its share, then one ``psum``)."""

    def __init__(self, rows, cols, n: int, mesh: Mesh | None):
        self.rows, self.cols, self.n, self.mesh = rows, cols, n, mesh

    def reduce(self, per_block, init, shared, *data):
        """``Σ_blocks per_block(carry, shared, rows, cols, *data_block)`` from ``init`` (a
        pytree of partial sums); ``shared``: a pytree every block reads whole (X, V),
        replicated over a mesh."""

        def local(init, shared, rows, cols, *data):
            def body(carry, block):
                return per_block(carry, shared, *block), None

            if rows.shape[0] == 1:
                return per_block(init, shared, rows[0], cols[0], *(d[0] for d in data))
            return lax.scan(body, init, (rows, cols, *data))[0]

        if self.mesh is None:
            return local(init, shared, self.rows, self.cols, *data)
        axis = self.mesh.axis_names[0]
        split = PartitionSpec(None, axis)

        def sharded(init, shared, rows, cols, *data):
            # (zeros that vary over the devices, as each device's partial sums do)
            zero = jax.tree.map(lambda a: lax.pcast(jnp.zeros_like(a), (axis,), to="varying"), init)
            partial = local(zero, shared, rows, cols, *data)
            return jax.tree.map(lambda a, b: a + lax.psum(b, axis), init, partial)

        whole = PartitionSpec()
        specs = (whole, whole, split, split, *(split for _ in data))
        run = jax.shard_map(sharded, mesh=self.mesh, in_specs=specs, out_specs=whole)
        return run(init, shared, self.rows, self.cols, *data)


def _scatter_symmetric(acc, rows, cols, coef, Vi, Vj):
    """acc + (A·V) over one block, A symmetric with A_ij = A_ji = coef·(2 off the diagonal):
    row i gains coef·v_j, row j gains coef·v_i (a diagonal pair: 2·coef·v_i)."""
    n = acc.shape[0]
    acc = acc + jax.ops.segment_sum(coef[:, None] * Vj, rows, n, indices_are_sorted=True)
    return acc + jax.ops.segment_sum(coef[:, None] * Vi, cols, n)


class PairOperator:
    """``V ↦ A·V`` for a symmetric matrix with the pattern of Ω, V of shape (N,) or (N, m):
    O(|Ω|·m). ``coef(rows, cols, *data)`` gives a block's ``A_ij`` halved on the diagonal
    (both scatters reach a diagonal pair), from the per-pair arrays ``data`` (blocks,
    chunk). Duck-types the ``@`` of a dense symmetric matrix (``A @ V``, ``V @ A``), enough
    for ``spectral_init`` and ``lanczos_extremes``."""

    def __init__(self, blocks: _Blocks, coef, data: tuple, dtype, fixed=None):
        self.blocks, self.coef, self.data, self.dtype = blocks, coef, data, dtype
        self.fixed = fixed
        self.shape = (blocks.n, blocks.n)

    def __matmul__(self, V):
        vector = V.ndim == 1
        V = V[:, None] if vector else V

        def per_block(acc, shared, rows, cols, *data):
            V, fixed = shared
            coef = self.coef(fixed, rows, cols, *data)
            return _scatter_symmetric(acc, rows, cols, coef, V[rows], V[cols])

        out = self.blocks.reduce(per_block, jnp.zeros_like(V), (V, self.fixed), *self.data)
        return out[:, 0] if vector else out

    def __rmatmul__(self, V):  # V·A = (A·Vᵀ)ᵀ, A symmetric
        return (self @ V.T).T if V.ndim == 2 else self @ V

    def dense(self) -> jax.Array:
        """A as a dense (N, N) array (small N only)."""
        return self @ jnp.eye(self.shape[0], dtype=self.dtype)


def target_operator(blocks: _Blocks, S: jax.Array, half_w: jax.Array) -> PairOperator:
    """W∘S as a :class:`PairOperator`."""
    return PairOperator(blocks, lambda _, r, c, s, hw: hw * s, (S, half_w), S.dtype)


def residual_operator(blocks: _Blocks, X, S, half_w) -> PairOperator:
    """W∘(X·Xᵀ − S) as a :class:`PairOperator` (residuals formed per block on the fly)."""

    def coef(X, rows, cols, s, hw):
        return hw * (row_dots(X[rows], X[cols], X.shape[1]) - s)

    return PairOperator(blocks, coef, (S, half_w), S.dtype, fixed=X)


def pair_measure(blocks: _Blocks, S: jax.Array, half_w: jax.Array, S_norm: jax.Array):
    """The ``measure`` of :func:`run_descent` on observed pairs: per pair the residual
    r = x_i·x_j − S_ij, then ``(W∘R)·[X, probe]`` by two ``segment_sum``s and
    ``‖R‖²_W = Σ 2·half_w·r²`` (``half_w``: the weight of one orientation, halved on the
    diagonal, whose pair both scatters reach). O(|Ω|·k) time."""

    def measure(X, probe):
        k = X.shape[1]
        Xp = jnp.concatenate([X, probe[:, None]], axis=1)

        def per_block(carry, Xp, rows, cols, s, hw):
            acc, sq = carry
            xi, xj = Xp[rows], Xp[cols]
            r = row_dots(xi, xj, k) - s
            acc = _scatter_symmetric(acc, rows, cols, hw * r, xi, xj)
            return acc, sq + 2 * jnp.sum(hw * r * r)

        init = (jnp.zeros_like(Xp), jnp.zeros((), X.dtype))
        WRXp, sq = blocks.reduce(per_block, init, Xp, S, half_w)
        lost = safe_sqrt(sq)
        return _Measured(lost, relative(lost, S_norm), WRXp[:, :k], WRXp[:, k])

    return measure


# --- spectral start, NOT_PSD -----------------------------------------------------------------


def _extremes(op: PairOperator) -> tuple[jax.Array, jax.Array]:
    return lanczos_extremes(op.dense() if op.shape[0] <= _DENSE_LANCZOS_N else op)


def _not_psd_observed(blocks, S, half_w, X, misfit) -> jax.Array:
    """The sparse form of the dense masks' check: no PSD matrix fits the observed entries
    when X·Xᵀ misses them (``misfit``, the relative residual, above sqrt(eps)) and
    G = W∘(X·Xᵀ − S), which has the pattern of Ω, is positive semidefinite to sqrt(eps) of
    its norm (Lanczos on :func:`residual_operator`): at a stationary X that is the
    optimality condition of the convex problem over all PSD matrices, which then leaves a
    misfit."""
    lam_min, lam_max = _extremes(residual_operator(blocks, X, S, half_w))
    sqrt_eps = jnp.sqrt(jnp.finfo(S.dtype).eps)
    return (misfit > sqrt_eps) & (lam_min >= -sqrt_eps * jnp.maximum(lam_max, -lam_min))


# --- one solve ----------------------------------------------------------------------------


def _as_blocks(pairs: ObservedPairs, chunk: int, devices: int):
    """The pair arrays padded (count 0 at (N−1, N−1)) to (blocks, chunk·devices)."""
    m = pairs.values.shape[0]
    width = max(1, min(chunk, -(-m // devices))) * devices
    blocks = -(-m // width)
    pad = blocks * width - m
    last = pairs.n - 1

    def shaped(a, fill):
        return jnp.pad(a, (0, pad), constant_values=fill).reshape(blocks, width)

    return (
        shaped(pairs.rows, last),
        shaped(pairs.cols, last),
        shaped(pairs.values, 0),
        shaped(pairs.skew, 0),
        shaped(pairs.count, 0),
    )


def pair_objective(n: int, mesh: Mesh | None) -> Objective:
    """The :class:`._implicit.Objective` of observed pairs, for derivatives of a solve by
    the implicit function theorem at O(|Ω|·k) a product: the data S are the pair values
    (blocks, chunk) and W = (rows, cols, half_w) (see :func:`pair_measure`)."""

    def parts(W):
        rows, cols, half_w = W
        return _Blocks(rows, cols, n, mesh), half_w

    def gradient(X, S, W):
        blocks, half_w = parts(W)
        return residual_operator(blocks, X, S, half_w) @ X

    def residual_norm(X, S, W):
        blocks, half_w = parts(W)
        return pair_measure(blocks, S, half_w, jnp.ones((), S.dtype))(X, X[:, 0]).lost

    def residual_extremes(X, S, W):
        blocks, half_w = parts(W)
        return _extremes(residual_operator(blocks, X, S, half_w))

    return Objective(gradient, residual_norm, residual_extremes)


def _factor(blocks, S, half_w, S_norm, x0, key, opts, *, method, rank, optimizer):
    """One observed matrix in scaled units: start, optimizer, the loop, the PSD status.
    Returns (X, status, steps, lost)."""
    n, dtype = blocks.n, S.dtype
    op = target_operator(blocks, S, half_w)
    if method == "gauss_newton":
        # its inner products on all pairs at once: O(|Ω|·k²) memory, not chunked
        orientation_w = jnp.where(blocks.rows == blocks.cols, 2.0, 1.0) * half_w
        listed = ListedObservations.from_pairs(
            *(a.ravel() for a in (blocks.rows, blocks.cols, S, orientation_w)), n
        )
        X0 = completion_start(listed, op, rank, key) if x0 is None else x0
        tx, lam_min = gauss_newton(listed), jnp.zeros((), dtype)
    else:
        if method == "precgd" and x0 is None:
            X0, ritz = spectral_init(op, rank, key)
            lam_min, lam_max = ritz[0], ritz[-1]
        else:
            lam_min, lam_max = _extremes(op)
            X0 = random_init(n, rank, key, lam_max, dtype) if x0 is None else x0
        lam_max = jnp.maximum(lam_max, jnp.abs(lam_min))
        if optimizer is None:
            tx = _default_optimizer(method, opts.learning_rate, lam_max)
        else:
            tx = optax.chain(scaled_gradient(), optimizer) if method == "precgd" else optimizer
        X0 = run_after(nudged_from_zero(X0, lam_max), lam_min, lam_max)
    X, status, steps, lost = run_descent(
        pair_measure(blocks, S, half_w, S_norm),
        S_norm,
        X0,
        tx,
        opts,
        factored=True,
        certify_every=8 if method == "gd" else 1,
    )
    misfit = relative(lost, S_norm)
    not_psd = _not_psd_observed(blocks, S, half_w, run_after(X, lam_min), misfit)
    status = jnp.where(not_psd & (status == Status.SUCCESS), Status.NOT_PSD, status)
    return X, status.astype(jnp.int32), steps, lost


@functools.partial(
    jax.jit, static_argnames=("method", "rank", "optimizer", "precision", "chunk_size", "mesh")
)
def _solve_pairs(pairs, x0, key, opts, *, method, rank, optimizer, precision, chunk_size, mesh):
    """:func:`solve_observed` after validation."""
    n = pairs.n
    devices = 1 if mesh is None else mesh.size
    rows, cols, values, skew, count = _as_blocks(pairs, chunk_size, devices)
    if mesh is not None:
        spec = NamedSharding(mesh, PartitionSpec(None, mesh.axis_names[0]))
        rows, cols, values, skew, count = (
            lax.with_sharding_constraint(a, spec) for a in (rows, cols, values, skew, count)
        )
    observed = count > 0
    h = power_of_two_scale(jnp.where(observed, values, 0.0), axis=(0, 1))
    S, skew = values * (h * h), skew * (h * h)
    # w = 1/p on every ordered entry: the gradient estimates R·X (see the module docstring)
    rate = jnp.sum(count) / (float(n) * n)
    w = count / rate
    norm_sq = jnp.sum(w * (S * S + skew * skew))
    skew_sq = jnp.sum(w * skew * skew)
    finite = jnp.isfinite(norm_sq) & pairs.valid
    S = jnp.where(finite, S, 0.0)
    half_w = jnp.where(rows == cols, 0.5, 1.0) * (w / jnp.maximum(count, 1.0))
    x0 = None if x0 is None else x0 * h

    def factor(S, W, x0, key, opts):
        rows, cols, half_w = W
        blocks = _Blocks(rows, cols, n, mesh)
        S_norm = safe_sqrt(2 * jnp.sum(half_w * S * S))
        return _factor(
            blocks, S, half_w, S_norm, x0, key, opts, method=method, rank=rank, optimizer=optimizer
        )

    run = differentiated_implicitly(factor, pair_objective(n, mesh))

    def solved():
        with jax.default_matmul_precision(precision):
            return run(S, (rows, cols, half_w), x0, key, opts)

    def not_solved():
        nan = jnp.full((), jnp.nan, S.dtype)
        return (
            jnp.full((n, rank), jnp.nan, S.dtype),
            jnp.int32(Status.NON_FINITE_INPUT),
            jnp.int32(0),
            nan,
        )

    X, status, steps, lost = lax.cond(finite, solved, not_solved)
    residual = safe_sqrt(relative(lost**2 + skew_sq, norm_sq))
    symmetric = jnp.where(
        skew_sq > default_tol(n, S.dtype) ** 2 * norm_sq, Status.NOT_SYMMETRIC, Status.SUCCESS
    )
    status = jnp.where(finite, worst_status(symmetric, status), Status.NON_FINITE_INPUT)
    return Solution(
        jnp.where(finite, X / h, jnp.nan),
        jnp.where(finite, residual, jnp.nan),
        status.astype(jnp.int32),
        jnp.where(finite, steps, 0),
    )


def solve_observed(
    C: Any,
    *,
    method: str = "auto",
    rank: int | None = None,
    mask: Any = None,
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
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    mesh: Mesh | None = None,
) -> Solution:
    """Find X (N, k) with X·Xᵀ ≈ C on C's observed entries (PSD matrix completion).

    Args:
        C: the observed entries: a ``jax.experimental.sparse.BCOO`` (N, N) matrix, a tuple
            ``(rows, cols, values, N)``, or :class:`ObservedPairs`; see
            :func:`observed_pairs` for symmetry, repeats and indices out of range.
        method: static; ``"gauss_newton"`` (Riemannian Gauss–Newton, as with a dense
            mask: robust to the condition number and to few observed entries; its inner
            solve works on every pair at once, O(|Ω|·k²) memory, which ``chunk_size``
            does not bound), ``"precgd"`` (spectral start from the observed entries
            rescaled by the sampling rate, then the preconditioned step) or ``"gd"``
            (random start, step 1/(3·λ_max)). ``"auto"``: gauss_newton where 2·|Ω|·k² ≤
            ``GAUSS_NEWTON_WORKSPACE`` (2²⁷ numbers), else precgd. Closed forms need a
            dense C.
        rank: static; the number of columns k (default N, only sensible for small N).
        chunk_size: static; pairs per block of a step (bounds the gathered rows' memory,
            chunk·(k + 1) numbers a block).
        mesh: static; a one-axis ``jax.sharding.Mesh``: the pairs are split over its
            devices (each holds |Ω|/D of them), X and the gradient are replicated; the
            result equals a one-device solve to rounding.
        optimizer, x0, key, rtol, atol, max_steps, learning_rate, precision: as in
            :func:`jaxsolve.solve`. ``mask`` and ``batch_size`` must be None and
            ``measure_residual`` False (the residual is always measured).

    A gd or precgd step costs O(|Ω|·k + N·k²) time and O(|Ω| + N·k + chunk·k) memory (a
    Gauss–Newton step, a conjugate-gradient solve of such products, O(|Ω|·k²)); no N×N
    array is formed. The objective weighs every observed entry alike (by 1/p, the inverse
    sampling rate, which leaves the minimiser unchanged).

    Returns:
        :class:`Solution`: X (N, k), ``residual`` = ‖P_Ω(X·Xᵀ − C)‖/‖P_Ω C‖ over the
        observed entries (the skew part of entries given both ways included), ``status``,
        ``steps``. Statuses as :func:`jaxsolve.solve` with a mask: SUCCESS, NOT_SYMMETRIC,
        NOT_PSD (no PSD matrix fits the observed entries), MAX_STEPS, DIVERGED,
        NON_FINITE, NON_FINITE_INPUT (a non-finite observed value, or under ``jit`` an
        index out of range; X is NaN).

    >>> C = observed_entries(rows, cols, values, n)            # doctest: +SKIP
    >>> sol = solve_observed(C, rank=10)                        # doctest: +SKIP
    """
    method = check_choice(method, "method", ("auto", "gd", "precgd", "gauss_newton"))
    if mask is not None:
        raise ValueError(
            "mask must be None when C is given as observed entries (they are the mask)"
        )
    if batch_size is not None:
        raise ValueError("batch_size must be None for observed entries (one matrix)")
    if check_bool(measure_residual, "measure_residual"):
        raise ValueError("measure_residual must be False for observed entries (always measured)")
    check_choice(precision, "precision", ("highest", "high", "default"))
    chunk_size = check_int(chunk_size, "chunk_size", low=1)
    if mesh is not None and (not isinstance(mesh, Mesh) or len(mesh.axis_names) != 1):
        raise ValueError(f"mesh must be a jax.sharding.Mesh with one axis; got {mesh!r}")
    if optimizer is not None and not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"optimizer must be an optax GradientTransformation; got {optimizer!r}")
    pairs = observed_pairs(C)
    n, dtype = pairs.n, pairs.values.dtype
    k = check_rank(rank, n)
    if method == "auto":
        small = 2 * pairs.values.shape[0] * k * k <= GAUSS_NEWTON_WORKSPACE
        method = "gauss_newton" if small else "precgd"
    if x0 is not None:
        x0 = as_float_array(x0, "x0").astype(dtype)
        if x0.shape != (n, k):
            raise ValueError(f"x0 must have shape (N, k) = {(n, k)}; got {x0.shape}")
    opts: IterOptions = check_iterative_options(
        dtype,
        n,
        method,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        learning_rate=learning_rate,
        optimizer=optimizer,
    )
    return _solve_pairs(
        pairs,
        x0,
        check_key(key),
        opts,
        method=method,
        rank=k,
        optimizer=optimizer,
        precision=precision,
        chunk_size=chunk_size,
        mesh=mesh,
    )


def observed_residual(X: jax.typing.ArrayLike, C: Any) -> jax.Array:
    """‖P_Ω(X·Xᵀ − C)‖/‖P_Ω C‖ over C's observed entries (each unordered pair counted as
    its ordered entries), O(|Ω|·k): the residual of :func:`solve_observed`."""
    pairs = observed_pairs(C)
    X = as_float_array(X, "X")
    r = jnp.sum(X[pairs.rows] * X[pairs.cols], axis=1) - pairs.values
    w = pairs.count
    err = safe_sqrt(jnp.sum(w * (r * r + pairs.skew**2)))
    return relative(err, safe_sqrt(jnp.sum(w * (pairs.values**2 + pairs.skew**2))))
