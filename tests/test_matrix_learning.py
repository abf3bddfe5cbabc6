"""jaxsolve.matrix_learning: data against a NumPy reference, Flatten/Unflatten, models, training."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxsolve.matrix_learning import (
    DEFAULT_SPECS,
    Flatten,
    FlattenMLP,
    FullyConvNet,
    MatrixDataset,
    ModelSpec,
    Unflatten,
    compare_models,
    count_params,
    evaluate,
    local_rule_labels,
    make_dataset,
    predict,
    train,
)


def _reference_labels(x: np.ndarray, boundary: str) -> np.ndarray:
    """Element-by-element loops: 1 where x[i, j] > mean of the 3×3 block around it."""
    x = np.asarray(x, dtype=np.int64)
    rows, cols = x.shape
    out = np.zeros_like(x)
    for i in range(rows):
        for j in range(cols):
            block = []
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    r, c = i + di, j + dj
                    if boundary == "wrap":
                        block.append(x[r % rows, c % cols])
                    elif 0 <= r < rows and 0 <= c < cols:
                        block.append(x[r, c])
                    else:
                        block.append(0)
            out[i, j] = x[i, j] > np.mean(block)
    return out


N_DATA, N_TRAIN = 600, 500


@pytest.fixture(scope="module")
def data():
    """One data set (one compilation of the generator), split into train and test."""
    full = make_dataset(jax.random.key(42), N_DATA)
    train_data = MatrixDataset(full.inputs[:N_TRAIN], full.labels[:N_TRAIN])
    test_data = MatrixDataset(full.inputs[N_TRAIN:], full.labels[N_TRAIN:])
    return train_data, test_data


# ---------------------------------------------------------------------------------------------
# Data


@pytest.mark.parametrize("boundary", ["wrap", "zero"])
def test_labels_match_numpy_reference(boundary):
    x = np.random.default_rng(0).integers(0, 76, size=(3, 7, 11))
    labels = local_rule_labels(x, boundary=boundary)
    assert labels.shape == (3, 7, 11) and labels.dtype == jnp.int32
    for xi, yi in zip(x, np.asarray(labels), strict=True):
        np.testing.assert_array_equal(yi, _reference_labels(xi, boundary))


def test_generated_labels_match_numpy_reference(data):
    train_data, _ = data
    for x, y in zip(
        np.asarray(train_data.inputs[:2]), np.asarray(train_data.labels[:2]), strict=True
    ):
        np.testing.assert_array_equal(y, _reference_labels(x, "wrap"))


def test_labels_on_hand_made_cases():
    flat = np.full((4, 4), 5)
    assert int(local_rule_labels(flat).sum()) == 0  # ties are 0
    spike = np.zeros((5, 5), dtype=np.int32)
    spike[0, 0] = 75
    wrap, zero = local_rule_labels(spike), local_rule_labels(spike, boundary="zero")
    np.testing.assert_array_equal(wrap, spike // 75)
    np.testing.assert_array_equal(zero, spike // 75)
    # Near the border the two boundaries differ: 8·x > neighbours only counts zeros outside.
    edge = np.ones((3, 3), dtype=np.int32)
    edge[0, 0] = 2
    assert int(local_rule_labels(edge, boundary="zero")[0, 1]) == 1
    assert int(local_rule_labels(edge, boundary="wrap")[0, 1]) == 0


def test_dataset_range_balance_and_determinism(data):
    full = make_dataset(jax.random.key(42), N_DATA)
    assert full.inputs.dtype == jnp.int32 and full.labels.dtype == jnp.int32
    assert full.inputs.shape == (N_DATA, 30, 30)
    assert int(full.inputs.min()) == 0 and int(full.inputs.max()) == 75
    assert set(np.unique(np.asarray(full.labels))) == {0, 1}
    assert 0.45 < float(full.labels.mean()) < 0.55
    np.testing.assert_array_equal(full.inputs[:N_TRAIN], data[0].inputs)  # same key, same data
    other = make_dataset(jax.random.key(4), N_DATA)
    assert not np.array_equal(full.inputs, other.inputs)


@pytest.mark.parametrize(
    ("call", "exc", "words"),
    [
        (lambda: make_dataset(jax.random.key(0), 0), ValueError, "n"),
        (lambda: make_dataset(jax.random.key(0), 2.5), TypeError, "n"),
        (lambda: make_dataset(jax.random.key(0), 2, (3, 3, 3)), ValueError, "size"),
        (lambda: make_dataset(jax.random.key(0), 2, -4), ValueError, "size"),
        (lambda: make_dataset(jax.random.key(0), 2, boundary="reflect"), ValueError, "boundary"),
        (lambda: local_rule_labels(np.zeros((3, 3))), TypeError, "integer"),
        (lambda: local_rule_labels(np.zeros(3, dtype=int)), ValueError, "2 axes"),
    ],
)
def test_data_bad_arguments(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value)


# ---------------------------------------------------------------------------------------------
# Flatten / Unflatten

shapes_2d = st.tuples(st.integers(1, 12), st.integers(1, 12))
batch_shapes = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(matrix=shapes_2d, batch=batch_shapes)
def test_flatten_unflatten_round_trip(matrix, batch):
    shape = (*batch, *matrix)
    x = np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    flat = Flatten()(x)
    assert flat.shape == (*batch, matrix[0] * matrix[1])
    np.testing.assert_array_equal(flat, x.reshape((*batch, -1)))  # row-major, like NumPy
    np.testing.assert_array_equal(Unflatten(matrix)(flat), x)
    np.testing.assert_array_equal(Unflatten((-1, matrix[1]))(flat), x)
    np.testing.assert_array_equal(Unflatten((matrix[0], -1))(flat), x)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(trailing=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple), batch=batch_shapes)
def test_flatten_any_number_of_axes(trailing, batch):
    x = np.random.default_rng(0).normal(size=(*batch, *trailing))
    flat = Flatten(len(trailing))(x)
    assert flat.shape == (*batch, math.prod(trailing))
    np.testing.assert_array_equal(Unflatten(trailing)(flat), x)


def test_flatten_unflatten_under_jit_and_vmap():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 4, 5, 6)))
    flatten, unflatten = Flatten(), Unflatten((5, 6))
    jitted = jax.jit(lambda a: unflatten(flatten(a)))
    np.testing.assert_array_equal(jitted(x), x)
    np.testing.assert_array_equal(jax.vmap(flatten)(x), flatten(x))
    np.testing.assert_array_equal(jax.vmap(jax.vmap(flatten))(x), flatten(x))


@pytest.mark.parametrize(
    ("call", "exc", "words"),
    [
        (lambda: Flatten(0), ValueError, "num_axes"),
        (lambda: Flatten(1.5), TypeError, "num_axes"),
        (lambda: Flatten(3)(np.zeros((4, 4))), ValueError, "at least 3 axes"),
        (lambda: Unflatten((30, 30))(np.zeros((2, 899))), ValueError, "900"),
        (lambda: Unflatten((-1, 7))(np.zeros((2, 900))), ValueError, "multiple"),
        (lambda: Unflatten((-1, -1)), ValueError, "-1"),
        (lambda: Unflatten((0, 3)), ValueError, "positive"),
        (lambda: Unflatten(30), TypeError, "shape"),
        (lambda: Unflatten(()), TypeError, "shape"),
        (lambda: Unflatten((3, 2.0)), TypeError, "ints"),
        (lambda: Unflatten((3,))(np.float32(1.0)), ValueError, "at least 1 axis"),
    ],
)
def test_flatten_unflatten_bad_shapes(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value)


# ---------------------------------------------------------------------------------------------
# Models


def test_model_shapes_jit_and_vmap(data):
    x = data[1].inputs[:4]
    for model in (FullyConvNet(rngs=nnx.Rngs(0)), _mlp()):
        logits = nnx.jit(lambda m, a: m(a))(model, x)
        assert logits.shape == (4, 30, 30) and logits.dtype == jnp.float32
        np.testing.assert_allclose(model(x), logits, rtol=1e-5, atol=1e-5)  # eager == jit
        # vmap over single (unbatched) matrices agrees with the batch call.
        per_example = nnx.jit(lambda m, a: nnx.vmap(lambda mm, b: mm(b), in_axes=(None, 0))(m, a))
        np.testing.assert_allclose(per_example(model, x), logits, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(predict(model, x), (logits > 0).astype(jnp.int32))
    # Any number of batch axes; the convolutional net is size-agnostic, the MLP is not.
    conv, mlp = FullyConvNet(rngs=nnx.Rngs(0)), _mlp()
    for shape in [(30, 30), (2, 2, 30, 30), (2, 7, 13)]:
        assert jax.eval_shape(conv, jax.ShapeDtypeStruct(shape, jnp.int32)).shape == shape
    assert jax.eval_shape(mlp, jax.ShapeDtypeStruct((2, 3, 30, 30), jnp.int32)).shape == (
        2,
        3,
        30,
        30,
    )
    with pytest.raises(ValueError, match="FlattenMLP expects"):
        mlp(jnp.zeros((2, 7, 13)))
    assert count_params(mlp) == 900 * 16 + 16 + 16 * 900 + 900
    assert count_params(conv) == (9 * 16 + 16) + (16 * 16 + 16) + (16 + 1)


def test_model_dtypes():
    """Parameters and logits follow ``dtype`` (abstract evaluation: nothing is compiled)."""
    x = jax.ShapeDtypeStruct((2, 30, 30), jnp.int32)
    for dtype in (jnp.float32, jnp.float64):
        for make in (
            lambda d: FullyConvNet((4,), dtype=d, rngs=nnx.Rngs(0)),
            lambda d: FlattenMLP((30, 30), hidden=(4,), dtype=d, rngs=nnx.Rngs(0)),
        ):
            out = jax.eval_shape(lambda a, make=make, d=dtype: make(d)(a), x)
            assert out.dtype == dtype and out.shape == (2, 30, 30)
            params = nnx.state(nnx.eval_shape(lambda make=make, d=dtype: make(d)), nnx.Param)
            assert {p.dtype for p in jax.tree.leaves(params)} == {jnp.dtype(dtype)}


@pytest.mark.parametrize(
    ("call", "exc", "words"),
    [
        (lambda: FlattenMLP((30, 30, 3), rngs=nnx.Rngs(0)), ValueError, "rows, cols"),
        (lambda: FlattenMLP((30, 0), rngs=nnx.Rngs(0)), ValueError, "shape"),
        (lambda: FlattenMLP(30, rngs=nnx.Rngs(0)), TypeError, "shape"),
        (lambda: FlattenMLP(hidden=(8, -1), rngs=nnx.Rngs(0)), ValueError, "hidden"),
        (lambda: FlattenMLP(max_value=0, rngs=nnx.Rngs(0)), ValueError, "max_value"),
        (lambda: FullyConvNet((), rngs=nnx.Rngs(0)), ValueError, "features"),
        (lambda: FullyConvNet(kernel_size=0, rngs=nnx.Rngs(0)), ValueError, "kernel_size"),
        (
            lambda: jax.eval_shape(lambda a: FullyConvNet(rngs=nnx.Rngs(0))(a), jnp.zeros(5)),
            ValueError,
            "rows, cols",
        ),
    ],
)
def test_model_bad_arguments(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value)


def _mlp(rngs=None, shape=(30, 30), boundary=None):
    return FlattenMLP(shape, hidden=(16,), rngs=rngs or nnx.Rngs(0))


def test_circular_conv_is_translation_equivariant_like_the_rule(data):
    model = FullyConvNet(rngs=nnx.Rngs(0))
    x = data[1].inputs[:4]
    shifted = jnp.roll(x, (3, -5), axis=(-2, -1))
    np.testing.assert_allclose(
        model(shifted), jnp.roll(model(x), (3, -5), axis=(-2, -1)), rtol=1e-5, atol=1e-5
    )


def test_compare_models_conv_reaches_99_percent():
    """The convolutional net reaches >= 99 % per-element test accuracy.

    Default conv spec (300 steps); a small MLP on a small budget only checks the plumbing (the
    benchmark measures the MLP properly).
    """
    specs = {
        "fully_conv": DEFAULT_SPECS["fully_conv"],
        "mlp": ModelSpec(_mlp, steps=50, batch_size=32, learning_rate=1e-3),
    }
    reports = compare_models(jax.random.key(0), n_train=N_DATA, n_test=N_DATA, specs=specs)
    assert list(reports) == ["fully_conv", "mlp"]
    for name, r in reports.items():
        assert r.name == name
        assert 0.0 <= r.test_exact_match <= r.test_accuracy <= 1.0
        assert 0.3 < r.train_accuracy <= 1.0
        assert r.compile_seconds > 0 and r.run_seconds > 0
    conv, mlp = reports["fully_conv"], reports["mlp"]
    assert conv.test_accuracy >= 0.99, conv
    assert conv.test_accuracy > mlp.test_accuracy
    assert conv.steps == 300 and mlp.steps == 50
    assert mlp.num_params == 900 * 16 + 16 + 16 * 900 + 900


def test_train_directly_with_zero_boundary_and_same_padding():
    full = make_dataset(jax.random.key(7), N_DATA, boundary="zero")
    model = FullyConvNet(padding="SAME", rngs=nnx.Rngs(0))
    result = train(model, MatrixDataset(full.inputs[:N_TRAIN], full.labels[:N_TRAIN]))
    assert result.losses.shape == (300,)
    assert result.losses[-20:].mean() < 0.25 * result.losses[:20].mean()
    test_data = MatrixDataset(full.inputs[N_TRAIN:], full.labels[N_TRAIN:])
    assert evaluate(model, test_data).accuracy >= 0.99


def test_train_with_custom_optimizer_and_evaluate(data):
    train_data, test_data = data
    model = _mlp()
    before = evaluate(model, test_data)
    result = train(model, train_data, steps=100, batch_size=32, optimizer=optax.adam(1e-3))
    assert result.losses.shape == (100,)
    assert result.losses[-10:].mean() < result.losses[:10].mean()
    after = evaluate(model, test_data)
    assert after.loss < before.loss
    # evaluate agrees with a direct computation, in one chunk or several (padded last chunk).
    logits = np.asarray(model(test_data.inputs), dtype=np.float64)
    labels = np.asarray(test_data.labels)
    correct = (logits > 0) == (labels == 1)
    assert after.accuracy == pytest.approx(correct.mean())
    assert after.exact_match == pytest.approx(correct.reshape(len(labels), -1).all(axis=1).mean())
    reference_loss = np.mean(np.logaddexp(0, logits) - labels * logits)
    assert after.loss == pytest.approx(reference_loss, rel=1e-4)
    chunked = evaluate(model, test_data, batch_size=64)  # 100 = 64 + 36
    assert chunked.accuracy == pytest.approx(after.accuracy)
    assert chunked.loss == pytest.approx(after.loss, rel=1e-5)


def test_learning_rate_is_traced_no_recompilation(data):
    train_data, _ = data
    small = MatrixDataset(train_data.inputs[:64], train_data.labels[:64])
    first_model, second_model = FullyConvNet(rngs=nnx.Rngs(0)), FullyConvNet(rngs=nnx.Rngs(0))
    first = train(first_model, small, steps=20, batch_size=8, learning_rate=1e-2)
    second = train(second_model, small, steps=20, batch_size=8, learning_rate=1e-3)
    assert second.compile_seconds < 0.5 * first.compile_seconds
    # ... and the rate really is used: same start and batches, different trajectories.
    assert first.losses[0] == pytest.approx(second.losses[0])
    assert not np.allclose(first.losses[5:], second.losses[5:])


@pytest.mark.parametrize(
    ("kwargs", "exc", "words"),
    [
        ({"steps": 0}, ValueError, "steps"),
        ({"batch_size": -1}, ValueError, "batch_size"),
        ({"learning_rate": 0.0}, ValueError, "learning_rate"),
        ({"learning_rate": float("nan")}, ValueError, "learning_rate"),
        ({"learning_rate": "fast"}, TypeError, "learning_rate"),
        ({"data": (np.zeros((2, 3, 3)), np.zeros((2, 3, 4)))}, ValueError, "shape"),
        ({"data": np.zeros((2, 3, 3))}, TypeError, "MatrixDataset"),
    ],
)
def test_train_bad_arguments(kwargs, exc, words):
    model = FullyConvNet(rngs=nnx.Rngs(0))
    data = kwargs.pop("data", (np.zeros((2, 3, 3), np.int32), np.zeros((2, 3, 3), np.int32)))
    with pytest.raises(exc) as info:
        train(model, data, **kwargs)
    assert words in str(info.value)
