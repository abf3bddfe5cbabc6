"""Flax ``nnx`` models for per-element classification of matrices, and Flatten / Unflatten.

Both models take integer (or float) matrices ``(*batch, rows, cols)`` with entries in
``0 .. max_value``, scale them to ``[0, 1]`` inside the model, and return one logit per element,
shape ``(*batch, rows, cols)``: a per-element sigmoid (multi-label classification). Use
``logits > 0`` (or :func:`predict`) for the 0/1 prediction.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from ._checks import positive_int


def _positive_ints(values, name: str) -> tuple[int, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a sequence of positive ints, got {values!r}")
    return tuple(positive_int(v, name) for v in values)


class Flatten(nnx.Module):
    """Merge the last ``num_axes`` axes into one: ``(*batch, n, m) -> (*batch, n·m)``.

    Row-major (C order), like ``numpy.reshape``; any number of leading batch axes. The inverse
    is :class:`Unflatten` with the merged shape. No parameters.

    >>> Flatten()(jnp.zeros((8, 30, 30))).shape
    (8, 900)
    """

    def __init__(self, num_axes: int = 2):
        self.num_axes = positive_int(num_axes, "num_axes")

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        if x.ndim < self.num_axes:
            raise ValueError(
                f"Flatten(num_axes={self.num_axes}) needs an input with at least "
                f"{self.num_axes} axes, got shape {x.shape}"
            )
        keep = x.shape[: x.ndim - self.num_axes]
        return x.reshape((*keep, math.prod(x.shape[x.ndim - self.num_axes :])))


class Unflatten(nnx.Module):
    """Split the last axis into ``shape``: ``(*batch, n·m) -> (*batch, n, m)``.

    ``shape`` is a sequence of positive ints; at most one entry may be ``-1`` (inferred from the
    size, as in ``reshape``). Row-major, any number of leading batch axes. No parameters.

    >>> Unflatten((30, 30))(jnp.zeros((8, 900))).shape
    (8, 30, 30)
    """

    def __init__(self, shape: Sequence[int]):
        if isinstance(shape, str) or not isinstance(shape, Sequence) or len(shape) == 0:
            raise TypeError(f"shape must be a non-empty sequence of ints, got {shape!r}")
        entries = []
        for entry in shape:
            if isinstance(entry, bool):
                raise TypeError(f"shape entries must be ints, got {shape!r}")
            try:
                entry = operator.index(entry)
            except TypeError:
                raise TypeError(f"shape entries must be ints, got {shape!r}") from None
            if entry < 1 and entry != -1:
                raise ValueError(f"shape entries must be positive (or one -1), got {shape!r}")
            entries.append(entry)
        if entries.count(-1) > 1:
            raise ValueError(f"shape may contain at most one -1, got {shape!r}")
        self.shape = tuple(entries)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        if x.ndim < 1:
            raise ValueError(f"Unflatten needs an input with at least 1 axis, got shape {x.shape}")
        size = x.shape[-1]
        known = math.prod(s for s in self.shape if s != -1)
        if -1 in self.shape:
            if size % known:
                raise ValueError(
                    f"Unflatten({self.shape}): last axis of size {size} is not a multiple of "
                    f"{known}; input shape {x.shape}"
                )
            target = tuple(size // known if s == -1 else s for s in self.shape)
        else:
            if size != known:
                raise ValueError(
                    f"Unflatten({self.shape}) needs a last axis of size {known}, got shape "
                    f"{x.shape}"
                )
            target = self.shape
        return x.reshape((*x.shape[:-1], *target))


def _scale(x: jax.Array, max_value: float, dtype) -> jax.Array:
    return jnp.asarray(x).astype(dtype) / max_value


class FlattenMLP(nnx.Module):
    """Flatten → MLP → reshape back: one logit per element of a ``shape`` matrix.

    ``(*batch, rows, cols)`` → :class:`Flatten` → ``Linear`` layers of widths ``hidden`` with
    ReLU → ``Linear(rows·cols)`` → :class:`Unflatten` → ``(*batch, rows, cols)`` logits. Every
    output sees every input and there is no weight sharing, so a local rule must be learnt
    separately for each of the ``rows·cols`` positions. ``hidden=()`` gives a single linear map.
    The default hidden width (1024) exceeds 30·30 = 900 so the hidden layer is no bottleneck for a
    full-rank per-element map.

    Args:
        shape: ``(rows, cols)`` of the matrices.
        hidden: widths of the hidden layers.
        max_value: inputs are divided by this (entries ``0 .. max_value`` map to ``[0, 1]``).
        dtype: compute and parameter dtype.
        rngs: ``nnx.Rngs`` for the initialisation.
    """

    def __init__(
        self,
        shape: Sequence[int] = (30, 30),
        hidden: Sequence[int] = (1024,),
        *,
        max_value: float = 75,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        shape = _positive_ints(shape, "shape")
        if len(shape) != 2:
            raise ValueError(f"shape must be (rows, cols), got {shape!r}")
        hidden = tuple(_positive_ints(hidden, "hidden"))
        if not max_value > 0:
            raise ValueError(f"max_value must be positive, got {max_value!r}")
        self.shape = shape
        self.max_value = float(max_value)
        self.dtype = dtype
        self.flatten = Flatten(2)
        widths = (math.prod(shape), *hidden, math.prod(shape))
        self.layers = nnx.List(
            [
                nnx.Linear(a, b, dtype=dtype, param_dtype=dtype, rngs=rngs)
                for a, b in itertools.pairwise(widths)
            ]
        )
        self.unflatten = Unflatten(shape)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        if x.shape[-2:] != self.shape:
            raise ValueError(f"FlattenMLP expects (*batch, {self.shape}) inputs, got {x.shape}")
        h = self.flatten(_scale(x, self.max_value, self.dtype))
        for layer in self.layers[:-1]:
            h = nnx.relu(layer(h))
        return self.unflatten(self.layers[-1](h))


class FullyConvNet(nnx.Module):
    """Fully convolutional per-element classifier that keeps the spatial layout.

    A ``kernel_size × kernel_size`` convolution (1 → ``features[0]`` channels, ``padding``
    keeps the size) followed by pointwise layers (1×1 convolutions, written as ``Linear`` on
    the channel axis) of widths ``features[1:]`` with ReLU, and a final pointwise layer to one
    logit per element. It works for matrices of any size, and its receptive field is
    ``kernel_size × kernel_size`` — enough for a 3×3 local rule.

    Args:
        features: channel widths; the first is the width of the spatial convolution.
        kernel_size: size of the (square) spatial kernel.
        padding: ``"CIRCULAR"`` to match data with wrap-around neighbourhoods, ``"SAME"``
            for zero padding (any padding ``nnx.Conv`` accepts that keeps the size).
        max_value: inputs are divided by this.
        dtype: compute and parameter dtype.
        rngs: ``nnx.Rngs`` for the initialisation.
    """

    def __init__(
        self,
        features: Sequence[int] = (16, 16),
        kernel_size: int = 3,
        *,
        padding: str = "CIRCULAR",
        max_value: float = 75,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        features = _positive_ints(features, "features")
        if not features:
            raise ValueError("features must have at least one width, got ()")
        kernel_size = positive_int(kernel_size, "kernel_size")
        if not max_value > 0:
            raise ValueError(f"max_value must be positive, got {max_value!r}")
        self.max_value = float(max_value)
        self.dtype = dtype
        self.conv = nnx.Conv(
            1,
            features[0],
            (kernel_size, kernel_size),
            padding=padding,
            dtype=dtype,
            param_dtype=dtype,
            rngs=rngs,
        )
        widths = (*features, 1)
        self.pointwise = nnx.List(
            [
                nnx.Linear(a, b, dtype=dtype, param_dtype=dtype, rngs=rngs)
                for a, b in itertools.pairwise(widths)
            ]
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        if x.ndim < 2:
            raise ValueError(f"FullyConvNet expects (*batch, rows, cols) inputs, got {x.shape}")
        h = nnx.relu(self.conv(_scale(x, self.max_value, self.dtype)[..., None]))
        for layer in self.pointwise[:-1]:
            h = nnx.relu(layer(h))
        return self.pointwise[-1](h)[..., 0]


def predict(model: nnx.Module, inputs: jax.Array) -> jax.Array:
    """0/1 predictions (int32) of a per-element classifier: ``model(inputs) > 0``."""
    return (model(inputs) > 0).astype(jnp.int32)
