"""``solve``: statuses, transforms (jit, vmap, batching, retracing), edge shapes, bad input."""

import math

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import (
    CLOSED_FORMS,
    ITERATIVE,
    eps,
    gram,
    isolve,
    jsolve,
    nearest_psd_ref,
    rel_error,
    rel_residual,
    skew,
    sym,
)
from hypothesis import given, settings

import jaxsolve
from jaxsolve import METHODS, Solution, Status, solve

N = 8
C_PD = jaxsolve.random_psd(N, cond=10, seed=1)
UNMASKED = [m for m in METHODS if m != "gauss_newton"]  # (gauss_newton is completion: a mask)
C_INDEF = jaxsolve.random_psd(N, cond=10, negative=2, seed=2)


def run(C, method, **options):
    """Closed forms eagerly (cheap); iterative methods through the shared jit."""
    if method in ITERATIVE:
        return isolve(C, method, **options)
    return solve(C, method=method, **options)


def test_methods_are_the_documented_ones():
    assert set(METHODS) == {"cholesky", "eigh", "sqrt", "auto", "gd", "precgd", "gauss_newton"}


# --- statuses --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["eigh", "sqrt", "auto", "gd", "precgd"])
def test_indefinite_gives_not_psd_and_nearest_psd_factor(method):
    sol = run(C_INDEF, method)
    assert int(sol.status) == Status.NOT_PSD
    assert not bool(sol.ok)
    target = nearest_psd_ref(C_INDEF)
    assert rel_error(gram(sol.X), target) < 1e-7
    np.testing.assert_allclose(float(sol.residual), rel_error(target, C_INDEF), rtol=1e-8)


def test_cholesky_on_indefinite_fails_with_nan_factor():
    sol = solve(C_INDEF, method="cholesky")
    assert int(sol.status) == Status.CHOLESKY_FAILED
    assert np.all(np.isnan(np.asarray(sol.X)))
    assert np.isnan(float(sol.residual))


@pytest.mark.parametrize("method", UNMASKED)
def test_non_symmetric_solves_symmetric_part_and_measures_against_C(method):
    A = C_PD + skew(N, 0.05, seed=3)  # symmetric part is C_PD (PD)
    sol = run(A, method)
    assert int(sol.status) == Status.NOT_SYMMETRIC
    assert rel_error(gram(sol.X), C_PD) < 1e-10
    # residual is measured against C as given: it includes the skew part
    np.testing.assert_allclose(float(sol.residual), rel_residual(sol.X, A), rtol=1e-8)
    assert float(sol.residual) > 0.01


def test_asymmetry_at_rounding_level_is_success():
    A = C_PD + skew(N, 4 * eps(np.float64), seed=3)
    assert not np.array_equal(A, A.T)
    assert int(solve(A, method="eigh").status) == Status.SUCCESS


@pytest.mark.parametrize(
    "method, bad",
    [(m, math.nan) for m in UNMASKED] + [("auto", math.inf), ("precgd", -math.inf)],
)
def test_non_finite_input_flags_only_that_matrix(method, bad):
    B = np.stack([C_PD, 2 * C_PD, jaxsolve.random_psd(N, cond=5, seed=9)])
    B[1, 2, 5] = bad
    sol = run(B, method)
    np.testing.assert_array_equal(
        np.asarray(sol.status), [Status.SUCCESS, Status.NON_FINITE_INPUT, Status.SUCCESS]
    )
    assert np.all(np.isnan(np.asarray(sol.X[1])))
    assert np.isnan(float(sol.residual[1]))
    for i in (0, 2):
        alone = run(B[i], method)
        assert int(alone.status) == int(sol.status[i])
        np.testing.assert_allclose(gram(sol.X[i]), gram(alone.X), atol=1e-10)
        np.testing.assert_allclose(float(sol.residual[i]), float(alone.residual), atol=1e-12)
        if method not in ("gd",):  # gd's random start depends on the batch index
            np.testing.assert_allclose(np.asarray(sol.X[i]), np.asarray(alone.X), atol=1e-12)


