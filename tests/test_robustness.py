"""Inputs at the edges: extreme scales, one-sided masks, derivatives at clipped or repeated
eigenvalues, degenerate starts, and argument checks found by an adversarial review."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import CLOSED_FORMS, ITERATIVE, eps, gram, isolve, rel_residual
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxsolve
from jaxsolve import Status

C3 = np.array([[2.0, 1.0, 0.0], [1.0, 2.0, 1.0], [0.0, 1.0, 2.0]])
NONSYM = np.array([[3.0, 2.0], [0.0, 3.0]])
INDEF = np.diag([1.0, 1.0, -1.0])


def _solve(C, method, **options):
    if method in ITERATIVE:
        return isolve(C, method, **options)
    return jaxsolve.solve(C, method=method, **options)


# --- scale: X of s·C is sqrt(s)·X of C, statuses and residuals do not change ---------------

SCALES = {
    np.float64: (1e-300, 1e-160, 1e-20, 1e20, 1e150, 1e300),
    np.float32: (1e-30, 1e-20, 1e-10, 1e10, 1e20, 1e30),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method", CLOSED_FORMS + ITERATIVE)
def test_every_method_is_scale_invariant(method, dtype):
    tol = 1e4 * eps(dtype) if method != "gd" else 1e3 * np.sqrt(eps(dtype))
    for s in SCALES[dtype]:
        C = (C3 * s).astype(dtype)
        sol = _solve(C, method)
        assert int(sol.status) == Status.SUCCESS, (s, sol.messages())
        X = np.asarray(sol.X, np.float64)
        assert np.all(np.isfinite(X))
        # compare X·Xᵀ/s with C3 (the product X·Xᵀ itself may not be representable)
        X_unit = X / np.sqrt(s)
        assert np.linalg.norm(gram(X_unit) - C3) / np.linalg.norm(C3) < tol, s
        assert 0 <= float(sol.residual) < tol


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_statuses_and_residuals_at_extreme_scales(dtype):
    for s in SCALES[dtype]:
        ns = jaxsolve.solve((NONSYM * s).astype(dtype))
        assert int(ns.status) == Status.NOT_SYMMETRIC, s
        ind = jaxsolve.solve((INDEF * s).astype(dtype), method="eigh")
        assert int(ind.status) == Status.NOT_PSD, s
        # nearest PSD drops the -1: residual ‖diag(0,0,-1)‖/‖diag(1,1,-1)‖ = 1/sqrt(3)
        np.testing.assert_allclose(float(ind.residual), 1 / np.sqrt(3), rtol=1e-5)


def test_large_single_matrix_at_extreme_scales():
    # a larger matrix: sums of squares over many entries, at the extremes of the range
    C = jaxsolve.random_psd(96, cond=1e3, seed=5)
    K = np.triu(np.ones((96, 96)), 1) * 1e-3
    for s in (1e-300, 1e-150, 1e150, 1e300):
        sol = jaxsolve.solve(C * s)
        assert int(sol.status) == Status.SUCCESS
        np.testing.assert_allclose(gram(np.asarray(sol.X) / np.sqrt(s)), C, atol=1e-12)
        assert int(jaxsolve.solve((C + K) * s).status) == Status.NOT_SYMMETRIC


# --- masks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ITERATIVE)
def test_entry_observed_on_one_side_counts_fully(method):
    C = np.array([[2.0, 1.0, 1.0], [1.0, 2.0, 1.0], [1.0, 1.0, 2.0]])
    M = np.ones((3, 3), bool)
    M[0, 1] = False  # C[1, 0] is still observed
    C_given = C.copy()
    C_given[0, 1] = np.nan
    sol = isolve(C_given, method, mask=M)
    assert int(sol.status) == Status.SUCCESS
    np.testing.assert_allclose(gram(sol.X), C, atol=1e-6 if method == "gd" else 1e-9)


def test_one_sided_mask_recovers_a_low_rank_matrix():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((30, 3))
    C = A @ A.T
    M = rng.random((30, 30)) < 0.5  # not symmetric: each pair seen from either side
    np.fill_diagonal(M, True)
    sol = jaxsolve.solve(np.where(M, C, np.nan), mask=M, rank=3, max_steps=3000)
    assert int(sol.status) == Status.SUCCESS
    assert np.linalg.norm(gram(sol.X) - C) / np.linalg.norm(C) < 1e-6


def test_mask_reports_observed_entries_that_disagree():
    C = jaxsolve.random_psd(6, cond=10, seed=2)
    C_bad = C.copy()
    C_bad[0, 1] += 1e-3  # both (0, 1) and (1, 0) observed, with different values
    M = np.ones((6, 6))
    M[2, 3] = M[3, 2] = 0.0
    assert int(jaxsolve.solve(C, mask=M, method="precgd").status) == Status.SUCCESS
    assert int(jaxsolve.solve(C_bad, mask=M, method="precgd").status) == Status.NOT_SYMMETRIC


# --- derivatives ----------------------------------------------------------------------------

T = np.random.default_rng(0).standard_normal((4, 4))
DIRECTION = np.array(
    [[0.3, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
)


def _directional(f, C):
    g = jax.grad(f)(jnp.asarray(C))
    assert bool(jnp.all(jnp.isfinite(g)))
    fd = (f(C + 1e-6 * DIRECTION) - f(C - 1e-6 * DIRECTION)) / 2e-6
    return float(jnp.sum(g * DIRECTION)), float(fd)


@pytest.mark.parametrize(
    ("method", "rank", "diagonal"),
    [
        ("eigh", None, (3.0, 2.0, 1.0, -1.0)),  # a clipped eigenvalue
        ("auto", None, (3.0, 2.0, 1.0, -1.0)),  # Cholesky fails, eigh answers
        ("eigh", 3, (3.0, 2.0, 1.0, 0.5)),
        ("sqrt", 2, (3.0, 2.0, 1.0, -1.0)),
    ],
)
def test_closed_form_gradients_finite_at_clipped_eigenvalues(method, rank, diagonal):
    C = np.diag(diagonal)

    def f(C):
        X = jaxsolve.solve(C, method=method, rank=rank).X
        return jnp.sum(T * (X @ X.T))

    grad, fd = _directional(f, C)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


def test_eigh_gradient_finite_at_a_zero_eigenvalue():
    C = np.diag([3.0, 2.0, 1.0, 0.0])
    g = jax.grad(lambda C: jnp.sum(jaxsolve.solve(C, method="eigh").X ** 2))(jnp.asarray(C))
    assert bool(jnp.all(jnp.isfinite(g)))


@pytest.mark.parametrize("method", ["precgd"])
def test_gradient_at_repeated_top_eigenvalues(method):
    # the spectral start is exact here: the derivative must not come from the path
    C = np.diag([2.0, 2.0, 1.0, 1.0])

    def f(C):
        X = jaxsolve.solve(C, method=method, rank=2).X
        return jnp.sum(T * (X @ X.T))

    grad, fd = _directional(f, C)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


# --- degenerate starts and the nn layer -----------------------------------------------------


@pytest.mark.parametrize("method", ITERATIVE)
@pytest.mark.parametrize("rank", [None, 2])
def test_zero_start_is_not_reported_as_converged(method, rank):
    C = jaxsolve.random_psd(4, cond=10, seed=1)
    k = 4 if rank is None else rank
    sol = jaxsolve.solve(C, method=method, rank=rank, x0=np.zeros((4, k)))
    ref = jaxsolve.solve(C, method="eigh", rank=rank)
    assert int(sol.status) == Status.SUCCESS
    assert float(sol.residual) <= float(ref.residual) + 1e-8


def test_fit_factor_on_zero_and_on_nan_in_unobserved_entries():
    from jaxsolve.nn import fit_factor

    layer, losses = fit_factor(np.zeros((3, 3)), steps=200)
    assert np.all(np.isfinite(np.asarray(layer.X[...])))
    assert np.all(np.isfinite(np.asarray(losses)))
    C = np.asarray(jaxsolve.random_psd(6, cond=10, seed=1))
    M = np.ones((6, 6), bool)
    M[0, 1] = M[1, 0] = False
    C_given = C.copy()
    C_given[0, 1] = C_given[1, 0] = np.nan
    layer, losses = fit_factor(C_given, mask=M, steps=3000)
    X = np.asarray(layer.X[...])
    assert np.all(np.isfinite(np.asarray(losses)))
    assert np.abs((X @ X.T - C)[M]).max() < 1e-5


# --- arguments ------------------------------------------------------------------------------


def test_key_must_be_one_prng_key():
    C = jaxsolve.random_psd(4, cond=10)
    for key in (jax.random.split(jax.random.PRNGKey(0), 3), 0, np.zeros(2)):
        with pytest.raises(TypeError, match="key"):
            jaxsolve.solve(C, method="precgd", key=key)
    with pytest.raises(ValueError, match="key"):
        jaxsolve.solve(C, method="precgd", key=jax.random.split(jax.random.key(0), 3))
    with pytest.raises(ValueError, match=r"key.*\(4,\)"):  # raw data of the wrong size
        jaxsolve.solve(C, method="precgd", key=np.zeros(4, np.uint32))
    for key in (jax.random.key(1), jax.random.PRNGKey(1)):
        assert int(jaxsolve.solve(C, method="precgd", key=key).status) == Status.SUCCESS


@pytest.mark.parametrize(
    "option",
    [
        dict(max_steps=10),
        dict(rtol=1e-8),
        dict(atol=1e-8),
        dict(learning_rate=0.1),
    ],
)
@pytest.mark.parametrize("method", CLOSED_FORMS)
def test_closed_forms_refuse_iterative_options(method, option):
    with pytest.raises(ValueError, match=f"{next(iter(option))}.*{method}"):
        jaxsolve.solve(C3, method=method, **option)


def test_compare_passes_iterative_options_to_iterative_methods_only():
    comparison = jaxsolve.compare(C3, max_steps=3, rtol=1e-6, repeats=1)
    rows = {r.method: r for r in comparison.results}
    assert all(r.error is None for r in rows.values()), [r.error for r in rows.values()]
    assert rows["gd"].steps <= 3 and rows["precgd"].steps <= 3
    with pytest.raises(ValueError, match="at least one"):
        jaxsolve.compare(C3, methods=())


def test_negative_max_steps_is_refused():
    C = jaxsolve.random_psd(4, cond=10)
    with pytest.raises(ValueError, match="max_steps"):
        jaxsolve.solve(C, method="gd", max_steps=-1)
    with pytest.raises(ValueError, match="max_steps"):
        jaxsolve.solve(C, method="gd", max_steps=jnp.asarray(-1))


def test_compare_takes_one_method_name():
    comparison = jaxsolve.compare(jaxsolve.random_psd(4, cond=10), methods="eigh", repeats=1)
    assert [r.method for r in comparison.results] == ["eigh"]


def test_default_residual_is_the_measured_one_up_to_rounding():
    for C in (jaxsolve.random_psd(40, cond=1e6, seed=1), INDEF, NONSYM):
        for method in ("cholesky", "sqrt"):  # (eigh and auto: test_closed_form)
            sol = jaxsolve.solve(C, method=method)
            if int(sol.status) == Status.CHOLESKY_FAILED:
                continue
            measured = jaxsolve.solve(C, method=method, measure_residual=True)
            np.testing.assert_allclose(
                float(sol.residual), rel_residual(sol.X, C), atol=100 * C.shape[0] * eps(np.float64)
            )
            np.testing.assert_allclose(
                float(measured.residual), rel_residual(measured.X, C), rtol=1e-6, atol=1e-15
            )


@pytest.mark.parametrize("method", ["auto", "eigh", "precgd"])
def test_entries_near_the_largest_float(method):
    # the scale h² (and h²/2) must stay a normal number, and C + Cᵀ must not overflow
    big = jaxsolve.solve(np.eye(64, dtype=np.float32) * np.float32(1.5e38), method=method)
    assert int(big.status) == Status.SUCCESS
    np.testing.assert_allclose(gram(big.X) / 1.5e38, np.eye(64), atol=1e-5)
    C = np.array([[3e38, 1e38], [1e38, 3e38]], np.float32)
    sol = jaxsolve.solve(C, method=method)
    assert int(sol.status) == Status.SUCCESS
    assert np.all(np.isfinite(np.asarray(sol.X)))
    np.testing.assert_allclose(gram(sol.X) / 1e38, C / 1e38, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("weight", [0.1, 2.0, 10.0])
def test_uniform_mask_weight_is_the_same_problem(weight):
    C = jaxsolve.random_psd(6, cond=10, seed=4)
    sol = jaxsolve.solve(C, mask=weight * np.ones((6, 6)), method="precgd")
    assert int(sol.status) == Status.SUCCESS
    assert float(sol.residual) < 1e-10


# --- the checks and the scale against NumPy -----------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [1, 2, 5, 8, 17])
def test_checks_equal_numpy(n, dtype):
    """solve's checks of a stack: finiteness, the power-of-two scale h (largest entry of C·h²
    in [½, 2)), ‖C·h²‖² and its skew part's, against NumPy in float64, at scales whose raw
    squares would overflow or underflow."""
    from jaxsolve._solve import _prepare

    rng = np.random.default_rng(n)
    C = rng.standard_normal((7, n, n)).astype(dtype)
    C[1] = C[1] + C[1].T  # symmetric: skew exactly 0
    C[2, 0, n - 1] = np.nan
    C[3, n - 1, 0] = np.inf
    C[4] *= 1e-3
    C[5] *= 1e200 if dtype == np.float64 else 1e30
    C[6] *= 1e-200 if dtype == np.float64 else 1e-30
    p = jax.jit(_prepare, static_argnums=1)(C, None)
    np.testing.assert_array_equal(np.asarray(p.finite), [1, 1, 0, 0, 1, 1, 1])
    keep = [0, 1, 4, 5, 6]
    C64 = C.astype(np.float64)[keep]
    h2 = np.asarray(p.h, np.float64)[keep] ** 2
    largest = np.max(np.abs(C64), axis=(-2, -1)) * h2
    assert np.all((largest >= 0.5) & (largest < 2))
    S = C64 * h2[:, None, None]
    skew = (S - np.swapaxes(S, -1, -2)) / 2
    for got, want in (
        (p.skew_sq, np.sum(skew * skew, axis=(-2, -1))),
        (p.norm_sq, np.sum(S * S, axis=(-2, -1))),
    ):
        np.testing.assert_allclose(np.asarray(got)[keep], want, rtol=10 * eps(dtype))
    assert float(p.skew_sq[1]) == 0.0
    np.testing.assert_array_equal(np.asarray(p.S)[2], np.eye(n))  # non-finite: the identity


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_power_of_two_scale_over_the_whole_range(dtype):
    """h is a power of two with max|A|·h² in [½, 2) across the range (h² kept a normal
    number: within 2^20 of 1 for the smallest normal and the largest float), 1 for 0, NaN
    and ±Inf, and a constant for differentiation."""
    from jaxsolve._numerics import power_of_two_scale

    info = np.finfo(dtype)
    values = np.array(
        [info.smallest_subnormal, info.tiny, 1e-3, 1.0, 3.0, 1e5, info.max, 0.0, np.nan, np.inf],
        dtype,
    )
    h = np.asarray(power_of_two_scale(jnp.asarray(values)[:, None, None]), np.float64)
    assert np.all(np.frexp(h)[0] == 0.5)  # powers of two
    scaled = values.astype(np.float64)[:7] * h[:7] ** 2
    assert np.all((scaled[2:6] >= 0.5) & (scaled[2:6] < 2))
    assert np.all((scaled[[1, 6]] >= 2.0**-20) & (scaled[[1, 6]] < 2.0**20))
    np.testing.assert_array_equal(h[7:], 1.0)
    grad = jax.grad(lambda a: power_of_two_scale(a[None, None]))(jnp.asarray(3.0, dtype))
    assert float(grad) == 0.0


# --- promises: SUCCESS only on a finite, fitted or stationary answer; clear argument errors --


@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    method=st.sampled_from(ITERATIVE),
    start=st.sampled_from([np.nan, np.inf, -np.inf, 1e30, 1e150, 1e-200, 0.0, 1.0]),
    seed=st.integers(0, 10_000),
)
def test_success_only_on_a_finite_fitted_answer_whatever_the_start(method, start, seed):
    """Every start x0 (non-finite, huge, tiny, zero) ends in SUCCESS with a finite residual
    at the tolerance, or in DIVERGED / NON_FINITE / MAX_STEPS: never SUCCESS on a NaN, an
    infinite or an unfit residual (C is PD, so a stationary full-rank point is a fit)."""
    C = jaxsolve.random_psd(3, cond=10, seed=seed)
    sol = isolve(C, method, x0=np.full((3, 3), start))
    status, residual = int(sol.status), float(sol.residual)
    if status == Status.SUCCESS:
        assert np.isfinite(residual) and residual <= 1e-10, (status, residual)
        assert rel_residual(sol.X, C) <= 1e-10
    else:
        assert status in (Status.DIVERGED, Status.NON_FINITE, Status.MAX_STEPS), status
    if not np.isfinite(start):
        assert status == Status.NON_FINITE


def test_gd_default_step_converges_from_every_random_start():
    """gd's default step on well-conditioned input converges whatever its random start
    (100 keys, float64 and float32)."""
    method = "gd"
    C = jnp.diag(jnp.arange(1.0, 6.0))
    keys = jax.random.split(jax.random.PRNGKey(405), 100)
    for dtype in (jnp.float64, jnp.float32):

        def status(k, dtype=dtype):
            return jaxsolve.solve(C.astype(dtype), method=method, key=k).status

        statuses = jax.jit(jax.vmap(status))(keys)
        assert np.all(np.asarray(statuses) == Status.SUCCESS), np.bincount(np.asarray(statuses))
    assert "default step" not in Status.DIVERGED.message


@pytest.mark.parametrize("method", ITERATIVE)  # (auto with a mask is precgd)
@pytest.mark.parametrize(
    ("C", "mask"),
    [
        (np.diag([1.0, -1.0]), np.ones((2, 2), bool)),
        (jaxsolve.random_psd(4, cond=10, negative=2, seed=1), np.ones((4, 4))),
        (np.diag([1.0, -1.0, 2.0]), np.eye(3)),  # a negative observed diagonal entry
    ],
)
def test_masked_solve_reports_not_psd(method, C, mask):
    """Observed entries that no PSD matrix fits are NOT_PSD with a mask as without (a full
    mask is the unmasked problem, whose residual is the distance to the nearest PSD)."""
    sol = jaxsolve.solve(C, method=method, mask=mask)
    assert int(sol.status) == Status.NOT_PSD
    if mask.all():
        unmasked = jaxsolve.solve(C, method="eigh")
        np.testing.assert_allclose(float(sol.residual), float(unmasked.residual), rtol=1e-6)


def test_masked_completion_that_exists_is_success():
    n = 12
    C = jaxsolve.random_psd(n, rank=2, seed=3)
    upper = np.triu(np.random.default_rng(0).random((n, n)) < 0.7, 1)
    mask = upper | upper.T | np.eye(n, dtype=bool)
    sol = jaxsolve.solve(C, method="precgd", rank=2, mask=mask)
    assert int(sol.status) == Status.SUCCESS and float(sol.residual) < 1e-10


@settings(max_examples=15, deadline=None, derandomize=True)
@given(exponent=st.integers(-300, 300), method=st.sampled_from(ITERATIVE))
def test_uniform_mask_weight_at_any_scale_is_the_same_problem(exponent, method):
    C = jaxsolve.random_psd(3, cond=10, seed=4)
    sol = jaxsolve.solve(C, method=method, mask=np.full((3, 3), 10.0**exponent))
    assert int(sol.status) == Status.SUCCESS
    assert float(sol.residual) < 1e-10


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_compare_residuals_at_extreme_scales(dtype):
    """compare's measured residuals are finite and at rounding level for s·C across the range."""
    C = jaxsolve.random_psd(4, cond=10, seed=2)
    for scale in SCALES[dtype][::2]:
        rows = jaxsolve.compare((C * scale).astype(dtype), ["eigh", "cholesky"], repeats=1).results
        residuals = np.array([r.residual for r in rows])
        assert np.all(np.isfinite(residuals)) and all(r.status == Status.SUCCESS for r in rows)
        assert np.all(residuals <= 50 * 4 * eps(dtype))


