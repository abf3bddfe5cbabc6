"""``jaxsolve shape conv`` and ``jaxsolve shape conv-transpose``: convolution output sizes.

Parsing and printing only; the arithmetic is :mod:`jaxsolve.shapes`. Sizes are comma lists, one
entry per spatial dimension (``--input 30,30``); a single number applies to every dimension.
"""

from __future__ import annotations

import argparse

from jaxsolve._shapes import CONV_PADDING_MODES, CONV_TRANSPOSE_PADDING_MODES

from ._errors import CLIError, library_call

_PADDING_HELP = (
    "{modes} (any case), or explicit padding: one entry per dimension separated by commas, "
    "each P (P on both sides) or LO:HI, e.g. 1 or 1,2 or 0:1,2:2; a single entry applies to "
    "every dimension "
    "(write --padding=-1:0 for a leading minus sign). Default: SAME"
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "shape",
        help="output size of a convolution or transposed convolution (flax conventions)",
        description=(
            "Print the spatial output size that flax.nnx.Conv / ConvTranspose produce. "
            "Output: one number per spatial dimension, comma separated."
        ),
    )
    kinds = parser.add_subparsers(dest="shape_kind", metavar="KIND")
    kinds.required = True

    conv = kinds.add_parser(
        "conv",
        help="nnx.Conv output size",
        description="Output size of flax.nnx.Conv (jax.lax.conv_general_dilated).",
    )
    _common_options(conv)
    conv.add_argument(
        "--padding",
        default="SAME",
        help=_PADDING_HELP.format(modes="SAME, SAME_LOWER, VALID, CIRCULAR, REFLECT, CAUSAL"),
    )
    conv.add_argument(
        "--input-dilation",
        default="1",
        metavar="D",
        help="input (lhs) dilation; needs explicit padding when > 1. Default: 1",
    )
    conv.add_argument(
        "--explain",
        action="store_true",
        help="also print the explicit (low, high) padding used and the formula",
    )
    conv.set_defaults(run=_run_conv)

    transpose = kinds.add_parser(
        "conv-transpose",
        help="nnx.ConvTranspose output size",
        description=(
            "Output size of flax.nnx.ConvTranspose (jax.lax.conv_transpose). Explicit padding "
            "follows flax (padding of the stride-dilated input); --pytorch reads --padding "
            "as PyTorch's ConvTranspose padding instead."
        ),
    )
    _common_options(transpose)
    transpose.add_argument(
        "--padding",
        default=None,
        help=_PADDING_HELP.format(modes="SAME, VALID, CIRCULAR")
        + "; with --pytorch: PyTorch's symmetric padding, default 0",
    )
    transpose.add_argument(
        "--pytorch",
        action="store_true",
        help="use PyTorch's ConvTranspose convention: W = (N-1)*S - 2P + D*(K-1) + OP + 1",
    )
    transpose.add_argument(
        "--output-padding",
        default=None,
        metavar="OP",
        help="PyTorch's output_padding (only with --pytorch). Default: 0",
    )
    transpose.add_argument(
        "--explain",
        action="store_true",
        help="also print the formula (and, with --pytorch, the equivalent flax padding)",
    )
    transpose.set_defaults(run=_run_conv_transpose)


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input", required=True, metavar="N", help="input spatial size, e.g. 4 or 30,30"
    )
    parser.add_argument("--kernel", required=True, metavar="K", help="kernel size, e.g. 3 or 3,5")
    parser.add_argument("--stride", default="1", metavar="S", help="stride. Default: 1")
    parser.add_argument(
        "--dilation", default="1", metavar="D", help="kernel (rhs) dilation. Default: 1"
    )


def _ints(text: str, option: str, *, allow_zero: bool = False) -> int | tuple[int, ...]:
    """``"4"`` -> 4, ``"4,5"`` -> (4, 5); a CLIError naming the option otherwise."""
    parts = [p.strip() for p in text.split(",")]
    values = []
    for part in parts:
        try:
            value = int(part)
        except ValueError:
            raise CLIError(f"{option} expects integers separated by commas, got {text!r}") from None
        if value < 0 or (value == 0 and not allow_zero):
            kind = "non-negative" if allow_zero else "positive"
            raise CLIError(f"{option} expects {kind} integers, got {text!r}")
        values.append(value)
    return values[0] if len(values) == 1 else tuple(values)