# A single larger matrix, as a batch of two must give.
N_BIG = 96
C_BIG = jaxsolve.random_psd(N_BIG, cond=1e3, seed=21)
C_BIG_INDEF = jaxsolve.random_psd(N_BIG, cond=1e3, negative=5, seed=22)


@pytest.mark.parametrize("measure_residual", [True, False])
@pytest.mark.parametrize("method", CLOSED_FORMS)
def test_large_single_matrix_symmetry_checks(method, measure_residual):
    for level in (0.0, 1e-9, 1e-3):
        _check_symmetry_status(method, level, measure_residual)


def _check_symmetry_status(method, level, measure_residual):
    A = C_BIG + skew(N_BIG, level, seed=23)
    sol = solve(A, method=method, measure_residual=measure_residual)
    expected = Status.SUCCESS if level == 0 else Status.NOT_SYMMETRIC
    assert int(sol.status) == expected
    assert rel_error(gram(sol.X), C_BIG) < 1e-10
    # rounding-level differences aside, the residual is the one NumPy measures
    np.testing.assert_allclose(float(sol.residual), rel_residual(sol.X, A), rtol=1e-6, atol=1e-14)
    # same answer as the exact path that batches take
    batched = solve(np.stack([A, A]), method=method, measure_residual=measure_residual)
    np.testing.assert_array_equal(np.asarray(batched.status), [int(sol.status)] * 2)
    np.testing.assert_allclose(np.asarray(batched.residual[0]), float(sol.residual), atol=1e-14)


@pytest.mark.parametrize("measure_residual", [True, False])
@pytest.mark.parametrize("method", ["eigh", "sqrt", "auto"])
def test_large_single_indefinite_unmeasured_residual(method, measure_residual):
    sol = solve(C_BIG_INDEF, method=method, measure_residual=measure_residual)
    assert int(sol.status) == Status.NOT_PSD
    target = nearest_psd_ref(C_BIG_INDEF)
    assert rel_error(gram(sol.X), target) < 1e-9
    np.testing.assert_allclose(float(sol.residual), rel_error(target, C_BIG_INDEF), rtol=1e-8)


def test_large_single_cholesky_failure_is_all_nan():
    sol = solve(C_BIG_INDEF, method="cholesky", measure_residual=False)
    assert int(sol.status) == Status.CHOLESKY_FAILED
    assert np.all(np.isnan(np.asarray(sol.X)))
    assert np.isnan(float(sol.residual))


def test_non_finite_input_reports_zero_steps():
    B = np.stack([C_PD, 2 * C_PD, jaxsolve.random_psd(N, cond=5, seed=9)])
    B[1, 2, 5] = math.nan
    sol = isolve(B, "gd")
    assert int(sol.status[1]) == Status.NON_FINITE_INPUT
    assert int(sol.steps[1]) == 0


def test_status_describe_and_messages():
    for status in Status:
        text = Status.describe(int(status))
        assert text.startswith(f"{status.name}: ")
        assert len(status.message) > 20
        assert Status.describe(np.int32(status.value)) == text
    assert len({s.message for s in Status}) == len(Status)
    with pytest.raises(ValueError):
        Status.describe(99)
    B = np.stack([C_PD, C_INDEF, C_PD + skew(N, 0.05)])
    sol = solve(B, method="eigh")
    messages = sol.messages()
    assert messages == [Status.describe(s) for s in (0, 2, 1)]
    assert messages[1].startswith("NOT_PSD: ")
    np.testing.assert_array_equal(np.asarray(sol.ok), [True, False, False])
    assert solve(C_PD, method="eigh").messages() == [Status.describe(0)]


# --- transforms and shapes ---------------------------------------------------------------------


