"""The mod maps: values against NumPy, derivatives against the documented formulas and finite
differences, behaviour at jumps and at m = 0, transforms."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxsolve.modular import (
    MOD_MAPS,
    centred_mod,
    floor_mod,
    fourier_mod,
    get_mod_map,
    ste_mod,
    trunc_mod,
)

# (map, numpy reference of the value, documented ∂/∂m as a function of u = w/m)
EXACT = [
    (floor_mod, lambda w, m: np.mod(w, m), lambda u: -np.floor(u)),
    (trunc_mod, lambda w, m: np.fmod(w, m), lambda u: -np.trunc(u)),
    (centred_mod, lambda w, m: w - m * np.floor(w / m + 0.5), lambda u: -np.floor(u + 0.5)),
    (ste_mod, lambda w, m: np.mod(w, m), lambda u: np.clip(-np.floor(u), -1, 1)),
]


def _samples(dtype, n=400, seed=0):
    """w and m of both signs and many ratios, kept away from the jumps of every map."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(-3, 3, n)
    m = rng.choice([-1, 1], n) * rng.uniform(0.05, 2, n)
    u = w / m
    # distance of u to the nearest integer and half-integer: keep >= 1e-2
    far = (np.abs(u - np.round(u)) > 1e-2) & (np.abs(u - np.round(u) - 0.5 * np.sign(u)) > 1e-2)
    far &= np.abs(np.abs(u - np.trunc(u)) - 0.5) > 1e-2
    return w[far].astype(dtype), m[far].astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("fn", "ref", "dm"), EXACT)
def test_value_and_derivatives_match_formulas(fn, ref, dm, dtype):
    w, m = _samples(dtype)
    eps = np.finfo(dtype).eps
    out = fn(w, m)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, ref(w.astype(np.float64), m.astype(np.float64)), atol=20 * eps)
    gw, gm = jax.vmap(jax.grad(fn, argnums=(0, 1)))(w, m)
    np.testing.assert_array_equal(gw, np.ones_like(w))
    np.testing.assert_allclose(gm, dm(w.astype(np.float64) / m), atol=0)


@pytest.mark.parametrize("fn", [floor_mod, trunc_mod, centred_mod, fourier_mod])
def test_derivatives_match_central_differences(fn):
    # elementwise maps: one check on vectors tests every sample along a random direction
    w, m = _samples(np.float64, n=60, seed=1)
    # the Fourier surrogate oscillates fast when |m| is small: a smaller step keeps the
    # O(eps²·f''') truncation error of central differences under the tolerance
    eps = 1e-8 if fn is fourier_mod else 1e-6
    check_grads(fn, (w, m), order=1, modes=("fwd", "rev"), eps=eps)


def test_floor_mod_sign_follows_m_and_range():
    w, m = _samples(np.float64, seed=2)
    out = np.asarray(floor_mod(w, m))
    assert np.all((out == 0) | (np.sign(out) == np.sign(m)))
    assert np.all(np.abs(out) <= np.abs(m))


def test_trunc_and_centred_are_identity_inside_the_first_tooth():
    w = np.linspace(-0.49, 0.49, 51)
    for m in (1.0, -1.0):
        np.testing.assert_allclose(centred_mod(w, m), w, atol=1e-15)
        np.testing.assert_allclose(trunc_mod(w, m), w, atol=1e-15)
    # floor mod is not: negative w jumps to w + m
    np.testing.assert_allclose(floor_mod(-0.25, 1.0), 0.75)


@pytest.mark.parametrize("fn", list(MOD_MAPS.values()))
def test_m_zero_gives_zero_value_and_zero_gradients(fn):
    w = jnp.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    m = jnp.zeros_like(w)
    np.testing.assert_array_equal(fn(w, m), 0.0)
    gw, gm = jax.vmap(jax.grad(fn, argnums=(0, 1)))(w, m)
    np.testing.assert_array_equal(gw, 0.0)
    np.testing.assert_array_equal(gm, 0.0)
    # and reverse mode through a sum, the way training sees it
    g = jax.grad(lambda w, m: jnp.sum(fn(w, m) ** 2), argnums=(0, 1))(w, m)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in g)


