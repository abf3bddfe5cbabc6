"""Completion from observed entries (jaxsolve._observed): against the dense mask path and
float64 NumPy references, statuses, jit, the compiled program's memory, bad input.

One observation pattern (N = 40, about 40 % of the pairs and the diagonal) serves most tests,
so that they share compiled programs: only the values change."""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import sparse

import jaxsolve
from jaxsolve import Status
from jaxsolve._observed import observed_entries, observed_pairs, observed_residual, solve_observed

N, K = 40, 3


def _factor(n=N, k=K, seed=0):
    return np.random.default_rng(seed).standard_normal((n, k))


def _pattern(n=N, rate=0.4, seed=1):
    """Symmetric boolean mask with its diagonal, and its upper-triangle (rows, cols)."""
    rng = np.random.default_rng(seed)
    M = np.triu(rng.random((n, n)) < rate)
    M = M | M.T | np.eye(n, dtype=bool)
    rows, cols = np.nonzero(np.triu(M))
    return M, rows, cols


M, ROWS, COLS = _pattern()


def _observed(C, rows=ROWS, cols=COLS):
    return observed_entries(rows, cols, C[rows, cols], C.shape[0])


def _gram(X):
    X = np.asarray(X, np.float64)
    return X @ X.T


def test_sparse_equals_dense_mask_and_recovers_the_matrix():
    Y = _factor()
    C = Y @ Y.T
    sparse_sol = solve_observed(_observed(C), rank=K)
    dense_sol = jaxsolve.solve(C, mask=M, rank=K, method="precgd")
    assert int(sparse_sol.status) == int(dense_sol.status) == Status.SUCCESS
    np.testing.assert_allclose(_gram(sparse_sol.X), _gram(dense_sol.X), atol=1e-9 * np.abs(C).max())
    # completion: the unobserved entries too, against the float64 truth
    np.testing.assert_allclose(_gram(sparse_sol.X), C, atol=1e-9 * np.abs(C).max())
    # the residual is the one on the observed entries, as NumPy computes it
    R = np.where(M, _gram(sparse_sol.X) - C, 0.0)
    ref = np.linalg.norm(R) / np.linalg.norm(np.where(M, C, 0.0))
    assert float(sparse_sol.residual) == pytest.approx(ref, rel=1e-3, abs=1e-14)
    assert float(sparse_sol.residual) < 1e-12
    assert float(observed_residual(sparse_sol.X, _observed(C))) < 1e-12


def test_gd_on_observed_entries():
    C = _gram(_factor(seed=2))
    sol = solve_observed(_observed(C), rank=K, method="gd")
    assert int(sol.status) == Status.SUCCESS
    np.testing.assert_allclose(_gram(sol.X), C, atol=1e-8 * np.abs(C).max())


def test_float32():
    C = _gram(_factor(seed=3)).astype(np.float32)
    sol = solve_observed(_observed(C), rank=K)
    assert sol.X.dtype == jnp.float32
    assert int(sol.status) == Status.SUCCESS
    eps = np.finfo(np.float32).eps
    np.testing.assert_allclose(_gram(sol.X), C, atol=100 * N * eps * np.abs(C).max())


def test_both_orientations_and_disagreement_across_the_diagonal():
    C = _gram(_factor(seed=4))
    off = ROWS != COLS
    rows = np.concatenate([ROWS, COLS[off]])
    cols = np.concatenate([COLS, ROWS[off]])
    # (i, j) and (j, i) both given, equal: the same problem as giving one
    both = solve_observed(_observed(C, rows, cols), rank=K)
    once = solve_observed(_observed(C), rank=K)
    assert int(both.status) == Status.SUCCESS
    np.testing.assert_allclose(_gram(both.X), _gram(once.X), atol=1e-9 * np.abs(C).max())
    # differing across the diagonal: the symmetric part is fitted, NOT_SYMMETRIC, and the
    # residual includes the skew part as for a dense C
    rng = np.random.default_rng(5)
    skew = 1e-3 * rng.standard_normal(C.shape)
    Cns = C + skew - skew.T
    sol = solve_observed(_observed(Cns, rows, cols), rank=K)
    dense = jaxsolve.solve(Cns, mask=M, rank=K, method="precgd")
    assert int(sol.status) == int(dense.status) == Status.NOT_SYMMETRIC
    np.testing.assert_allclose(_gram(sol.X), C, atol=1e-9 * np.abs(C).max())
    assert float(sol.residual) == pytest.approx(float(dense.residual), rel=1e-6)


