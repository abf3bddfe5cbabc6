"""Dense rank-k precgd (block Rayleigh–Ritz, ``jaxsolve/_lowrank.py``): the optimal rank-k
objective against NumPy's eigh, Krylov speed, statuses, starts, float32, jit and vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import best_rank_k_psd_ref, best_rank_k_residual, gram, rel_error

import jaxsolve
from jaxsolve import Status

N, K = 60, 4


def solve(C, rank=K, **options):
    return jaxsolve.solve(C, method="precgd", rank=rank, **options)


def with_spectrum(lam, seed=0):
    """Q·diag(λ)·Qᵀ for a random orthogonal Q."""
    n = len(lam)
    Q = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))[0]
    C = (Q * np.asarray(lam, np.float64)) @ Q.T
    return (C + C.T) / 2


def gapped(n, k, g, seed=0):
    """The benchmark's spectrum: top k log-spaced 1 → 0.01, then a tail from g·λ_k falling
    linearly to 5 % of that."""
    top = np.geomspace(1.0, 0.01, k)
    return with_spectrum(
        np.concatenate([top, np.linspace(g * top[-1], 0.05 * g * top[-1], n - k)]), seed
    )


def assert_optimal(sol, C, k, rtol=1e-10):
    """SUCCESS, or NOT_PSD where C has an eigenvalue below −tol·λ_max (tol = 10·N·eps, the
    closed forms' rule), and the optimal objective, measured and reported."""
    lam = np.linalg.eigvalsh(C)
    psd = lam[0] >= -10 * len(C) * np.finfo(np.float64).eps * max(lam[-1], 0.0)
    assert int(sol.status) == (Status.SUCCESS if psd else Status.NOT_PSD), int(sol.status)
    optimum = best_rank_k_residual(C, k)
    np.testing.assert_allclose(float(sol.residual), optimum, rtol=rtol, atol=rtol)
    X = np.asarray(sol.X, np.float64)
    np.testing.assert_allclose(
        np.linalg.norm(X @ X.T - C) / np.linalg.norm(C), optimum, rtol=rtol, atol=rtol
    )


@pytest.mark.parametrize("k", [1, K, 28])  # 28: two phases (locking_split)
def test_matches_numpy_eigh(k):
    from jaxsolve._lowrank import GUARD_VECTORS, locking_split

    assert (locking_split(k, k + GUARD_VECTORS + 1) > 0) == (k == 28)
    C = gapped(N, k, 0.9, seed=k)
    sol = solve(C, rank=k)
    assert sol.X.shape == (N, k)
    assert_optimal(sol, C, k)
    assert rel_error(gram(sol.X), best_rank_k_psd_ref(C, k)) < 1e-9


def test_krylov_speed():
    """Steps grow like 1/sqrt(1 − λ_{k+1}/λ_k): from g = 0.9 to 0.99 (10× the steps of
    subspace iteration, which needs about 2,500 at 0.99) at most 4× the steps."""
    steps = {}
    for g in (0.9, 0.99):
        C = gapped(N, K, g, seed=3)
        sol = solve(C)
        assert int(sol.status) == Status.SUCCESS
        assert float(sol.residual) - best_rank_k_residual(C, K) <= 1e-10
        steps[g] = int(sol.steps)
    assert steps[0.99] <= 4 * steps[0.9] and steps[0.99] <= 100, steps


def test_float32():
    C = gapped(N, K, 0.5, seed=1).astype(np.float32)
    sol = solve(C)
    assert sol.X.dtype == jnp.float32
    assert int(sol.status) == Status.SUCCESS
    optimum = best_rank_k_residual(C.astype(np.float64), K)
    assert abs(float(sol.residual) - optimum) <= 1e-5
    assert rel_error(gram(sol.X), best_rank_k_psd_ref(C.astype(np.float64), K)) < 1e-3


def test_jit_and_vmap_equal_single_solves():
    C = np.stack([gapped(N, K, g, seed=i) for i, g in enumerate((0.5, 0.9, 0.7))])
    batch = jax.jit(lambda c: solve(c))(C)
    for i in range(len(C)):
        one = solve(C[i])
        assert int(batch.status[i]) == int(one.status) == Status.SUCCESS
        np.testing.assert_allclose(gram(batch.X[i]), gram(one.X), atol=1e-10)
        np.testing.assert_allclose(float(batch.residual[i]), float(one.residual), rtol=1e-10)


def test_repeated_eigenvalues_at_the_cut():
    """λ_k = λ_{k+1} = λ_{k+2}: any k-th vector from that eigenspace is optimal."""
    lam = np.concatenate([[1.0, 0.7, 0.5, 0.3, 0.3, 0.3], np.linspace(0.2, 0.01, N - 6)])
    C = with_spectrum(lam, seed=5)
    sol = solve(C)
    assert_optimal(sol, C, K)


def test_indefinite_is_not_psd_with_the_best_psd_answer():
    lam = np.concatenate([[1.0, 0.6, 0.4, 0.2, 0.1], np.linspace(0.05, 0.01, N - 7), [-0.3, -0.8]])
    C = with_spectrum(lam, seed=6)
    sol = solve(C)
    assert int(sol.status) == Status.NOT_PSD
    assert_optimal(sol, C, K)


def test_fewer_than_k_positive_eigenvalues():
    """Rank 2 PSD: the factor has two columns of zeros' worth, SUCCESS at residual ≈ 0;
    with negative eigenvalues beside them, NOT_PSD and the clipped answer."""
    Y = np.random.default_rng(7).standard_normal((N, 2))
    C = Y @ Y.T
    sol = solve(C)
    assert int(sol.status) == Status.SUCCESS and float(sol.residual) <= 1e-12
    lam = np.concatenate([[1.0, 0.5], np.zeros(N - 4), [-0.2, -0.6]])
    C = with_spectrum(lam, seed=8)
    sol = solve(C)
    assert int(sol.status) == Status.NOT_PSD
    assert_optimal(sol, C, K)


def test_zero_matrix():
    sol = solve(np.zeros((N, N)))
    assert int(sol.status) == Status.SUCCESS and int(sol.steps) == 0
    assert float(sol.residual) == 0.0 and np.all(np.asarray(sol.X) == 0.0)


def test_x0_is_the_start():
    C = gapped(N, K, 0.9, seed=9)
    lam, V = np.linalg.eigh(C)
    exact = V[:, -K:] * np.sqrt(lam[-K:])
    at_answer = solve(C, x0=exact)
    assert int(at_answer.status) == Status.SUCCESS and int(at_answer.steps) == 0
    for x0 in (np.zeros((N, K)), exact + 1e-3):
        assert_optimal(solve(C, x0=x0), C, K)


def test_max_steps():
    C = gapped(N, K, 0.99, seed=10)
    for cap in (0, 3):
        sol = solve(C, max_steps=cap)
        assert int(sol.status) == Status.MAX_STEPS and int(sol.steps) == cap


def test_orthonormal_columns_drop_dependent_directions():
    from jaxsolve._lowrank import orthonormal_columns

    rng = np.random.default_rng(11)
    A = rng.standard_normal((40, 3))
    W = np.concatenate([A, A @ rng.standard_normal((3, 2)), np.zeros((40, 1))], axis=1)
    Q, kept = orthonormal_columns(jnp.asarray(W))
    Q, kept = np.asarray(Q), np.asarray(kept)
    assert kept.sum() == 3
    np.testing.assert_allclose(Q[:, kept].T @ Q[:, kept], np.eye(3), atol=1e-13)
    assert np.all(Q[:, ~kept] == 0)
    P = Q[:, kept] @ Q[:, kept].T  # the projector onto span(A)
    np.testing.assert_allclose(P @ A, A, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_start_without_the_positive_eigenvectors_is_not_an_answer(dtype):
    # x0 an exact eigenvector of a negative eigenvalue: X = 0 is stationary there, yet the
    # best rank-1 factor is that of the one positive eigenvalue
    Q = np.linalg.qr(np.random.default_rng(11).standard_normal((3, 3)))[0]
    C = ((Q * np.array([-1.0, -0.4, 0.2])) @ Q.T).astype(dtype)
    for x0 in (None, Q[:, :1]):
        sol = solve(C, rank=1, x0=None if x0 is None else x0.astype(dtype))
        assert int(sol.status) == Status.NOT_PSD
        X = np.asarray(sol.X, np.float64)
        expected = 0.2 * np.outer(Q[:, 2], Q[:, 2])
        np.testing.assert_allclose(X @ X.T, expected, atol=1e-5 if dtype == np.float32 else 1e-12)


def test_more_columns_than_positive_eigenvalues():
    """Three positive eigenvalues, rank 8: a random start's Ritz values are all negative
    (X = 0 is stationary there); the answer is the factor of the three, as eigh's."""
    n = 200
    lam = np.concatenate([[3.0, 2.0, 1.0], -np.linspace(0.01, 1.0, n - 3)])
    C = with_spectrum(lam, seed=13)
    sol = solve(C, rank=8)
    assert int(sol.status) == Status.NOT_PSD
    ref = jaxsolve.solve(C, method="eigh", rank=8).X
    np.testing.assert_allclose(gram(sol.X), gram(ref), atol=1e-9)