@pytest.mark.parametrize("method", CLOSED_FORMS)
def test_jit_equals_eager(method):
    eager = solve(C_PD, method=method)
    jitted = jsolve(C_PD, method=method)
    np.testing.assert_allclose(np.asarray(jitted.X), np.asarray(eager.X), atol=1e-13)
    np.testing.assert_allclose(float(jitted.residual), float(eager.residual), atol=1e-15)
    assert int(jitted.status) == int(eager.status) and int(jitted.steps) == int(eager.steps)


@pytest.mark.parametrize("method", [*CLOSED_FORMS, "precgd"])  # gd: batched in the NaN test
def test_vmap_equals_python_loop(method):
    B = np.stack([C_PD, C_INDEF, 3 * C_PD + skew(N, 0.1)])
    vmapped = jax.vmap(lambda c: run(c, method))(B)
    for i in range(len(B)):
        alone = run(B[i], method)
        np.testing.assert_allclose(np.asarray(vmapped.X[i]), np.asarray(alone.X), atol=1e-10)
        np.testing.assert_allclose(float(vmapped.residual[i]), float(alone.residual), atol=1e-12)
        assert int(vmapped.status[i]) == int(alone.status)
        assert int(vmapped.steps[i]) == int(alone.steps)


@pytest.mark.parametrize("method", CLOSED_FORMS)
def test_arbitrary_batch_dims(method):
    B = jaxsolve.random_psd(N, cond=20, seed=4, batch=(2, 3))
    B[1, 2] = C_INDEF
    sol = run(B, method)
    assert sol.X.shape == (2, 3, N, N)
    assert sol.residual.shape == sol.status.shape == sol.steps.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            alone = run(B[i, j], method)
            assert int(sol.status[i, j]) == int(alone.status)
            np.testing.assert_allclose(np.asarray(sol.X[i, j]), np.asarray(alone.X), atol=1e-10)
    expected = np.zeros((2, 3), int)
    expected[1, 2] = Status.CHOLESKY_FAILED if method == "cholesky" else Status.NOT_PSD
    np.testing.assert_array_equal(np.asarray(sol.status), expected)


@pytest.mark.parametrize("method", ["eigh", "precgd"])
def test_no_retrace_for_new_values(method):
    traces = []

    @jax.jit
    def f(C, rtol, atol, max_steps, learning_rate):
        traces.append(None)  # runs once per trace
        if method in ITERATIVE:
            return solve(
                C,
                method=method,
                rtol=rtol,
                atol=atol,
                max_steps=max_steps,
                learning_rate=learning_rate,
            )
        return solve(C, method=method)

    first = f(C_PD, 1e-14, 1e-14, 200, 0.5)
    second = f(2 * C_INDEF, 1e-10, 1e-12, 50, 0.8)
    third = f(C_PD, 1e-14, 1e-14, 1, 0.5)
    assert len(traces) == 1
    assert int(first.status) == Status.SUCCESS and int(second.status) == Status.NOT_PSD
    if method in ITERATIVE:
        assert int(third.status) == Status.MAX_STEPS and int(third.steps) == 1
    if hasattr(f, "_cache_size"):
        assert f._cache_size() == 1


@pytest.mark.parametrize("method", UNMASKED)
def test_empty_matrices(method):
    for shape in [(0, 0), (2, 0, 0)]:
        sol = run(np.zeros(shape), method)
        assert sol.X.shape == shape
        assert sol.residual.shape == sol.status.shape == shape[:-2]
        assert np.all(np.asarray(sol.status) == Status.SUCCESS)
        assert np.all(np.asarray(sol.residual) == 0.0)


