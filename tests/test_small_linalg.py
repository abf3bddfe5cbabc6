"""The Cholesky factor of stacks (unrolled for tiny matrices, LAPACK above) against NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxsolve._closed_form import cholesky_lower, cholesky_succeeded
from jaxsolve._small_linalg import SMALL_N, unrolled_cholesky

SIZES = (1, 3, 8)
BATCHES = ((7,), (2, 3))


def random_spd(rng, batch, n, cond=1e3):
    """SPD matrices with eigenvalues log-spaced in [1/cond, 1] and a random basis."""
    Q, _ = np.linalg.qr(rng.standard_normal((*batch, n, n)))
    lam = np.logspace(0, -np.log10(cond), n)
    return (Q * lam) @ np.swapaxes(Q, -1, -2)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_unrolled_cholesky_equals_numpy(n, batch, dtype):
    """L·Lᵀ = A to rounding, L lower triangular and equal to NumPy's factor; only the lower
    triangle is read; jit equals eager."""
    A = random_spd(np.random.default_rng(n), batch, n).astype(dtype)
    L = np.asarray(jax.jit(unrolled_cholesky)(jnp.asarray(A)), np.float64)
    tol = 50 * n * np.finfo(dtype).eps
    ref = np.linalg.cholesky(A.astype(np.float64))
    assert np.abs(L - ref).max() <= tol * 1e3  # κ = 1e3 bounds the factor's sensitivity
    assert np.all(np.triu(L, 1) == 0)
    assert np.abs(L @ np.swapaxes(L, -1, -2) - A).max() <= tol
    junk = A + np.triu(np.full((n, n), 7.0, dtype), 1)
    np.testing.assert_allclose(
        np.asarray(unrolled_cholesky(jnp.asarray(junk)), np.float64), L, rtol=0, atol=tol
    )


def test_failures_are_per_matrix_and_gradients_stay_finite():
    """A matrix that is not PD gets NaN on and below its diagonal, zeros above, as
    lax.linalg.cholesky; the others are unaffected, and the gradient through the stack is
    the standard one for them and 0 (not NaN) for the failed one."""
    rng = np.random.default_rng(1)
    A = random_spd(rng, (3,), 4)
    A[1] = -A[1]
    L = np.asarray(cholesky_lower(jnp.asarray(A)))
    assert np.all(np.isnan(L[1][np.tril_indices(4)])) and np.all(np.triu(L[1], 1) == 0)
    np.testing.assert_allclose(L[[0, 2]], np.linalg.cholesky(A[[0, 2]]), rtol=1e-10)

    def loss(A):
        L = cholesky_lower(A)
        return jnp.sum(jnp.where(cholesky_succeeded(L)[:, None, None], L, 0.0) ** 2)

    grad = np.asarray(jax.grad(loss)(jnp.asarray(A)))
    assert np.all(np.isfinite(grad)) and np.all(grad[1] == 0)


@pytest.mark.parametrize("n", [3, SMALL_N + 4])  # the unrolled path and LAPACK's
def test_cholesky_lower_gradients(n):
    """Forward and reverse derivatives of the factor of sym(A) against finite differences,
    on both paths, for a single matrix and under vmap."""
    A = jnp.asarray(random_spd(np.random.default_rng(n), (), n, cond=10))

    def f(A):
        return cholesky_lower((A + A.T) / 2)

    check_grads(f, (A,), order=1, modes=["fwd", "rev"])
    stacked = jnp.stack([A, 2 * A])
    np.testing.assert_allclose(jax.vmap(f)(stacked), cholesky_lower(stacked), rtol=1e-12)


@pytest.mark.parametrize("n", [1, 3, 8, 12])
def test_cholesky_succeeded_on_failures_at_every_pivot(n):
    """cholesky_succeeded, on the factors that cholesky_lower gives (unrolled for n <= 8,
    LAPACK above; a stack, vmapped, and one matrix at a time), agrees with NumPy on which matrices
    are PD. A = L·D·Lᵀ with unit lower-triangular L has pivots D: a negative D[j] fails the
    factorisation exactly at pivot j (the first, a middle, the last), a zero D[j] is a
    PSD-singular pivot; also a NaN entry, and n = 0."""
    rng = np.random.default_rng(n)
    L = np.tril(rng.uniform(-0.5, 0.5, (n, n)), -1) + np.eye(n)
    fail_at = sorted({0, n // 2, n - 1})
    pivots = [rng.uniform(1, 2, n)]
    for j in fail_at:
        d = rng.uniform(1, 2, n)
        d[j] = -0.5
        pivots.append(d)
    singular = rng.uniform(1, 2, n)
    singular[n // 2] = 0.0
    pivots.append(singular)
    mats = [(L * d) @ L.T for d in pivots]
    with_nan = mats[0].copy()
    with_nan[n - 1, 0] = with_nan[0, n - 1] = np.nan
    mats = np.stack([*mats, with_nan])
    want = [True] + [False] * len(fail_at)
    batched = np.asarray(cholesky_succeeded(cholesky_lower(jnp.asarray(mats))))
    vmapped = np.asarray(cholesky_succeeded(jax.vmap(cholesky_lower)(jnp.asarray(mats))))
    np.testing.assert_array_equal(vmapped, batched)
    singles = np.array([bool(cholesky_succeeded(cholesky_lower(jnp.asarray(A)))) for A in mats])
    decided = len(want)  # the zero pivot may round either way
    for A, ok in zip(mats[:decided], want, strict=True):
        try:
            np.linalg.cholesky(A)
        except np.linalg.LinAlgError:
            assert not ok
        else:
            assert ok
    np.testing.assert_array_equal(batched[:decided], want)
    np.testing.assert_array_equal(singles[:decided], want)
    assert not batched[-1] and not singles[-1]  # NaN
    assert cholesky_succeeded(jnp.zeros((4, 0, 0))).tolist() == [True] * 4
