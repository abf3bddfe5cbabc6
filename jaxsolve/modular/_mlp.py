"""A Flax ``nnx`` MLP of layers ``x·w + b``, ``x·(w mod m) + b`` or ``x·w + (b mod m)``.

The modulus ``m`` is a trainable array of the shape of the argument it divides (``w`` or ``b``).
It is stored as a :class:`Modulus` variable (a subclass of ``nnx.Param``), so it trains with the
rest by default (``nnx.Optimizer(model, tx, wrt=nnx.Param)``) and can be filtered out to freeze it
or to give it its own learning rate (``wrt=nnx.All(nnx.Param, nnx.Not(Modulus))``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from ._maps import get_mod_map

__all__ = ["VARIANTS", "ModDense", "ModMLP", "Modulus"]

VARIANTS = ("plain", "w_mod", "b_mod")
"""``plain``: ``x·w + b``; ``w_mod``: ``x·(w mod m) + b``; ``b_mod``: ``x·w + (b mod m)``."""

KERNEL_INITS = ("glorot_uniform", "he_normal", "lecun_normal")
MOD_INITS = ("glorot_uniform", "constant")
MOD_PARAMS = ("direct", "softplus")


class Modulus(nnx.Param):
    """The trainable modulus ``m`` (or its pre-image ``ρ`` under ``m = softplus(ρ) + ε``)."""


def _kernel_init(name: str):
    if name == "glorot_uniform":
        return nnx.initializers.glorot_uniform()
    if name == "he_normal":
        return nnx.initializers.he_normal()
    if name == "lecun_normal":
        return nnx.initializers.lecun_normal()
    raise ValueError(f"`kernel_init` must be one of {KERNEL_INITS}, got {name!r}.")


def _softplus_inverse(y: jax.Array) -> jax.Array:
    # log(exp(y) - 1), written to stay finite for large y.
    return y + jnp.log(-jnp.expm1(-y))


class ModDense(nnx.Module):
    """One dense layer ``y = x·w + b`` with an optional trainable modulus on ``w`` or ``b``.

    Args:
      in_features, out_features: the kernel ``w`` has shape ``(in_features, out_features)``.
      variant: ``"plain"``, ``"w_mod"`` (``m`` has the shape of ``w``) or ``"b_mod"`` (of ``b``).
      mod: which map computes ``w mod m`` (see :data:`jaxsolve.modular.MOD_MAPS`).
      mod_options: options of that map (``terms`` for ``"fourier"``, ``bound`` for ``"ste"``).
      kernel_init: ``"glorot_uniform"`` (Keras's default), ``"he_normal"`` or ``"lecun_normal"``.
        Biases start at zero, as in Keras.
      m_init: ``"glorot_uniform"`` (the default: ``m`` drawn like a kernel of the same fan-in and
        fan-out, ``U(-a, a)``, ``a = sqrt(6/(fan_in+fan_out))``, times ``m_scale``) or
        ``"constant"`` (every entry ``m_scale·a``: ``m_scale > 1`` puts ``|m|`` above every
        initial ``|w|``). For ``b_mod`` the limit ``a`` is the kernel's.
      m_scale: multiplies the ``m`` initialisation (see ``m_init``).
      m_param: ``"direct"`` (``m`` is the parameter) or ``"softplus"`` (the parameter is ``ρ`` and
        ``m = softplus(ρ) + m_eps > 0``, initialised from ``|m₀|``): ``m`` can never reach 0 or
        change sign.
      m_eps: the floor of ``m`` under ``m_param="softplus"``.
      rngs: ``nnx.Rngs`` with a ``params`` stream.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        variant: str = "plain",
        mod: str = "floor",
        mod_options: dict | None = None,
        kernel_init: str = "glorot_uniform",
        m_init: str = "glorot_uniform",
        m_scale: float = 1.0,
        m_param: str = "direct",
        m_eps: float = 1e-3,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        if variant not in VARIANTS:
            raise ValueError(f"`variant` must be one of {VARIANTS}, got {variant!r}.")
        if m_init not in MOD_INITS:
            raise ValueError(f"`m_init` must be one of {MOD_INITS}, got {m_init!r}.")
        if m_param not in MOD_PARAMS:
            raise ValueError(f"`m_param` must be one of {MOD_PARAMS}, got {m_param!r}.")
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
        self.variant = variant
        self.m_param = m_param
        self.m_eps = float(m_eps)
        get_mod_map(mod, **(mod_options or {}))  # validates the name and options now
        self.mod = mod
        self.mod_options = tuple(sorted((mod_options or {}).items()))
        shape_w = (in_features, out_features)
        self.kernel = nnx.Param(_kernel_init(kernel_init)(rngs.params(), shape_w, dtype))
        self.bias = nnx.Param(jnp.zeros((out_features,), dtype))
        if variant == "plain":
            self.modulus = None
            return
        limit = (6.0 / (in_features + out_features)) ** 0.5
        shape_m = shape_w if variant == "w_mod" else (out_features,)
        if m_init == "glorot_uniform":
            m0 = jax.random.uniform(rngs.params(), shape_m, dtype, -limit, limit)
        else:
            m0 = jnp.full(shape_m, limit, dtype)
        m0 = m0 * m_scale
        if m_param == "softplus":
            m0 = _softplus_inverse(jnp.maximum(jnp.abs(m0) - self.m_eps, 1e-6))
        self.modulus = Modulus(m0)

    def mod_fn(self, x: jax.Array, m: jax.Array) -> jax.Array:
        """The layer's map ``x mod m``."""
        return get_mod_map(self.mod, **dict(self.mod_options))(x, m)

    def m(self) -> jax.Array | None:
        """The modulus as the layer uses it (``None`` for ``variant="plain"``)."""
        if self.modulus is None:
            return None
        raw = self.modulus[...]
        if self.m_param == "softplus":
            return jax.nn.softplus(raw) + self.m_eps
        return raw

    def effective_kernel(self) -> jax.Array:
        """``w mod m`` for ``w_mod``, else ``w``."""
        w = self.kernel[...]
        return self.mod_fn(w, self.m()) if self.variant == "w_mod" else w

    def effective_bias(self) -> jax.Array:
        """``b mod m`` for ``b_mod``, else ``b``."""
        b = self.bias[...]
        return self.mod_fn(b, self.m()) if self.variant == "b_mod" else b

    def __call__(self, x: jax.Array) -> jax.Array:
        return x @ self.effective_kernel() + self.effective_bias()


class ModMLP(nnx.Module):
    """An MLP of ``depth`` :class:`ModDense` layers (ReLU between them, logits out).

    ``depth=3, width=128`` is the "3-layer MLP" of the question: ``in → width → width → out``,
    every layer of the same ``variant``. Keyword options are those of :class:`ModDense`.

    >>> model = ModMLP(64, 10, variant="w_mod", rngs=nnx.Rngs(0))   # doctest: +SKIP
    >>> model(jnp.ones((5, 64))).shape                               # doctest: +SKIP
    (5, 10)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        depth: int = 3,
        width: int | Sequence[int] = 128,
        rngs: nnx.Rngs,
        **layer_options,
    ):
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"`depth` must be a positive int, got {depth!r}.")
        widths = [width] * (depth - 1) if isinstance(width, int) else list(width)
        if len(widths) != depth - 1 or any(not isinstance(h, int) or h < 1 for h in widths):
            raise ValueError(
                f"`width` must be a positive int or {depth - 1} positive ints, got {width!r}."
            )
        sizes = [in_features, *widths, out_features]
        self.layers = nnx.List(
            [ModDense(a, b, rngs=rngs, **layer_options) for a, b in itertools.pairwise(sizes)]
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = jax.nn.relu(x)
        return x
