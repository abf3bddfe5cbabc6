"""Implicit derivatives of the iterative solves: against finite differences and the closed
forms' derivatives, forward and reverse mode, jit and vmap, the gauge of dX, statuses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import directional_fd, symmetric_mask

import jaxsolve
from jaxsolve import Status
from jaxsolve._implicit import horizontal_projection
from jaxsolve._numerics import conjugate_gradient

N = 8
RNG = np.random.default_rng(21)
T = RNG.standard_normal((N, N))  # the weights of a gauge-invariant loss of X·Xᵀ
D = RNG.standard_normal((N, N))
D = D + D.T  # a symmetric direction
MASK = symmetric_mask(N, 0.7, seed=3) | np.eye(N, dtype=bool)

CASES = {
    "full rank": (jaxsolve.random_psd(N, cond=100.0, seed=1), {}, Status.SUCCESS),
    "full rank, not PSD": (jaxsolve.random_psd(N, negative=2, seed=2), {}, Status.NOT_PSD),
    "rank 3": (jaxsolve.random_psd(N, cond=100.0, seed=1), {"rank": 3}, Status.SUCCESS),
    "rank 4, not PSD": (jaxsolve.random_psd(N, negative=2, seed=2), {"rank": 4}, Status.NOT_PSD),
    "masked, rank 3": (
        jaxsolve.random_psd(N, rank=3, cond=10.0, seed=3),
        {"rank": 3, "mask": MASK},
        Status.SUCCESS,
    ),
}


def _loss(method, **options):
    def loss(C):
        X = jaxsolve.solve(C, method=method, **options).X
        return jnp.sum(T * jnp.sin(X @ jnp.swapaxes(X, -1, -2)))

    return loss


@pytest.mark.parametrize(
    ("case", "method"),
    [
        ("full rank", "precgd"),
        ("full rank, not PSD", "gd"),
        ("rank 3", "precgd"),
        ("rank 4, not PSD", "precgd"),
    ],
)
def test_gradient_equals_the_closed_forms(case, method):
    """Where eigh answers the same problem (the nearest PSD matrix, or its best rank k with
    λ_k > λ_{k+1}), the derivatives of functions of X·Xᵀ agree."""
    C, options, status = CASES[case]
    assert int(jaxsolve.solve(C, method=method, **options).status) == status
    reference = jax.grad(_loss("eigh", **options))(jnp.asarray(C))
    grad = jax.grad(_loss(method, **options))(jnp.asarray(C))
    np.testing.assert_allclose(grad, reference, rtol=1e-8, atol=1e-10 * jnp.abs(reference).max())


@pytest.mark.parametrize(
    ("case", "method"),
    [("masked, rank 3", "precgd"), ("masked, rank 3", "gauss_newton"), ("rank 3", "gd")],
)
def test_gradient_matches_finite_differences(case, method):
    C, options, status = CASES[case]
    assert int(jaxsolve.solve(C, method=method, **options).status) == status
    loss = jax.jit(_loss(method, **options))
    grad = jax.grad(loss)(jnp.asarray(C))
    fd = directional_fd(loss, C, D, h=1e-6)
    np.testing.assert_allclose(float(jnp.sum(grad * D)), fd, rtol=1e-6)


def test_forward_and_reverse_mode_agree_under_jit():
    C, options, _ = CASES["masked, rank 3"]
    loss = _loss("precgd", **options)
    grad = jax.jit(jax.grad(loss))(jnp.asarray(C))
    _, tangent = jax.jit(lambda c, d: jax.jvp(loss, (c,), (d,)))(jnp.asarray(C), jnp.asarray(D))
    np.testing.assert_allclose(float(tangent), float(jnp.sum(grad * D)), rtol=1e-10)


@pytest.mark.parametrize("case", ["full rank", "rank 4, not PSD", "masked, rank 3"])
def test_tangent_of_X_is_horizontal(case):
    """The tangent of X itself has Xᵀ·dX symmetric, and moves X·Xᵀ as the closed forms'
    derivative (or finite differences, with a mask) say."""
    C, options, _ = CASES[case]

    def factor(c):
        return jaxsolve.solve(c, method="precgd", **options).X

    X, dX = jax.jvp(factor, (jnp.asarray(C),), (jnp.asarray(D),))
    XtdX = np.asarray(X.T @ dX)
    np.testing.assert_allclose(XtdX, XtdX.T, atol=1e-10 * np.abs(XtdX).max())

    def gram(c):
        X = factor(c)
        return X @ X.T

    dP = np.asarray(dX @ X.T + X @ dX.T)
    fd = (np.asarray(gram(C + 1e-6 * D)) - np.asarray(gram(C - 1e-6 * D))) / 2e-6
    np.testing.assert_allclose(dP, fd, atol=1e-6 * np.abs(fd).max())


def test_vmap_of_grad_and_grad_of_a_batch_agree_with_one_matrix_at_a_time():
    stack = np.stack([CASES[c][0] for c in ("full rank", "full rank, not PSD")])
    loss = _loss("precgd", rank=3)
    one_at_a_time = np.stack([np.asarray(jax.grad(loss)(jnp.asarray(C))) for C in stack])
    vmapped = jax.jit(jax.vmap(jax.grad(loss)))(jnp.asarray(stack))
    batched = jax.jit(jax.grad(loss))(jnp.asarray(stack))  # one solve of the whole stack
    np.testing.assert_allclose(vmapped, one_at_a_time, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(batched, one_at_a_time, rtol=1e-9, atol=1e-12)


def test_unconverged_solve_reports_its_status_and_a_finite_gradient():
    C, options, _ = CASES["masked, rank 3"]
    sol = jaxsolve.solve(C, method="gd", max_steps=2, **options)
    assert int(sol.status) == Status.MAX_STEPS
    grad = jax.grad(_loss("gd", max_steps=2, **options))(jnp.asarray(C))
    assert bool(jnp.all(jnp.isfinite(grad)))


def test_float32_gradient_agrees_with_float64():
    C, options, _ = CASES["rank 3"]
    g64 = jax.grad(_loss("precgd", **options))(jnp.asarray(C))
    g32 = jax.grad(_loss("precgd", **options))(jnp.asarray(C, jnp.float32))
    assert g32.dtype == jnp.float32
    np.testing.assert_allclose(g32, g64, atol=2e-3 * float(jnp.abs(g64).max()))


def test_gradient_of_the_residual_is_finite_and_right():
    """Gradients reach C through ``residual`` too (‖X·Xᵀ − C‖/‖C‖ at the solution)."""
    C, options, _ = CASES["rank 4, not PSD"]

    def residual(c):
        return jaxsolve.solve(c, method="precgd", **options).residual

    grad = jax.grad(residual)(jnp.asarray(C))
    fd = directional_fd(residual, C, D, h=1e-6)
    np.testing.assert_allclose(float(jnp.sum(grad * D)), fd, rtol=1e-6)


def test_projection_is_orthogonal_and_idempotent():
    X = jnp.asarray(RNG.standard_normal((N, 3)))
    project = horizontal_projection(X)
    V = jnp.asarray(RNG.standard_normal((N, 3)))
    P = project(V)
    XtP = np.asarray(X.T @ P)
    np.testing.assert_allclose(XtP, XtP.T, atol=1e-12)
    np.testing.assert_allclose(project(P), P, atol=1e-12)
    Omega = RNG.standard_normal((3, 3))
    Omega = Omega - Omega.T  # X·Ω is orthogonal to the projected tangents
    np.testing.assert_allclose(float(jnp.sum(P * (X @ Omega))), 0.0, atol=1e-12)


def test_conjugate_gradient_solves_and_stops_at_negative_curvature():
    A = RNG.standard_normal((6, 6))
    A = A @ A.T + np.eye(6)
    b = jnp.asarray(RNG.standard_normal(6))
    zero = jnp.zeros_like(b)
    x, steps = conjugate_gradient(lambda v: A @ v, lambda r: r, b, zero, 1e-13, 100)
    np.testing.assert_allclose(np.asarray(x), np.linalg.solve(A, np.asarray(b)), rtol=1e-10)
    assert 0 < int(steps) <= 12
    x, steps = conjugate_gradient(lambda v: -v, lambda r: r, b, zero, 1e-13, 100)
    np.testing.assert_array_equal(np.asarray(x), 0.0)
    assert int(steps) == 0


def test_observed_entries_gradient_equals_the_dense_masks():
    """A solve from observed entries (BCOO) is differentiated with respect to their values
    at O(|Ω|·k) a product; the gradient is the dense-mask solve's, entry for entry."""
    n, k = 12, 2
    rng = np.random.default_rng(4)
    Y = rng.standard_normal((n, k))
    C = Y @ Y.T
    rows, cols = np.triu_indices(n)
    keep = rng.random(rows.size) < 0.7
    rows, cols = rows[keep], cols[keep]
    mask = np.zeros((n, n), bool)
    mask[rows, cols] = mask[cols, rows] = True
    W = rng.standard_normal((n, n))

    def loss_of(X):
        return jnp.sum(W * jnp.sin(X @ X.T))

    def observed(values):
        return loss_of(jaxsolve.solve(jaxsolve.observed_entries(rows, cols, values, n), rank=k).X)

    def dense(C):
        return loss_of(jaxsolve.solve(C, method="precgd", rank=k, mask=mask).X)

    by_value = jax.grad(observed)(jnp.asarray(C[rows, cols]))
    by_entry = np.asarray(jax.grad(dense)(jnp.asarray(C)))
    # a value stands for C_ij and C_ji
    expected = np.where(rows == cols, 1.0, 2.0) * by_entry[rows, cols]
    np.testing.assert_allclose(by_value, expected, rtol=1e-7, atol=1e-9 * np.abs(expected).max())