@pytest.mark.parametrize("method", ITERATIVE)
def test_gradient_finite_at_zero(method):
    grad = jax.grad(lambda c: jnp.sum(jaxsolve.solve(c, method=method).X ** 2))(jnp.zeros((3, 3)))
    assert np.all(np.isfinite(np.asarray(grad)))


@pytest.mark.parametrize(
    ("options", "error", "names"),
    [
        ({"max_steps": 2**40}, ValueError, "max_steps"),
        ({"max_steps": -1}, ValueError, "max_steps"),
        ({"rtol": np.ones(3)}, ValueError, "rtol"),
        ({"rtol": -1.0}, ValueError, "rtol"),
        ({"rtol": np.inf}, ValueError, "rtol"),
        ({"atol": np.nan}, ValueError, "atol"),
        ({"learning_rate": "x"}, TypeError, "learning_rate"),
        ({"learning_rate": 0.0}, ValueError, "learning_rate"),
        ({"learning_rate": -1.0}, ValueError, "learning_rate"),
        ({"batch_size": 0}, ValueError, "batch_size"),
    ],
)
def test_bad_iterative_options_raise_naming_the_argument(options, error, names):
    with pytest.raises(error, match=names):
        jaxsolve.solve(C3, method="precgd", **options)
    if "batch_size" not in options:
        with pytest.raises(error, match=names):
            jaxsolve.compare(C3, ["eigh", "precgd"], **options)


def test_bad_static_flags_and_compare_options_raise_once():
    with pytest.raises(TypeError, match="measure_residual"):
        jaxsolve.solve(C3, measure_residual="no")
    with pytest.raises(ValueError, match="rank"):
        jaxsolve.compare(C3, rank=9)