@pytest.mark.parametrize("method", UNMASKED)
def test_one_by_one(method):
    sol = run(np.array([[4.0]]), method)
    assert sol.X.shape == (1, 1) and int(sol.status) == Status.SUCCESS
    np.testing.assert_allclose(abs(float(sol.X[0, 0])), 2.0, rtol=1e-12)
    neg = run(np.array([[-4.0]]), method)
    if method == "cholesky":
        assert int(neg.status) == Status.CHOLESKY_FAILED
    else:
        assert int(neg.status) == Status.NOT_PSD
        # the product to rounding (the iterative methods stop once X·Xᵀ has converged)
        np.testing.assert_allclose(np.asarray(neg.X @ neg.X.T), 0.0, atol=1e-14)
        np.testing.assert_allclose(float(neg.residual), 1.0)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.bool_])
def test_integer_and_bool_input_promoted(dtype):
    Y = np.random.default_rng(6).integers(-3, 4, size=(N, N))
    C = Y @ Y.T + N * np.eye(N, dtype=int) if dtype != np.bool_ else np.eye(N)
    sol = solve(C.astype(dtype), method="auto")
    assert jnp.issubdtype(sol.X.dtype, jnp.floating)
    assert sol.X.dtype == jnp.float64  # x64 is on in the tests
    assert int(sol.status) == Status.SUCCESS
    np.testing.assert_allclose(gram(sol.X), C, atol=1e-14)


def test_zero_matrix():
    for method in ("eigh", "sqrt", "auto"):
        sol = solve(np.zeros((N, N)), method=method)
        assert int(sol.status) == Status.SUCCESS and float(sol.residual) == 0.0
        np.testing.assert_array_equal(np.asarray(sol.X), 0.0)
    assert int(solve(np.zeros((N, N)), method="cholesky").status) == Status.CHOLESKY_FAILED


@pytest.mark.parametrize("method", CLOSED_FORMS)
def test_float32(method):
    C = jaxsolve.random_psd(N, cond=100, seed=5)
    sol = run(C.astype(np.float32), method)
    assert sol.X.dtype == sol.residual.dtype == jnp.float32
    assert int(sol.status) == Status.SUCCESS
    bound = 20 * N * eps(np.float32)
    assert rel_residual(sol.X, C.astype(np.float32)) < bound
    assert float(sol.residual) < bound


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "C, error",
    [
        (np.ones(3), ValueError),
        (np.ones((3, 4)), ValueError),
        (np.ones((2, 3, 4)), ValueError),
        (np.eye(3) * (1 + 1j), TypeError),
        (jnp.eye(3) * (1 + 1j), TypeError),
        (np.array([["a", "b"], ["c", "d"]]), TypeError),
        ([[1.0, 2.0], [3.0]], TypeError),
        (np.array([[None, 1], [1, None]]), TypeError),
    ],
    ids=["1d", "non-square", "batch-non-square", "complex", "jax-complex", "str", "ragged", "obj"],
)
def test_bad_C_raises_naming_C(C, error):
    with pytest.raises(error, match=r"\bC\b"):
        solve(C)


@pytest.mark.parametrize("rank", [0, N + 1, -1, 2.0, "2", True])
def test_bad_rank_raises_naming_rank(rank):
    with pytest.raises((TypeError, ValueError), match="rank"):
        solve(C_PD, method="eigh", rank=rank)


def test_rank_accepts_numpy_int():
    assert solve(C_PD, method="eigh", rank=np.int64(3)).X.shape == (N, 3)


