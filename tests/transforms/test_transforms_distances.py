"""pairwise_distances, squared_distances, gram, contact_map, apply_pairwise."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from jax.test_util import check_grads
from scipy.spatial.distance import cdist, pdist, squareform

from jaxsolve.transforms import (
    apply_pairwise,
    contact_map,
    gram,
    pairwise_distances,
    squared_distances,
)

RNG = np.random.default_rng(0)
Y64 = RNG.normal(size=(20, 3)) * 3.0
Z64 = RNG.normal(size=(7, 3))


def _with_duplicates(Y):
    # Rows 0..4 repeated: coincident points off the diagonal.
    return np.concatenate([Y[:5], Y[:5], Y[5:8]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_values_match_scipy(dtype):
    Y = Y64.astype(dtype)
    eps = np.finfo(dtype).eps
    scale = np.max(np.abs(Y64)) ** 2
    D = np.asarray(pairwise_distances(Y))
    assert D.dtype == dtype
    np.testing.assert_allclose(D, squareform(pdist(Y64)), atol=50 * eps * np.sqrt(scale))
    np.testing.assert_allclose(
        squared_distances(Y), squareform(pdist(Y64, "sqeuclidean")), atol=50 * eps * scale
    )
    np.testing.assert_allclose(
        pairwise_distances(Y, Z64.astype(dtype)), cdist(Y64, Z64), atol=50 * eps * np.sqrt(scale)
    )
    np.testing.assert_allclose(gram(Y), Y64 @ Y64.T, rtol=50 * eps, atol=50 * eps * scale)
    assert np.all(np.diag(D) == 0)


def test_gram_centred_is_double_centred_squared_distances():
    D2 = squareform(pdist(Y64, "sqeuclidean"))
    J = np.eye(20) - 1 / 20
    np.testing.assert_allclose(gram(Y64, center=True), -0.5 * J @ D2 @ J, atol=1e-12)


def test_contact_map_values_and_limits():
    D = squareform(pdist(Y64))
    C = contact_map(Y64, cutoff=4.0, temperature=0.5)
    np.testing.assert_allclose(C, 1 / (1 + np.exp(-(4.0 - D) / 0.5)), rtol=1e-12)
    hard = contact_map(Y64, cutoff=4.0, temperature=1e-4)
    far = np.abs(D - 4.0) > 1e-2
    np.testing.assert_array_equal(np.asarray(hard)[far] > 0.5, D[far] < 4.0)
    with pytest.raises(ValueError, match="temperature must be positive"):
        contact_map(Y64, temperature=0.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": np.nan}, "temperature must be positive and finite; got nan"),
        ({"temperature": np.inf}, "temperature must be positive and finite; got inf"),
        ({"temperature": -1.0}, "temperature must be positive and finite"),
        ({"temperature": jnp.array([1.0, np.nan])}, "temperature must be .* got nan"),
        ({"cutoff": np.nan}, "cutoff must be finite; got nan"),
        ({"cutoff": -np.inf}, "cutoff must be finite; got -inf"),
    ],
)
def test_contact_map_refuses_non_finite_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        contact_map(Y64, **kwargs)


def test_contact_map_parameter_types():
    with pytest.raises(TypeError, match="temperature must be a real number"):
        contact_map(Y64, temperature="warm")


def test_contact_map_traced_parameters_do_not_recompile():
    traces = 0

    def f(Y, cutoff, temperature):
        nonlocal traces
        traces += 1
        return contact_map(Y, cutoff=cutoff, temperature=temperature)

    jf = jax.jit(f)
    a = jf(Y64, 4.0, 1.0)
    b = jf(Y64, 6.0, 0.5)
    assert traces == 1
    assert not np.allclose(a, b)


def test_apply_pairwise_user_function_matches_scipy():
    manhattan = apply_pairwise(lambda a, b: jnp.sum(jnp.abs(a - b)), Y64, Z64)
    np.testing.assert_allclose(manhattan, cdist(Y64, Z64, "cityblock"), rtol=1e-12)
    # Batched, and a non-scalar output.
    batch = np.stack([Y64, 2 * Y64])
    out = apply_pairwise(lambda a, b: jnp.stack([a @ b, jnp.sum(a)]), batch)
    assert out.shape == (2, 20, 20, 2)
    np.testing.assert_allclose(out[1, ..., 0], 4 * Y64 @ Y64.T, rtol=1e-12)
    with pytest.raises(TypeError, match="fn must be a callable"):
        apply_pairwise("euclidean", Y64)


@pytest.mark.parametrize(
    "transform",
    [
        pairwise_distances,
        squared_distances,
        lambda Y: contact_map(Y, cutoff=1.0),
        lambda Y: apply_pairwise(lambda a, b: jnp.linalg.norm(a - b + 0.1), Y),
    ],
    ids=["distances", "squared", "contact", "user"],
)
def test_gradients_and_hessians_finite_with_coincident_points(transform):
    Y = _with_duplicates(Y64)
    weights = RNG.normal(size=(13, 13))

    def loss(Y):
        return jnp.sum(weights * transform(Y))

    g = jax.jit(jax.grad(loss))(Y)
    H = jax.jit(jax.hessian(loss))(Y)
    assert np.all(np.isfinite(g))
    assert np.all(np.isfinite(H))


def test_distance_gradient_values():
    # d‖y_i − y_j‖/dy_i is the unit vector; at coincident points the guarded value is 0.
    Y = _with_duplicates(Y64)
    g = jax.grad(lambda Y: pairwise_distances(Y)[5, 8])(Y)
    u = (Y[5] - Y[8]) / np.linalg.norm(Y[5] - Y[8])
    np.testing.assert_allclose(g[5], u, rtol=1e-12)
    np.testing.assert_allclose(g[8], -u, rtol=1e-12)
    g0 = jax.grad(lambda Y: pairwise_distances(Y)[0, 5])(Y)  # rows 0 and 5 coincide
    np.testing.assert_array_equal(g0, 0.0)


def test_check_grads_float64():
    Y = Y64[:6]

    @jax.jit
    def f(Y):
        return jnp.sum(pairwise_distances(Y) ** 2 * 0.3 + pairwise_distances(Y))

    check_grads(f, (Y,), order=2, modes=("rev",))
    check_grads(jax.jit(lambda Y: contact_map(Y, cutoff=3.0)), (Y,), order=1, modes=("rev",))


def test_nan_is_not_hidden():
    Y = Y64.copy()
    Y[3, 1] = np.nan
    D = np.asarray(pairwise_distances(Y))
    assert np.isnan(D[3]).all() and np.isnan(D[:, 3]).all()
    assert np.isfinite(np.delete(np.delete(D, 3, 0), 3, 1)).all()


def test_jit_and_vmap():
    batch = RNG.normal(size=(4, 9, 3))
    eager = pairwise_distances(batch)
    np.testing.assert_allclose(jax.jit(pairwise_distances)(batch), eager, rtol=1e-14)
    np.testing.assert_allclose(jax.vmap(pairwise_distances)(batch), eager, rtol=1e-14)
    loop = np.stack([squareform(pdist(b)) for b in batch])
    np.testing.assert_allclose(eager, loop, atol=1e-13)
    traces = 0

    def f(Y):
        nonlocal traces
        traces += 1
        return pairwise_distances(Y)

    jf = jax.jit(f)
    jf(batch)
    jf(batch + 1.0)
    assert traces == 1


def test_edge_shapes():
    assert pairwise_distances(np.zeros((1, 3))).shape == (1, 1)
    assert pairwise_distances(np.zeros((0, 3))).shape == (0, 0)
    assert pairwise_distances(np.ones((5, 2)), dim=2).shape == (5, 5)
    assert pairwise_distances(np.ones((5, 7)), dim=None).shape == (5, 5)
    assert pairwise_distances(np.arange(15).reshape(5, 3)).dtype == jnp.result_type(float)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((np.zeros((5, 2)),), {}, ValueError, r"\(\.\.\., N, 3\).*got shape \(5, 2\)"),
        ((np.zeros(5),), {}, ValueError, r"shape \(\.\.\., N, d\)"),
        ((np.zeros((5, 3)), np.zeros((4, 2))), {}, ValueError, "Z must have shape"),
        ((np.zeros((2, 5, 3)), np.zeros((3, 4, 3))), {}, ValueError, "broadcastable"),
        ((np.zeros((5, 3), complex),), {}, TypeError, "complex"),
        ((np.array([["a", "b", "c"]]),), {}, TypeError, "real numbers"),
    ],
)
def test_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        pairwise_distances(*args, **kwargs)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    arrays(np.float64, (8, 3), elements=st.floats(-1e3, 1e3, allow_nan=False)),
    st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), max_size=3),
)
def test_property_distances(points, copies):
    for src, dst in copies:  # coincident points
        points[dst] = points[src]
    D = np.asarray(pairwise_distances(points))
    np.testing.assert_allclose(D, squareform(pdist(points)), rtol=1e-12, atol=1e-9)
    assert np.all(np.diag(D) == 0) and np.array_equal(D, D.T)
    # Triangle inequality, to rounding.
    assert np.all(D[:, :, None] <= D[:, None, :] + D.T[None, :, :] + 1e-9)


@pytest.mark.parametrize(
    ("dtype", "low", "high"),
    # Exponents at which every coordinate is a normal number and every distance is finite.
    [(np.float64, -290, 300), (np.float32, -30, 36)],
)
@settings(max_examples=25, deadline=None, derandomize=True)
@given(data=st.data())
def test_distances_at_every_scale(dtype, low, high, data):
    """Distances of s·Y are s times those of Y, though their squares under- or overflow."""
    s = 10.0 ** data.draw(st.integers(low, high), label="exponent")
    Y = _with_duplicates(Y64)[:8]
    D = np.asarray(pairwise_distances(jnp.asarray(Y * s, dtype)), np.float64) / s
    eps = float(np.finfo(dtype).eps)
    np.testing.assert_allclose(D, squareform(pdist(Y)), rtol=20 * eps, atol=20 * eps * D.max())
    assert np.all(np.diag(D) == 0) and D[0, 5] == 0  # rows 0 and 5 coincide
    Z = Z64[:3]
    cross = np.asarray(pairwise_distances(jnp.asarray(Y * s, dtype), jnp.asarray(Z * s, dtype)))
    np.testing.assert_allclose(cross / s, cdist(Y, Z), rtol=20 * eps)


def test_distance_gradient_at_extreme_scales():
    for s in (1e-200, 1e200):
        g = jax.grad(lambda Y: pairwise_distances(Y)[5, 8])(Y64 * s)
        u = (Y64[5] - Y64[8]) / np.linalg.norm(Y64[5] - Y64[8])
        np.testing.assert_allclose(g[5], u, rtol=1e-12)
