"""distance_loss and blocked_distance_loss: equal to the dense loss, memory-light."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsolve.transforms import (
    blocked_distance_loss,
    contact_map,
    distance_loss,
    pairwise_distances,
    squared_distances,
)

RNG = np.random.default_rng(4)
N = 37  # not a multiple of the block sizes below
Y = RNG.normal(size=(N, 3)) * 2.0
Z = RNG.normal(size=(N, 3)) * 2.0
T = np.asarray(pairwise_distances(Z))


def dense(Y, T):
    return jnp.mean((pairwise_distances(Y) - T) ** 2)


def test_distance_loss_equals_dense_value_and_gradient():
    np.testing.assert_allclose(distance_loss(Y, T), dense(Y, T), rtol=1e-12)
    grad = jax.jit(jax.grad(distance_loss))(Y, T)
    np.testing.assert_allclose(grad, jax.jit(jax.grad(dense))(Y, T), rtol=1e-9, atol=1e-12)
    sq = distance_loss(Y, T**2, squared=True)
    np.testing.assert_allclose(sq, jnp.mean((squared_distances(Y) - T**2) ** 2), rtol=1e-12)
    mask = RNG.random((N, N)) < 0.5
    ref = np.sum(np.where(mask, (np.asarray(pairwise_distances(Y)) - T) ** 2, 0)) / mask.sum()
    np.testing.assert_allclose(distance_loss(Y, T, mask=mask), ref, rtol=1e-12)
    # Batched.
    batch = distance_loss(np.stack([Y, Z]), T)
    np.testing.assert_allclose(batch, [dense(Y, T), 0.0], rtol=1e-12, atol=1e-20)


@pytest.mark.parametrize("block_size", [8, 64])
def test_blocked_equals_dense_coordinates_target(block_size):
    loss = jax.jit(lambda Y: blocked_distance_loss(Y, Z, block_size=block_size))
    np.testing.assert_allclose(loss(Y), dense(Y, T), rtol=1e-12)
    np.testing.assert_allclose(jax.grad(loss)(Y), jax.grad(dense)(Y, T), rtol=1e-9, atol=1e-12)


def test_blocked_function_target_missing_entries_and_transform():
    T_missing = T.copy()
    T_missing[0, 5] = T_missing[5, 0] = np.nan
    rows = jnp.asarray(T_missing)

    def loss(Y):
        return blocked_distance_loss(Y, lambda r: rows[r], block_size=16)

    ok = ~np.isnan(T_missing)
    ref = np.sum(np.where(ok, (np.asarray(pairwise_distances(Y)) - np.nan_to_num(T)) ** 2, 0))
    np.testing.assert_allclose(jax.jit(loss)(Y), ref / ok.sum(), rtol=1e-12)
    assert np.all(np.isfinite(jax.grad(loss)(Y)))

    def f(d):
        return jax.nn.sigmoid((3.0 - d) / 0.5)

    blocked = blocked_distance_loss(Y, Z, block_size=10, transform=f)
    ref = jnp.mean(
        (contact_map(Y, cutoff=3.0, temperature=0.5) - contact_map(Z, cutoff=3.0, temperature=0.5))
        ** 2
    )
    np.testing.assert_allclose(blocked, ref, rtol=1e-12)
    np.testing.assert_allclose(
        distance_loss(Y, contact_map(Z, cutoff=3.0, temperature=0.5), transform=f), ref, rtol=1e-9
    )


def test_blocked_rows_subset_is_the_loss_over_those_rows():
    rows = np.array([3, 0, 36, 17, 3])
    err = (np.asarray(pairwise_distances(Y)) - T) ** 2
    got = blocked_distance_loss(Y, Z, rows=jnp.asarray(rows), block_size=2)
    np.testing.assert_allclose(got, err[rows].mean(), rtol=1e-12)


def test_gradients_finite_with_coincident_points():
    Yd = np.concatenate([Y[:4], Y[:4]])
    Zd = Z[:8]
    Td = np.asarray(pairwise_distances(Zd))

    def loss(y):
        return distance_loss(y, Td)

    assert np.all(np.isfinite(jax.jit(jax.grad(loss))(Yd)))
    assert np.all(np.isfinite(jax.jit(jax.hessian(loss))(Yd)))
    grad = jax.jit(jax.grad(lambda y: blocked_distance_loss(y, Zd, block_size=3)))(Yd)
    assert np.all(np.isfinite(grad))


def test_blocked_memory_is_linear_in_n():
    # The compiled backward pass of the blocked loss holds O(N·block), never N×N, arrays.
    block = 64
    temp = {}
    for n in (2048, 4096):
        Yb = jnp.asarray(RNG.normal(size=(n, 3)), jnp.float32)
        grad = jax.jit(jax.grad(lambda y: blocked_distance_loss(y, y + 1.0, block_size=block)))
        stats = grad.lower(Yb).compile().memory_analysis()
        if stats is None:
            pytest.skip("memory_analysis not available on this backend")
        temp[n] = stats.temp_size_in_bytes
    assert temp[4096] < 4096 * 4096 * 4 / 2  # under half of one float32 N×N matrix
    assert temp[4096] / temp[2048] < 2.5  # linear, not quadratic, in N


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: distance_loss(Y, T[:5, :5]), ValueError, "target must be"),
        (lambda: distance_loss(Y[:, :2], T), ValueError, r"\(\.\.\., N, 3\)"),
        (lambda: blocked_distance_loss(Y, Z[:5]), ValueError, "target coordinates"),
        (lambda: blocked_distance_loss(np.stack([Y, Y]), Z), ValueError, "vmap"),
        (lambda: blocked_distance_loss(Y, Z, block_size=0), ValueError, "block_size"),
        (lambda: blocked_distance_loss(Y, Z, rows=np.ones(3)), ValueError, "rows must be"),
        (
            lambda: blocked_distance_loss(Y, lambda r: jnp.zeros((3, 3))),
            ValueError,
            "target\\(rows\\)",
        ),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