def test_bad_method_and_options():
    with pytest.raises(ValueError, match="method"):
        solve(C_PD, method="lu")
    with pytest.raises(ValueError, match="method"):
        solve(C_PD, method=None)
    with pytest.raises(ValueError, match="rank"):
        solve(C_PD, method="cholesky", rank=3)
    with pytest.raises(ValueError, match="precision"):
        solve(C_PD, precision="float128")
    with pytest.raises(ValueError, match="x0"):
        solve(C_PD, method="gd", x0=np.ones((N, N - 1)))
    with pytest.raises(ValueError, match="x0"):
        solve(C_PD, method="precgd", rank=3, x0=np.ones((N, N)))
    with pytest.raises(TypeError, match="x0"):
        solve(C_PD, method="gd", x0=np.ones((N, N)) * 1j)
    with pytest.raises(TypeError, match="optimizer"):
        solve(C_PD, method="gd", optimizer=lambda g: g)
    with pytest.raises(TypeError, match="optimizer"):
        solve(C_PD, method="gd", optimizer=optax.adam)  # the factory, not a transform
    with pytest.raises(ValueError, match="optimizer"):
        solve(C_PD, method="eigh", optimizer=optax.sgd(0.1))
    with pytest.raises(TypeError, match="max_steps"):
        solve(C_PD, method="gd", max_steps=2.5)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_input_is_promoted_or_rejected_naming_C(dtype):
    C = jnp.asarray([[4.0, 2.0], [2.0, 3.0]], dtype)
    try:
        sol = solve(C, method="auto")
    except (TypeError, ValueError) as err:
        assert "C" in str(err)
    else:
        assert int(sol.status) == Status.SUCCESS


def test_x0_and_key_with_closed_form_are_rejected():
    with pytest.raises(ValueError, match="x0"):
        solve(C_PD, method="eigh", x0=np.ones((N, N)))
    with pytest.raises(ValueError, match="key"):
        solve(C_PD, method="sqrt", key=jax.random.PRNGKey(0))


# --- randomized ------------------------------------------------------------------------------


@settings(max_examples=6, deadline=None, derandomize=True)
@given(
    n=st.integers(1, 12),
    log_cond=st.floats(0.0, 12.0),
    seed=st.integers(0, 2**16),
    rank_fraction=st.sampled_from([None, 0.5, 1.0]),
    method=st.sampled_from(["eigh", "auto", "sqrt"]),
)
def test_random_psd_residual_bound(n, log_cond, seed, rank_fraction, method):
    """A backward-stable closed form has residual O(n·eps) whatever the condition number
    (it is X·Xᵀ that is compared, not X); PSD input is SUCCESS."""
    rank = None if rank_fraction is None else max(1, int(rank_fraction * n))
    C = jaxsolve.random_psd(n, cond=10.0**log_cond, rank=rank, seed=seed)
    sol = solve(C, method=method)
    assert int(sol.status) == Status.SUCCESS, sol.messages()
    bound = 20 * n * eps(np.float64)
    assert float(sol.residual) <= bound
    assert rel_residual(sol.X, C) <= bound


@settings(max_examples=5, deadline=None, derandomize=True)
@given(n=st.integers(1, 10), seed=st.integers(0, 2**16), scale=st.floats(1e-3, 1e3))
def test_random_general_matrix_gives_nearest_psd(n, seed, scale):
    C = scale * np.random.default_rng(seed).standard_normal((n, n))
    sol = solve(C, method="eigh")
    target = nearest_psd_ref(C)
    assert rel_error(gram(sol.X), target) < 100 * n * eps(np.float64) * max(
        1.0, np.linalg.norm(C) / max(np.linalg.norm(target), 1e-300)
    )
    expected = Status.SUCCESS if np.array_equal(C, C.T) else Status.NOT_SYMMETRIC
    if np.linalg.eigvalsh(sym(C)).min() < -1e-8 * np.abs(C).max():
        expected = max(expected, Status.NOT_PSD)
    assert int(sol.status) == expected


def test_solution_is_a_pytree():
    sol = solve(C_PD)
    leaves = jax.tree.leaves(sol)
    assert len(leaves) == 4
    assert isinstance(jax.tree.map(lambda x: x, sol), Solution)