def test_statuses_not_psd_and_non_finite_input():
    C = _gram(_factor(seed=6))
    C_bad = C - 10 * np.abs(C).max() * np.eye(N)  # negative observed diagonal: no PSD fit
    sol = solve_observed(_observed(C_bad), rank=K)
    dense = jaxsolve.solve(C_bad, mask=M, rank=K, method="precgd")
    assert int(sol.status) == int(dense.status) == Status.NOT_PSD
    C_nan = C.copy()
    C_nan[ROWS[3], COLS[3]] = np.nan
    sol = solve_observed(_observed(C_nan), rank=K)
    assert int(sol.status) == Status.NON_FINITE_INPUT
    assert np.isnan(np.asarray(sol.X)).all() and np.isnan(float(sol.residual))


def test_max_steps_status():
    C = _gram(_factor(seed=7))
    sol = solve_observed(_observed(C), rank=K, max_steps=2)
    assert int(sol.status) == Status.MAX_STEPS and int(sol.steps) == 2


def test_jit_memory_and_no_n_by_n_array():
    """Under jit (traced indices: the canonical form keeps its input's length) the program
    holds nothing of N² size and recovers the matrix."""
    n, k, per_row = 1009, 3, 15
    rng = np.random.default_rng(8)
    Y = rng.standard_normal((n, k))
    rows = np.repeat(np.arange(n), per_row)
    cols = rng.integers(0, n, rows.size)
    keep = np.unique(np.minimum(rows, cols) * n + np.maximum(rows, cols))
    rows, cols = keep // n, keep % n
    C = observed_entries(rows, cols, np.einsum("ij,ij->i", Y[rows], Y[cols]), n)
    jitted = jax.jit(lambda C: solve_observed(C, method="precgd", rank=k))
    compiled = jitted.lower(C).compile()
    # every array of the program, its element count: the largest are the pairs × (k + 10)
    # of the spectral start's sketch, far below N²
    shapes = re.findall(r"(?:f64|f32|s32|u32|pred)\[([\d,]+)\]", compiled.as_text())
    largest = max(math.prod(int(d) for d in s.split(",")) for s in shapes)
    assert largest <= rows.size * (k + 10) and largest < n * n / 4, largest
    stats = compiled.memory_analysis()
    if stats is not None:  # all temporaries together stay under one N×N float64 array
        assert stats.temp_size_in_bytes < n * n * 8, stats
    sol = compiled(C)
    assert int(sol.status) == Status.SUCCESS
    G = _gram(sol.X)
    # about 30 entries a row, rank 3: the held-out entries are recovered
    test = rng.integers(0, n, (2, 200))
    truth = np.einsum("ij,ij->i", Y[test[0]], Y[test[1]])
    np.testing.assert_allclose(G[test[0], test[1]], truth, atol=1e-6 * np.abs(truth).max())


def test_traced_out_of_range_index_is_a_status():
    C = _gram(_factor(seed=9))
    rows = ROWS.copy()
    rows[0] = N + 5
    entries = sparse.BCOO(
        (jnp.asarray(C[ROWS, COLS]), jnp.stack([jnp.asarray(rows), jnp.asarray(COLS)], 1)),
        shape=(N, N),
    )
    pairs = jax.jit(observed_pairs)(entries)
    assert not bool(pairs.valid)


def test_canonical_form():
    rows = np.array([2, 0, 1, 1, 0])
    cols = np.array([0, 2, 1, 0, 0])
    values = np.array([5.0, 5.0, 3.0, -1.0, 2.0])
    p = observed_pairs((rows, cols, values, 3))
    np.testing.assert_array_equal(p.rows, [0, 0, 0, 1])
    np.testing.assert_array_equal(p.cols, [0, 1, 2, 1])
    np.testing.assert_array_equal(p.values, [2.0, -1.0, 5.0, 3.0])
    np.testing.assert_array_equal(p.count, [1.0, 2.0, 2.0, 1.0])


