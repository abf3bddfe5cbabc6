"""jaxsolve.shapes against what flax.nnx.Conv / ConvTranspose and jax.lax actually produce."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxsolve.shapes import (
    conv_explicit_padding,
    conv_output_shape,
    conv_transpose_output_shape,
    torch_conv_transpose_output_shape,
    torch_conv_transpose_padding,
)

N_CONFIGS = 300


def _full(value, rank):
    return (value,) * rank if isinstance(value, int) else tuple(value)


def _flax_conv_shape(sizes, kernel, strides, padding, kernel_dilation, input_dilation):
    """Output spatial shape of nnx.Conv, found by abstract evaluation (no compile).

    Flax takes the number of spatial dimensions from ``len(kernel_size)``, so the kernel is
    always passed in full (our functions also broadcast an int kernel size).
    """
    kernel = _full(kernel, len(sizes))

    def apply(x):
        layer = nnx.Conv(
            1,
            1,
            kernel,
            strides,
            padding=padding,
            kernel_dilation=kernel_dilation,
            input_dilation=input_dilation,
            rngs=nnx.Rngs(0),
        )
        return layer(x)

    x = jax.ShapeDtypeStruct((1, *sizes, 1), jnp.float32)
    return tuple(jax.eval_shape(apply, x).shape[1:-1])


def _flax_conv_transpose_shape(sizes, kernel, strides, padding, kernel_dilation):
    kernel = _full(kernel, len(sizes))

    def apply(x):
        layer = nnx.ConvTranspose(
            1,
            1,
            kernel,
            strides,
            padding=padding,
            kernel_dilation=kernel_dilation,
            rngs=nnx.Rngs(0),
        )
        return layer(x)

    x = jax.ShapeDtypeStruct((1, *sizes, 1), jnp.float32)
    return tuple(jax.eval_shape(apply, x).shape[1:-1])


def _random_case(rng, s):
    """``s`` in a random mix of upper and lower case (our functions are case-insensitive)."""
    return "".join(c.lower() if rng.random() < 0.5 else c for c in s)


def _random_config(rng, modes):
    rank = int(rng.integers(1, 4))
    sizes = tuple(int(v) for v in rng.integers(1, 13, rank))
    kernel = tuple(int(v) for v in rng.integers(1, 7, rank))
    strides = tuple(int(v) for v in rng.integers(1, 5, rank))
    kernel_dilation = tuple(int(v) for v in rng.integers(1, 4, rank))
    choice = rng.random()
    if choice < 0.5:
        padding = str(rng.choice(modes))
    elif choice < 0.6:
        padding = int(rng.integers(-2, 5))
    else:
        padding = tuple(
            (int(rng.integers(-3, 6)), int(rng.integers(-3, 6)))
            if rng.random() < 0.7
            else int(rng.integers(-1, 4))
            for _ in range(rank)
        )
    # Broadcast ints sometimes, to exercise both spellings.
    if rng.random() < 0.3:
        kernel = kernel[0]
    if rng.random() < 0.3:
        strides = strides[0]
    return sizes, kernel, strides, padding, kernel_dilation


def test_conv_output_shape_matches_flax_conv_on_random_configurations():
    rng = np.random.default_rng(0)
    checked = errors = 0
    for _ in range(N_CONFIGS):
        sizes, kernel, strides, padding, k_dil = _random_config(
            rng, ["SAME", "VALID", "SAME_LOWER", "CIRCULAR", "REFLECT", "CAUSAL"]
        )
        in_dil = tuple(int(v) for v in rng.integers(1, 4, len(sizes)))
        if isinstance(padding, str) and rng.random() < 0.8:
            in_dil = 1  # string padding with input dilation is an error in lax; test it sometimes
        try:
            expected = _flax_conv_shape(sizes, kernel, strides, padding, k_dil, in_dil)
        except (ValueError, TypeError, RuntimeError):
            with pytest.raises(ValueError):
                conv_output_shape(
                    sizes, kernel, strides, padding, kernel_dilation=k_dil, input_dilation=in_dil
                )
            errors += 1
            continue
        ours_padding = _random_case(rng, padding) if isinstance(padding, str) else padding
        got = conv_output_shape(
            sizes, kernel, strides, ours_padding, kernel_dilation=k_dil, input_dilation=in_dil
        )
        assert got == expected, (sizes, kernel, strides, padding, k_dil, in_dil)
        checked += 1
    # Both branches must really have been exercised.
    assert checked > 200 and errors > 10, (checked, errors)


def test_conv_transpose_output_shape_matches_flax_conv_transpose_on_random_configurations():
    rng = np.random.default_rng(1)
    checked = errors = 0
    for _ in range(N_CONFIGS):
        sizes, kernel, strides, padding, k_dil = _random_config(rng, ["SAME", "VALID", "CIRCULAR"])
        try:
            expected = _flax_conv_transpose_shape(sizes, kernel, strides, padding, k_dil)
        except (ValueError, TypeError, RuntimeError):
            with pytest.raises(ValueError):
                conv_transpose_output_shape(sizes, kernel, strides, padding, kernel_dilation=k_dil)
            errors += 1
            continue
        ours_padding = _random_case(rng, padding) if isinstance(padding, str) else padding
        got = conv_transpose_output_shape(
            sizes, kernel, strides, ours_padding, kernel_dilation=k_dil
        )
        assert got == expected, (sizes, kernel, strides, padding, k_dil)
        checked += 1
    assert checked > 250 and errors > 0, (checked, errors)


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_against_lax_directly(padding):
    rng = np.random.default_rng(2)
    for _ in range(60):
        rank = int(rng.integers(1, 4))
        sizes = tuple(int(v) for v in rng.integers(1, 10, rank))
        kernel = tuple(int(v) for v in rng.integers(1, 5, rank))
        strides = tuple(int(v) for v in rng.integers(1, 4, rank))
        dil = tuple(int(v) for v in rng.integers(1, 3, rank))
        lhs = jax.ShapeDtypeStruct((1, 1, *sizes), jnp.float32)
        rhs = jax.ShapeDtypeStruct((1, 1, *kernel), jnp.float32)
        out = jax.eval_shape(
            lambda a, b, s=strides, d=dil: jax.lax.conv_general_dilated(
                a, b, s, padding, rhs_dilation=d
            ),
            lhs,
            rhs,
        )
        assert conv_output_shape(sizes, kernel, strides, padding, kernel_dilation=dil) == tuple(
            out.shape[2:]
        )
        # The explicit pairs reproduce the string padding.
        pads = conv_explicit_padding(sizes, kernel, strides, padding, kernel_dilation=dil)
        out_explicit = jax.eval_shape(
            lambda a, b, s=strides, d=dil, p=pads: jax.lax.conv_general_dilated(
                a, b, s, p, rhs_dilation=d
            ),
            lhs,
            rhs,
        )
        assert out_explicit.shape == out.shape
        assert pads == tuple(
            tuple(p) for p in jax.lax.padtype_to_pads(sizes, _extent(kernel, dil), strides, padding)
        )
        # lax.conv_transpose with the channels-last layout flax uses.
        lhs_t = jax.ShapeDtypeStruct((1, *sizes, 1), jnp.float32)
        rhs_t = jax.ShapeDtypeStruct((*kernel, 1, 1), jnp.float32)
        out_t = jax.eval_shape(
            lambda a, b, s=strides, d=dil: jax.lax.conv_transpose(a, b, s, padding, rhs_dilation=d),
            lhs_t,
            rhs_t,
        )
        assert conv_transpose_output_shape(
            sizes, kernel, strides, padding, kernel_dilation=dil
        ) == tuple(out_t.shape[1:-1])


def _extent(kernel, dilation):
    return tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation, strict=True))


def test_documented_examples_and_formulas():
    # 4 -> ConvTranspose(kernel 5, stride 2, SAME) -> 8.
    assert conv_transpose_output_shape(4, 5, 2, "SAME") == (8,)
    assert conv_transpose_output_shape(4, 5, 2, "VALID") == (4 * 2 + 5 - 2,)
    # SAME does not depend on the kernel; VALID does.
    for k in range(1, 8):
        assert conv_output_shape(10, k, 3, "SAME") == (4,)
        assert conv_transpose_output_shape(10, k, 3, "same") == (30,)
    assert conv_output_shape((28, 28), 5, 2, "VALID") == (12, 12)
    # SAME padding is asymmetric when the total is odd: no single P describes it.
    assert conv_explicit_padding(4, 4, 1, "SAME") == ((1, 2),)
    assert conv_explicit_padding(4, 4, 1, "SAME_LOWER") == ((2, 1),)
    assert conv_explicit_padding(5, 3, 1, "causal") == ((2, 0),)
    # Textbook W = (Out - 1)·S + F - 2P.
    for out, s, f, p in [(4, 2, 5, 2), (7, 3, 3, 1), (1, 1, 1, 0)]:
        assert torch_conv_transpose_output_shape(out, f, s, p) == ((out - 1) * s + f - 2 * p,)


def test_flax_explicit_conv_transpose_padding_is_not_pytorch_padding():
    # The same numbers mean different things: Flax pads the dilated input, PyTorch crops.
    assert conv_transpose_output_shape(4, 5, 2, 1) == (5,)
    assert _flax_conv_transpose_shape((4,), 5, 2, 1, 1) == (5,)
    assert torch_conv_transpose_output_shape(4, 5, 2, 1) == (9,)
    assert torch_conv_transpose_padding(5, 1) == ((3, 3),)
    assert conv_transpose_output_shape(4, 5, 2, torch_conv_transpose_padding(5, 1)) == (9,)


def test_torch_padding_reproduces_pytorch_sizes_in_flax():
    rng = np.random.default_rng(3)
    for _ in range(150):
        rank = int(rng.integers(1, 4))
        sizes = tuple(int(v) for v in rng.integers(1, 9, rank))
        kernel = tuple(int(v) for v in rng.integers(1, 6, rank))
        stride = tuple(int(v) for v in rng.integers(1, 4, rank))
        dilation = tuple(int(v) for v in rng.integers(1, 3, rank))
        padding = tuple(int(rng.integers(0, k)) for k in kernel)
        out_pad = tuple(
            int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation, strict=True)
        )
        try:
            expected = torch_conv_transpose_output_shape(
                sizes, kernel, stride, padding, out_pad, dilation
            )
        except ValueError:
            continue  # PyTorch itself refuses an empty output
        pairs = torch_conv_transpose_padding(kernel, padding, out_pad, dilation)
        assert _flax_conv_transpose_shape(sizes, kernel, stride, pairs, dilation) == expected


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "dilation"),
    [(7, 3, 2, 1, 1), (8, 4, 2, 1, 1), (9, 3, 3, 0, 2), ((6, 5), (3, 2), (2, 1), (1, 0), (1, 2))],
)
def test_torch_padding_gives_the_transpose_of_the_convolution(
    size, kernel, stride, padding, dilation
):
    """ConvTranspose(transpose_kernel=True, torch pads) is the adjoint of Conv(padding=P)."""
    sizes = (size,) if isinstance(size, int) else size
    rank = len(sizes)
    kernel_t = (kernel,) * rank if isinstance(kernel, int) else kernel
    pad_t = (padding,) * rank if isinstance(padding, int) else padding
    conv = nnx.Conv(
        2,
        3,
        kernel_t,
        stride,
        padding=tuple((p, p) for p in pad_t),
        kernel_dilation=dilation,
        use_bias=False,
        rngs=nnx.Rngs(0),
    )
    out = conv_output_shape(
        sizes, kernel_t, stride, tuple((p, p) for p in pad_t), kernel_dilation=dilation
    )
    strides_t = (stride,) * rank if isinstance(stride, int) else stride
    dil_t = (dilation,) * rank if isinstance(dilation, int) else dilation
    # output_padding recovers the exact input size (the lost remainder of the division).
    out_pad = tuple(
        (n + 2 * p - d * (k - 1) - 1) % s
        for n, p, d, k, s in zip(sizes, pad_t, dil_t, kernel_t, strides_t, strict=True)
    )
    assert (
        torch_conv_transpose_output_shape(out, kernel_t, stride, pad_t, out_pad, dilation) == sizes
    )
    x = jnp.zeros((1, *sizes, 2))
    y = jax.random.normal(jax.random.key(1), (1, *out, 3))
    (adjoint,) = jax.linear_transpose(conv, x)(y)
    tconv = nnx.ConvTranspose(
        3,
        2,
        kernel_t,
        stride,
        padding=torch_conv_transpose_padding(kernel_t, pad_t, out_pad, dilation),
        kernel_dilation=dilation,
        transpose_kernel=True,
        use_bias=False,
        rngs=nnx.Rngs(0),
    )
    tconv.kernel[...] = conv.kernel[...]
    np.testing.assert_allclose(tconv(y), adjoint, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("call", "exc", "words"),
    [
        (lambda: conv_output_shape(0, 3), ValueError, "input_shape"),
        (lambda: conv_output_shape(5, -1), ValueError, "kernel_size"),
        (lambda: conv_output_shape(5, 3, 0), ValueError, "strides"),
        (lambda: conv_output_shape(5, 3, kernel_dilation=0), ValueError, "kernel_dilation"),
        (lambda: conv_output_shape(5.0, 3), TypeError, "input_shape"),
        (lambda: conv_output_shape(True, 3), TypeError, "input_shape"),
        (lambda: conv_output_shape((5, 5), (3, 3, 3)), ValueError, "kernel_size"),
        (lambda: conv_output_shape((5, 5), 3, (1, 1, 1)), ValueError, "strides"),
        (lambda: conv_output_shape(5, 3, padding="FULL"), ValueError, "padding"),
        (lambda: conv_output_shape(5, 3, padding=(1, 2)), ValueError, "((1, 2),)"),
        (lambda: conv_output_shape(5, 3, padding=((1, 2, 3),)), ValueError, "padding"),
        (lambda: conv_output_shape(5, 3, padding=1.5), TypeError, "padding"),
        (lambda: conv_output_shape((5, 5), 3, padding="CAUSAL"), ValueError, "CAUSAL"),
        (lambda: conv_output_shape(5, 3, input_dilation=2), ValueError, "input_dilation"),
        (lambda: conv_output_shape(5, 3, padding=((-9, 0),)), ValueError, "padding"),
        (lambda: conv_output_shape((), 3), ValueError, "input_shape"),
        (lambda: conv_transpose_output_shape(4, 5, 2, "REFLECT"), ValueError, "padding"),
        (lambda: conv_transpose_output_shape(4, 5, 2, "CAUSAL"), ValueError, "padding"),
        (lambda: conv_transpose_output_shape(4, 5, 0), ValueError, "strides"),
        (
            lambda: torch_conv_transpose_output_shape(4, 3, 2, output_padding=2),
            ValueError,
            "output_padding",
        ),
        (lambda: torch_conv_transpose_output_shape(1, 1, 1, padding=1), ValueError, "padding"),
        (lambda: torch_conv_transpose_padding(3, padding=-1), ValueError, "padding"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(call, exc, words):
    with pytest.raises(exc, match=None) as info:
        call()
    assert words in str(info.value)


def test_zero_size_output_like_flax():
    assert conv_output_shape(4, 7, padding="VALID") == (0,)
    assert _flax_conv_shape((4,), 7, 1, "VALID", 1, 1) == (0,)
    assert conv_transpose_output_shape(4, 5, 1, ((-2, -2),)) == (0,)
    assert _flax_conv_transpose_shape((4,), 5, 1, ((-2, -2),), 1) == (0,)


def test_numpy_integers_are_accepted():
    assert conv_output_shape(np.int64(9), np.int32(3), np.int8(2), "VALID") == (4,)
    assert conv_output_shape(np.array([9, 9]), 3, padding="valid") == (7, 7)
