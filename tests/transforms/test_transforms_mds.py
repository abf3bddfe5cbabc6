"""classical_mds, refine_mds, mds, stress, check_distance_matrix."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import pdist, squareform

from jaxsolve import Status
from jaxsolve.transforms import (
    align,
    check_distance_matrix,
    classical_mds,
    mds,
    pairwise_distances,
    refine_mds,
    stress,
)

RNG = np.random.default_rng(3)
N = 30
Y_TRUE = RNG.normal(size=(N, 3)) * np.array([3.0, 2.0, 1.0])
D_TRUE = squareform(pdist(Y_TRUE))


def _noisy(D, level, seed=0):
    noise = np.random.default_rng(seed).normal(size=D.shape) * level
    noise = np.triu(noise, 1)
    return np.abs(D + noise + noise.T)


def _raw_stress_np(Y, D, W=None):
    W = np.ones_like(D) if W is None else W
    return 0.5 * np.sum(W * (squareform(pdist(Y)) - D) ** 2)


def test_noise_free_recovery_float64():
    res = classical_mds(D_TRUE)
    assert int(res.status) == Status.SUCCESS
    assert res.Y.shape == (N, 3)
    assert float(align(res.Y, Y_TRUE, reflection=True).rmsd) <= 1e-8
    assert float(res.stress) < 1e-20
    np.testing.assert_allclose(res.Y.mean(0), 0.0, atol=1e-12)


def test_randomized_solver_matches_eigh():
    exact = classical_mds(D_TRUE, solver="randomized")
    assert int(exact.status) == Status.SUCCESS
    assert float(align(exact.Y, Y_TRUE, reflection=True).rmsd) <= 1e-8
    D = np.stack([_noisy(D_TRUE, 0.2), _noisy(D_TRUE, 0.05, seed=1)])
    fast = classical_mds(D, solver="randomized")
    full = classical_mds(D, solver="eigh")
    np.testing.assert_allclose(fast.stress, full.stress, rtol=1e-4)  # a start, not exact
    np.testing.assert_array_equal(fast.status, [Status.NOT_PSD] * 2)
    with pytest.raises(ValueError, match="solver must be one of"):
        classical_mds(D_TRUE, solver="lanczos")


def test_matches_numpy_reference_gram():
    J = np.eye(N) - 1 / N
    G = -0.5 * J @ D_TRUE**2 @ J
    lam, V = np.linalg.eigh(G)
    Y_ref = V[:, -3:] * np.sqrt(lam[-3:])
    Y = np.asarray(classical_mds(D_TRUE).Y)
    np.testing.assert_allclose(Y @ Y.T, Y_ref @ Y_ref.T, atol=1e-10)
    # Squared input gives the same answer.
    Y2 = np.asarray(classical_mds(D_TRUE**2, squared=True).Y)
    np.testing.assert_allclose(Y2 @ Y2.T, Y_ref @ Y_ref.T, atol=1e-10)


def test_float32_recovery():
    res = classical_mds(D_TRUE.astype(np.float32))
    assert res.Y.dtype == np.float32
    assert int(res.status) == Status.SUCCESS
    eps = np.finfo(np.float32).eps
    assert float(align(res.Y, Y_TRUE.astype(np.float32), reflection=True).rmsd) < (
        100 * N * eps * D_TRUE.max()
    )


def test_jit_vmap_batch_match_eager():
    Ds = np.stack([D_TRUE, 2 * D_TRUE, _noisy(D_TRUE, 0.1)])
    eager = classical_mds(Ds)
    assert eager.Y.shape == (3, N, 3) and eager.status.shape == (3,)
    jitted = jax.jit(classical_mds)(Ds)
    mapped = jax.vmap(classical_mds)(Ds)
    for res in (jitted, mapped):
        np.testing.assert_array_equal(res.status, eager.status)
        np.testing.assert_allclose(res.stress, eager.stress, rtol=1e-8, atol=1e-18)
    for i in range(3):
        single = classical_mds(Ds[i])
        Y, Yb = np.asarray(single.Y), np.asarray(eager.Y[i])
        np.testing.assert_allclose(Yb @ Yb.T, Y @ Y.T, atol=1e-9)
    assert list(eager.status) == [Status.SUCCESS, Status.SUCCESS, Status.NOT_PSD]


def test_no_recompilation_for_new_data_or_tolerances():
    from jaxsolve.transforms import _mds

    D1, D2 = _noisy(D_TRUE, 0.1, seed=7), _noisy(D_TRUE, 0.1, seed=8)
    mds(D1, rtol=1e-6)
    before = _mds._mds._cache_size()
    mds(D2, rtol=1e-8)  # new data and a new tolerance: traced, no recompilation
    assert _mds._mds._cache_size() == before


def test_noisy_distances_refine_lowers_stress_and_matches_sklearn_smacof():
    from sklearn.manifold import smacof

    D = _noisy(D_TRUE, 0.2)
    start = classical_mds(D)
    assert int(start.status) == Status.NOT_PSD  # non-Euclidean: documented, not an error
    res = mds(D)
    assert int(res.status) == Status.SUCCESS
    assert 0 < int(res.steps) < 300
    assert float(res.stress) < 0.9 * float(start.stress)
    np.testing.assert_allclose(float(res.stress), _raw_stress_np(np.asarray(res.Y), D), rtol=1e-10)
    _, sk_stress = smacof(
        D, n_components=3, init=np.asarray(start.Y), n_init=1, max_iter=300, eps=1e-6
    )
    sk_stress = _raw_stress_np(_, D)
    assert float(res.stress) <= sk_stress * (1 + 1e-6)
    # Adam reaches a comparable stress.
    adam = refine_mds(D, start.Y, method="adam", max_steps=500, learning_rate=0.01)
    assert int(adam.status) == Status.SUCCESS
    assert float(adam.stress) < 1.05 * float(res.stress)


def test_incomplete_distances_with_mask():
    mask = RNG.random((N, N)) < 0.8
    mask = mask & mask.T
    D = np.where(mask, D_TRUE, np.nan)  # missing entries may hold anything
    res = mds(D, mask=mask, max_steps=2000, rtol=1e-13)
    assert int(res.status) == Status.SUCCESS
    # SMACOF converges only linearly on incomplete data: close, not to rounding.
    assert float(align(res.Y, Y_TRUE, reflection=True).rmsd) < 1e-3
    W = mask & ~np.eye(N, dtype=bool)
    np.testing.assert_allclose(
        float(res.stress), _raw_stress_np(np.asarray(res.Y), np.nan_to_num(D), W), rtol=1e-8
    )
    assert float(stress(res.Y, D, mask=mask)) == pytest.approx(float(res.stress), rel=1e-10)


def test_adam_refinement_is_differentiable():
    D = _noisy(D_TRUE, 0.1)
    start = classical_mds(D).Y

    def final_stress(D):
        return refine_mds(D, start, method="adam", max_steps=20, check=False).stress

    g = jax.jit(jax.grad(final_stress))(jnp.asarray(D))
    assert np.all(np.isfinite(g)) and np.any(g != 0)


def test_stress_values():
    Y = Y_TRUE + 0.1
    D = _noisy(D_TRUE, 0.3)
    assert float(stress(Y, D)) == pytest.approx(_raw_stress_np(Y, D), rel=1e-12)
    total = 0.5 * np.sum(D**2)
    assert float(stress(Y, D, normalized=True)) == pytest.approx(
        np.sqrt(_raw_stress_np(Y, D) / total), rel=1e-12
    )
    assert float(stress(Y_TRUE, D_TRUE)) < 1e-20


def test_edge_sizes():
    one = classical_mds(np.zeros((1, 1)))
    assert one.Y.shape == (1, 3) and int(one.status) == Status.SUCCESS
    two = classical_mds(np.array([[0.0, 2.0], [2.0, 0.0]]))
    assert two.Y.shape == (2, 3)
    assert float(pairwise_distances(two.Y)[0, 1]) == pytest.approx(2.0)
    assert classical_mds(np.zeros((0, 0))).Y.shape == (0, 3)
    assert classical_mds(D_TRUE, dim=2).Y.shape == (N, 2)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda D: D.__setitem__((0, 1), np.nan), "D must be finite"),
        (lambda D: D.__setitem__((2, 5), -1.0), "non-negative"),
        (lambda D: D.__setitem__((3, 4), D[3, 4] + 1.0), "symmetric"),
        (lambda D: D.__setitem__((6, 6), 1.0), "zero diagonal"),
    ],
    ids=["nan", "negative", "asymmetric", "diagonal"],
)
def test_bad_numbers_raise_eagerly(edit, match):
    D = D_TRUE.copy()
    edit(D)
    with pytest.raises(ValueError, match=match):
        classical_mds(D)
    with pytest.raises(ValueError, match=match):
        mds(D)
    with pytest.raises(ValueError, match=match):
        check_distance_matrix(D)


def test_bad_numbers_are_statuses_under_jit():
    nan = D_TRUE.copy()
    nan[0, 1] = nan[1, 0] = np.inf
    negative = D_TRUE.copy()
    negative[2, 5] = negative[5, 2] = -1.0
    asym = D_TRUE.copy()
    asym[3, 4] += 1.0  # a skew part only: the symmetric part is still Euclidean
    asym[4, 3] -= 1.0
    Ds = np.stack([D_TRUE, nan, negative, asym])
    res = jax.jit(classical_mds)(Ds)
    assert list(res.status) == [
        Status.SUCCESS,
        Status.NON_FINITE_INPUT,
        Status.NOT_PSD,
        Status.NOT_SYMMETRIC,
    ]
    assert np.isnan(res.Y[1]).all() and np.isnan(res.stress[1])
    assert np.isfinite(np.asarray(res.Y)[[0, 2, 3]]).all()
    refined = jax.jit(mds)(Ds)
    assert list(refined.status) == list(res.status)
    # check=False gives the statuses eagerly too.
    assert int(classical_mds(nan, check=False).status) == Status.NON_FINITE_INPUT


def test_max_steps_status():
    res = mds(_noisy(D_TRUE, 0.5), max_steps=2, rtol=0.0)
    assert int(res.status) == Status.MAX_STEPS and int(res.steps) == 2


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: classical_mds(np.zeros((3, 4))), ValueError, "square"),
        (lambda: classical_mds(D_TRUE, dim=0), ValueError, "dim must be"),
        (lambda: classical_mds(D_TRUE, dim=2.5), TypeError, "dim must be an int"),
        (lambda: refine_mds(D_TRUE, np.zeros((N + 1, 3))), ValueError, "init must have N"),
        (lambda: mds(D_TRUE, mask=np.ones((4, 4), bool)), ValueError, "mask must have"),
        (lambda: mds(D_TRUE, method="lbfgs"), ValueError, "method must be one of"),
        (lambda: mds(D_TRUE, weights=np.full((N, N), "1")), TypeError, "weights must be an"),
        (lambda: stress(Y_TRUE, D_TRUE, weights=np.eye(N) * 1j), TypeError, "weights must be"),
        (lambda: mds(D_TRUE, weights=np.ones((4, 4))), ValueError, "weights must have"),
        (lambda: stress(np.zeros((N + 1, 3)), D_TRUE), ValueError, "D must be"),
    ],
)
def test_bad_shapes_and_options(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --- scale: the same answer for D and s·D across the dtype's range ----------------------------

SMALL = 6
Y_SMALL = RNG.normal(size=(SMALL, 3))
D_SMALL = squareform(pdist(Y_SMALL))
D_SMALL_NOISY = _noisy(D_SMALL, 0.2, seed=4)
np.fill_diagonal(D_SMALL_NOISY, 0.0)
# Powers of ten from the smallest scale at which flushing subnormal coordinates to zero (XLA
# on CPU) costs no more than rounding, to the largest at which s·D is finite.
SCALE_EXPONENTS = {np.float64: (-290, 300), np.float32: (-29, 36)}
# One compile per function and dtype serves every scale.
_classical_jit = jax.jit(classical_mds, static_argnames="squared")
_mds_jit = jax.jit(mds)
_mds_masked_jit = jax.jit(lambda D: mds(D, mask=jnp.ones(D.shape, bool), max_steps=30))


def _runs(D, dtype, *, all_paths):
    """classical_mds and mds of D; with ``all_paths`` also mds with a mask (the shortest-path
    fill and the weighted Guttman transform)."""
    D = jnp.asarray(D, dtype)
    out = [_classical_jit(D), _mds_jit(D)]
    return [*out, _mds_masked_jit(D)] if all_paths else out


def _assert_same_up_to_scale(res, ref, s, dtype):
    eps = float(np.finfo(dtype).eps)
    assert int(res.status) == int(ref.status)
    # Y up to the scale (and a rigid motion): compare the distances of Y / s.
    dist = np.asarray(pairwise_distances(np.asarray(res.Y, np.float64) / s), np.float64)
    dist_ref = np.asarray(pairwise_distances(np.asarray(ref.Y, np.float64)), np.float64)
    np.testing.assert_allclose(dist, dist_ref, atol=1e3 * SMALL * eps * dist_ref.max())
    # The raw stress scales by s²; out of range, it is Inf or 0 as the true value would be.
    expected = float(ref.stress) * s * s
    got = float(res.stress)
    assert not np.isnan(got)
    info = np.finfo(dtype)
    if expected > 1.01 * float(info.max):
        assert got == np.inf
    elif 1e3 * float(info.tiny) <= expected < 0.25 * float(info.max):  # (not at the edge)
        floor = 1e3 * SMALL * eps * float(0.5 * np.sum(D_SMALL**2)) * s * s
        assert abs(got - expected) <= 1e-3 * expected + floor


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@settings(max_examples=20, deadline=None, derandomize=True)
@given(data=st.data())
def test_scale_invariance_across_the_range(dtype, data):
    low, high = SCALE_EXPONENTS[dtype]
    s = 10.0 ** data.draw(st.integers(low, high), label="exponent")
    all_paths = dtype == np.float64  # float32 checks the two main paths
    for D in (D_SMALL, D_SMALL_NOISY):
        refs = _runs(D, dtype, all_paths=all_paths)
        for res, ref in zip(_runs(D * s, dtype, all_paths=all_paths), refs, strict=True):
            _assert_same_up_to_scale(res, ref, s, dtype)
    if all_paths:  # squared distances scale by s²
        s = 10.0 ** data.draw(st.integers(low // 2, high // 2), label="exponent, squared")
        ref = _classical_jit(jnp.asarray(D_SMALL_NOISY**2, dtype), squared=True)
        res = _classical_jit(jnp.asarray(D_SMALL_NOISY**2 * s * s, dtype), squared=True)
        _assert_same_up_to_scale(res, ref, s, dtype)


def test_extreme_scales():
    for s in (1e-160, 1e160):
        for fn in (classical_mds, mds):
            res = fn(D_TRUE * s)
            assert int(res.status) == Status.SUCCESS
            assert float(align(res.Y / s, Y_TRUE, reflection=True).rmsd) <= 1e-8
            assert np.isfinite(float(res.stress))
            assert float(res.stress) <= 1e-20 * s * s


@settings(max_examples=25, deadline=None, derandomize=True)
@given(exponent=st.integers(-300, 300), normalized=st.booleans())
def test_stress_function_across_scales(exponent, normalized):
    s = 10.0**exponent
    Y = Y_SMALL + 0.1
    ref = float(stress(Y, D_SMALL_NOISY, normalized=normalized))
    got = float(stress(Y * s, D_SMALL_NOISY * s, normalized=normalized))
    expected = ref if normalized else ref * s * s
    if expected > 1.01 * np.finfo(np.float64).max:
        assert got == np.inf
    elif 1e-290 < expected < 1e308:
        assert got == pytest.approx(expected, rel=1e-12)


def test_stress_weights_scale_out():
    W = RNG.random((N, N))
    D = _noisy(D_TRUE, 0.2)
    ref = float(stress(Y_TRUE, D, weights=W))
    for g in (1e-300, 1e300):
        assert float(stress(Y_TRUE, D, weights=W * g)) == pytest.approx(ref * g, rel=1e-12)
    Ds = np.stack([D_SMALL_NOISY, D_SMALL])
    Ws = RNG.random((2, SMALL, SMALL))
    res = mds(Ds, weights=Ws)
    big = mds(Ds, weights=Ws * 1e300)
    np.testing.assert_array_equal(big.status, res.status)
    np.testing.assert_allclose(big.stress, res.stress * 1e300, rtol=1e-8, atol=1e-20 * 1e300)


# --- weights and float options -------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1.0, np.nan, np.inf], ids=["negative", "nan", "inf"])
def test_bad_weights_raise_naming_weights(bad):
    W = np.ones((N, N))
    W[2, 7] = bad
    for call in (
        lambda: mds(D_TRUE, weights=W),
        lambda: refine_mds(D_TRUE, Y_TRUE, weights=W),
        lambda: stress(Y_TRUE, D_TRUE, weights=W),
    ):
        with pytest.raises(ValueError, match=r"weights must be finite and non-negative.*\[2, 7\]"):
            call()
    with pytest.raises(ValueError, match="weights must be"):
        mds(D_TRUE, weights=-np.ones((N, N)))


def test_bad_weights_are_a_status_when_traced_or_unchecked():
    W = np.ones((2, SMALL, SMALL))
    W[1, 0, 3] = -2.0
    Ds = np.stack([D_SMALL_NOISY, D_SMALL])
    for res in (
        jax.jit(lambda D, W: mds(D, weights=W))(Ds, W),
        refine_mds(Ds, Y_SMALL, weights=W, check=False),
    ):
        assert res.status[0] != Status.NON_FINITE_INPUT
        assert int(res.status[1]) == Status.NON_FINITE_INPUT
        assert np.isfinite(res.Y[0]).all() and np.isfinite(res.stress[0])
        assert np.isnan(res.Y[1]).all() and np.isnan(res.stress[1])
        assert "weights are negative or not finite" in res.messages()[1]
    traced = jax.jit(lambda W: stress(Y_SMALL, D_SMALL, weights=W))(W[1])
    assert np.isnan(float(traced))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rtol": np.nan}, "rtol must be non-negative and finite"),
        ({"rtol": -1e-6}, "rtol must be non-negative and finite"),
        ({"rtol": np.inf}, "rtol must be non-negative and finite"),
        ({"learning_rate": np.nan}, "learning_rate must be positive and finite"),
        ({"learning_rate": 0.0}, "learning_rate must be positive and finite"),
        ({"learning_rate": -np.inf}, "learning_rate must be positive and finite"),
    ],
)
def test_bad_float_options_raise_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mds(D_TRUE, **kwargs)
    with pytest.raises(ValueError, match=match):
        refine_mds(D_TRUE, Y_TRUE, **kwargs)


# --- the result type -----------------------------------------------------------------------------


def test_mds_result_shares_the_status_mixin():
    from jaxsolve._solution import StatusResult
    from jaxsolve.transforms import MDSResult

    res = mds(_noisy(D_TRUE, 0.5), max_steps=2, rtol=0.0)  # test_max_steps_status's compile
    assert isinstance(res, StatusResult) and isinstance(res, MDSResult)
    assert "ok" not in vars(MDSResult) and "messages" not in vars(MDSResult)
    assert not bool(res.ok)
    assert classical_mds(D_TRUE).ok
    (message,) = res.messages()
    assert message.startswith("MAX_STEPS: The refinement stopped")  # MDS wording
    assert MDSResult.describe(Status.NOT_PSD).startswith("NOT_PSD: D is not a Euclidean")
    assert MDSResult.describe(Status.CHOLESKY_FAILED) == Status.describe(Status.CHOLESKY_FAILED)
    leaves, tree = jax.tree_util.tree_flatten(res)
    assert type(jax.tree_util.tree_unflatten(tree, leaves)) is MDSResult
    assert not hasattr(res, "__dict__")