_DEADLOCK_SCRIPT = """
import jax, jax.numpy as jnp, optax
jax.config.update("jax_enable_x64", True)
import jaxsolve
C = jnp.asarray(jaxsolve.random_psd(16, cond=100.0, seed=7, batch=(2, 300)))
C = C.at[1, 0].set(-C[1, 0])  # an indefinite matrix: auto's eigh branch runs
calls = [
    jax.vmap(lambda c: jaxsolve.solve(c, method="auto")),  # under vmap both branches run
    lambda c: jaxsolve.solve(c[0], method="precgd", max_steps=3),
    lambda c: jaxsolve.solve(c[0], method="gd", optimizer=optax.adam(0.01), max_steps=3),
    lambda c: jaxsolve.solve(c[0], method="precgd", rank=4, max_steps=3),
]
for call in calls:
    f = jax.jit(call)
    for _ in range(3):
        jax.block_until_ready(f(C))
print("done")
"""


def test_batched_lapack_calls_do_not_deadlock():
    """jaxlib < 0.11 on a two-core machine hangs when two batched LAPACK calls run at once
    (jaxsolve/_sequence.py): auto's Cholesky and eigh under vmap, precgd's per-step
    Cholesky factors and final PSD check, a custom optimizer's step beside the certifying
    one. Runs in a fresh process on two XLA threads, with a timeout."""
    import os
    import subprocess
    import sys

    env = dict(
        os.environ, XLA_FLAGS="--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads=2"
    )
    result = subprocess.run(
        [sys.executable, "-c", _DEADLOCK_SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "done" in result.stdout


# --- batches of closed forms equal single solves ------------------------------------------


def _mixed_batch(n: int, dtype, extreme: bool) -> np.ndarray:
    """PD, indefinite, clearly non-symmetric, rank-deficient, zero, NaN and Inf matrices in
    one batch; with ``extreme``, also one at an extreme scale."""
    G = np.random.default_rng(n).standard_normal((n, n))
    mats = [
        jaxsolve.random_psd(n, cond=1e3, seed=3),
        jaxsolve.random_psd(n, cond=10, negative=2, seed=4),
        jaxsolve.random_psd(n, cond=10, seed=5) + 0.1 * (G - G.T),
        G[:, :2] @ G[:, :2].T,
        np.zeros((n, n)),
        np.where(np.eye(n) > 0, np.nan, jaxsolve.random_psd(n, cond=10, seed=6)),
        np.full((n, n), np.inf),
        1e-3 * jaxsolve.random_psd(n, cond=100, seed=7),
    ]
    if extreme:
        mats.append((1e300 if dtype == np.float64 else 1e12) * jaxsolve.random_psd(n, seed=8))
    return np.stack(mats).astype(dtype)


@pytest.mark.parametrize(("dtype", "extreme"), [(np.float64, False), (np.float32, True)])
@pytest.mark.parametrize(
    ("method", "n", "rank"),
    [
        ("eigh", 5, None),
        ("sqrt", 5, None),
        ("auto", 5, 3),  # auto below full rank: eigh
        ("auto", 5, None),  # the unrolled Cholesky, then eigh for the failed ones
        ("cholesky", 12, None),
        ("auto", 12, None),
    ],
)
def test_closed_batch_equals_single_solves(method, n, rank, dtype, extreme):
    """A batch of closed forms gives what each matrix solved alone gives: statuses,
    residuals, X·Xᵀ, NaN for non-finite input; measure_residual too."""
    C = _mixed_batch(n, dtype, extreme)
    tol = 20 * n * eps(dtype)
    measure = extreme  # both residual modes, without doubling the compiles
    batch = solve(jnp.asarray(C), method=method, rank=rank, measure_residual=measure)
    # vmap traces solve on one matrix: the checked path, matrix by matrix
    singles = jax.vmap(lambda c: solve(c, method=method, rank=rank, measure_residual=measure))(C)
    np.testing.assert_array_equal(np.asarray(batch.status), np.asarray(singles.status))
    for i, c in enumerate(C):
        if not np.isfinite(c).all() or int(singles.status[i]) == Status.CHOLESKY_FAILED:
            assert np.isnan(batch.X[i]).all() and np.isnan(singles.X[i]).all()
            continue
        np.testing.assert_allclose(batch.residual[i], singles.residual[i], atol=tol, rtol=1e-3)
        scale = max(np.abs(c.astype(np.float64)).max(), 1e-300)
        assert np.abs(gram(batch.X[i]) / scale - gram(singles.X[i]) / scale).max() <= tol


def test_batch_gradient_equals_single_solves():
    """jax.grad through a batched solve equals that of single solves."""
    C = jnp.asarray(np.stack([jaxsolve.random_psd(5, cond=10, negative=1, seed=s) for s in (1, 2)]))

    def loss(C, method):
        sol = solve(C, method=method)
        return jnp.sum(jnp.sin(gram_of(sol.X))) + jnp.sum(sol.residual)

    def gram_of(X):
        return X @ jnp.swapaxes(X, -1, -2)

    for method in ("eigh", "sqrt"):
        grad = jax.jit(jax.grad(loss), static_argnums=1)
        singles = jax.vmap(grad, in_axes=(0, None))(C, method)
        np.testing.assert_allclose(grad(C, method), singles, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("n", [3, 12])
def test_auto_batch_of_pd_is_its_cholesky_and_mixed_batch_falls_back(n):
    """auto on a batch: Cholesky factors when every matrix is PD (the eigh branch is not
    taken), each failed one replaced by its eigh factor otherwise; gradients as singles."""
    pd = jnp.asarray(np.stack([jaxsolve.random_psd(n, cond=100, seed=s) for s in range(4)]))
    auto, chol = solve(pd, method="auto"), solve(pd, method="cholesky")
    np.testing.assert_array_equal(np.asarray(auto.X), np.asarray(chol.X))
    assert np.all(np.asarray(auto.status) == Status.SUCCESS)
    mixed = pd.at[2].set(jnp.asarray(jaxsolve.random_psd(n, cond=10, negative=1, seed=9)))
    sol = solve(mixed, method="auto")
    np.testing.assert_array_equal(np.asarray(sol.status), [0, 0, Status.NOT_PSD, 0])
    keep = np.array([0, 1, 3])
    np.testing.assert_array_equal(np.asarray(sol.X)[keep], np.asarray(chol.X)[keep])
    np.testing.assert_allclose(sol.X[2], solve(mixed[2], method="eigh").X, atol=1e-13)

    def loss(C):
        sol = solve(C, method="auto")
        return jnp.sum(jnp.cos(sol.X @ jnp.swapaxes(sol.X, -1, -2))) + jnp.sum(sol.residual)

    grad = jax.jit(jax.grad(loss))
    for C in (pd, mixed):
        singles = jax.vmap(grad)(C)
        np.testing.assert_allclose(grad(C), singles, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", ["eigh", "sqrt", "auto"])
def test_batch_gradient_finite_at_large_scales(method):
    """Gradients through a batch with a matrix at a large scale (its eigenvalues beyond
    1/eps, where lax.linalg.eigh's own derivative rule divides by (1 + λ) − λ = 0) equal
    single solves' in float32 and are finite."""
    A = np.array([[1.1, 0.1, 0.1], [0.1, 2.1, 0.1], [0.1, 0.1, 3.1]])
    rank = 2 if method == "auto" else None  # auto at rank < N: eigh first
    for scale in (1e8, 1e12):
        C = jnp.asarray(np.stack([A, A * scale]), jnp.float32)

        def loss(C, rank=rank):
            X = solve(C, method=method, rank=rank).X
            return jnp.sum(X**2)

        grad = jax.jit(jax.grad(loss))
        batched = np.asarray(grad(C))
        singles = np.asarray(jax.vmap(grad)(C))
        assert np.all(np.isfinite(batched)), (scale, batched)
        np.testing.assert_allclose(batched, singles, rtol=1e-4, atol=1e-5)
