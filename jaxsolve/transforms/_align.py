"""Rigid alignment (Kabsch) and RMSD: compare coordinates known only up to a rigid motion."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._distances import DEFAULT_DIM, as_coordinates, safe_sqrt

_HIGHEST = jax.lax.Precision.HIGHEST


class Alignment(NamedTuple):
    """Result of :func:`align` (a pytree).

    Attributes:
        aligned: ``A`` moved onto ``B``: ``(A − mean(A))·R + mean(B)``, shape ``(..., N, d)``.
        rmsd: root-mean-square deviation ``sqrt(mean_i ‖aligned_i − b_i‖²)``, shape ``(...)``.
        rotation: ``R``, shape ``(..., d, d)`` (applied on the right: ``A·R``); orthogonal,
            with determinant +1 unless ``reflection=True`` allowed −1.
        translation: ``t`` with ``aligned = A·R + t``, shape ``(..., d)``.
    """

    aligned: jax.Array
    rmsd: jax.Array
    rotation: jax.Array
    translation: jax.Array


def rmsd(
    A: jax.typing.ArrayLike, B: jax.typing.ArrayLike, *, dim: int | None = DEFAULT_DIM
) -> jax.Array:
    """``sqrt(mean_i ‖a_i − b_i‖²)`` without alignment; shape ``(...)``; finite gradient at 0."""
    A = as_coordinates(A, "A", dim)
    B = as_coordinates(B, "B", A.shape[-1])
    _check_same(A, B)
    return safe_sqrt(jnp.mean(jnp.sum((A - B) ** 2, axis=-1), axis=-1))


def _check_same(A: jax.Array, B: jax.Array) -> None:
    if A.shape[-2] != B.shape[-2]:
        raise ValueError(
            f"A and B must have the same number of points N; got shapes {A.shape} and {B.shape}"
        )
    try:
        jnp.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    except ValueError:
        raise ValueError(
            f"A and B must have broadcastable batch dimensions; got {A.shape} and {B.shape}"
        ) from None


def align(
    A: jax.typing.ArrayLike,
    B: jax.typing.ArrayLike,
    *,
    reflection: bool = False,
    dim: int | None = DEFAULT_DIM,
) -> Alignment:
    """Move ``A`` onto ``B`` by the rotation and translation minimising the RMSD (Kabsch).

    Args:
        A: coordinates to move, shape ``(..., N, d)``.
        B: reference coordinates, shape ``(..., N, d)`` (batch dimensions broadcast).
        reflection: static. If True, also allow an improper rotation (a mirror image). Use it
            for coordinates recovered from distances alone (MDS, or a model trained on a
            distance loss), which fix the shape only up to a reflection.
        dim: static; expected d (default 3; ``None`` for any).

    Returns:
        :class:`Alignment` (aligned coordinates, RMSD, rotation, translation).

    The rotation comes from the SVD of the centred cross-covariance ``Aᶜᵀ·Bᶜ``. It is
    unique when that matrix has distinct singular values; for degenerate configurations
    (collinear or coincident points) any optimal rotation is returned and its derivative
    is not defined. The RMSD value is always well defined.

    >>> res = align(Y_recovered, Y_true, reflection=True)  # doctest: +SKIP
    >>> res.rmsd                                          # doctest: +SKIP
    """
    if not isinstance(reflection, bool):
        raise TypeError(f"reflection must be a static bool; got {reflection!r}")
    A = as_coordinates(A, "A", dim)
    B = as_coordinates(B, "B", A.shape[-1])
    _check_same(A, B)
    dtype = jnp.result_type(A, B)
    A, B = A.astype(dtype), B.astype(dtype)
    ca = jnp.mean(A, axis=-2, keepdims=True)
    cb = jnp.mean(B, axis=-2, keepdims=True)
    H = jnp.matmul(jnp.swapaxes(A - ca, -1, -2), B - cb, precision=_HIGHEST)
    U, _, Vt = jnp.linalg.svd(H, full_matrices=False)
    if not reflection:
        # Flip the least significant direction when U·Vᵀ would be a reflection.
        sign = jnp.sign(jnp.linalg.det(jnp.matmul(U, Vt, precision=_HIGHEST)))
        sign = jnp.where(sign == 0, 1.0, sign).astype(dtype)
        U = U.at[..., -1].multiply(sign[..., None])
    R = jnp.matmul(U, Vt, precision=_HIGHEST)
    t = (cb - jnp.matmul(ca, R, precision=_HIGHEST))[..., 0, :]
    aligned = jnp.matmul(A - ca, R, precision=_HIGHEST) + cb
    err = safe_sqrt(jnp.mean(jnp.sum((aligned - B) ** 2, axis=-1), axis=-1))
    return Alignment(aligned, err, R, t)
