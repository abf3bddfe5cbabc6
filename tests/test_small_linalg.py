"""Unrolled Cholesky / SPD solve for tiny matrices against NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxsolve
from jaxsolve._small_linalg import (
    SMALL_N,
    cho_solve_lower,
    cho_solve_vector_batch_last,
    cholesky_lower,
    cholesky_rows_batch_last,
    log_det_and_times_inverse_transpose_batch_last,
    small_cho_solve,
    small_cholesky,
    small_spd_solve,
    spd_solve,
    use_small,
)

SIZES = (1, 2, 3, 5, 8)
BATCHES = ((), (7,), (2, 3))

# Module-level jitted functions: each (shape, dtype) compiles once for the whole file.
chol_jit = jax.jit(small_cholesky)
solve_jit = jax.jit(small_spd_solve)


def random_spd(rng, batch, n, cond=1e3):
    """SPD matrices with eigenvalues log-spaced in [1/cond, 1] and a random basis."""
    Q, _ = np.linalg.qr(rng.standard_normal((*batch, n, n)))
    lam = np.logspace(0, -np.log10(cond), n)
    return (Q * lam) @ np.swapaxes(Q, -1, -2)


def norm(X):
    return np.linalg.norm(X, axis=(-2, -1), keepdims=True)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("batch", BATCHES)
def test_cholesky_and_solve_float64(n, batch):
    rng = np.random.default_rng(n)
    for cond in (1.0, 1e4, 1e8):
        A = random_spd(rng, batch, n, cond)
        B = rng.standard_normal((*batch, n, 3))
        L = np.asarray(chol_jit(A))
        assert L.shape == A.shape and L.dtype == np.float64
        np.testing.assert_array_equal(np.triu(L, 1), 0)
        assert np.all(np.abs(L @ np.swapaxes(L, -1, -2) - A) <= 1e-12 * norm(A))
        np.testing.assert_allclose(L, np.linalg.cholesky(A), rtol=0, atol=1e-7 * norm(L).max())
        X = np.asarray(solve_jit(A, B))
        # backward error is tiny whatever the condition; forward error scales with it
        assert np.all(np.abs(A @ X - B) <= 1e-12 * norm(A) * norm(X))
        ref = np.linalg.solve(A, B)
        assert np.all(np.abs(X - ref) <= 1e-12 * cond * norm(ref))


@pytest.mark.parametrize("n", SIZES)
def test_float32(n):
    rng = np.random.default_rng(10 + n)
    A = random_spd(rng, (7,), n, cond=1e2)
    B = rng.standard_normal((7, n, 2))
    eps = np.finfo(np.float32).eps
    L = chol_jit(jnp.asarray(A, jnp.float32))
    X = solve_jit(jnp.asarray(A, jnp.float32), jnp.asarray(B, jnp.float32))
    assert L.dtype == jnp.float32 and X.dtype == jnp.float32
    L, X = np.asarray(L, np.float64), np.asarray(X, np.float64)
    assert np.all(np.abs(L @ np.swapaxes(L, -1, -2) - A) <= 10 * n * eps * norm(A))
    ref = np.linalg.solve(A, B)
    assert np.all(np.abs(X - ref) <= 10 * n * eps * 1e2 * norm(ref))


def test_failures_are_per_matrix():
    rng = np.random.default_rng(1)
    A = random_spd(rng, (4,), 5)
    A[1, 3, 3] = -1.0  # indefinite
    A[2, 4, 1] = np.nan  # NaN in the lower triangle
    B = rng.standard_normal((4, 5, 2))
    L, X = np.asarray(chol_jit(A)), np.asarray(solve_jit(A, B))
    lower = np.tri(5, dtype=bool)
    for bad in (1, 2):
        assert np.all(np.isnan(L[bad][lower])) and np.all(L[bad][~lower] == 0)
        assert np.all(np.isnan(X[bad]))
    for good in (0, 3):
        np.testing.assert_allclose(L[good], np.linalg.cholesky(A[good]), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(X[good], np.linalg.solve(A[good], B[good]), rtol=1e-10)
    # same failure pattern as jax.lax.linalg.cholesky for the indefinite matrix (for the NaN
    # one CPU LAPACK returns a partly-NaN factor with success; here a NaN pivot is a failure)
    ref = np.asarray(jax.lax.linalg.cholesky(jnp.asarray(A[:2]), symmetrize_input=False))
    np.testing.assert_array_equal(np.isnan(L[:2]), np.isnan(ref))
    # a zero pivot (PSD, singular) fails too
    assert np.all(np.isnan(np.asarray(chol_jit(np.zeros((3, 3))))[np.tri(3, dtype=bool)]))


def test_reads_only_lower_triangle():
    rng = np.random.default_rng(2)
    A = random_spd(rng, (7,), 5)
    B = rng.standard_normal((7, 5, 2))
    garbage = A.copy()
    upper = np.triu(np.ones((5, 5), bool), 1)
    garbage[:, upper] = np.nan
    garbage[0, upper] = 1e30
    np.testing.assert_array_equal(np.asarray(chol_jit(garbage)), np.asarray(chol_jit(A)))
    np.testing.assert_array_equal(np.asarray(solve_jit(garbage, B)), np.asarray(solve_jit(A, B)))
    L = np.asarray(chol_jit(A))
    np.testing.assert_array_equal(
        np.asarray(small_cho_solve(L + np.where(upper, np.nan, 0.0), B)),
        np.asarray(small_cho_solve(L, B)),
    )


def test_jit_equals_eager_and_vmap_equals_loop():
    rng = np.random.default_rng(3)
    A = random_spd(rng, (2, 3), 3)  # small n: eager runs the unrolled code op by op
    B = rng.standard_normal((2, 3, 3, 2))
    np.testing.assert_allclose(small_cholesky(A), chol_jit(A), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(small_spd_solve(A, B), solve_jit(A, B), rtol=1e-12, atol=0)
    vm = jax.vmap(small_spd_solve)(A[0], B[0])
    loop = np.stack([np.asarray(small_spd_solve(A[0, i], B[0, i])) for i in range(3)])
    np.testing.assert_allclose(vm, loop, rtol=1e-12, atol=0)
    np.testing.assert_allclose(jax.vmap(small_cholesky)(A[0]), chol_jit(A[0]), rtol=1e-13)


def test_broadcast_batch_and_vector_rhs():
    rng = np.random.default_rng(4)
    A = random_spd(rng, (7,), 3)
    B = rng.standard_normal((3, 4))  # one B shared by the batch
    X = np.asarray(small_spd_solve(A, B))
    assert X.shape == (7, 3, 4)
    np.testing.assert_allclose(X, np.linalg.solve(A, np.broadcast_to(B, (7, 3, 4))), rtol=1e-10)
    b = rng.standard_normal((7, 3))
    x = np.asarray(small_spd_solve(A, b[..., None])[..., 0])
    np.testing.assert_allclose(x, np.linalg.solve(A, b[..., None])[..., 0], rtol=1e-10)


def test_gradients_match_jnp_solve_and_are_finite():
    rng = np.random.default_rng(5)
    G = random_spd(rng, (3,), 3, cond=10.0)
    b = rng.standard_normal((3, 3, 1))
    w = rng.standard_normal((3, 3, 1))

    def loss(solve, G, b):
        # symmetrise so both solvers see the same function of the free entries
        G = (G + jnp.swapaxes(G, -1, -2)) / 2
        return jnp.sum(w * solve(G, b))

    got = jax.jit(jax.grad(lambda G, b: loss(small_spd_solve, G, b), argnums=(0, 1)))(G, b)
    want = jax.grad(lambda G, b: loss(jnp.linalg.solve, G, b), argnums=(0, 1))(G, b)
    for g, r in zip(got, want, strict=True):
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12)
    # finite differences on the factor itself
    check_grads(chol_jit, (G,), order=1, modes=("rev",))


def test_no_nan_gradient_leaks_from_failed_matrix():
    rng = np.random.default_rng(6)
    G = random_spd(rng, (3,), 3)
    G[1, 1, 1] = -5.0  # indefinite: its X is NaN, the others must keep finite gradients
    b = rng.standard_normal((3, 3, 1))

    def loss(G):
        X = small_spd_solve(G, b)
        return jnp.sum(jnp.where(jnp.isnan(X), 0.0, X))

    g = np.asarray(jax.jit(jax.grad(loss))(G))
    assert np.all(np.isfinite(g))
    g_ok = np.asarray(jax.jit(jax.grad(lambda G: jnp.sum(solve_jit(G, b[[0, 2]]))))(G[[0, 2]]))
    np.testing.assert_allclose(g[[0, 2]], g_ok, rtol=1e-12, atol=1e-14)


def test_use_small_and_bad_inputs():
    assert SMALL_N >= 3
    assert use_small(1) and use_small(SMALL_N)
    assert not use_small(0) and not use_small(SMALL_N + 1)
    with pytest.raises(ValueError, match="SMALL_N"):
        small_cholesky(np.eye(SMALL_N + 1))
    with pytest.raises(ValueError, match=r"\(\.\.\., n, n\)"):
        small_cholesky(np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"\(\.\.\., n, m\)"):
        small_cho_solve(np.eye(3), np.ones(3))
    with pytest.raises(ValueError, match="broadcast"):
        small_cho_solve(np.broadcast_to(np.eye(3), (2, 3, 3)), np.ones((5, 3, 1)))
    with pytest.raises(TypeError, match="complex"):
        small_cholesky(np.eye(2, dtype=np.complex64))
    assert small_cholesky(np.zeros((0, 2, 2))).shape == (0, 2, 2)
    # integers promote to the default float, 1x1 works
    np.testing.assert_allclose(small_cholesky(np.array([[4]])), [[2.0]])


# --- cholesky_lower: one matrix, batched by custom_vmap, differentiated by custom_jvp ------


def test_cholesky_lower_single_vmapped_and_gradients():

    A = jnp.asarray(jaxsolve.random_psd(5, cond=100.0, seed=3, batch=(4,)))
    expected = np.linalg.cholesky(np.asarray(A))
    np.testing.assert_allclose(
        np.asarray(jax.jit(jax.vmap(cholesky_lower))(A)), expected, atol=1e-13
    )
    np.testing.assert_allclose(np.asarray(cholesky_lower(A[0])), expected[0], atol=1e-13)

    def loss(fn, M):
        return jnp.sum(jnp.sin(fn(M)))

    reference = jax.grad(lambda M: loss(jnp.linalg.cholesky, M))(A[0])
    single = jax.grad(lambda M: loss(cholesky_lower, M))(A[0])

    # the reference symmetrises its input; ours reads the lower triangle: compare on
    # symmetric directions
    def sym(G):
        return (G + G.T) / 2

    np.testing.assert_allclose(np.asarray(sym(single)), np.asarray(sym(reference)), atol=1e-10)
    batched = jax.grad(lambda B: loss(jax.vmap(cholesky_lower), B))(A)
    np.testing.assert_allclose(np.asarray(sym(batched[0])), np.asarray(sym(reference)), atol=1e-10)


@pytest.mark.parametrize("n", [3, 8, 12])  # 12: above SMALL_N, the LAPACK path under vmap
def test_spd_solve_single_vmapped_broadcast_and_gradients(n):
    rng = np.random.default_rng(n)
    G = jnp.asarray(jaxsolve.random_psd(n, cond=100.0, seed=n, batch=(5,)))
    B = jnp.asarray(rng.standard_normal((5, n, 2)))
    expected = np.linalg.solve(np.asarray(G), np.asarray(B))
    np.testing.assert_allclose(np.asarray(spd_solve(G[0], B[0])), expected[0], rtol=1e-10)
    np.testing.assert_allclose(np.asarray(jax.jit(jax.vmap(spd_solve))(G, B)), expected, rtol=1e-10)
    # one side batched, the other shared
    np.testing.assert_allclose(
        np.asarray(jax.vmap(spd_solve, in_axes=(0, None))(G, B[0])),
        np.linalg.solve(np.asarray(G), np.asarray(B[0])),
        rtol=1e-10,
    )
    np.testing.assert_allclose(
        np.asarray(jax.vmap(spd_solve, in_axes=(None, 0))(G[0], B)),
        np.linalg.solve(np.asarray(G[0]), np.asarray(B)),
        rtol=1e-10,
    )

    # derivatives in both arguments, single and under vmap (symmetric directions for G)
    def loss(G, B):
        return jnp.sum(jnp.sin(jax.vmap(spd_solve)(G, B)))

    def reference(G, B):
        return jnp.sum(jnp.sin(jnp.linalg.solve(G, B)))

    for argnum in (0, 1):
        got = jax.grad(loss, argnums=argnum)(G, B)
        want = jax.grad(reference, argnums=argnum)(G, B)
        if argnum == 0:
            got, want = got + got.mT, want + want.mT
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-8, atol=1e-10)
    check_grads(lambda B: cho_solve_lower(cholesky_lower(G[0]), B), (B[0],), order=2)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batch_last_newton_kernels_match_numpy(n, dtype):
    """The tiny-batch Newton loop's kernels, batch-last (n, n, b): S·X⁻ᵀ and log|det X| by
    unpivoted elimination for X near SPD (the Newton iterates), and (L·Lᵀ)⁻¹·v from the
    unrolled factor's rows."""
    rng = np.random.default_rng(n)
    S = random_spd(rng, (6,), n, cond=1e2)
    X = S + 1e-2 * rng.standard_normal(S.shape)
    last = lambda a: jnp.asarray(np.moveaxis(a, 0, -1).astype(dtype))  # noqa: E731
    log_det, Y = jax.jit(log_det_and_times_inverse_transpose_batch_last)(last(X), last(S))
    Y_ref = S @ np.linalg.inv(np.swapaxes(X, -1, -2))
    tol = 1e3 * np.finfo(dtype).eps
    np.testing.assert_allclose(
        np.moveaxis(np.asarray(Y), -1, 0), Y_ref, atol=tol * np.abs(Y_ref).max()
    )
    np.testing.assert_allclose(log_det, np.linalg.slogdet(X)[1], atol=tol * n)
    rows, ok = cholesky_rows_batch_last(last(S))
    assert bool(np.all(ok))
    v = rng.standard_normal((6, n))
    w = cho_solve_vector_batch_last(rows, jnp.asarray(v.T.astype(dtype)))
    w_ref = np.linalg.solve(S, v[..., None])[..., 0]
    np.testing.assert_allclose(np.asarray(w).T, w_ref, rtol=0, atol=tol * 1e2 * np.abs(w_ref).max())


@pytest.mark.parametrize("n", [1, 3, 8, 12])
def test_cholesky_succeeded_on_failures_at_every_pivot(n):
    """cholesky_succeeded, on the factors that cholesky_lower gives (one matrix: LAPACK; a
    vmapped batch: unrolled for n <= 8, LAPACK above), agrees with NumPy on which matrices
    are PD. A = L·D·Lᵀ with unit lower-triangular L has pivots D: a negative D[j] fails the
    factorisation exactly at pivot j (the first, a middle, the last), a zero D[j] is a
    PSD-singular pivot; also a NaN entry, and n = 0."""
    from jaxsolve._small_linalg import cholesky_succeeded

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
    batched = np.asarray(cholesky_succeeded(jax.vmap(cholesky_lower)(jnp.asarray(mats))))
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