def _padding(text: str, modes: tuple[str, ...]):
    if text.upper() in modes:
        return text.upper()
    entries = []
    for part in text.split(","):
        pieces = part.strip().split(":")
        try:
            numbers = [int(p) for p in pieces]
        except ValueError:
            numbers = []
        if len(numbers) == 1:
            entries.append(numbers[0])
        elif len(numbers) == 2:
            entries.append((numbers[0], numbers[1]))
        else:
            raise CLIError(
                f"--padding expects one of {', '.join(modes)}, or P / LO:HI entries separated by "
                f"commas, got {text!r}"
            )
    if len(entries) == 1 and isinstance(entries[0], int):
        return entries[0]  # applies to every dimension
    return tuple(entries)


def _padding_per_dim(padding, *sizes):
    """One padding entry per spatial dimension; a single entry applies to all of them."""
    if isinstance(padding, str) or not isinstance(padding, tuple):
        return padding
    rank = max((len(v) for v in sizes if isinstance(v, tuple)), default=1)
    if len(padding) == 1:
        return padding * rank
    if len(padding) != rank:
        raise CLIError(
            f"--padding has {len(padding)} comma-separated entries but the convolution has "
            f"{rank} spatial dimension(s); write LO:HI (e.g. 1:2) for asymmetric padding"
        )
    return padding


def _format(shape: tuple[int, ...]) -> str:
    return ",".join(str(n) for n in shape)


def _run_conv(args: argparse.Namespace) -> int:
    from jaxsolve import shapes

    sizes = _ints(args.input, "--input")
    kernel = _ints(args.kernel, "--kernel")
    stride = _ints(args.stride, "--stride")
    dilation = _ints(args.dilation, "--dilation")
    input_dilation = _ints(args.input_dilation, "--input-dilation")
    padding = _padding(args.padding, CONV_PADDING_MODES)
    padding = _padding_per_dim(padding, sizes, kernel, stride, dilation, input_dilation)
    out = library_call(
        shapes.conv_output_shape,
        sizes,
        kernel,
        stride,
        padding,
        kernel_dilation=dilation,
        input_dilation=input_dilation,
    )
    print(_format(out))
    if args.explain:
        if isinstance(padding, str):
            pads = library_call(
                shapes.conv_explicit_padding,
                sizes,
                kernel,
                stride,
                padding,
                kernel_dilation=dilation,
            )
            kind = "wrapped/reflected" if padding in ("CIRCULAR", "REFLECT") else "zero"
            print(f"padding {padding} = {kind} (low, high) per dimension: {list(pads)}")
        print(
            "out = floor(((N - 1)*input_dilation + 1 + low + high - K') / S) + 1, "
            "K' = (K - 1)*dilation + 1"
        )
    return 0


def _run_conv_transpose(args: argparse.Namespace) -> int:
    from jaxsolve import shapes

    sizes = _ints(args.input, "--input")
    kernel = _ints(args.kernel, "--kernel")
    stride = _ints(args.stride, "--stride")
    dilation = _ints(args.dilation, "--dilation")
    if args.pytorch:
        padding = _ints(args.padding or "0", "--padding", allow_zero=True)
        output_padding = _ints(args.output_padding or "0", "--output-padding", allow_zero=True)
        out = library_call(
            shapes.torch_conv_transpose_output_shape,
            sizes,
            kernel,
            stride,
            padding,
            output_padding,
            dilation,
        )
        print(_format(out))
        if args.explain:
            pairs = shapes.torch_conv_transpose_padding(kernel, padding, output_padding, dilation)
            print("W = (N - 1)*S - 2P + D*(K - 1) + output_padding + 1  (PyTorch)")
            print(f"flax nnx.ConvTranspose equivalent: padding={list(pairs)}")
        return 0
    if args.output_padding is not None:
        raise CLIError("--output-padding is PyTorch's convention: add --pytorch to use it")
    padding = _padding(args.padding or "SAME", CONV_TRANSPOSE_PADDING_MODES)
    padding = _padding_per_dim(padding, sizes, kernel, stride, dilation)
    out = library_call(
        shapes.conv_transpose_output_shape,
        sizes,
        kernel,
        stride,
        padding,
        kernel_dilation=dilation,
    )
    print(_format(out))
    if args.explain:
        print(
            "SAME, CIRCULAR: N*S;  VALID: N*S + max(K' - S, 0);  explicit (low, high): "
            "(N - 1)*S + 1 + low + high - K' + 1;  K' = (K - 1)*dilation + 1"
        )
    return 0
