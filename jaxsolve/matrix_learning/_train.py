"""Training, evaluation and the MLP-versus-convolution comparison for per-element classifiers."""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from ._checks import positive_int
from ._data import MatrixDataset, make_dataset
from ._models import FlattenMLP, FullyConvNet


class TrainResult(NamedTuple):
    """What :func:`train` did.

    Attributes:
        losses: mean binary cross-entropy of each step's mini-batch, NumPy array ``(steps,)``.
        compile_seconds: time to trace and compile the training loop.
        run_seconds: time to run it (after compilation), outputs ready.
    """

    losses: np.ndarray
    compile_seconds: float
    run_seconds: float


class Evaluation(NamedTuple):
    """Per-element accuracy, fraction of matrices predicted without a single error, mean loss."""

    accuracy: float
    exact_match: float
    loss: float


class ModelReport(NamedTuple):
    """One row of :func:`compare_models` (``losses``: the per-step training losses)."""

    name: str
    num_params: int
    steps: int
    batch_size: int
    learning_rate: float
    train_accuracy: float
    test_accuracy: float
    test_exact_match: float
    test_loss: float
    compile_seconds: float
    run_seconds: float
    losses: np.ndarray


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How :func:`compare_models` builds and trains one model.

    ``make(rngs, shape, boundary)`` returns a fresh model for ``(rows, cols)`` matrices whose
    labels use ``boundary`` (``"wrap"`` or ``"zero"``).
    """

    make: Callable[[nnx.Rngs, tuple[int, int], str], nnx.Module]
    steps: int
    batch_size: int
    learning_rate: float


def _conv_net(rngs, shape, boundary):
    return FullyConvNet(padding="CIRCULAR" if boundary == "wrap" else "SAME", rngs=rngs)


def _mlp(rngs, shape, boundary):
    return FlattenMLP(shape, rngs=rngs)


DEFAULT_SPECS: Mapping[str, ModelSpec] = {
    "fully_conv": ModelSpec(_conv_net, steps=300, batch_size=16, learning_rate=1e-2),
    # Tuned on held-out data: 1e-3 leaves the ReLU MLP near chance, 1e-4 learns slower.
    "flatten_mlp": ModelSpec(_mlp, steps=3000, batch_size=64, learning_rate=3e-4),
}


def _as_dataset(data, name: str = "data") -> MatrixDataset:
    if not isinstance(data, tuple) or len(data) != 2:
        raise TypeError(
            f"{name} must be a MatrixDataset or an (inputs, labels) pair, got {type(data).__name__}"
        )
    inputs, labels = jnp.asarray(data[0]), jnp.asarray(data[1])
    if inputs.shape != labels.shape or inputs.ndim < 3:
        raise ValueError(
            f"{name}: inputs and labels must both have shape (n, rows, cols), got "
            f"{inputs.shape} and {labels.shape}"
        )
    if inputs.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    return MatrixDataset(inputs, labels)


def bce_loss(model: nnx.Module, inputs: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean per-element binary cross-entropy of ``model(inputs)`` (logits) against 0/1 labels."""
    logits = model(inputs)
    return optax.sigmoid_binary_cross_entropy(logits, labels.astype(logits.dtype)).mean()


@functools.partial(jax.jit, static_argnames=("graphdef", "tx", "steps", "batch_size"))
def _train_loop(
    params, rest, opt_state, inputs, labels, key, update_scale, *, graphdef, tx, steps, batch_size
):
    """``steps`` optimiser steps in one ``lax.scan``; static: model structure, optimiser, sizes."""
    n = inputs.shape[0]

    def step(carry, step_key):
        params, opt_state = carry
        idx = jax.random.randint(step_key, (batch_size,), 0, n)

        def loss_of(p):
            return bce_loss(nnx.merge(graphdef, p, rest), inputs[idx], labels[idx])

        loss, grads = jax.value_and_grad(loss_of)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        updates = jax.tree.map(lambda u: update_scale * u, updates)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, opt_state), losses = jax.lax.scan(
        step, (params, opt_state), jax.random.split(key, steps)
    )
    return params, opt_state, losses