def test_behaviour_at_a_jump_is_the_right_branch():
    # u = w/m = 2 exactly: floor mod is 0 and ∂/∂m = -2 (the branch u ∈ [2, 3)).
    val, (gw, gm) = jax.value_and_grad(floor_mod, argnums=(0, 1))(2.0, 1.0)
    assert val == 0.0 and gw == 1.0 and gm == -2.0
    val, (gw, gm) = jax.value_and_grad(trunc_mod, argnums=(0, 1))(-2.0, 1.0)
    assert val == 0.0 and gw == 1.0 and gm == 2.0
    # centred: u = 0.5 goes to the upper branch: value -m/2, ∂/∂m = -1
    val, (gw, gm) = jax.value_and_grad(centred_mod, argnums=(0, 1))(0.5, 1.0)
    assert val == -0.5 and gw == 1.0 and gm == -1.0


def test_nan_inputs_are_not_hidden():
    for fn in MOD_MAPS.values():
        assert np.isnan(fn(jnp.nan, 1.0))
        assert np.isnan(fn(1.0, jnp.nan))


def test_fourier_converges_to_floor_mod_away_from_jumps():
    w, m = _samples(np.float64, seed=3)
    u = w / m
    away = np.abs(u - np.round(u)) > 0.1
    err8 = np.max(np.abs(fourier_mod(w, m, terms=8) - floor_mod(w, m))[away] / np.abs(m[away]))
    err64 = np.max(np.abs(fourier_mod(w, m, terms=64) - floor_mod(w, m))[away] / np.abs(m[away]))
    assert err64 < err8 < 0.1
    assert err64 < 0.02


def test_fourier_derivatives_match_documented_formulas():
    w, m = _samples(np.float64, n=50, seed=4)
    k = np.arange(1, 6)
    u = w / m
    cos_sum = np.cos(2 * math.pi * u[:, None] * k).sum(-1)
    value = np.asarray(fourier_mod(w, m, terms=5))
    gw, gm = jax.vmap(jax.grad(lambda a, b: fourier_mod(a, b, terms=5), argnums=(0, 1)))(w, m)
    np.testing.assert_allclose(gw, -2 * cos_sum, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gm, value / m + 2 * u * cos_sum, rtol=1e-9, atol=1e-9)


def test_ste_bound_limits_the_modulus_gradient():
    w = jnp.array([50.0, -50.0, 0.3])
    m = jnp.array([0.1, 0.1, 1.0])
    gm = jax.vmap(jax.grad(lambda a, b: ste_mod(a, b, bound=2.0), argnums=1))(w, m)
    np.testing.assert_array_equal(gm, [-2.0, 2.0, 0.0])
    gm0 = jax.vmap(jax.grad(lambda a, b: ste_mod(a, b, bound=0.0), argnums=1))(w, m)
    np.testing.assert_array_equal(gm0, 0.0)
    # the unbounded floor mod derivative is -floor(w/m), here -500
    assert jax.grad(floor_mod, argnums=1)(50.0, 0.1) == pytest.approx(-500.0, abs=1.0)


@pytest.mark.parametrize("name", sorted(MOD_MAPS))
def test_jit_equals_eager_and_vmap_equals_loop(name):
    fn = get_mod_map(name)
    w, m = _samples(np.float64, n=20, seed=5)
    eager = fn(w, m)
    np.testing.assert_allclose(jax.jit(fn)(w, m), eager, rtol=1e-13, atol=1e-13)
    looped = np.array([fn(a, b) for a, b in zip(w, m, strict=True)])
    np.testing.assert_allclose(jax.vmap(fn)(w, m), looped, rtol=1e-13, atol=1e-13)


def test_broadcasting_and_integer_inputs():
    out = floor_mod(jnp.arange(-3, 4), 2)
    np.testing.assert_array_equal(out, np.mod(np.arange(-3, 4), 2))
    assert jnp.issubdtype(out.dtype, jnp.floating)
    assert floor_mod(jnp.ones((3, 1)), jnp.ones((1, 4))).shape == (3, 4)


def test_bad_options_raise():
    with pytest.raises(ValueError, match="`mod`"):
        get_mod_map("round")
    with pytest.raises(ValueError, match="`terms`"):
        fourier_mod(1.0, 2.0, terms=0)
    with pytest.raises(ValueError, match="`bound`"):
        ste_mod(1.0, 2.0, bound=-1.0)
    with pytest.raises(ValueError, match="unexpected"):
        get_mod_map("floor", terms=3)