def test_bad_input_raises_naming_the_argument():
    C = observed_entries([0, 1], [1, 1], [1.0, 2.0], 3)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, N\)"):
        solve_observed((np.array([0, 3]), np.array([0, 1]), np.ones(2), 3), rank=1)
    with pytest.raises(ValueError, match=r"indices must lie"):
        solve_observed((np.array([-1, 0]), np.array([0, 1]), np.ones(2), 3), rank=1)
    with pytest.raises(ValueError, match="more than once"):
        solve_observed((np.array([0, 0]), np.array([1, 1]), np.ones(2), 3), rank=1)
    with pytest.raises(TypeError, match="BCOO"):
        solve_observed(np.eye(3), rank=1)
    with pytest.raises(TypeError, match="rows"):
        solve_observed((np.array([0.5]), np.array([0]), np.ones(1), 3), rank=1)
    with pytest.raises(ValueError, match="one length"):
        solve_observed((np.array([0, 1]), np.array([0]), np.ones(2), 3), rank=1)
    with pytest.raises(ValueError, match="at least one"):
        solve_observed((np.array([], int), np.array([], int), np.ones(0), 3), rank=1)
    with pytest.raises(ValueError, match="BCOO"):
        solve_observed(sparse.BCOO.fromdense(jnp.ones((2, 3))), rank=1)
    with pytest.raises(ValueError, match="mask"):
        solve_observed(C, rank=1, mask=np.ones((3, 3)))
    with pytest.raises(ValueError, match="method"):
        solve_observed(C, rank=1, method="cholesky")
    with pytest.raises(ValueError, match="rank"):
        solve_observed(C, rank=4)
    with pytest.raises(ValueError, match="x0"):
        solve_observed(C, rank=1, x0=np.ones((3, 2)))
    with pytest.raises(ValueError, match="rtol"):
        solve_observed(C, rank=1, rtol=-1.0)
    with pytest.raises(ValueError, match="mesh"):
        solve_observed(C, rank=1, mesh="devices")


def test_gauss_newton_on_observed_entries_survives_ill_conditioning():
    """κ = 1e6 with few samples (3× the degrees of freedom): Gauss–Newton on the pairs
    recovers every entry; auto picks it at this size."""
    n, r = 150, 3
    rng = np.random.default_rng(12)
    U = np.linalg.qr(rng.standard_normal((n, r)))[0]
    C = (U * np.array([1.0, 1e-3, 1e-6])) @ U.T
    iu = np.triu_indices(n)
    pick = rng.choice(len(iu[0]), 3 * (n * r - 3), replace=False)
    observed = observed_entries(iu[0][pick], iu[1][pick], C[iu[0][pick], iu[1][pick]], n)
    for method in ("gauss_newton", "auto"):
        sol = solve_observed(observed, method=method, rank=r)
        assert int(sol.status) == Status.SUCCESS, method
        err = np.linalg.norm(_gram(sol.X) - C) / np.linalg.norm(C)
        assert err < 1e-6, (method, err)


def test_auto_takes_precgd_beyond_the_gauss_newton_workspace(monkeypatch):
    import jaxsolve._observed as observed_module

    C = _gram(_factor(seed=3))
    monkeypatch.setattr(observed_module, "GAUSS_NEWTON_WORKSPACE", 0)
    auto = solve_observed(_observed(C), rank=K)
    precgd = solve_observed(_observed(C), method="precgd", rank=K)
    assert int(auto.steps) == int(precgd.steps)
    np.testing.assert_array_equal(np.asarray(auto.X), np.asarray(precgd.X))


def test_gauss_newton_refuses_a_step_size():
    C = _observed(_gram(_factor()))
    with pytest.raises(ValueError, match="gauss_newton"):
        solve_observed(C, method="gauss_newton", learning_rate=0.1)
    with pytest.raises(ValueError, match="gauss_newton"):
        jaxsolve.solve(C, method="gauss_newton", optimizer=__import__("optax").sgd(0.1))


def test_gauss_newton_on_observed_entries_in_float32():
    Y = _factor(seed=5)
    C = (Y @ Y.T).astype(np.float32)
    sol = solve_observed(_observed(C), method="gauss_newton", rank=K)
    assert sol.X.dtype == jnp.float32 and int(sol.status) == Status.SUCCESS
    err = np.linalg.norm(_gram(sol.X) - Y @ Y.T) / np.linalg.norm(Y @ Y.T)
    assert err < 1e-4, err


def test_dense_only_entry_points_name_the_sparse_input():
    C = _observed(_gram(_factor()))
    for fn in (jaxsolve.nearest_psd, jaxsolve.sharded_solve):
        with pytest.raises(TypeError, match="dense array; got a sparse BCOO"):
            fn(C)
