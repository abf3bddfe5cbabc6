"""Differentiable transforms of coordinates ``(..., N, d)`` into pairwise ``(..., N, M)`` maps.

Every function here is pure ``jax.numpy``: it works under ``jit``, ``vmap``, ``grad`` and
``hessian``. The one singular point, ``sqrt`` at zero distance (the diagonal, and any two
coincident points), is guarded with the double-``where`` pattern so the value is exactly 0
and first and second derivatives are finite (zero) there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import as_float_array
from .._numerics import power_of_two_scale

DEFAULT_DIM = 3


def as_coordinates(Y: Any, name: str = "Y", dim: int | None = DEFAULT_DIM) -> jax.Array:
    """``Y`` as a float array of shape ``(..., N, d)``; ``ValueError`` on a wrong shape.

    ``dim`` is the expected trailing dimension d (``None`` accepts any d >= 1).
    """
    arr = as_float_array(Y, name)
    if arr.ndim < 2:
        raise ValueError(
            f"{name} must have shape (..., N, d) with one row per point; got shape {arr.shape}"
        )
    if dim is not None and arr.shape[-1] != dim:
        raise ValueError(
            f"{name} must have shape (..., N, {dim}) ({dim} coordinates per point); got shape "
            f"{arr.shape}. Pass dim={arr.shape[-1]} for {arr.shape[-1]}-D points or dim=None "
            "for any dimension."
        )
    if dim is None and arr.shape[-1] < 1:
        raise ValueError(f"{name} must have at least one coordinate per point; got {arr.shape}")
    return arr


def check_real(value: Any, name: str, *, positive: bool = False, nonnegative: bool = False) -> None:
    """Raise ``ValueError`` naming ``name`` if a concrete float parameter holds NaN or Inf (or,
    with ``positive``/``nonnegative``, values <= 0 / < 0); ``TypeError`` if it is not real.

    A traced value passes: its numbers are unknown at trace time, and a sweep over it must not
    recompile."""
    if isinstance(value, jax.core.Tracer):
        return
    try:
        host = np.asarray(value)
    except Exception as err:  # ragged lists and the like
        raise TypeError(f"{name} must be a real number; got {value!r:.80}") from err
    if host.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real number; got {value!r:.80} (dtype {host.dtype})")
    if positive:
        bad, wanted = ~(host > 0), "positive and finite"
    elif nonnegative:
        bad, wanted = ~(host >= 0), "non-negative and finite"
    else:
        bad, wanted = np.zeros(host.shape, bool), "finite"
    bad = bad | ~np.isfinite(host)
    if np.any(bad):
        shown = host.item() if host.ndim == 0 else f"{host[bad].flat[0]} (among {host.size} values)"
        raise ValueError(f"{name} must be {wanted}; got {shown}")


def unit_scale(largest: jax.Array) -> jax.Array:
    """A power of two ``c`` with ``largest·c`` in [½, 2) (1 where ``largest`` is 0 or not
    finite), the same shape as ``largest``; a constant for differentiation.

    Distances (or coordinates) multiplied by ``c`` have squares near 1, so forming them can
    neither overflow nor underflow whatever the input's scale, and dividing a result by ``c``
    is exact. ``c`` is ``h²`` for the ``h`` of :func:`jaxsolve._numerics.power_of_two_scale`,
    kept a normal number: a subnormal ``largest`` ends up above 2⁻⁷⁰ and a near-overflow one
    below 2¹⁸ rather than in [½, 2), still safe to square.
    """
    return power_of_two_scale(largest[..., None], axis=-1) ** 2


def _pair(Y: Any, Z: Any, dim: int | None) -> tuple[jax.Array, jax.Array]:
    Y = as_coordinates(Y, "Y", dim)
    if Z is None:
        return Y, Y
    Z = as_coordinates(Z, "Z", Y.shape[-1])
    try:
        np.broadcast_shapes(Y.shape[:-2], Z.shape[:-2])
    except ValueError:
        raise ValueError(
            f"Y and Z must have broadcastable batch dimensions; got shapes {Y.shape} and {Z.shape}"
        ) from None
    dtype = jnp.result_type(Y, Z)
    return Y.astype(dtype), Z.astype(dtype)


def sqrt_threshold(dtype: Any) -> float:
    """Squared distances at or below this are treated as zero distance.

    ``sqrt(tiny)``: small enough to be far below any meaningful distance (≈1e-154 in float64,
    ≈1e-19 in float32, i.e. distances below ≈1e-77 / ≈3e-10), large enough that the second
    derivative of ``sqrt`` there, ``s^(-3/2)/4``, is still finite.
    """
    return float(np.sqrt(np.finfo(np.dtype(dtype)).tiny))


def safe_sqrt(s: jax.Array) -> jax.Array:
    """``sqrt(s)`` for ``s >= 0`` with value 0 and finite (zero) derivatives of every order at
    ``s <= sqrt_threshold`` (double ``where``: mask the input, then the output). NaN stays NaN."""
    positive = s > sqrt_threshold(s.dtype)
    # ``0 * s`` rather than ``0``: a NaN input must not come out as a clean zero.
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, s, 1.0)), 0 * s)


def squared_distances(
    Y: jax.typing.ArrayLike, Z: jax.typing.ArrayLike | None = None, *, dim: int | None = DEFAULT_DIM
) -> jax.Array:
    """Squared Euclidean distances ``‖y_i − z_j‖²``, shape ``(..., N, M)``.

    Args:
        Y: coordinates, shape ``(..., N, d)``.
        Z: optional second set, shape ``(..., M, d)`` (batch dimensions broadcast); default Y.
        dim: static; the expected d (default 3). ``None`` accepts any d.

    Computed from coordinate differences (not ``‖a‖²+‖b‖²−2a·b``), so it is exact to rounding
    for close points and exactly 0 for coincident ones; it forms an ``(..., N, M, d)``
    intermediate. For very large N use :func:`jaxsolve.transforms.distance_loss` or
    :func:`jaxsolve.transforms.blocked_distance_loss`. Matches
    ``scipy.spatial.distance.cdist(Y, Z, "sqeuclidean")``.
    """
    Y, Z = _pair(Y, Z, dim)
    return squared_differences(Y, Z)


_UNROLL_MAX_DIM = 16


def squared_differences(Y: jax.Array, Z: jax.Array) -> jax.Array:
    """``Σ_k (y_ik − z_jk)²`` for validated ``(..., N, d)``/``(..., M, d)`` arrays."""
    if Y.shape[-1] <= _UNROLL_MAX_DIM:
        # One (N, M) difference per coordinate, summed: every array keeps M contiguous. A
        # (N, M, d) array with d = 3 last vectorises poorly on CPU (10x slower at N = 2000).
        return sum((Y[..., :, k, None] - Z[..., None, :, k]) ** 2 for k in range(Y.shape[-1]))
    diff = Y[..., :, None, :] - Z[..., None, :, :]
    return jnp.sum(diff * diff, axis=-1)


def pairwise_distances(
    Y: jax.typing.ArrayLike, Z: jax.typing.ArrayLike | None = None, *, dim: int | None = DEFAULT_DIM
) -> jax.Array:
    """Euclidean distances ``‖y_i − z_j‖``, shape ``(..., N, M)``; the distance matrix for Z=None.

    Same arguments as :func:`squared_distances`. The square root is guarded at zero
    distance: the diagonal and coincident points give exactly 0 with finite (zero)
    gradient and Hessian. Matches ``scipy.spatial.distance.squareform(pdist(Y))``.

    The squares are formed in a power-of-two unit in which the largest coordinate is near 1
    (:func:`unit_scale`, exact), so distances are right at any scale the dtype holds, from
    1e-300 to 1e300 in float64, though their squares would under- or overflow. Distances
    below ``sqrt_threshold``'s ≈1e-77 (float64) times the largest coordinate count as 0.

    >>> pairwise_distances(jnp.array([[0.0, 0, 0], [3, 4, 0]]))  # doctest: +SKIP
    Array([[0., 5.], [5., 0.]])
    """
    Y, Z = _pair(Y, Z, dim)
    c = _coordinate_unit(Y, Z)
    return safe_sqrt(squared_differences(Y * c, Z * c)) / c


def _coordinate_unit(Y: jax.Array, Z: jax.Array) -> jax.Array:
    """:func:`unit_scale` of ``max(|Y|, |Z|)`` per matrix, shape ``(..., 1, 1)``."""
    largest = jnp.maximum(
        jnp.max(jnp.abs(Y), axis=(-2, -1), initial=0.0),
        jnp.max(jnp.abs(Z), axis=(-2, -1), initial=0.0),
    )
    return unit_scale(largest)[..., None, None]


def gram(
    Y: jax.typing.ArrayLike, *, center: bool = False, dim: int | None = DEFAULT_DIM
) -> jax.Array:
    """The Gram matrix ``Y·Yᵀ``, shape ``(..., N, N)``.

    With ``center=True`` the points are first moved to their centroid, giving the
    double-centred Gram ``−½·J·D²·J`` that classical MDS factors (translation invariant).
    """
    Y = as_coordinates(Y, "Y", dim)
    if center:
        Y = Y - jnp.mean(Y, axis=-2, keepdims=True)
    return jnp.matmul(Y, jnp.swapaxes(Y, -1, -2), precision=jax.lax.Precision.HIGHEST)


def contact_map(
    Y: jax.typing.ArrayLike,
    Z: jax.typing.ArrayLike | None = None,
    *,
    cutoff: jax.typing.ArrayLike = 8.0,
    temperature: jax.typing.ArrayLike = 1.0,
    dim: int | None = DEFAULT_DIM,
) -> jax.Array:
    """A soft contact map ``sigmoid((cutoff − ‖y_i − z_j‖) / temperature)``, shape ``(..., N, M)``.

    Values lie in (0, 1): near 1 for pairs closer than ``cutoff``, near 0 beyond it, with a
    transition of width ~``temperature``; the hard map is the limit ``temperature → 0``.
    ``cutoff`` and ``temperature`` are traced (a sweep does not recompile); a concrete
    temperature that is not positive and finite, or a concrete non-finite cutoff, raises
    ``ValueError``. The diagonal is ``sigmoid(cutoff/temperature)``.
    """
    check_real(temperature, "temperature", positive=True)
    check_real(cutoff, "cutoff")
    D = pairwise_distances(Y, Z, dim=dim)
    return jax.nn.sigmoid((cutoff - D) / temperature)


def apply_pairwise(
    fn: Callable[[jax.Array, jax.Array], jax.Array],
    Y: jax.typing.ArrayLike,
    Z: jax.typing.ArrayLike | None = None,
    *,
    dim: int | None = DEFAULT_DIM,
) -> jax.Array:
    """Your own pairwise transform: ``out[..., i, j] = fn(y_i, z_j)``.

    ``fn`` takes two points of shape ``(d,)`` and returns an array (usually a scalar); it
    must be written with ``jax.numpy`` (a NumPy function cannot be differentiated: port it,
    ``np.`` → ``jnp.``, or see docs/transforms.md). The result has shape
    ``(..., N, M, *fn_output_shape)`` and is differentiable wherever ``fn`` is. A function
    of the whole matrix (``lambda Y: jnp.exp(-squared_distances(Y))``) needs no helper at
    all; use this one for per-pair formulas.

    >>> apply_pairwise(lambda a, b: jnp.sum(jnp.abs(a - b)), Y)  # Manhattan  # doctest: +SKIP
    """
    if not callable(fn):
        raise TypeError(f"fn must be a callable fn(y_i, y_j); got {type(fn).__name__}")
    Y, Z = _pair(Y, Z, dim)
    batch = np.broadcast_shapes(Y.shape[:-2], Z.shape[:-2])
    Y = jnp.broadcast_to(Y, (*batch, *Y.shape[-2:]))
    Z = jnp.broadcast_to(Z, (*batch, *Z.shape[-2:]))
    pairs = jax.vmap(jax.vmap(fn, in_axes=(None, 0)), in_axes=(0, None))
    for _ in batch:
        pairs = jax.vmap(pairs)
    return pairs(Y, Z)