@functools.lru_cache(maxsize=32)
def _default_optimizer(steps: int) -> optax.GradientTransformation:
    # One object per ``steps`` so that the jitted loop, which takes the optimiser as a static
    # argument, finds its compilation again on the next call.
    return optax.adam(optax.cosine_decay_schedule(1.0, steps, alpha=0.01))


def train(
    model: nnx.Module,
    data: MatrixDataset | tuple[jax.Array, jax.Array],
    *,
    steps: int = 300,
    batch_size: int = 16,
    learning_rate: float = 1e-2,
    optimizer: optax.GradientTransformation | None = None,
    key: jax.Array | None = None,
) -> TrainResult:
    """Train a per-element classifier in place by mini-batch gradient descent on the BCE loss.

    The whole loop (``steps`` steps, mini-batches of ``batch_size`` matrices drawn with
    replacement) is one jitted ``lax.scan``, compiled ahead of time so that compile time and
    run time are reported separately; the learning rate is traced, so a second call with the
    same architecture, data shape, ``steps`` and ``batch_size`` reuses the compilation. The
    model's ``nnx.Param`` variables are updated in place.

    Args:
        model: an ``nnx.Module`` mapping ``(batch, rows, cols)`` inputs to logits of that shape.
        data: training :class:`MatrixDataset` (or ``(inputs, labels)``).
        steps: number of optimiser steps.
        batch_size: matrices per step.
        learning_rate: peak learning rate of the default optimiser, Adam with a cosine decay
            to 1% over ``steps``; ignored when ``optimizer`` is given.
        optimizer: any optax transformation to use instead.
        key: PRNG key for the mini-batches (default ``jax.random.key(0)``).

    Returns:
        :class:`TrainResult` with the per-step losses and the timings.
    """
    data = _as_dataset(data)
    steps = positive_int(steps, "steps")
    batch_size = positive_int(batch_size, "batch_size")
    if optimizer is None:
        try:
            update_scale = float(learning_rate)
        except (TypeError, ValueError):
            raise TypeError(
                f"learning_rate must be a positive number, got {learning_rate!r}"
            ) from None
        if not update_scale > 0:  # also refuses NaN
            raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
        # Adam with a unit-peak schedule, scaled by the (traced) learning rate inside the loop:
        # the same as adam(learning_rate · schedule), but a learning-rate sweep reuses one
        # compilation instead of baking each rate into the program.
        optimizer = _default_optimizer(steps)
    else:
        update_scale = 1.0
    if key is None:
        key = jax.random.key(0)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    opt_state = optimizer.init(params)
    args = (params, rest, opt_state, data.inputs, data.labels, key, update_scale)
    static = {"graphdef": graphdef, "tx": optimizer, "steps": steps, "batch_size": batch_size}
    start = time.perf_counter()
    compiled = _train_loop.lower(*args, **static).compile()
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    params, _, losses = jax.block_until_ready(compiled(*args))
    run_seconds = time.perf_counter() - start
    nnx.update(model, params)
    return TrainResult(np.asarray(losses), compile_seconds, run_seconds)


