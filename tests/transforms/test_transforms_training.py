"""Training an nnx recurrent model through pairwise_distances; inference returns (N, 3)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxsolve.transforms import (
    SequenceToCoords,
    align,
    chain_dataset,
    fit_through_transform,
    pairwise_distances,
    transform_loss,
)


def test_loss_through_transform_falls_100x_and_inference_gives_coordinates():
    n_samples, length = 32, 12
    x, coords = chain_dataset(jax.random.key(0), n_samples, length)
    targets = pairwise_distances(coords)  # (S, N, N): all the training ever sees
    assert targets.shape == (n_samples, length, length)

    model = SequenceToCoords(hidden=32, rngs=nnx.Rngs(0))
    losses = fit_through_transform(model, x, targets, steps=600, learning_rate=1e-2)
    before = float(losses[0])  # the loss before the first update
    after = float(nnx.jit(transform_loss)(model, x, targets))
    assert losses.shape == (600,)
    assert np.all(np.isfinite(losses))
    assert before / after >= 100, (before, after)

    # Inference: the model alone maps a sequence to (N, 3) coordinates, which match the
    # true ones up to a rigid motion and reflection (distances cannot tell those apart).
    pred = nnx.jit(lambda model, x: model(x))(model, x)
    assert pred.shape == (n_samples, length, 3)
    rmsd = align(pred, coords, reflection=True).rmsd
    scale = float(jnp.sqrt(jnp.mean(jnp.sum(coords**2, -1))))
    assert float(jnp.median(rmsd)) < 0.2 * scale


def test_model_input_validation():
    model = SequenceToCoords(hidden=4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"\(batch, N\)"):
        model(jnp.zeros((2, 5, 2)))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: chain_dataset(jax.random.key(0), 2, 4, bond=np.nan), "bond must be finite"),
        (lambda: chain_dataset(jax.random.key(0), 2, 4, turn=np.inf), "turn must be finite"),
        (lambda: chain_dataset(jax.random.key(0), 2, 4, rise=-np.inf), "rise must be finite"),
        (
            lambda: fit_through_transform(
                SequenceToCoords(hidden=2, rngs=nnx.Rngs(0)),
                jnp.zeros((1, 3)),
                jnp.zeros((1, 3, 3)),
                steps=1,
                learning_rate=np.nan,
            ),
            "learning_rate must be positive and finite",
        ),
    ],
    ids=["bond", "turn", "rise", "learning_rate"],
)
def test_float_parameters_must_be_finite(call, match):
    with pytest.raises(ValueError, match=match):
        call()
