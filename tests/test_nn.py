"""The Flax layer trains to the same X·Xᵀ as solve(method="gd") and the closed forms."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxsolve
from jaxsolve.nn import FactorLayer, factor_loss, fit_factor


def test_layer_shapes_and_param():
    layer = FactorLayer(5, 2, rngs=nnx.Rngs(0))
    assert layer.X[...].shape == (5, 2)
    assert layer().shape == (5, 5)
    params = nnx.state(layer, nnx.Param)
    assert len(jax_leaves(params)) == 1


def jax_leaves(tree):
    import jax

    return jax.tree.leaves(tree)


def test_fit_matches_solve_gd_and_cholesky():
    C = jaxsolve.random_psd(12, cond=10.0, seed=3)
    layer, losses = fit_factor(C, steps=2000)
    X = np.asarray(layer.X[...])
    gd = jaxsolve.solve(C, method="gd")
    assert losses[-1] < 1e-20 * losses[0]
    np.testing.assert_allclose(X @ X.T, C, atol=1e-10)
    np.testing.assert_allclose(X @ X.T, gd.X @ gd.X.T, atol=1e-10)


def test_fit_low_rank_with_adam_reaches_eckart_young():
    C = jaxsolve.random_psd(10, cond=100.0, seed=1)
    layer, _ = fit_factor(C, 3, optimizer=optax.adam(1e-2), steps=3000)
    X = np.asarray(layer.X[...])
    best = jaxsolve.solve(C, method="eigh", rank=3)
    res = np.linalg.norm(X @ X.T - C) / np.linalg.norm(C)
    assert res == pytest.approx(float(best.residual), rel=1e-6)


def test_masked_loss_ignores_unobserved_entries():
    layer = FactorLayer(4, rngs=nnx.Rngs(0), dtype=jnp.float64)
    C = np.asarray(layer())
    mask = np.ones((4, 4))
    mask[0, 1] = mask[1, 0] = 0
    C_bad = C.copy()
    C_bad[0, 1] = C_bad[1, 0] = 1e3
    assert float(factor_loss(layer, jnp.asarray(C_bad), jnp.asarray(mask))) == pytest.approx(0.0)
    assert float(factor_loss(layer, jnp.asarray(C_bad))) > 1e5


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [(dict(n=0), ValueError), (dict(n=3, rank=4), ValueError), (dict(n=3, rank=1.5), TypeError)],
)
def test_bad_arguments(kwargs, error):
    with pytest.raises(error, match=r"n|rank"):
        FactorLayer(**kwargs, rngs=nnx.Rngs(0))


def test_fit_rejects_batched_input():
    with pytest.raises(ValueError, match="C"):
        fit_factor(np.zeros((2, 3, 3)))
