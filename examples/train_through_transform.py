"""Train a recurrent model that predicts (N, 3) coordinates from (N, N) targets only.

The question: "My recurrent model maps an (N,) sequence to an (N, 3) output. My targets are
(N, N) matrices made from (N, 3) by a deterministic function; the reverse is much harder.
How do I train with that transform and still predict (N, 3)?"

The answer: put the transform in the *loss*, not in the model. Write it in ``jax.numpy``
(``jaxsolve.transforms.pairwise_distances`` here; any jnp function works), so gradients flow
through it to the model. The model's output stays (N, 3); at inference you call the model and
never the transform. This is the Keras "Lambda layer only at training time", without a second
model: the transform simply lives in the loss function.

Distances do not change under rotation, translation or reflection, so the model learns the
shape, not its pose: compare predictions with the truth after ``align(..., reflection=True)``.
If you also need coordinates from (N, N) matrices alone (no model), that is
``jaxsolve.transforms.mds`` — shown at the end.

Run: ``python examples/train_through_transform.py`` (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxsolve.transforms import SequenceToCoords, align, chain_dataset, mds, pairwise_distances

N = 16  # sequence length = number of points
TRAIN, TEST = 256, 64
STEPS = 1500


def main() -> None:
    # Synthetic data: sequences and the coordinates they fold into. The coordinates are used
    # only to build the (N, N) targets and, at the end, to check the predictions.
    x_train, y_train = chain_dataset(jax.random.key(0), TRAIN, N)
    x_test, y_test = chain_dataset(jax.random.key(1), TEST, N)
    d_train = pairwise_distances(y_train)  # (TRAIN, N, N): the targets
    d_test = pairwise_distances(y_test)

    # 1. The model predicts coordinates: (batch, N) -> (batch, N, 3).
    model = SequenceToCoords(hidden=64, rngs=nnx.Rngs(0))

    # 2. The loss applies the transform to the prediction: (batch, N, 3) -> (batch, N, N).
    def loss_fn(model, x, d_target):
        coords = model(x)
        return jnp.mean((pairwise_distances(coords) - d_target) ** 2)

    optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, x, d_target):
        loss, grads = nnx.value_and_grad(loss_fn)(model, x, d_target)
        optimizer.update(model, grads)
        return loss

    first = float(loss_fn(model, x_train, d_train))
    start = time.perf_counter()
    key = jax.random.key(2)
    for step in range(STEPS):
        key, sub = jax.random.split(key)
        batch = jax.random.choice(sub, TRAIN, (64,), replace=False)
        loss = train_step(model, optimizer, x_train[batch], d_train[batch])
        if step % 300 == 0:
            print(f"step {step:5d}  batch loss {float(loss):.4g}")
    train_loss = float(loss_fn(model, x_train, d_train))
    test_loss = float(loss_fn(model, x_test, d_test))
    print(f"trained {STEPS} steps in {time.perf_counter() - start:.1f} s")
    print(
        f"(N,N) loss: {first:.4g} -> train {train_loss:.4g} ({first / train_loss:.0f}x lower), "
        f"held-out {test_loss:.4g} ({first / test_loss:.0f}x lower)"
    )

    # 3. Inference: the model alone gives (N, 3). No transform, nothing to invert.
    coords = model(x_test)  # (TEST, N, 3)
    fit = align(coords, y_test, reflection=True)
    spread = float(jnp.sqrt(jnp.mean(jnp.sum(y_test**2, axis=-1))))
    print(
        f"held-out coordinates: median RMSD after alignment {float(jnp.median(fit.rmsd)):.3f} "
        f"(the chains' RMS radius is {spread:.2f})"
    )

    # The inverse without a model: coordinates from one (N, N) matrix by MDS.
    res = mds(d_test[0])
    rmsd = float(align(res.Y, y_test[0], reflection=True).rmsd)
    print(f"MDS from one (N, N) target alone: RMSD {rmsd:.1e}, {res.messages()[0]}")


if __name__ == "__main__":
    main()
