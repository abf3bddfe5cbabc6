"""Convolution shape arithmetic that matches what Flax's ``Conv`` / ``ConvTranspose`` produce.

Everything here is plain Python integer arithmetic (no arrays, no tracing), so it can be used
to size layers before any model exists, inside ``__init__`` methods, or from the command line.

Conventions (the same as ``flax.nnx.Conv`` and ``flax.nnx.ConvTranspose``):

* ``input_shape`` is the *spatial* shape only (no batch, no feature axis).
* ``kernel_size``, ``strides`` and the dilations are an int (the same for every spatial
  dimension) or one int per dimension.
* ``padding`` is a string (``"SAME"``, ``"VALID"``, ...; case-insensitive here), an int ``p``
  (``(p, p)`` on every dimension), or one entry per dimension, each an int ``p`` or a
  ``(low, high)`` pair.

Let ``N`` be the input size, ``K`` the kernel size, ``S`` the stride, ``D`` the kernel dilation
and ``K' = (K - 1)·D + 1`` the dilated kernel extent. Then, per dimension:

``Conv`` (``lax.conv_general_dilated``)::

    SAME, SAME_LOWER, CIRCULAR, REFLECT  ->  ceil(N / S)          (K does not matter)
    CAUSAL (1-D only)                    ->  ceil(N / S)
    VALID                                ->  floor((N - K') / S) + 1, or 0 if N < K'
    explicit (lo, hi)                    ->  floor((N + lo + hi - K') / S) + 1, or 0 if negative

``ConvTranspose`` (``lax.conv_transpose``)::

    SAME, CIRCULAR                       ->  N·S                  (K does not matter)
    VALID                                ->  N·S + max(K' - S, 0)
    explicit (lo, hi)                    ->  (N - 1)·S + 1 + lo + hi - K' + 1

Explicit padding of a Flax ``ConvTranspose`` is *not* PyTorch's ``padding``: Flax pads the
stride-dilated input by ``(lo, hi)`` and then runs a stride-1 convolution, whereas PyTorch's
``padding=P`` removes ``P`` from each side of the full transposed output. The PyTorch (and
textbook) size is::

    W = (Out - 1)·S - 2P + D·(K - 1) + output_padding + 1

which with ``D = 1`` and ``output_padding = 0`` is the textbook ``W = (Out - 1)·S + F - 2P``.
It inverts the convolution formula ``Out = floor((W - F + 2P) / S) + 1`` only when
``(W - F + 2P)`` is a multiple of ``S``: otherwise several ``W`` give the same ``Out`` and
PyTorch needs ``output_padding`` to choose one. It does not describe ``SAME`` padding at all:
``SAME`` has no single ``P`` (the total padding ``max((ceil(W/S) - 1)·S + F - W, 0)`` depends on
``W`` and may be odd, split unevenly), and ``ConvTranspose(padding="SAME")`` gives ``Out·S``
whatever the kernel. To reproduce a PyTorch ``ConvTranspose`` in Flax, pass
:func:`torch_conv_transpose_padding` as the explicit padding (and ``transpose_kernel=True`` if the
weights come from PyTorch).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

__all__ = [
    "conv_explicit_padding",
    "conv_output_shape",
    "conv_transpose_output_shape",
    "torch_conv_transpose_output_shape",
    "torch_conv_transpose_padding",
]

IntOrSeq = int | Sequence[int]
PaddingLike = str | int | Sequence[int | Sequence[int]]

CONV_PADDING_MODES = ("SAME", "SAME_LOWER", "VALID", "CIRCULAR", "REFLECT", "CAUSAL")
CONV_TRANSPOSE_PADDING_MODES = ("SAME", "VALID", "CIRCULAR")


def _as_int(value, name: str) -> int:
    """``value`` as a Python int; bools, floats and strings are refused with a TypeError."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got the bool {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an int or a sequence of ints, got {value!r} "
            f"of type {type(value).__name__}"
        ) from None


