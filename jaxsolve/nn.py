"""Flax ``nnx`` layers for people who think in layers: a trainable 2-D weight X with X·Xᵀ ≈ C.

The "2-D weights matrix" of a Keras layer is an ``nnx.Param`` here. Training it with
``nnx.Optimizer`` and optax on ``¼‖M∘(X·Xᵀ − C)‖²`` follows the same path as
``jaxsolve.solve(C, method="gd")``; :func:`fit_factor` does exactly that.

>>> layer = FactorLayer(4, 2, rngs=nnx.Rngs(0))      # doctest: +SKIP
>>> layer().shape                                     # X·Xᵀ: (4, 4)   # doctest: +SKIP
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from ._checks import as_square_matrices, check_int, check_rank
from ._closed_form import symmetric_part, weighted_symmetric_part
from ._solve import check_mask


class FactorLayer(nnx.Module):
    """Holds a trainable factor ``X`` of shape (N, k); calling it returns ``X·Xᵀ`` (N, N).

    Args:
        n: rows N. rank: columns k (default N). rngs: ``nnx.Rngs`` for the initial weight.
        init: an ``nnx.initializers`` function for X (default normal, stddev 1/sqrt(N)).
        dtype: parameter dtype (default float32).
    """

    def __init__(
        self,
        n: int,
        rank: int | None = None,
        *,
        rngs: nnx.Rngs,
        init=None,
        dtype=jnp.float32,
    ):
        n = check_int(n, "n", low=1)
        k = check_rank(rank, n)
        init = init or nnx.initializers.normal(stddev=1.0 / n**0.5)
        self.X = nnx.Param(init(rngs.params(), (n, k), dtype))

    def __call__(self) -> jax.Array:
        X = self.X[...]
        return X @ X.T


def factor_loss(layer: FactorLayer, C: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """``¼‖M∘(X·Xᵀ − C)‖²_F``: the objective of ``solve(method="gd")``."""
    R = layer() - C
    if mask is not None:
        R = mask * R
    return 0.25 * jnp.sum(R**2)


def fit_factor(
    C: jax.typing.ArrayLike,
    rank: int | None = None,
    *,
    optimizer: optax.GradientTransformation | None = None,
    steps: int = 1000,
    mask: jax.typing.ArrayLike | None = None,
    seed: int = 0,
) -> tuple[FactorLayer, jax.Array]:
    """Train a :class:`FactorLayer` on C with ``nnx.Optimizer``; returns (layer, losses).

    The default optimizer is plain gradient descent with step 1/(3·‖C‖₂), as in
    ``solve(method="gd")``. ``steps`` iterations run in one jitted ``nnx.scan``-free loop
    (``lax.fori_loop`` over the split graph state).
    """
    C = as_square_matrices(C, "C")
    if C.ndim != 2:
        raise ValueError(f"C must be a single (N, N) matrix here; got shape {C.shape}")
    steps = check_int(steps, "steps", low=1)
    if mask is None:
        S, W = symmetric_part(C), None
    else:
        M = check_mask(mask, C.shape)
        # unobserved entries may hold anything, NaN included; observed ones on one side
        # only count fully (the same symmetric problem as solve's)
        S, W_sym = weighted_symmetric_part(jnp.where(M > 0, C, 0.0), M * M)
        W = jnp.sqrt(W_sym)  # factor_loss weighs by W∘W
    layer = FactorLayer(C.shape[-1], rank, rngs=nnx.Rngs(seed), dtype=C.dtype)
    if optimizer is None:
        # 1/(3·λ_max) as in solve; the start's own scale where C is 0 (the answer is X = 0)
        X0 = layer.X[...]
        curvature = jnp.maximum(jnp.linalg.norm(S, 2), jnp.linalg.norm(X0 @ X0.T, 2))
        optimizer = optax.sgd(1.0 / (3.0 * curvature))
    opt = nnx.Optimizer(layer, optimizer, wrt=nnx.Param)

    @nnx.jit
    def train(layer, opt):
        def body(i, carry):
            layer, opt, losses = carry
            loss, grads = nnx.value_and_grad(factor_loss)(layer, S, W)
            opt.update(layer, grads)
            return layer, opt, losses.at[i].set(loss)

        _, _, losses = nnx.fori_loop(0, steps, body, (layer, opt, jnp.zeros(steps, C.dtype)))
        return losses

    losses = train(layer, opt)
    return layer, losses
