"""Training a model through a transform: the helpers of ``examples/train_through_transform.py``.

The pattern (Keras users know it as "a Lambda layer only for training"): the model predicts
coordinates ``(N, 3)``; the *loss* applies the differentiable transform to the prediction
and compares with the ``(N, N)`` targets; inference calls the model alone and gets
``(N, 3)``. Nothing is inverted: gradients flow back through the transform.

* :class:`SequenceToCoords`: an ``nnx`` recurrent model, ``(batch, N)`` → ``(batch, N, 3)``.
* :func:`chain_dataset`: synthetic sequences and the coordinates they fold into.
* :func:`fit_through_transform`: full-batch Adam through any transform, all steps in one
  compiled ``lax.scan``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax import lax

from .._checks import check_int
from ._distances import check_real, pairwise_distances


class SequenceToCoords(nnx.Module):
    """A GRU over the sequence and a linear head: ``(batch, N)`` or ``(batch, N, F)`` →
    ``(batch, N, dim)`` coordinates.

    With ``bidirectional=True`` each position sees the whole sequence (a forward and a
    backward GRU, concatenated); the default is causal, like a chain built from its start.
    """

    def __init__(
        self,
        hidden: int = 32,
        dim: int = 3,
        in_features: int = 1,
        *,
        bidirectional: bool = False,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.in_features = check_int(in_features, "in_features", low=1)
        self.param_dtype = param_dtype
        hidden = check_int(hidden, "hidden", low=1)
        dim = check_int(dim, "dim", low=1)
        forward = nnx.RNN(
            nnx.GRUCell(self.in_features, hidden, param_dtype=param_dtype, rngs=rngs), rngs=rngs
        )
        if bidirectional:
            backward = nnx.RNN(
                nnx.GRUCell(self.in_features, hidden, param_dtype=param_dtype, rngs=rngs), rngs=rngs
            )
            self.rnn = nnx.Bidirectional(forward, backward, rngs=rngs)
            width = 2 * hidden
        else:
            self.rnn = forward
            width = hidden
        self.head = nnx.Linear(width, dim, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        # The GRU's carry has the parameters' dtype; inputs follow it (float64 data
        # under x64 would otherwise break the scan's carry types).
        x = jnp.asarray(x, self.param_dtype)
        if x.ndim == 2 and self.in_features == 1:
            x = x[..., None]
        if x.ndim != 3 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"x must have shape (batch, N) or (batch, N, {self.in_features}); got {x.shape}"
            )
        return self.head(self.rnn(x))


def chain_dataset(
    key: jax.Array,
    n_samples: int,
    length: int,
    *,
    bond: float = 1.0,
    turn: float = 0.8,
    rise: float = 0.5,
    dtype=jnp.float32,
) -> tuple[jax.Array, jax.Array]:
    """Synthetic sequence → structure pairs: a helix whose local curvature the sequence sets.

    Each sequence ``x`` (values in [−1, 1], smooth) drives a chain: the heading turns by
    ``turn·(1 + x_t)`` radians at step t, and each step moves ``bond`` in the plane and
    ``rise`` along z. The coordinates are a deterministic function of the sequence — the
    (N, 3) a model must learn — and their distance matrices are the (N, N) targets.

    Returns:
        ``(sequences (n_samples, length), coordinates (n_samples, length, 3))``.
    """
    n_samples = check_int(n_samples, "n_samples", low=1)
    length = check_int(length, "length", low=1)
    for value, name in ((bond, "bond"), (turn, "turn"), (rise, "rise")):
        check_real(value, name)
    raw = jax.random.uniform(key, (n_samples, length + 2), dtype, -1.0, 1.0)
    x = (raw[:, :-2] + raw[:, 1:-1] + raw[:, 2:]) / 3  # a little smoothing
    heading = jnp.cumsum(turn * (1.0 + x), axis=1)
    steps = jnp.stack(
        [bond * jnp.cos(heading), bond * jnp.sin(heading), jnp.full_like(heading, rise)], axis=-1
    )
    coords = jnp.cumsum(steps, axis=1)
    return x, coords - jnp.mean(coords, axis=1, keepdims=True)


def transform_loss(
    model: nnx.Module,
    x: jax.Array,
    targets: jax.Array,
    transform: Callable[[jax.Array], jax.Array] = pairwise_distances,
) -> jax.Array:
    """``mean((transform(model(x)) − targets)²)``: the training loss through the transform."""
    return jnp.mean((transform(model(x)) - targets) ** 2)


def fit_through_transform(
    model: nnx.Module,
    x: jax.Array,
    targets: jax.Array,
    *,
    steps: int = 500,
    learning_rate: float = 3e-3,
    transform: Callable[[jax.Array], jax.Array] = pairwise_distances,
) -> np.ndarray:
    """Train ``model`` in place with full-batch Adam on :func:`transform_loss`.

    Every step runs inside one jitted ``lax.scan`` (compiled once). Returns the loss
    before each step, shape ``(steps,)``; append a final :func:`transform_loss` for the
    loss after training.
    """
    steps = check_int(steps, "steps", low=1)
    if not callable(learning_rate):  # optax also takes a schedule
        check_real(learning_rate, "learning_rate", positive=True)
    optimizer = nnx.Optimizer(model, optax.adam(learning_rate), wrt=nnx.Param)
    graphdef, state = nnx.split((model, optimizer))

    @jax.jit
    def run(state, x, targets):
        def step(state, _):
            model, optimizer = nnx.merge(graphdef, state)
            loss, grads = nnx.value_and_grad(transform_loss)(model, x, targets, transform)
            optimizer.update(model, grads)
            return nnx.state((model, optimizer)), loss

        return lax.scan(step, state, None, length=steps)

    state, losses = run(state, x, targets)
    nnx.update((model, optimizer), state)
    return np.asarray(losses)
