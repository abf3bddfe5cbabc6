"""PSD completion by Riemannian Gauss–Newton (jaxsolve._completion): recovery, dtypes,
jit/vmap, statuses."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsolve
from jaxsolve import Status
from jaxsolve._completion import completion_factor
from jaxsolve._iterative import IterOptions

N, RANK = 40, 3


def problem(kappa, rho, seed, n=N, r=RANK):
    """Ground truth C (scaled: largest entry 1), symmetric 0/1 mask W with ρ·(n·r − r(r−1)/2)
    observed pairs (diagonal included)."""
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((n, r)))
    C = (U * np.geomspace(1, 1 / kappa, r)) @ U.T
    C /= np.abs(C).max()
    iu = np.triu_indices(n)
    pick = rng.choice(len(iu[0]), int(rho * (n * r - r * (r - 1) / 2)), replace=False)
    W = np.zeros((n, n))
    W[iu[0][pick], iu[1][pick]] = 1
    return C, np.maximum(W, W.T)


@functools.cache
def solver():
    """One jitted solve: tolerances and max_steps traced (compiled once per dtype)."""

    def fn(S, W, max_steps):
        eps = jnp.finfo(S.dtype).eps
        tol = 4 * np.sqrt(N) * eps
        opts = IterOptions(
            jnp.asarray(2.5 * tol, S.dtype), jnp.asarray(tol, S.dtype), max_steps, None
        )
        return completion_factor(S, W, None, jax.random.PRNGKey(0), rank=RANK, opts=opts)

    return jax.jit(fn)


def run(C, W, dtype=np.float64, max_steps=100):
    S, W = jnp.asarray(W * C, dtype), jnp.asarray(W, dtype)
    return solver()(S, W, jnp.asarray(max_steps, jnp.int32))


def rel_error(X, C):
    X = np.asarray(X, np.float64)
    return np.linalg.norm(X @ X.T - C) / np.linalg.norm(C)


@pytest.mark.parametrize("kappa", [1.0, 1e6])
def test_recovers_ground_truth_float64(kappa):
    C, W = problem(kappa, 3, seed=1)
    X, status, steps, lost = run(C, W)
    assert int(status) == Status.SUCCESS
    assert 0 < int(steps) < 60
    assert rel_error(X, C) < 1e-9
    ref = np.sqrt(np.sum(W * (np.asarray(X) @ np.asarray(X).T - C) ** 2))
    np.testing.assert_allclose(float(lost), ref, rtol=1e-6, atol=1e-14)


def test_float32():
    C, W = problem(10.0, 4, seed=2)
    X, status, _, _ = run(C, W, np.float32)
    assert X.dtype == jnp.float32
    assert int(status) == Status.SUCCESS
    assert rel_error(X, C) < 1e-4


def test_vmap_equals_loop():
    probs = [problem(100.0, 4, seed=s) for s in (3, 4)]
    S = jnp.stack([W * C for C, W in probs])
    W = jnp.stack([W for _, W in probs])
    Xb, sb, _, _ = jax.vmap(solver(), in_axes=(0, 0, None))(S, W, jnp.asarray(100, jnp.int32))
    for i, (C, Wi) in enumerate(probs):
        X, s, _, _ = run(C, Wi)
        assert int(sb[i]) == int(s) == Status.SUCCESS
        np.testing.assert_allclose(np.asarray(Xb[i] @ Xb[i].T), np.asarray(X @ X.T), atol=1e-9)


def test_max_steps():
    C, W = problem(1e3, 3, seed=5)
    _, status, steps, _ = run(C, W, max_steps=1)
    assert int(status) == Status.MAX_STEPS
    assert int(steps) == 1


def test_non_finite():
    C, W = problem(1.0, 3, seed=6)
    C = C.copy()
    i, j = np.argwhere(W > 0)[0]
    C[i, j] = C[j, i] = np.nan
    _, status, _, _ = run(C, W)
    assert int(status) == Status.NON_FINITE


def test_observed_entries_equal_the_dense_mask():
    """The same method on the list of observed pairs (``solve`` of a BCOO, where ``auto``
    picks it at this size) recovers the matrix where the dense mask does, in about as many
    steps."""
    C, W = problem(1e3, 3, seed=7)
    _, sd, kd, _ = run(C, W)
    rows, cols = np.nonzero(np.triu(W))
    observed = jaxsolve.observed_entries(rows, cols, C[rows, cols], N)
    sol = jaxsolve.solve(observed, rank=RANK)
    assert int(sd) == int(sol.status) == Status.SUCCESS
    assert abs(int(kd) - int(sol.steps)) <= 0.25 * int(kd) + 2
    assert rel_error(sol.X, C) < 1e-9


def test_not_psd():
    """Fully observed negative definite target: no PSD matrix fits it."""
    C = -np.eye(N) - 0.1
    W = np.ones((N, N))
    _, status, _, _ = run(C, W)
    assert int(status) == Status.NOT_PSD


def test_noisy_target_converges_to_the_stationary_point():
    """With noise the misfit levels off above the fresh-fit phase's threshold: the steps
    then turn to corrections and certify the stationary point (the one precgd finds)."""
    rng = np.random.default_rng(21)
    Y = rng.standard_normal((N, RANK))
    E = rng.standard_normal((N, N))
    C = Y @ Y.T + 1e-2 * (E + E.T)
    _, W = problem(1.0, 5, seed=21)
    X, status, steps, _ = run(C, W, max_steps=60)
    assert int(status) == Status.SUCCESS and int(steps) < 30
    ref = jaxsolve.solve(C, mask=W, method="precgd", rank=RANK, max_steps=3000)
    assert int(ref.status) == Status.SUCCESS
    G, G_ref = np.asarray(X) @ np.asarray(X).T, np.asarray(ref.X) @ np.asarray(ref.X).T
    assert np.linalg.norm(G - G_ref) <= 1e-8 * np.linalg.norm(G_ref)
