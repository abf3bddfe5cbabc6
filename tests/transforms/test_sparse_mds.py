"""sparse_mds: points placed from sparse observed distances, against the float64 truth and
NumPy's stress; statuses and bad input."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxsolve import Status
from jaxsolve.transforms import align, sparse_mds

N = 150


def _geometric_graph(n=N, degree=30, dim=3, seed=0):
    """Points in the unit cube and every pair closer than the radius of mean ``degree``."""
    rng = np.random.default_rng(seed)
    P = rng.random((n, dim))
    diff = P[:, None, :] - P[None, :, :]
    dist = np.sqrt((diff**2).sum(-1))
    radius = np.sort(dist, axis=1)[:, degree].mean()
    rows, cols = np.nonzero(np.triu(dist < radius, 1))
    return P, rows, cols, dist[rows, cols]


P, ROWS, COLS, DIST = _geometric_graph()


def _numpy_stress(Y, rows, cols, dist):
    Y = np.asarray(Y, np.float64)
    return float(np.sum((np.linalg.norm(Y[rows] - Y[cols], axis=1) - dist) ** 2))


def test_places_points_from_sparse_distances():
    res = sparse_mds((ROWS, COLS, DIST, N))
    assert int(res.status) == Status.SUCCESS
    assert float(align(res.Y, P, reflection=True).rmsd) < 1e-8
    assert float(res.stress) == pytest.approx(_numpy_stress(res.Y, ROWS, COLS, DIST), abs=1e-20)
    np.testing.assert_allclose(np.asarray(res.Y).mean(0), 0.0, atol=1e-12)


def test_scale_both_orientations_and_float32():
    rows, cols = np.concatenate([ROWS, COLS]), np.concatenate([COLS, ROWS])
    res = sparse_mds((rows, cols, 1e6 * np.concatenate([DIST, DIST]), N))
    assert int(res.status) == Status.SUCCESS
    assert float(align(res.Y, 1e6 * P, reflection=True).rmsd) < 1e-8 * 1e6
    res32 = sparse_mds((ROWS, COLS, DIST.astype(np.float32), N), max_steps=500)
    assert res32.Y.dtype == jnp.float32
    assert int(res32.status) in (Status.SUCCESS, Status.MAX_STEPS)
    assert float(align(res32.Y, P, reflection=True).rmsd) < 1e-3


def test_two_dimensions_with_init_and_noise():
    P2, rows, cols, dist = _geometric_graph(dim=2, degree=20, seed=1)
    noisy = dist * (1 + 1e-3 * np.random.default_rng(2).standard_normal(dist.shape))
    start = P2 + 0.01 * np.random.default_rng(3).standard_normal(P2.shape)
    res = sparse_mds((rows, cols, noisy, N), dim=2, init=start)
    assert int(res.status) == Status.SUCCESS
    # stationary: the stress at the answer is below that of the true points
    assert float(res.stress) <= _numpy_stress(P2, rows, cols, noisy)
    assert float(align(res.Y, P2, reflection=True, dim=2).rmsd) < 1e-2


def test_statuses_and_bad_input():
    bad = DIST.copy()
    bad[0] = np.nan
    res = sparse_mds((ROWS, COLS, bad, N), max_steps=5, check=False)
    assert int(res.status) == Status.NON_FINITE_INPUT and np.isnan(np.asarray(res.Y)).all()
    with pytest.raises(ValueError, match="finite, non-negative"):
        sparse_mds((ROWS, COLS, bad, N))
    bad[0] = -1.0
    with pytest.raises(ValueError, match=r"D\[0, \d+\] = -1.0"):
        sparse_mds((ROWS, COLS, bad, N))
    res = sparse_mds((ROWS, COLS, bad, N), max_steps=5, check=False)
    assert int(res.status) >= Status.NOT_PSD  # (MAX_STEPS, the more severe, at 5 steps)
    with pytest.raises(ValueError, match="init"):
        sparse_mds((ROWS, COLS, DIST, N), init=np.zeros((N, 2)))
    with pytest.raises(ValueError, match="landmarks"):
        sparse_mds((ROWS, COLS, DIST, N), landmarks=2)
    with pytest.raises(ValueError, match="indices"):
        sparse_mds((ROWS, COLS + N, DIST, N))
    with pytest.raises(ValueError, match="gtol"):
        sparse_mds((ROWS, COLS, DIST, N), gtol=-1.0)
