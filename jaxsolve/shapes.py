"""Convolution shape arithmetic matching ``flax.nnx.Conv`` and ``flax.nnx.ConvTranspose``.

See :mod:`jaxsolve._shapes` for the formulas, including where the textbook
``W = (Out - 1)·S + F - 2P`` applies (PyTorch-style explicit padding) and where it does not
(``SAME`` padding, and Flax's explicit ``ConvTranspose`` padding).
"""

from ._shapes import __doc__ as _formulas
from ._shapes import conv_explicit_padding as conv_explicit_padding
from ._shapes import conv_output_shape as conv_output_shape
from ._shapes import conv_transpose_output_shape as conv_transpose_output_shape
from ._shapes import torch_conv_transpose_output_shape as torch_conv_transpose_output_shape
from ._shapes import torch_conv_transpose_padding as torch_conv_transpose_padding

__doc__ = (__doc__ or "") + "\n" + (_formulas or "")

__all__ = [
    "conv_explicit_padding",
    "conv_output_shape",
    "conv_transpose_output_shape",
    "torch_conv_transpose_output_shape",
    "torch_conv_transpose_padding",
]
