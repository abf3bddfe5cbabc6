"""Synthetic per-element matrix classification data with a known local rule.

Each input is a ``rows × cols`` matrix of integers drawn uniformly from ``0 .. max_value``; each
label is 1 exactly where the element *exceeds the mean of its 3×3 neighbourhood* (the element
and its 8 neighbours), i.e. where ``9·x > Σ₃ₓ₃ x`` ⇔ ``8·x > Σ neighbours``. The rule is linear
in the inputs followed by a threshold, local (3×3), and translation invariant, so a small
convolutional network can learn it exactly, while a flattened MLP must learn the same stencil
separately for every position.

Boundaries: ``"wrap"`` treats the matrix as a torus (matches ``nnx.Conv(padding="CIRCULAR")``),
``"zero"`` counts missing neighbours as 0 (matches ``padding="SAME"``).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._checks import positive_int

BOUNDARIES = ("wrap", "zero")


class MatrixDataset(NamedTuple):
    """Pairs of integer input matrices and 0/1 label matrices of the same shape.

    Attributes:
        inputs: int32 array ``(n, rows, cols)`` with values in ``0 .. max_value``.
        labels: int32 array ``(n, rows, cols)`` with values in ``{0, 1}``.
    """

    inputs: jax.Array
    labels: jax.Array


def _check_boundary(boundary) -> str:
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    return boundary


def _matrix_shape(size) -> tuple[int, int]:
    if isinstance(size, tuple | list):
        if len(size) != 2:
            raise ValueError(f"size must be an int or a (rows, cols) pair, got {size!r}")
        return positive_int(size[0], "size"), positive_int(size[1], "size")
    n = positive_int(size, "size")
    return n, n


def neighbourhood_sum(x: jax.Array, *, boundary: str = "wrap") -> jax.Array:
    """Sum of the 8 neighbours of every element of ``x`` (over the last two axes).

    ``x`` has shape ``(*batch, rows, cols)``; so does the result (same dtype).
    """
    _check_boundary(boundary)
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"x must have at least 2 axes (rows, cols), got shape {x.shape}")
    if boundary == "wrap":
        shifted = (
            jnp.roll(x, (di, dj), axis=(-2, -1))
            for di in (-1, 0, 1)
            for dj in (-1, 0, 1)
            if (di, dj) != (0, 0)
        )
        return sum(shifted)
    rows, cols = x.shape[-2:]
    pad = [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)]
    padded = jnp.pad(x, pad)
    total = jnp.zeros_like(x)
    for di in (0, 1, 2):
        for dj in (0, 1, 2):
            if (di, dj) != (1, 1):
                total = total + padded[..., di : di + rows, dj : dj + cols]
    return total


@functools.partial(jax.jit, static_argnames="boundary")
def _labels(x: jax.Array, boundary: str) -> jax.Array:
    return (8 * x > neighbourhood_sum(x, boundary=boundary)).astype(jnp.int32)


def local_rule_labels(inputs: jax.Array, *, boundary: str = "wrap") -> jax.Array:
    """Label 1 where an element exceeds the mean of its 3×3 neighbourhood, else 0.

    ``inputs``: integer array ``(*batch, rows, cols)``. Computed exactly in integers as
    ``8·x > Σ neighbours`` (ties, e.g. a constant neighbourhood, are 0). Returns int32.
    """
    inputs = jnp.asarray(inputs)
    if not jnp.issubdtype(inputs.dtype, jnp.integer):
        raise TypeError(f"inputs must be an integer array, got dtype {inputs.dtype}")
    return _labels(inputs.astype(jnp.int32), _check_boundary(boundary))


def make_dataset(
    key: jax.Array,
    n: int,
    size: int | tuple[int, int] = 30,
    *,
    max_value: int = 75,
    boundary: str = "wrap",
) -> MatrixDataset:
    """``n`` random ``size × size`` integer matrices (entries ``0 .. max_value``) and their labels.

    Labels follow :func:`local_rule_labels`; about half of them are 1.

    >>> data = make_dataset(jax.random.key(0), 4)
    >>> data.inputs.shape, data.labels.shape
    ((4, 30, 30), (4, 30, 30))
    """
    n = positive_int(n, "n")
    rows, cols = _matrix_shape(size)
    max_value = positive_int(max_value, "max_value")
    _check_boundary(boundary)
    inputs = _random_inputs(key, (n, rows, cols), max_value)
    return MatrixDataset(inputs, _labels(inputs, boundary))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _random_inputs(key, shape, max_value) -> jax.Array:
    # Kept apart from the labels so that both boundaries share one compiled generator.
    return jax.random.randint(key, shape, 0, max_value + 1, dtype=jnp.int32)