def _is_sequence(value) -> bool:
    """A list/tuple, or a 1-D array (NumPy or JAX) of sizes; strings are not sequences here."""
    if isinstance(value, str):
        return False
    return isinstance(value, Sequence) or getattr(value, "ndim", None) == 1


def _rank(named_values: Sequence[tuple[str, object]]) -> int:
    """The number of spatial dimensions: the common length of the sequences given (or 1)."""
    rank = None
    first = None
    for name, value in named_values:
        if _is_sequence(value):
            if len(value) == 0:
                raise ValueError(f"{name} must not be an empty sequence, got {value!r}")
            if rank is None:
                rank, first = len(value), name
            elif len(value) != rank:
                raise ValueError(
                    f"{name} has {len(value)} entries but {first} has {rank}: give one entry per "
                    "spatial dimension, or a single int for all of them"
                )
    return 1 if rank is None else rank


def _per_dim(value, name: str, rank: int, minimum: int) -> tuple[int, ...]:
    """Broadcast an int (or check a sequence) to ``rank`` ints, each at least ``minimum``."""
    if _is_sequence(value):
        if len(value) != rank:
            raise ValueError(f"{name} must have {rank} entries (one per dimension), got {value!r}")
        items = tuple(_as_int(v, name) for v in value)
    else:
        items = (_as_int(value, name),) * rank
    for item in items:
        if item < minimum:
            kind = "positive" if minimum == 1 else f">= {minimum}"
            raise ValueError(f"{name} must be {kind} in every dimension, got {value!r}")
    return items


def _padding(padding, rank: int, modes: Sequence[str]):
    """A padding mode (upper-case string) or a tuple of ``rank`` explicit (lo, hi) int pairs."""
    if isinstance(padding, str):
        mode = padding.upper()
        if mode not in modes:
            raise ValueError(
                f"padding must be one of {', '.join(map(repr, modes))} (any case), an int, or "
                f"(low, high) pairs per dimension; got {padding!r}"
            )
        return mode
    if not _is_sequence(padding):
        p = _as_int(padding, "padding")
        return ((p, p),) * rank
    if len(padding) != rank:
        hint = ""
        if rank == 1 and len(padding) == 2 and not any(map(_is_sequence, padding)):
            hint = f"; for an asymmetric 1-D pad write (({padding[0]}, {padding[1]}),)"
        raise ValueError(
            f"padding must have one entry per spatial dimension ({rank}), got {padding!r}{hint}"
        )
    pairs = []
    for entry in padding:
        if _is_sequence(entry):
            if len(entry) != 2:
                raise ValueError(
                    f"padding entries must be an int or a (low, high) pair, got {entry!r} "
                    f"in {padding!r}"
                )
            pairs.append((_as_int(entry[0], "padding"), _as_int(entry[1], "padding")))
        else:
            p = _as_int(entry, "padding")
            pairs.append((p, p))
    return tuple(pairs)


def _dilate(size: int, dilation: int) -> int:
    return (size - 1) * dilation + 1


def _conv_setup(input_shape, kernel_size, strides, padding, kernel_dilation, input_dilation):
    rank = _rank(
        [
            ("input_shape", input_shape),
            ("kernel_size", kernel_size),
            ("strides", strides),
            ("kernel_dilation", kernel_dilation),
            ("input_dilation", input_dilation),
        ]
    )
    sizes = _per_dim(input_shape, "input_shape", rank, 1)
    kernel = _per_dim(kernel_size, "kernel_size", rank, 1)
    stride = _per_dim(strides, "strides", rank, 1)
    k_dil = _per_dim(kernel_dilation, "kernel_dilation", rank, 1)
    in_dil = _per_dim(input_dilation, "input_dilation", rank, 1)
    pad = _padding(padding, rank, CONV_PADDING_MODES)
    if isinstance(pad, str):
        if any(d != 1 for d in in_dil):
            raise ValueError(
                f"padding={padding!r} cannot be combined with input_dilation={input_dilation!r}: "
                "jax.lax.conv_general_dilated only accepts explicit (low, high) padding when the "
                "input is dilated"
            )
        if pad == "CAUSAL" and rank != 1:
            raise ValueError(
                f"padding='CAUSAL' is only defined for 1-D convolutions, got {rank} spatial "
                "dimensions"
            )
    extents = tuple(_dilate(k, d) for k, d in zip(kernel, k_dil, strict=True))
    return sizes, extents, stride, in_dil, pad