@functools.partial(jax.jit, static_argnames="chunk")
def _counts(graphdef, state, inputs, labels, *, chunk: int):
    """Correct elements, fully correct matrices and summed loss, in chunks of ``chunk``."""
    n = inputs.shape[0]
    padded = -(-n // chunk) * chunk
    pad = [(0, padded - n)] + [(0, 0)] * (inputs.ndim - 1)

    def split(a):
        return jnp.pad(a, pad).reshape((padded // chunk, chunk, *a.shape[1:]))

    valid = (jnp.arange(padded) < n).reshape(padded // chunk, chunk)

    def one_chunk(args):
        x, y, ok = args
        logits = nnx.merge(graphdef, state)(x)
        correct = (logits > 0) == (y == 1)
        loss = optax.sigmoid_binary_cross_entropy(logits, y.astype(logits.dtype))
        mask = ok.reshape((-1,) + (1,) * (correct.ndim - 1))
        whole = correct.reshape(chunk, -1).all(axis=1)
        return (
            jnp.sum(correct & mask),
            jnp.sum(whole & ok),
            jnp.sum(jnp.where(mask, loss, 0.0)),
        )

    correct, exact, loss = jax.lax.map(one_chunk, (split(inputs), split(labels), valid))
    return correct.sum(), exact.sum(), loss.sum()


def evaluate(
    model: nnx.Module,
    data: MatrixDataset | tuple[jax.Array, jax.Array],
    *,
    batch_size: int = 256,
) -> Evaluation:
    """Per-element accuracy, exact-match rate and mean BCE of ``model`` on ``data``.

    One jitted pass over chunks of ``batch_size`` matrices (``lax.map``; the last chunk is
    padded and masked), so memory stays bounded for large data sets.
    """
    data = _as_dataset(data)
    batch_size = positive_int(batch_size, "batch_size")
    graphdef, state = nnx.split(model)
    n = data.inputs.shape[0]
    correct, exact, loss = _counts(
        graphdef, state, data.inputs, data.labels, chunk=min(batch_size, n)
    )
    elements = data.inputs.size
    return Evaluation(int(correct) / elements, int(exact) / n, float(loss) / elements)


def count_params(model: nnx.Module) -> int:
    """Number of scalar parameters (``nnx.Param`` entries) of ``model``."""
    return sum(math.prod(p.shape) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def compare_models(
    key: jax.Array | None = None,
    *,
    n_train: int = 2000,
    n_test: int = 500,
    size: int | tuple[int, int] = 30,
    boundary: str = "wrap",
    specs: Mapping[str, ModelSpec] | None = None,
) -> dict[str, ModelReport]:
    """Train each model on the same synthetic data and report per-element accuracies.

    Data: :func:`~jaxsolve.matrix_learning.make_dataset` (``n_train`` training and ``n_test``
    independent test matrices). Models and budgets: ``specs`` (default: :data:`DEFAULT_SPECS`,
    the :class:`FullyConvNet` for 300 steps and the :class:`FlattenMLP` for 3000 steps).

    Returns:
        ``{name: ModelReport}`` in the order of ``specs``.
    """
    if key is None:
        key = jax.random.key(0)
    specs = DEFAULT_SPECS if specs is None else specs
    k_train, k_test, k_init, k_batches = jax.random.split(key, 4)
    train_data = make_dataset(k_train, n_train, size, boundary=boundary)
    test_data = make_dataset(k_test, n_test, size, boundary=boundary)
    shape = tuple(train_data.inputs.shape[1:])
    reports = {}
    for i, (name, spec) in enumerate(specs.items()):
        seed = int(jax.random.randint(jax.random.fold_in(k_init, i), (), 0, 2**31 - 1))
        model = spec.make(nnx.Rngs(seed), shape, boundary)
        result = train(
            model,
            train_data,
            steps=spec.steps,
            batch_size=spec.batch_size,
            learning_rate=spec.learning_rate,
            key=jax.random.fold_in(k_batches, i),
        )
        on_train = evaluate(model, train_data)
        on_test = evaluate(model, test_data)
        reports[name] = ModelReport(
            name=name,
            num_params=count_params(model),
            steps=spec.steps,
            batch_size=spec.batch_size,
            learning_rate=spec.learning_rate,
            train_accuracy=on_train.accuracy,
            test_accuracy=on_test.accuracy,
            test_exact_match=on_test.exact_match,
            test_loss=on_test.loss,
            compile_seconds=result.compile_seconds,
            run_seconds=result.run_seconds,
            losses=result.losses,
        )
    return reports
