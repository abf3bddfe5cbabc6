"""Closed forms (cholesky, eigh, sqrt, auto) and nearest_psd against float64 NumPy/SciPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from helpers import (
    CLOSED_FORMS,
    best_rank_k_psd_ref,
    best_rank_k_residual,
    directional_fd,
    eps,
    gram,
    is_psd,
    nearest_psd_ref,
    rel_error,
    rel_residual,
    skew,
    sym,
)
from jax.test_util import check_grads

import jaxsolve
from jaxsolve import Status, nearest_psd, solve

N = 8  # as in test_solve: eager op caches are per shape
C_PD = jaxsolve.random_psd(N, cond=1e3, seed=11)
C_INDEF = jaxsolve.random_psd(N, cond=1e2, negative=3, seed=12)
TOL64 = 50 * N * eps(np.float64)


@pytest.mark.parametrize("method", CLOSED_FORMS)
def test_pd_matches_reference(method):
    sol = solve(C_PD, method=method)
    assert sol.X.shape == (N, N) and sol.X.dtype == jnp.float64
    assert int(sol.status) == Status.SUCCESS and int(sol.steps) == 0
    assert rel_error(gram(sol.X), C_PD) < TOL64
    # the default residual is the true one up to rounding (it leaves rounding out) ...
    np.testing.assert_allclose(float(sol.residual), rel_residual(sol.X, C_PD), atol=TOL64)
    # ... and measure_residual=True measures it, rounding included
    measured = solve(C_PD, method=method, measure_residual=True)
    np.testing.assert_allclose(float(measured.residual), rel_residual(measured.X, C_PD), atol=1e-16)


def test_cholesky_lower_triangular_equals_numpy():
    sol = solve(C_PD, method="cholesky")
    L = np.asarray(sol.X)
    assert np.all(np.triu(L, 1) == 0.0)
    assert np.all(np.diag(L) > 0)
    np.testing.assert_allclose(L, np.linalg.cholesky(C_PD), rtol=1e-10, atol=1e-14)


def test_auto_is_cholesky_on_pd_and_eigh_otherwise():
    np.testing.assert_array_equal(
        np.asarray(solve(C_PD, method="auto").X), np.asarray(solve(C_PD, method="cholesky").X)
    )
    auto, eigh = solve(C_INDEF, method="auto"), solve(C_INDEF, method="eigh")
    assert int(auto.status) == Status.NOT_PSD
    np.testing.assert_allclose(np.asarray(auto.X), np.asarray(eigh.X), atol=1e-14)


def test_sqrt_symmetric_psd_and_equals_sqrtm():
    X = np.asarray(solve(C_PD, method="sqrt").X)
    np.testing.assert_allclose(X, X.T, atol=1e-14)
    assert is_psd(X)
    ref = scipy.linalg.sqrtm(C_PD).real
    assert rel_error(X, ref) < 1e-12


def test_sqrt_of_indefinite_is_root_of_nearest_psd():
    X = np.asarray(solve(C_INDEF, method="sqrt").X)
    np.testing.assert_allclose(X, X.T, atol=1e-14)
    assert is_psd(X)
    assert rel_error(X @ X, nearest_psd_ref(C_INDEF)) < TOL64


@pytest.mark.parametrize("k", [1, 3, 7, N])
@pytest.mark.parametrize("C", [C_PD, C_INDEF], ids=["pd", "indefinite"])
def test_eigh_rank_k_is_eckart_young(C, k):
    sol = solve(C, method="eigh", rank=k)
    assert sol.X.shape == (N, k)
    best = best_rank_k_residual(C, k)
    np.testing.assert_allclose(float(sol.residual), best, rtol=1e-10, atol=TOL64)
    # the product itself is the best approximation (the spectra here have no ties)
    assert rel_error(gram(sol.X), best_rank_k_psd_ref(C, k)) < 1e-10
    # columns are ordered by decreasing eigenvalue
    norms = np.linalg.norm(np.asarray(sol.X), axis=0)
    assert np.all(np.diff(norms) <= 1e-12)


@pytest.mark.parametrize("k", [2, 6])
def test_sqrt_rank_k_is_symmetric_root_of_best_approximation(k):
    sol = solve(C_PD, method="sqrt", rank=k)
    X = np.asarray(sol.X)
    assert X.shape == (N, N)
    np.testing.assert_allclose(X, X.T, atol=1e-14)
    assert np.linalg.matrix_rank(X, tol=1e-8) == k
    assert rel_error(X @ X, best_rank_k_psd_ref(C_PD, k)) < 1e-10
    np.testing.assert_allclose(float(sol.residual), best_rank_k_residual(C_PD, k), rtol=1e-10)


@pytest.mark.parametrize("method", CLOSED_FORMS)
@pytest.mark.parametrize("C", [C_PD, C_INDEF, C_PD + skew(N, 1e-3)], ids=["pd", "indef", "skew"])
def test_unmeasured_residual_equals_measured(method, C):
    """measure_residual=False reports the residual from the eigenvalues; same number."""
    measured = solve(C, method=method, measure_residual=True)
    spectral = solve(C, method=method)
    np.testing.assert_array_equal(np.asarray(measured.X), np.asarray(spectral.X))
    np.testing.assert_allclose(
        float(spectral.residual), float(measured.residual), rtol=1e-8, atol=TOL64
    )


# --- nearest_psd ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "C",
    [
        C_INDEF,
        C_INDEF + skew(N, 0.3, seed=1),  # non-symmetric: Higham symmetrises first
        np.random.default_rng(3).standard_normal((N, N)),
    ],
    ids=["indefinite", "indefinite+skew", "gaussian"],
)
def test_nearest_psd_matches_numpy(C):
    P = np.asarray(nearest_psd(C))
    np.testing.assert_allclose(P, nearest_psd_ref(C), atol=1e-13 * np.abs(C).max())
    np.testing.assert_allclose(P, P.T, atol=1e-14)
    assert is_psd(P)
    # idempotent
    np.testing.assert_allclose(np.asarray(nearest_psd(P)), P, atol=1e-13 * np.abs(P).max())
    # no PSD matrix is closer: e.g. not the PD reference, not the zero matrix
    d = np.linalg.norm(P - C)
    assert d <= np.linalg.norm(C_PD - C) and d <= np.linalg.norm(C)


def test_nearest_psd_keeps_psd_input_and_batches():
    np.testing.assert_allclose(np.asarray(nearest_psd(C_PD)), C_PD, atol=1e-14)
    B = np.stack([[C_PD, C_INDEF], [-C_PD, C_INDEF.T]])  # (2, 2, N, N)
    out = np.asarray(nearest_psd(B))
    assert out.shape == B.shape
    np.testing.assert_allclose(out, nearest_psd_ref(B), atol=1e-13)
    np.testing.assert_allclose(out[1, 0], 0.0, atol=1e-14)  # -PD projects to 0
    assert nearest_psd(np.zeros((3, 0, 0))).shape == (3, 0, 0)


def test_nearest_psd_bad_input_names_C():
    with pytest.raises(ValueError, match="C"):
        nearest_psd(np.ones((3, 4)))
    with pytest.raises(TypeError, match="C"):
        nearest_psd(np.eye(3) * 1j)


def test_nearest_psd_gradient_matches_finite_differences():
    f = jax.jit(nearest_psd)  # jit: check_grads makes many calls
    check_grads(f, (jnp.asarray(C_INDEF),), order=1, modes=("fwd", "rev"))


def test_nearest_psd_derivative_at_repeated_eigenvalues():
    """At the identity (one eigenvalue, repeated) nearest_psd is the identity map nearby: its
    derivative is the symmetrisation, and must not be NaN (JAX's eigh derivative is)."""
    D = np.random.default_rng(4).standard_normal((4, 4))
    jvp = jax.jit(lambda c, d: jax.jvp(nearest_psd, (c,), (d,))[1])
    np.testing.assert_allclose(np.asarray(jvp(jnp.eye(4), D)), sym(D), atol=1e-12)
    # and -I projects to 0 nearby: zero derivative
    np.testing.assert_allclose(np.asarray(jvp(-jnp.eye(4), D)), 0.0, atol=1e-12)
    grad = jax.jit(jax.grad(lambda c: jnp.sum(jnp.sin(nearest_psd(c)))))(jnp.eye(4))
    assert np.all(np.isfinite(np.asarray(grad)))


# --- derivatives of the closed forms -------------------------------------------------------


def _gram_of(method):
    def f(c):
        X = solve(c, method=method).X
        return X @ X.T

    return jax.jit(f)


@pytest.mark.parametrize("method", ["cholesky", "sqrt", "eigh"])
def test_gradients_match_finite_differences_on_generic_pd(method):
    C = jnp.asarray(jaxsolve.random_psd(5, cond=10, seed=3))
    check_grads(_gram_of(method), (C,), order=1, modes=("fwd", "rev"))


def test_sqrt_gradient_matches_finite_differences_on_generic_pd():
    C = jnp.asarray(jaxsolve.random_psd(5, cond=10, seed=3))
    f = jax.jit(lambda c: solve(c, method="sqrt").X)
    check_grads(f, (C,), order=1, modes=("fwd", "rev"))


def test_sqrt_derivative_finite_at_identity():
    """d sqrt(I + tD)/dt at 0 is sym(D)/2; repeated eigenvalues must not give NaN."""
    D = np.random.default_rng(5).standard_normal((4, 4))
    jvp = jax.jit(lambda c, d: jax.jvp(lambda c: solve(c, method="sqrt").X, (c,), (d,))[1])
    np.testing.assert_allclose(np.asarray(jvp(jnp.eye(4), D)), sym(D) / 2, atol=1e-12)
    grad = jax.jit(jax.grad(lambda c: jnp.sum(jnp.cos(solve(c, method="sqrt").X))))(jnp.eye(4))
    assert np.all(np.isfinite(np.asarray(grad)))
    # d/dC Σ cos(sqrt(C)) at I = -sin(1)/2 on the diagonal, 0 elsewhere
    np.testing.assert_allclose(np.asarray(grad), -np.sin(1.0) / 2 * np.eye(4), atol=1e-12)


def test_psd_status_from_sorted_eigenvalues():
    from jaxsolve._closed_form import psd_status

    lam = jnp.array(
        [
            [0.0, 1.0, 2.0],  # PSD
            [-1e-20, 1.0, 2.0],  # negative at rounding level: PSD
            [-1e-3, 1.0, 2.0],  # negative beyond rounding
            [-5.0, -4.0, -3.0],  # all negative: the smallest decides, not the largest
            [jnp.nan, jnp.nan, jnp.nan],  # LAPACK's failure value
        ]
    )
    want = [Status.SUCCESS, Status.SUCCESS, Status.NOT_PSD, Status.NOT_PSD, Status.NON_FINITE]
    assert [int(s) for s in jax.jit(psd_status)(lam)] == want


@pytest.mark.parametrize("method", CLOSED_FORMS)
def test_default_residual_gradient(method):
    """The default (decomposition) residual is differentiable in C: against central
    differences where it is smooth (a skew part and, for eigh/sqrt, negative eigenvalues),
    and finite (zero) on an exactly symmetric PD C, where the lost norm is 0."""
    G = np.random.default_rng(5).standard_normal((N, N))
    target = (C_PD if method == "cholesky" else C_INDEF) + 1e-3 * (G - G.T)

    def residual(C):
        return solve(C, method=method).residual

    C = jnp.asarray(target)
    grad = jax.grad(residual)(C)
    for seed in range(2):
        E = np.random.default_rng(seed).standard_normal((N, N))
        step = 1e-6
        central = (residual(C + step * E) - residual(C - step * E)) / (2 * step)
        np.testing.assert_allclose(float(jnp.sum(grad * E)), float(central), rtol=1e-6)
    grad = jax.grad(residual)(jnp.asarray(C_PD))
    assert bool(jnp.all(jnp.isfinite(grad)))


def _two_by_two_cases(dtype) -> np.ndarray:
    """Random symmetric 2×2 matrices at several scales, and the hard cases of a rotation:
    diagonal (either order), repeated, zero, a tiny or a dominant off-diagonal, negative."""
    rng = np.random.default_rng(22)
    G = rng.standard_normal((400, 2, 2))
    tiny, huge = (1e-150, 1e150) if dtype == np.float64 else (1e-15, 1e15)
    special = [
        [[2, 0], [0, 1]], [[1, 0], [0, 2]], [[1, 0], [0, 1]], [[0, 0], [0, 0]],
        [[1, 1e-20], [1e-20, 1]], [[0, 1], [1, 0]], [[1, 1e8], [1e8, 1 + 1e-8]],
        [[-5, 0], [0, -5]], [[-1, 2], [2, -3]], [[3, -1], [-1, 3]], [[1e-8, 1], [1, -1e-8]],
    ]  # fmt: skip
    C = np.concatenate([G, G[:50] * tiny, G[50:100] * huge, np.asarray(special, float)])
    return sym(C).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_eigh_2x2_equals_numpy(dtype):
    """The closed-form 2×2 eigendecomposition: eigenvalues ascending and equal to NumPy's in
    float64 to eps·‖C‖, V orthogonal, V·Λ·Vᵀ = C; jit equals eager; only the lower
    triangle is read."""
    from jaxsolve._closed_form import eigh_2x2

    C = _two_by_two_cases(dtype)
    lam, V = (np.asarray(a, np.float64) for a in jax.jit(eigh_2x2)(jnp.asarray(C)))
    C64 = C.astype(np.float64)
    scale = np.maximum(np.abs(C64).max(axis=(1, 2)), np.finfo(dtype).tiny)
    tol = 8 * eps(dtype)
    ref = np.linalg.eigvalsh(C64)
    assert np.all(np.abs(lam - ref).max(axis=1) <= tol * scale)
    assert np.all(lam[:, 0] <= lam[:, 1])
    assert np.abs(np.swapaxes(V, 1, 2) @ V - np.eye(2)).max() <= tol
    rebuilt = (V * (lam / scale[:, None])[:, None, :]) @ np.swapaxes(V, 1, 2)
    assert np.abs(rebuilt - C64 / scale[:, None, None]).max() <= tol
    eager = eigh_2x2(jnp.asarray(C[:5]))
    assert np.all(np.abs(np.asarray(eager[0], np.float64) - lam[:5]) <= tol * scale[:5, None])
    upper_junk = C.copy()
    upper_junk[:, 0, 1] = 7.0
    junk_lam = jax.jit(eigh_2x2)(jnp.asarray(upper_junk))[0]
    np.testing.assert_array_equal(np.asarray(junk_lam), lam.astype(dtype))


@pytest.mark.parametrize("method", ["eigh", "sqrt"])  # (auto: eigh for the singular C)
@pytest.mark.parametrize("spectrum", [[1.0, 1.0], [1.0, 1.0, 2.0], [0.5, 3.0, 3.0, 3.0]])
def test_gradient_of_gram_is_exact_at_repeated_eigenvalues(method, spectrum):
    """For PSD C, X·Xᵀ = C, so the gradient of Σ W∘(X·Xᵀ) is (W + Wᵀ)/2 exactly, repeated
    eigenvalues or not (2×2: the closed-form eigendecomposition; N > 2: LAPACK); auto goes
    through eigh for a singular C."""
    n = len(spectrum)
    rng = np.random.default_rng(n)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    W = jnp.asarray(rng.standard_normal((n, n)))
    for lam in (np.asarray(spectrum), np.r_[0.0, spectrum[1:]]):  # and a singular C
        C = jnp.asarray((Q * lam) @ Q.T)

        def f(C):
            X = solve(C, method=method).X
            return jnp.sum(W * (X @ X.T))

        grad = np.asarray(jax.grad(f)(C))
        if lam[0] == 0 and method != "cholesky":
            # at λ = 0 sqrt is not differentiable: the one-sided choice keeps it finite
            assert np.all(np.isfinite(grad))
            continue
        np.testing.assert_allclose(grad, (W + W.T) / 2, atol=1e-12)


@pytest.mark.parametrize("n", [2, 5])
def test_rank_k_gradient_equals_central_differences_and_is_scale_free(n):
    """With λ_k > λ_{k+1} the top-k factor's X·Xᵀ is differentiable: its gradient equals
    central differences, also with repeated eigenvalues among the kept ones, and stays
    finite and scales as it should for eigenvalues beyond 1/eps (where lax.linalg.eigh's
    own rule divides by (1 + λ) − λ = 0)."""
    rng = np.random.default_rng(n)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.r_[np.linspace(-0.5, 0.2, n - 2), 2.0, 2.0] if n > 2 else np.array([0.3, 2.0])
    C = (Q * lam) @ Q.T
    W = rng.standard_normal((n, n))
    rank = 2 if n > 2 else 1

    def f(C):
        X = solve(C, method="eigh", rank=rank).X
        return jnp.sum(W * (X @ X.T))

    grad = np.asarray(jax.grad(f)(jnp.asarray(C)))
    D = sym(rng.standard_normal((n, n)))
    fd = directional_fd(lambda c: float(f(jnp.asarray(c))), C, D, h=1e-6)
    np.testing.assert_allclose(np.sum(grad * D), fd, rtol=1e-7, atol=1e-9)
    big = np.asarray(jax.grad(f)(jnp.asarray(C * 1e20)))
    assert np.all(np.isfinite(big))
    np.testing.assert_allclose(big, grad, rtol=1e-8, atol=1e-10)


def test_two_by_two_batch_equals_single_solves():
    """solve on a batch of 2×2 (the closed-form eigendecomposition, also under vmap) equals
    a Python loop of single solves and NumPy's factor."""
    C = jnp.asarray(_two_by_two_cases(np.float64)[::7])
    jsolve = jax.jit(solve, static_argnames="method")
    for method in ("eigh", "sqrt", "auto"):
        batch = jsolve(C, method=method)
        one = jsolve(C[3], method=method)
        np.testing.assert_allclose(batch.X[3], one.X, rtol=1e-12)
        singles = jax.vmap(lambda c, method=method: jsolve(c, method=method))(C)
        np.testing.assert_allclose(batch.X, singles.X, rtol=1e-12, atol=1e-300)
        np.testing.assert_array_equal(np.asarray(batch.status), np.asarray(singles.status))
        ref = nearest_psd_ref(np.asarray(C))
        scale = np.maximum(np.abs(np.asarray(C)).max(axis=(1, 2)), 1e-300)[:, None, None]
        assert np.abs(gram(batch.X) / scale - ref / scale).max() < 1e-13
