"""The inverse transform, distances (N, N) → coordinates (N, d): classical MDS and refinement.

``classical_mds`` double-centres the squared distances into a Gram matrix
``G = −½·J·D²·J`` and takes its rank-``dim`` factor from :func:`jaxsolve.solve`
(``method="eigh"``): exact for Euclidean distances. ``refine_mds`` minimises the stress
``Σ_{i<j} w_ij (‖y_i − y_j‖ − D_ij)²`` over the observed pairs, for noisy or incomplete
distances, by SMACOF (majorisation, the algorithm scikit-learn uses; monotone, no step size)
or by optax Adam (fixed steps, differentiable). ``mds`` chains the two.

Error channels (see docs/transforms.md):

* shapes and static options: ``ValueError``/``TypeError`` always;
* bad numbers in a *concrete* (eager, not traced) D with ``check=True`` (the default):
  ``ValueError`` naming the first bad entry (non-finite, negative, non-symmetric, non-zero
  diagonal), from :func:`check_distance_matrix`;
* the same for concrete ``weights`` with ``check=True`` (a negative or non-finite entry);
  a concrete ``rtol``/``learning_rate`` that is not finite (or is negative / not positive)
  raises ``ValueError`` whatever ``check``;
* the same under ``jit``/``vmap`` or with ``check=False``: a :class:`jaxsolve.Status` per
  matrix: ``NON_FINITE_INPUT`` (Y all NaN; also for invalid weights), ``NOT_SYMMETRIC`` (the
  symmetric part is used),
  ``NOT_PSD`` (not a Euclidean distance matrix: negative entries, or, for classical MDS, a
  double-centred Gram with significant negative eigenvalues — the result is then the best
  rank-``dim`` fit, not an error).

Scale: every function works in a unit in which the largest observed distance is near 1 (a
power of two, so the change of unit is exact), and scales ``Y`` and the stress back. Statuses
and ``Y`` (up to the scale) are the same for ``D`` and ``s·D`` across the dtype's range; the
raw stress scales by ``s²`` and overflows to Inf (or underflows to 0) only where that value
itself is out of range.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from .. import solve
from .._checks import as_square_matrices, check_choice, check_int, default_tol
from .._numerics import power_of_two_scale
from .._solution import Status, StatusResult, worst_status
from ._distances import (
    DEFAULT_DIM,
    as_coordinates,
    check_real,
    safe_sqrt,
    squared_distances,
    unit_scale,
)

_HIGHEST = lax.Precision.HIGHEST
REFINE_METHODS = ("smacof", "adam")
CLASSICAL_SOLVERS = ("eigh", "randomized")
_OVERSAMPLE = 10  # extra directions of the randomized subspace iteration
_POWER_STEPS = 6
_AUTO_RANDOMIZED_N = 100  # mds(start="auto") uses the randomized solver from this N on


# What each status means for distances → coordinates (Status.message speaks of X·Xᵀ = C).
MDS_MESSAGES = {
    Status.SUCCESS: "coordinates found (classical MDS exact, or the refinement converged).",
    Status.NOT_SYMMETRIC: (
        "D is not symmetric; its symmetric part (D + Dᵀ)/2 was used. Check how D was built."
    ),
    Status.NOT_PSD: (
        "D is not a Euclidean distance matrix (noisy distances make the double-centred Gram "
        "indefinite, or D has negative entries). Y is the best rank-dim fit; refine it with "
        "mds()/refine_mds() (SMACOF) and judge the fit by `stress`."
    ),
    Status.MAX_STEPS: (
        "The refinement stopped at max_steps before its tolerance; Y is usable. Raise "
        "max_steps or loosen rtol."
    ),
    Status.NON_FINITE: (
        "A non-finite value appeared during the refinement (disconnected mask, or a too "
        "large Adam learning rate); Y is the last finite iterate."
    ),
    Status.NON_FINITE_INPUT: (
        "D has NaN or Inf among its observed entries, or weights are negative or not finite; "
        "Y is NaN. Mark missing distances with mask=False."
    ),
}


class _MDSFields(NamedTuple):
    Y: jax.Array
    stress: jax.Array
    status: jax.Array
    steps: jax.Array


class MDSResult(StatusResult, _MDSFields):
    """Result of the MDS functions (a pytree: passes through ``jit`` and ``vmap``).

    ``ok`` and ``messages()`` as for :class:`jaxsolve.Solution`, with messages worded for
    distances → coordinates.

    Attributes:
        Y: coordinates, shape ``(..., N, dim)``, centred at the origin; unique only up to a
            rotation and reflection (compare with :func:`jaxsolve.transforms.align`).
        stress: raw stress ``Σ_{i<j} w_ij (‖y_i − y_j‖ − D_ij)²`` over the observed pairs,
            shape ``(...)`` (what scikit-learn's ``MDS.stress_`` reports for metric MDS).
        status: integer :class:`jaxsolve.Status` per matrix, shape ``(...)``.
        steps: refinement iterations per matrix, shape ``(...)`` (0 for classical MDS).
    """

    __slots__ = ()

    @staticmethod
    def describe(code: int) -> str:
        """``"NAME: message"`` for a status code, worded for MDS."""
        status = Status(int(code))
        return f"{status.name}: {MDS_MESSAGES.get(status, status.message)}"


# --- validation -----------------------------------------------------------------------------


def _is_concrete(*values: Any) -> bool:
    return not any(isinstance(v, jax.core.Tracer) for v in values)


def _as_mask(mask: Any, shape: tuple[int, ...], name: str = "mask") -> jax.Array | None:
    if mask is None:
        return None
    dtype = mask.dtype if isinstance(mask, jax.Array) else np.asarray(mask).dtype
    if dtype.kind not in "biuf":  # before jnp.asarray, whose error on strings names no argument
        raise TypeError(f"{name} must be an array of real numbers; got dtype {dtype}")
    m = jnp.asarray(mask)
    if m.shape != shape[-m.ndim :] or m.ndim < 2:
        raise ValueError(f"{name} must have the shape of D, {shape}, or (N, N); got {m.shape}")
    return m


def _as_weights(weights: Any, shape: tuple[int, ...], check: bool) -> jax.Array | None:
    """``weights`` checked for shape; with ``check``, concrete weights that are negative or
    not finite raise ``ValueError`` (traced ones give NON_FINITE_INPUT, see
    :func:`_weights_ok`)."""
    w = _as_mask(weights, shape, "weights")
    if w is None:
        return None
    if check and _is_concrete(weights):
        host = np.asarray(w)
        bad = ~(np.isfinite(host) & (host >= 0))
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"weights must be finite and non-negative; weights{list(idx)} = {host[idx]}"
            )
    return w


def _weights_ok(D: jax.Array, weights: Any) -> jax.Array:
    """Per matrix of D: every weight is finite and non-negative (True without weights)."""
    if weights is None:
        return jnp.ones(D.shape[:-2], bool)
    w = jnp.asarray(weights)
    ok = jnp.all(jnp.isfinite(w) & (w >= 0), axis=(-2, -1))
    return jnp.broadcast_to(ok, D.shape[:-2])


def _pair_weights(D: jax.Array, mask: Any, weights: Any) -> jax.Array:
    """Symmetric weights with a zero diagonal: a pair counts if observed both ways."""
    n = D.shape[-1]
    use = ~jnp.eye(n, dtype=bool)
    mask = _as_mask(mask, D.shape)
    if mask is not None:
        m = mask.astype(bool)
        use = use & m & jnp.swapaxes(m, -1, -2)
    use = jnp.broadcast_to(use, D.shape)
    weights = _as_mask(weights, D.shape, "weights")
    if weights is None:
        return use.astype(D.dtype)
    w = jnp.asarray(weights, D.dtype)
    # where, not a product: an unused pair's weight (NaN included) must not leak into sums.
    return jnp.where(use, (w + jnp.swapaxes(w, -1, -2)) / 2, 0.0)


def check_distance_matrix(
    D: jax.typing.ArrayLike, mask: jax.typing.ArrayLike | None = None, *, squared: bool = False
) -> None:
    """Raise ``ValueError`` if a concrete D is not a valid (possibly incomplete) distance matrix.

    Checks, over the observed entries (``mask`` True; default all): finite, non-negative,
    symmetric and a zero diagonal, to a tolerance of ``10·N·eps`` relative to ``max|D|``.
    The message names the first bad entry. Host-side (it reads the values): not for ``jit``.
    """
    D = as_square_matrices(D, "D")
    host = np.asarray(D)
    observed = np.ones(host.shape, bool) if mask is None else np.asarray(_as_mask(mask, D.shape))
    observed = np.broadcast_to(observed.astype(bool), host.shape)
    what = "squared distances" if squared else "distances"
    bad = observed & ~np.isfinite(host)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"D must be finite; D{list(idx)} = {host[idx]}. Mark missing {what} with mask=False "
            "(jaxsolve.transforms.mds / refine_mds), or drop those points."
        )
    vals = np.where(observed, host, 0.0)
    tol = default_tol(host.shape[-1], host.dtype) * max(
        float(np.max(np.abs(vals), initial=0)), 1e-300
    )
    bad = vals < -tol
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"D must hold non-negative {what}; D{list(idx)} = {host[idx]}")
    both = observed & np.swapaxes(observed, -1, -2)
    skew = np.where(both, np.abs(vals - np.swapaxes(vals, -1, -2)), 0.0)
    if (skew > tol).any():
        i, j = np.argwhere(skew > tol)[0][-2:]
        lead = tuple(int(v) for v in np.argwhere(skew > tol)[0][:-2])
        raise ValueError(
            f"D must be symmetric; D{[*lead, int(i), int(j)]} = {vals[(*lead, i, j)]} but "
            f"D{[*lead, int(j), int(i)]} = {vals[(*lead, j, i)]}. Pass (D + D.T) / 2 if the "
            "asymmetry is noise."
        )
    diag = np.abs(np.diagonal(vals, axis1=-2, axis2=-1))
    if (diag > tol).any():
        idx = tuple(int(v) for v in np.argwhere(diag > tol)[0])
        raise ValueError(
            f"D must have a zero diagonal (a point is at distance 0 from itself); "
            f"D[{', '.join(map(str, (*idx, idx[-1])))}] = {diag[idx]}"
        )


def _input_status(
    D: jax.Array, W: jax.Array, weights_ok: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """(usable per matrix, status per matrix) for the observed entries, usable under jit:
    a matrix is unusable (NON_FINITE_INPUT) if an observed entry is not finite or, with
    ``weights_ok`` (from :func:`_weights_ok`), its weights are invalid."""
    observed = W > 0
    finite = jnp.all(jnp.isfinite(D) | ~observed, axis=(-2, -1))
    if weights_ok is not None:
        finite = finite & weights_ok
    safe = jnp.where(observed & jnp.isfinite(D), D, 0.0)
    scale = jnp.max(jnp.abs(safe), axis=(-2, -1), initial=0.0)
    tol = default_tol(D.shape[-1], D.dtype) * scale
    negative = jnp.any(safe < -tol[..., None, None], axis=(-2, -1))
    skew = jnp.max(jnp.abs(safe - jnp.swapaxes(safe, -1, -2)) * (W > 0), axis=(-2, -1), initial=0.0)
    status = worst_status(
        jnp.where(negative, Status.NOT_PSD, Status.SUCCESS),
        jnp.where(skew > tol, Status.NOT_SYMMETRIC, Status.SUCCESS),
    )
    status = jnp.where(finite, status, Status.NON_FINITE_INPUT).astype(jnp.int32)
    return finite, status


# --- stress ------------------------------------------------------------------------------------


def _raw_stress(dist: jax.Array, D: jax.Array, W: jax.Array) -> jax.Array:
    # Σ over the full matrix counts each pair twice.
    return 0.5 * jnp.sum(W * (dist - D) ** 2, axis=(-2, -1))


# --- the unit: distances near 1 ------------------------------------------------------------------


def _largest(A: jax.Array, use: jax.Array | None = None) -> jax.Array:
    """``max |A|`` per matrix over the finite entries (where ``use``); 0 for none."""
    keep = jnp.isfinite(A) if use is None else use & jnp.isfinite(A)
    return jnp.max(jnp.where(keep, jnp.abs(A), 0.0), axis=(-2, -1), initial=0.0)


def _distance_unit(D: jax.Array, use: jax.Array | None, squared: bool) -> jax.Array:
    """The power of two ``h`` per matrix that brings the largest distance in D (where ``use``)
    near 1: multiply distances and coordinates by h, squared distances by h²."""
    largest = _largest(D, use)
    if squared:
        return power_of_two_scale(largest[..., None], axis=-1)  # D·h² in [½, 2)
    return unit_scale(largest)


def _in_unit(D: jax.Array, h: jax.Array, squared: bool) -> jax.Array:
    h = h[..., None, None]
    return D * (h * h if squared else h)


def _divide(x: jax.Array, *powers: jax.Array) -> jax.Array:
    """``x`` divided by each power of two in turn: exact unless the result itself under- or
    overflows. The barrier keeps XLA from rewriting ``x / a / b`` as ``x / (a·b)``, whose
    ``a·b`` is out of range at extreme scales."""
    for i, p in enumerate(powers):
        x = x / p
        if i + 1 < len(powers):
            x = lax.optimization_barrier(x)
    return x


def _from_unit(res: MDSResult, h: jax.Array, g: jax.Array | None = None) -> MDSResult:
    """``res`` computed on distances ``D·h`` and weights ``W·g`` (g = 1 if None), in the
    caller's units: Y / h and stress / (g·h²)."""
    powers = (h, h) if g is None else (g, h, h)
    return res._replace(Y=res.Y / h[..., None, None], stress=_divide(res.stress, *powers))


def stress(
    Y: jax.typing.ArrayLike,
    D: jax.typing.ArrayLike,
    *,
    mask: jax.typing.ArrayLike | None = None,
    weights: jax.typing.ArrayLike | None = None,
    normalized: bool = False,
    dim: int | None = None,
) -> jax.Array:
    """Stress of coordinates ``Y`` (..., N, d) against distances ``D`` (..., N, N).

    Raw stress ``Σ_{i<j} w_ij (‖y_i − y_j‖ − D_ij)²`` over observed pairs (``mask`` True, both
    ``(i, j)`` and ``(j, i)``; weights symmetrised), the quantity SMACOF and scikit-learn
    minimise. With ``normalized=True``: Kruskal's stress-1 against the target,
    ``sqrt(raw / Σ_{i<j} w_ij D_ij²)`` (0 perfect, 0.05 good, 0.2 poor). Differentiable in Y.
    """
    Y = as_coordinates(Y, "Y", dim)
    D = as_square_matrices(D, "D")
    if D.shape[-1] != Y.shape[-2]:
        raise ValueError(
            f"D must be (..., N, N) for Y of shape (..., N, d) = {Y.shape}; got D {D.shape}"
        )
    weights = _as_weights(weights, D.shape, check=True)
    W = _pair_weights(D, mask, weights)
    D = jnp.where(W > 0, D, 0.0)
    # In the unit of the largest distance or coordinate (squares near 1) and of the largest
    # weight; the raw stress is scaled back, stress-1 is a ratio and needs no scaling back.
    h = unit_scale(jnp.maximum(_largest(D), _largest(Y)))
    g = unit_scale(_largest(W))
    Yu = Y * h[..., None, None]
    Du, Wu = D * h[..., None, None], W * g[..., None, None]
    raw_u = _raw_stress(safe_sqrt(squared_distances(Yu, dim=None)), Du, Wu)
    raw = _divide(raw_u, g, h, h)
    if normalized:
        total = 0.5 * jnp.sum(Wu * Du**2, axis=(-2, -1))
        raw = safe_sqrt(jnp.where(total > 0, raw_u / jnp.where(total > 0, total, 1.0), raw))
    return jnp.where(_weights_ok(D, weights), raw, jnp.nan)


# --- classical MDS -----------------------------------------------------------------------------


def double_center(M: jax.Array) -> jax.Array:
    """``J·M·J`` with ``J = I − 11ᵀ/N``, without forming J."""
    M = M - jnp.mean(M, axis=-1, keepdims=True)
    return M - jnp.mean(M, axis=-2, keepdims=True)


def _congruence(Q: jax.Array, G: jax.Array) -> jax.Array:
    """``Qᵀ·G·Q``, symmetrised against rounding."""
    T = jnp.matmul(
        jnp.swapaxes(Q, -1, -2), jnp.matmul(G, Q, precision=_HIGHEST), precision=_HIGHEST
    )
    return (T + jnp.swapaxes(T, -1, -2)) / 2


def _orthonormalize(Z: jax.Array) -> jax.Array:
    """Orthonormal columns spanning Z's range, from the small Gram ``ZᵀZ`` (twice, for
    accuracy); directions below rounding become zero columns (harmless for Rayleigh–Ritz).
    ``jnp.linalg.qr`` would do, but on CPU it is ~50x slower on a computed tall matrix."""
    eps = jnp.finfo(Z.dtype).eps
    for _ in range(2):
        lam, V = jnp.linalg.eigh(jnp.matmul(jnp.swapaxes(Z, -1, -2), Z, precision=_HIGHEST))
        keep = lam > 100 * eps * lam[..., -1:]
        scale = jnp.where(keep, 1 / jnp.sqrt(jnp.where(keep, lam, 1.0)), 0.0)
        Z = jnp.matmul(Z, V * scale[..., None, :], precision=_HIGHEST)
    return Z


def _top_subspace(G: jax.Array, m: int) -> jax.Array:
    """An orthonormal ``(..., N, m)`` basis of G's dominant eigen-directions (in magnitude):
    randomized subspace iteration (Halko, Martinsson & Tropp 2011) with a fixed key, so the
    result is deterministic."""
    omega = jax.random.normal(jax.random.key(0), (*G.shape[:-1], m), G.dtype)
    Q = _orthonormalize(jnp.matmul(G, omega, precision=_HIGHEST))

    def power(_, Q):
        return _orthonormalize(jnp.matmul(G, Q, precision=_HIGHEST))

    return lax.fori_loop(0, _POWER_STEPS, power, Q)


def _pad_columns(Y: jax.Array, dim: int) -> jax.Array:
    missing = dim - Y.shape[-1]
    if missing <= 0:
        return Y
    return jnp.concatenate([Y, jnp.zeros((*Y.shape[:-1], missing), Y.dtype)], axis=-1)


def classical_mds(
    D: jax.typing.ArrayLike,
    dim: int = DEFAULT_DIM,
    *,
    squared: bool = False,
    check: bool = True,
    solver: str = "eigh",
) -> MDSResult:
    """Coordinates from a distance matrix by classical (Torgerson) MDS.

    Args:
        D: distances, shape ``(..., N, N)``: symmetric, non-negative, zero diagonal.
        dim: static; number of coordinates per point (default 3). ``dim > N`` pads zeros.
        squared: static; D holds squared distances.
        check: if True (default) and D is concrete, invalid numbers raise ``ValueError``
            (see :func:`check_distance_matrix`); under ``jit``/``vmap`` they are statuses.
        solver: static. ``"eigh"`` (default): ``jaxsolve.solve(G, method="eigh",
            rank=dim)``, a full ``O(N³)`` eigendecomposition, exact, and NOT_PSD sees every
            negative eigenvalue. ``"randomized"``: a randomized subspace iteration finds the
            top ``dim + 10`` eigen-directions ``Q`` (``O(N²·dim)``) and
            ``jaxsolve.solve(QᵀGQ, method="eigh", rank=dim)`` factors the compressed Gram —
            exact when D is Euclidean (G has rank ≤ dim), about 4× faster end to end at
            N = 1,000 and more as N grows, but NOT_PSD then only sees negative eigenvalues
            among the largest in magnitude.

    Returns:
        :class:`MDSResult`: ``Y`` (..., N, dim) with ``Y·Yᵀ`` the best rank-``dim`` PSD fit
        of ``G = −½·J·D²·J`` (from ``jaxsolve.solve(G, method="eigh", rank=dim)``), raw
        ``stress`` against D, ``status``, ``steps`` = 0.

    Statuses: SUCCESS; NOT_PSD (D is not Euclidean: G has negative eigenvalues beyond
    rounding, typical of noisy distances, or D has negative entries; Y is still the best
    rank-``dim`` fit — refine it with :func:`refine_mds`); NOT_SYMMETRIC (the symmetric part
    of D was used); NON_FINITE_INPUT (Y is NaN). Exact for Euclidean distances: the points
    are recovered up to a rigid motion and reflection to ~``eps·N·max D``, at any scale of D
    the dtype holds (the squares are formed in the unit of max D).

    >>> res = classical_mds(pairwise_distances(Y_true))        # doctest: +SKIP
    >>> align(res.Y, Y_true, reflection=True).rmsd             # ~1e-14   # doctest: +SKIP
    """
    D = as_square_matrices(D, "D")
    dim = check_int(dim, "dim", low=1)
    if not isinstance(squared, bool):
        raise TypeError(f"squared must be a static bool; got {squared!r}")
    if check and _is_concrete(D):
        check_distance_matrix(D, squared=squared)
    n = D.shape[-1]
    solver = check_choice(solver, "solver", CLASSICAL_SOLVERS)
    if n == 0:
        return _empty_result(D, dim)
    return _classical(D, dim=dim, squared=squared, solver=solver)


def _empty_result(D: jax.Array, dim: int) -> MDSResult:
    """The result for N = 0 points: no coordinates, stress 0, SUCCESS."""
    zeros = jnp.zeros(D.shape[:-2], jnp.int32)
    return MDSResult(
        jnp.zeros((*D.shape[:-2], 0, dim), D.dtype), zeros.astype(D.dtype), zeros, zeros
    )


@functools.partial(jax.jit, static_argnames=("dim", "squared", "solver"))
def _classical(D: jax.Array, *, dim: int, squared: bool, solver: str) -> MDSResult:
    h = _distance_unit(D, None, squared)
    res = _classical_unit(_in_unit(D, h, squared), dim=dim, squared=squared, solver=solver)
    return _from_unit(res, h)


def _classical_unit(D: jax.Array, *, dim: int, squared: bool, solver: str) -> MDSResult:
    """Classical MDS of D whose largest entry is near 1 (see :func:`_distance_unit`)."""
    n, batch = D.shape[-1], D.shape[:-2]
    W = _pair_weights(D, None, None)
    _, in_status = _input_status(D, W)
    # The distances' symmetric part (squaring does not commute with symmetrising, so do it
    # first); _input_status reports the asymmetry.
    S = (D + jnp.swapaxes(D, -1, -2)) / 2
    G = -0.5 * double_center(S if squared else S * S)
    # solve() guards non-finite input (NON_FINITE_INPUT, X NaN) and reports negative
    # eigenvalues (NOT_PSD).
    k = min(dim, n)
    if solver == "eigh" or k + _OVERSAMPLE >= n:
        sol = solve(G, method="eigh", rank=k)
        X = sol.X
    else:
        Q = _top_subspace(G, k + _OVERSAMPLE)
        sol = solve(_congruence(Q, G), method="eigh", rank=k)
        X = jnp.matmul(Q, sol.X, precision=_HIGHEST)
    Y = _pad_columns(X, dim)
    target = jnp.sqrt(jnp.abs(S)) if squared else S
    s = _raw_stress(safe_sqrt(squared_distances(Y, dim=None)), target, W)
    status = worst_status(sol.status, in_status)
    return MDSResult(Y, s, status, jnp.zeros(batch, jnp.int32))


# --- refinement --------------------------------------------------------------------------------


def _guttman_solver(W: jax.Array, unit: bool):
    """``BX ↦ V⁺·BX`` for the weighted Laplacian ``V = diag(W·1) − W`` (SMACOF's metric)."""
    n = W.shape[-1]
    if unit:
        # All weights one: V⁺ = J/N and B·X is already centred.
        return lambda BX: BX / n
    V = jnp.diag(jnp.sum(W, axis=-1)) - W
    # B·X ⟂ 1, so V⁺·B·X = (V + c·11ᵀ/N)⁻¹·B·X for any c > 0 (PD if the graph is connected).
    c = jnp.maximum(jnp.trace(V) / n, jnp.finfo(W.dtype).tiny)
    factor = jax.scipy.linalg.cho_factor(V + c / n, lower=True)
    return lambda BX: jax.scipy.linalg.cho_solve(factor, BX)


def _distances(X: jax.Array) -> jax.Array:
    return safe_sqrt(squared_distances(X, dim=None))


def _smacof(D, W, Y0, max_steps, rtol, unit):
    """SMACOF for one matrix: iterate the Guttman transform until the stress decrease is
    below ``rtol`` times the embedding's sum of squared distances (scikit-learn's criterion)."""
    apply_Vplus = _guttman_solver(W, unit)
    WD = W * D

    def guttman(X, dist):
        ratio = jnp.where(dist > 0, WD / jnp.where(dist > 0, dist, 1.0), 0.0)
        BX = jnp.sum(ratio, axis=-1, keepdims=True) * X - jnp.matmul(ratio, X, precision=_HIGHEST)
        return apply_Vplus(BX)

    def converged(s_prev, s, dist):
        scale = 0.5 * jnp.sum(W * dist**2)
        return (s_prev - s <= rtol * scale) | (s <= jnp.finfo(D.dtype).tiny)

    def cond(state):
        _, _, s, s_prev, k, _ = state
        return (k < max_steps) & jnp.isfinite(s) & ~converged(s_prev, s, state[1])

    def body(state):
        X, dist, s, _, k, _ = state
        X_new = guttman(X, dist)
        dist_new = _distances(X_new)
        return X_new, dist_new, _raw_stress(dist_new, D, W), s, k + 1, X

    X0 = Y0 - jnp.mean(Y0, axis=-2, keepdims=True)
    d0 = _distances(X0)
    s0 = _raw_stress(d0, D, W)
    inf = jnp.asarray(jnp.inf, D.dtype)
    X, dist, s, s_prev, k, X_prev = lax.while_loop(
        cond, body, (X0, d0, s0, inf, jnp.zeros((), jnp.int32), X0)
    )
    finite = jnp.isfinite(s) & jnp.all(jnp.isfinite(X))
    done = converged(s_prev, s, dist)
    status = jnp.where(finite, jnp.where(done, Status.SUCCESS, Status.MAX_STEPS), Status.NON_FINITE)
    # On a non-finite iterate, return the last finite one (and its stress).
    X = jnp.where(finite, X, X_prev)
    s = jnp.where(finite, s, _raw_stress(_distances(X_prev), D, W))
    return X, s, status.astype(jnp.int32), k


def _adam(D, W, Y0, max_steps, learning_rate):
    """Adam on the normalised stress for a fixed number of steps (reverse-differentiable)."""
    total = 0.5 * jnp.sum(W * D**2)
    total = jnp.where(total > 0, total, 1.0)
    rms = jnp.sqrt(2 * total / jnp.maximum(jnp.sum(W), 1.0))
    tx = optax.adam(learning_rate * rms)

    def loss(X):
        return _raw_stress(_distances(X), D, W) / total

    def step(carry, _):
        X, opt_state = carry
        grads = jax.grad(loss)(X)
        updates, opt_state = tx.update(grads, opt_state, X)
        return (optax.apply_updates(X, updates), opt_state), None

    X0 = Y0 - jnp.mean(Y0, axis=-2, keepdims=True)
    (X, _), _ = lax.scan(step, (X0, tx.init(X0)), None, length=max_steps)
    X = X - jnp.mean(X, axis=-2, keepdims=True)
    s = _raw_stress(_distances(X), D, W)
    finite = jnp.isfinite(s) & jnp.all(jnp.isfinite(X))
    status = jnp.where(finite, Status.SUCCESS, Status.NON_FINITE).astype(jnp.int32)
    return X, s, status, jnp.asarray(max_steps, jnp.int32)


def refine_mds(
    D: jax.typing.ArrayLike,
    init: jax.typing.ArrayLike,
    *,
    mask: jax.typing.ArrayLike | None = None,
    weights: jax.typing.ArrayLike | None = None,
    method: str = "smacof",
    max_steps: int = 300,
    rtol: jax.typing.ArrayLike = 1e-6,
    learning_rate: jax.typing.ArrayLike = 0.01,
    squared: bool = False,
    check: bool = True,
) -> MDSResult:
    """Minimise the stress ``Σ_{i<j} w_ij (‖y_i − y_j‖ − D_ij)²`` starting from ``init``.

    Args:
        D: target distances, shape ``(..., N, N)``. Unobserved entries (``mask`` False) are
            ignored and may hold anything, NaN included.
        init: starting coordinates, shape ``(..., N, dim)`` (e.g. ``classical_mds(D).Y``).
        mask: optional boolean ``(..., N, N)``, True where ``D_ij`` is observed; a pair is
            used when observed both ways. The observed graph must be connected.
        weights: optional ``(..., N, N)`` weights ``w_ij``, finite and non-negative
            (symmetrised; with ``check``, concrete weights that are not raise ``ValueError``,
            traced ones give NON_FINITE_INPUT).
        method: static. ``"smacof"`` (default): the Guttman transform in a
            ``lax.while_loop``, monotone, stops when the stress decrease is below
            ``rtol × Σ_{i<j} w_ij d_ij(Y)²`` (scikit-learn's criterion) or at
            ``max_steps``; not reverse-differentiable. ``"adam"``: optax Adam on the
            normalised stress for exactly ``max_steps`` steps with step size
            ``learning_rate × RMS(D)``; a ``lax.scan``, so ``jax.grad`` flows through it.
        max_steps: static int.
        rtol, learning_rate: traced floats, finite, ``rtol >= 0`` and ``learning_rate > 0``
            (a concrete value that is not raises ``ValueError``).
        squared: static; D holds squared distances (their square roots are fitted).
        check: as in :func:`classical_mds`.

    Returns:
        :class:`MDSResult` with the refined, centred ``Y`` and its raw stress.

    Statuses: SUCCESS; MAX_STEPS (smacof only); NON_FINITE (Y is the last finite iterate);
    and the input statuses of :func:`classical_mds` (NON_FINITE_INPUT for non-finite
    *observed* entries or invalid weights, NOT_SYMMETRIC, NOT_PSD for negative entries).
    ``init`` is in the units of D: the refinement runs in the unit of max D, as
    :func:`classical_mds` does.
    """
    method = check_choice(method, "method", REFINE_METHODS)
    max_steps = check_int(max_steps, "max_steps", low=0)
    D = as_square_matrices(D, "D")
    Y0 = as_coordinates(init, "init", None)
    n = D.shape[-1]
    if Y0.shape[-2] != n:
        raise ValueError(f"init must have N = {n} rows to match D {D.shape}; got {Y0.shape}")
    _check_refine_options(rtol, learning_rate)
    weights = _as_weights(weights, D.shape, check)
    if check and _is_concrete(D, mask):
        check_distance_matrix(D, mask, squared=squared)
    return _refine(
        D,
        mask,
        weights,
        Y0,
        method=method,
        max_steps=max_steps,
        rtol=rtol,
        learning_rate=learning_rate,
        squared=squared,
    )


def _check_refine_options(rtol: Any, learning_rate: Any) -> None:
    check_real(rtol, "rtol", nonnegative=True)
    check_real(learning_rate, "learning_rate", positive=True)


@functools.partial(jax.jit, static_argnames=("method", "max_steps", "squared"))
def _refine(D, mask, weights, Y0, *, method, max_steps, rtol, learning_rate, squared):
    W = _pair_weights(D, mask, weights)
    h = _distance_unit(D, W > 0, squared)
    g = unit_scale(_largest(W))
    res = _refine_unit(
        _in_unit(D, h, squared),
        W * g[..., None, None],
        _weights_ok(D, weights),
        Y0 * h[..., None, None],
        method=method,
        max_steps=max_steps,
        rtol=rtol,
        learning_rate=learning_rate,
        squared=squared,
        unit=mask is None and weights is None,
    )
    return _from_unit(res, h, g)


def _refine_unit(D, W, weights_ok, Y0, *, method, max_steps, rtol, learning_rate, squared, unit):
    """The refinement of D whose largest observed entry is near 1, with pair weights W whose
    largest is near 1 (``unit``: all one)."""
    finite, in_status = _input_status(D, W, weights_ok)
    target = jnp.where((W > 0) & jnp.isfinite(D), D, 0.0)
    if squared:
        target = jnp.sqrt(jnp.abs(target))
    target = (target + jnp.swapaxes(target, -1, -2)) / 2
    batch = np.broadcast_shapes(target.shape[:-2], Y0.shape[:-2])
    n, dim = Y0.shape[-2], Y0.shape[-1]
    dtype = jnp.result_type(target, Y0)
    flat_D = jnp.broadcast_to(target, (*batch, n, n)).reshape(-1, n, n).astype(dtype)
    flat_W = jnp.broadcast_to(W, (*batch, n, n)).reshape(-1, n, n).astype(dtype)
    flat_Y = jnp.broadcast_to(Y0, (*batch, n, dim)).reshape(-1, n, dim).astype(dtype)
    rtol = jnp.asarray(rtol, dtype)
    lr = jnp.asarray(learning_rate, dtype)
    if method == "smacof":
        run = jax.vmap(lambda d, w, y: _smacof(d, w, y, max_steps, rtol, unit))
    else:
        run = jax.vmap(lambda d, w, y: _adam(d, w, y, max_steps, lr))
    X, s, status, steps = run(flat_D, flat_W, flat_Y)
    X, s = X.reshape((*batch, n, dim)), s.reshape(batch)
    status, steps = status.reshape(batch), steps.reshape(batch)
    finite = jnp.broadcast_to(finite, batch)
    status = jnp.where(
        finite, worst_status(status, jnp.broadcast_to(in_status, batch)), Status.NON_FINITE_INPUT
    ).astype(jnp.int32)
    X = jnp.where(finite[..., None, None], X, jnp.nan)
    s = jnp.where(finite, s, jnp.nan)
    return MDSResult(X, s, status, steps)


@jax.jit
def _shortest_paths(D: jax.Array, observed: jax.Array) -> jax.Array:
    """Floyd–Warshall over the observed pairs (O(N³)); unreachable pairs get 2·max(D)."""
    n = D.shape[-1]
    G = jnp.where(observed, D, jnp.inf)
    G = jnp.where(jnp.eye(n, dtype=bool), 0.0, G)
    G = lax.fori_loop(0, n, lambda k, G: jnp.minimum(G, G[:, k, None] + G[None, k, :]), G)
    big = 2 * jnp.max(jnp.where(observed, D, 0.0))
    return jnp.where(jnp.isfinite(G), G, big)


def mds(
    D: jax.typing.ArrayLike,
    dim: int = DEFAULT_DIM,
    *,
    mask: jax.typing.ArrayLike | None = None,
    weights: jax.typing.ArrayLike | None = None,
    method: str | None = "smacof",
    max_steps: int = 300,
    rtol: jax.typing.ArrayLike = 1e-6,
    learning_rate: jax.typing.ArrayLike = 0.01,
    squared: bool = False,
    check: bool = True,
    start: str = "auto",
) -> MDSResult:
    """Coordinates from (noisy, possibly incomplete) distances: classical MDS, then refinement.

    ``classical_mds`` gives the start; with a ``mask``, missing distances are first filled
    with shortest-path distances through the observed pairs (an upper bound, good enough to
    start from). :func:`refine_mds` then minimises the stress over the observed pairs
    (``method`` "smacof" or "adam"; ``None`` returns the classical result, which ignores
    ``mask``/``weights`` except for the fill). Arguments as in those two functions.

    The status is the refinement's (SUCCESS when converged) plus the input statuses; the
    classical start's NOT_PSD for noisy (non-Euclidean) distances is not carried over —
    that is what the refinement is for; read ``stress`` for the quality of the fit.

    ``start`` (static) picks the classical solver: ``"eigh"``, ``"randomized"`` (see
    :func:`classical_mds`), or ``"auto"`` (default): randomized from N = 100 on, where a
    full eigendecomposition costs more than the refinement (a start only needs the top
    ``dim`` directions; the refinement does the rest).

    >>> res = mds(D_noisy)                                   # doctest: +SKIP
    >>> res.Y.shape, res.stress, res.messages()              # doctest: +SKIP
    """
    D = as_square_matrices(D, "D")
    start = check_choice(start, "start", ("auto", *CLASSICAL_SOLVERS))
    if start == "auto":
        start = "randomized" if D.shape[-1] >= _AUTO_RANDOMIZED_N else "eigh"
    dim = check_int(dim, "dim", low=1)
    if method is not None:
        method = check_choice(method, "method", REFINE_METHODS)
    max_steps = check_int(max_steps, "max_steps", low=0)
    _check_refine_options(rtol, learning_rate)
    _as_mask(mask, D.shape)
    weights = _as_weights(weights, D.shape, check)
    if check and _is_concrete(D, mask):
        check_distance_matrix(D, mask, squared=squared)
    if D.shape[-1] == 0:
        return _empty_result(D, dim)
    # One compiled computation from here on: no eager N×N passes between the stages.
    return _mds(
        D,
        mask,
        weights,
        rtol,
        learning_rate,
        dim=dim,
        method=method,
        max_steps=max_steps,
        squared=squared,
        start=start,
    )


@functools.partial(jax.jit, static_argnames=("dim", "method", "max_steps", "squared", "start"))
def _mds(D, mask, weights, rtol, learning_rate, *, dim, method, max_steps, squared, start):
    W = _pair_weights(D, mask, weights)
    # One unit for both stages: that of the entries the classical start reads (all of D
    # without a mask, else the observed pairs its fill goes through).
    h = _distance_unit(D, None if mask is None else W > 0, squared)
    D = _in_unit(D, h, squared)
    if mask is None:
        start_D = D
    else:
        observed = (W > 0) & jnp.isfinite(D)
        filled = jnp.where(observed, D, 0.0)
        filled = (filled + jnp.swapaxes(filled, -1, -2)) / 2
        if squared:
            filled = jnp.sqrt(jnp.abs(filled))
        fill = _shortest_paths
        for _ in D.shape[:-2]:
            fill = jax.vmap(fill)
        start_D = fill(filled, jnp.broadcast_to(observed, filled.shape).reshape(filled.shape))
        start_D = start_D**2 if squared else start_D
    initial = _classical_unit(start_D, dim=dim, squared=squared, solver=start)
    if method is None:
        return _from_unit(initial, h)
    g = unit_scale(_largest(W))
    res = _refine_unit(
        D,
        W * g[..., None, None],
        _weights_ok(D, weights),
        initial.Y,
        method=method,
        max_steps=max_steps,
        rtol=rtol,
        learning_rate=learning_rate,
        squared=squared,
        unit=mask is None and weights is None,
    )
    return _from_unit(res, h, g)