def conv_explicit_padding(
    input_shape: IntOrSeq,
    kernel_size: IntOrSeq,
    strides: IntOrSeq = 1,
    padding: PaddingLike = "SAME",
    *,
    kernel_dilation: IntOrSeq = 1,
) -> tuple[tuple[int, int], ...]:
    """The ``(low, high)`` padding per spatial dimension that ``nnx.Conv`` applies.

    For ``"SAME"`` this is ``max((ceil(N/S) - 1)·S + K' - N, 0)`` in total, split with the
    extra element on the high side (``"SAME_LOWER"``: on the low side), which is why ``SAME``
    has no single symmetric ``P``. ``"CIRCULAR"``/``"REFLECT"`` pad ``((K'-1)//2, K'//2)``
    with wrapped/reflected values instead of zeros; ``"CAUSAL"`` pads ``(K'-1, 0)``.

    >>> conv_explicit_padding(4, 5, 2, "SAME")
    ((1, 2),)
    """
    sizes, extents, stride, _, pad = _conv_setup(
        input_shape, kernel_size, strides, padding, kernel_dilation, 1
    )
    if not isinstance(pad, str):
        return pad
    pairs = []
    for n, k, s in zip(sizes, extents, stride, strict=True):
        if pad in ("SAME", "SAME_LOWER"):
            total = max((-(-n // s) - 1) * s + k - n, 0)
            small, large = total // 2, total - total // 2
            pairs.append((small, large) if pad == "SAME" else (large, small))
        elif pad == "VALID":
            pairs.append((0, 0))
        elif pad == "CAUSAL":
            pairs.append((k - 1, 0))
        else:  # CIRCULAR, REFLECT: Flax pads the input itself, then runs a VALID convolution.
            pairs.append(((k - 1) // 2, k // 2))
    return tuple(pairs)


def conv_output_shape(
    input_shape: IntOrSeq,
    kernel_size: IntOrSeq,
    strides: IntOrSeq = 1,
    padding: PaddingLike = "SAME",
    *,
    kernel_dilation: IntOrSeq = 1,
    input_dilation: IntOrSeq = 1,
) -> tuple[int, ...]:
    """Spatial output shape of ``nnx.Conv(..., kernel_size, strides, padding=..., ...)``.

    Arguments follow ``flax.nnx.Conv``: ``input_shape`` is the spatial shape (an int for 1-D),
    ``padding`` one of ``"SAME"``, ``"SAME_LOWER"``, ``"VALID"``, ``"CIRCULAR"``,
    ``"REFLECT"``, ``"CAUSAL"`` (1-D only; any case), an int, or per-dimension ints or
    ``(low, high)`` pairs (negative values crop, as in ``lax``). Per dimension the result is
    ``max(floor((padded - K') / S) + 1, 0)`` with ``padded = (N - 1)·input_dilation + 1 + lo +
    hi`` and ``K' = (K - 1)·kernel_dilation + 1``; for the string modes this is ``ceil(N / S)``
    (``VALID``: ``floor((N - K') / S) + 1``). A size of 0 is returned where Flax returns an
    empty axis.

    Raises:
        TypeError: an argument is not an int / sequence of ints (or a string for ``padding``).
        ValueError: a size, stride or dilation is not positive, the number of dimensions
            disagrees between arguments, the padding is unknown, ``CAUSAL`` on more than one
            dimension, string padding with ``input_dilation > 1``, or negative padding that
            removes more than the whole input (all cases where Flax raises too).

    >>> conv_output_shape(30, 3, padding="CIRCULAR")
    (30,)
    >>> conv_output_shape((28, 28), 5, 2, "VALID")
    (12, 12)
    """
    sizes, extents, stride, in_dil, pad = _conv_setup(
        input_shape, kernel_size, strides, padding, kernel_dilation, input_dilation
    )
    if isinstance(pad, str):
        pad = conv_explicit_padding(
            input_shape, kernel_size, strides, padding, kernel_dilation=kernel_dilation
        )
    out = []
    for n, k, s, d, (lo, hi) in zip(sizes, extents, stride, in_dil, pad, strict=True):
        padded = _dilate(n, d) + lo + hi
        if padded < 0:
            raise ValueError(
                f"padding {(lo, hi)} removes more than the whole (dilated) input of size "
                f"{_dilate(n, d)}"
            )
        out.append(max((padded - k) // s + 1, 0))
    return tuple(out)


def conv_transpose_output_shape(
    input_shape: IntOrSeq,
    kernel_size: IntOrSeq,
    strides: IntOrSeq = 1,
    padding: PaddingLike = "SAME",
    *,
    kernel_dilation: IntOrSeq = 1,
) -> tuple[int, ...]:
    """Spatial output shape of ``nnx.ConvTranspose(..., kernel_size, strides, padding=...)``.

    ``padding`` is ``"SAME"`` (output ``N·S``), ``"VALID"`` (``N·S + max(K' - S, 0)``),
    ``"CIRCULAR"`` (``N·S``), an int, or per-dimension ints or ``(low, high)`` pairs. Explicit
    pairs are Flax's (and ``lax.conv_transpose``'s) convention: the padding of the
    stride-dilated input before a stride-1 convolution, giving
    ``(N - 1)·S + 1 + lo + hi - K' + 1``. This is **not** PyTorch's ``padding``; see
    :func:`torch_conv_transpose_output_shape` and :func:`torch_conv_transpose_padding`.

    Strings are accepted in any case here, but Flax's ``ConvTranspose`` itself only
    recognises the upper-case spellings (a lower-case ``"same"`` reaches ``lax`` as a
    forward-convolution padding and fails for strides > 1). ``"REFLECT"``, ``"CAUSAL"`` and
    ``"SAME_LOWER"`` are refused because Flax's ``ConvTranspose`` fails on them.

    >>> conv_transpose_output_shape(4, 5, 2, "SAME")
    (8,)
    >>> conv_transpose_output_shape(4, 5, 2, "VALID")
    (11,)
    """
    rank = _rank(
        [
            ("input_shape", input_shape),
            ("kernel_size", kernel_size),
            ("strides", strides),
            ("kernel_dilation", kernel_dilation),
        ]
    )
    sizes = _per_dim(input_shape, "input_shape", rank, 1)
    kernel = _per_dim(kernel_size, "kernel_size", rank, 1)
    stride = _per_dim(strides, "strides", rank, 1)
    k_dil = _per_dim(kernel_dilation, "kernel_dilation", rank, 1)
    pad = _padding(padding, rank, CONV_TRANSPOSE_PADDING_MODES)
    out = []
    for i, (n, k, s, d) in enumerate(zip(sizes, kernel, stride, k_dil, strict=True)):
        extent = _dilate(k, d)
        if pad in ("SAME", "CIRCULAR"):
            out.append(n * s)
        elif pad == "VALID":
            out.append(n * s + max(extent - s, 0))
        else:
            lo, hi = pad[i]
            padded = _dilate(n, s) + lo + hi
            if padded < 0:
                raise ValueError(
                    f"padding {(lo, hi)} removes more than the whole stride-dilated input of "
                    f"size {_dilate(n, s)}"
                )
            out.append(max(padded - extent + 1, 0))
    return tuple(out)


def _torch_setup(input_shape, kernel_size, stride, padding, output_padding, dilation):
    named = [
        ("input_shape", input_shape),
        ("kernel_size", kernel_size),
        ("stride", stride),
        ("padding", padding),
        ("output_padding", output_padding),
        ("dilation", dilation),
    ]
    rank = _rank(named)
    sizes = _per_dim(input_shape, "input_shape", rank, 1)
    kernel = _per_dim(kernel_size, "kernel_size", rank, 1)
    strides = _per_dim(stride, "stride", rank, 1)
    pads = _per_dim(padding, "padding", rank, 0)
    out_pads = _per_dim(output_padding, "output_padding", rank, 0)
    dils = _per_dim(dilation, "dilation", rank, 1)
    for op, s, d in zip(out_pads, strides, dils, strict=True):
        if op >= max(s, d):
            raise ValueError(
                f"output_padding must be smaller than the stride or the dilation (as in PyTorch), "
                f"got output_padding={output_padding!r}, stride={stride!r}, dilation={dilation!r}"
            )
    return sizes, kernel, strides, pads, out_pads, dils


def torch_conv_transpose_output_shape(
    input_shape: IntOrSeq,
    kernel_size: IntOrSeq,
    stride: IntOrSeq = 1,
    padding: IntOrSeq = 0,
    output_padding: IntOrSeq = 0,
    dilation: IntOrSeq = 1,
) -> tuple[int, ...]:
    """Spatial output shape of PyTorch's ``ConvTranspose{1,2,3}d`` (its documented formula).

    ``W = (N - 1)·stride - 2·padding + dilation·(kernel_size - 1) + output_padding + 1``, the
    textbook ``W = (Out - 1)·S + F - 2P`` when ``dilation = 1`` and ``output_padding = 0``.
    ``padding`` here is PyTorch's symmetric int per dimension (not Flax's explicit pairs);
    ``output_padding`` must be smaller than ``max(stride, dilation)``.

    >>> torch_conv_transpose_output_shape(4, 5, 2, 2, 1)
    (8,)
    """
    sizes, kernel, strides, pads, out_pads, dils = _torch_setup(
        input_shape, kernel_size, stride, padding, output_padding, dilation
    )
    out = []
    for n, k, s, p, op, d in zip(sizes, kernel, strides, pads, out_pads, dils, strict=True):
        w = (n - 1) * s - 2 * p + d * (k - 1) + op + 1
        if w < 1:
            raise ValueError(
                f"padding={padding!r} is too large: PyTorch's ConvTranspose output would have "
                f"size {w} for input_shape={input_shape!r}"
            )
        out.append(w)
    return tuple(out)


def torch_conv_transpose_padding(
    kernel_size: IntOrSeq,
    padding: IntOrSeq = 0,
    output_padding: IntOrSeq = 0,
    dilation: IntOrSeq = 1,
) -> tuple[tuple[int, int], ...]:
    """Explicit Flax ``ConvTranspose`` padding equal to PyTorch's ``padding``, ``output_padding``.

    Returns ``((K' - 1 - P, K' - 1 - P + output_padding), ...)`` with
    ``K' = dilation·(kernel_size - 1) + 1``, so that ``nnx.ConvTranspose(..., padding=pairs,
    kernel_dilation=dilation)`` has the size of :func:`torch_conv_transpose_output_shape` (and,
    with ``transpose_kernel=True`` and PyTorch's weights, the same values). Entries can be
    negative; ``lax`` then crops. The stride does not enter.

    >>> torch_conv_transpose_padding(5, 2, 1)
    ((2, 3),)
    """
    rank = _rank(
        [
            ("kernel_size", kernel_size),
            ("padding", padding),
            ("output_padding", output_padding),
            ("dilation", dilation),
        ]
    )
    kernel = _per_dim(kernel_size, "kernel_size", rank, 1)
    pads = _per_dim(padding, "padding", rank, 0)
    out_pads = _per_dim(output_padding, "output_padding", rank, 0)
    dils = _per_dim(dilation, "dilation", rank, 1)
    pairs = []
    for k, p, op, d in zip(kernel, pads, out_pads, dils, strict=True):
        edge = d * (k - 1) - p
        pairs.append((edge, edge + op))
    return tuple(pairs)
