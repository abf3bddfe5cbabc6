"""Recursive blocked triangular solves and LU against LAPACK (trsm, getrf) and float64 NumPy
references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxsolve._blocked_linalg import LEAF, lu_factor, solve_right_transposed

SIZES = (LEAF + 1, 2 * LEAF + 37)  # one and two levels of recursion


def triangle(rng, n, lower, unit, dtype):
    """A triangular factor as LU with partial pivoting makes them (from a Gaussian matrix;
    a non-unit diagonal kept at least 1 in size, so that float32 does not overflow),
    stored with junk in the other triangle (and on a unit diagonal) that must not be read;
    and the dense float64 triangle it stands for."""
    lu = np.asarray(lax.linalg.lu(jnp.asarray(rng.standard_normal((n, n))))[0])
    strict = np.tril(lu, -1) if lower else np.triu(lu, 1)
    d = np.diag(lu)
    if unit and not lower:  # U's rows with a unit diagonal: exponentially ill-conditioned
        strict = 0.9 * strict / np.abs(strict).sum(axis=1).max()
    dense = strict + np.diag(np.ones(n) if unit else np.sign(d) * (1 + np.abs(d)))
    other = np.triu(np.ones((n, n)), 1) if lower else np.tril(np.ones((n, n)), -1)
    stored = np.where(other > 0, rng.standard_normal((n, n)), dense)
    if unit:
        stored[np.diag_indices(n)] = 7.0
    return stored.astype(dtype), dense


def backward_error(Z, T, B):
    """‖Z·Tᵀ − B‖ / (‖Z‖·‖T‖), float64: what a stable triangular solve keeps at O(n·eps)."""
    Z, T, B = (np.asarray(a, np.float64) for a in (Z, T, B))
    return np.linalg.norm(Z @ T.T - B) / (np.linalg.norm(Z) * np.linalg.norm(T))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("unit", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("invert", [False, True])
def test_matches_reference(n, lower, unit, dtype, invert):
    """Backward stable like trsm; with ``invert_leaves`` (diagonal blocks inverted) only the
    forward error is compared with trsm's."""
    rng = np.random.default_rng(n + 2 * lower + unit)
    T, dense = triangle(rng, n, lower, unit, dtype)
    B = rng.standard_normal((n + 5, n)).astype(dtype)
    with jax.default_matmul_precision("highest"):
        Z = jax.jit(
            solve_right_transposed, static_argnames=("lower", "unit_diagonal", "invert_leaves")
        )(jnp.asarray(T), jnp.asarray(B), lower=lower, unit_diagonal=unit, invert_leaves=invert)
    assert Z.shape == B.shape and Z.dtype == dtype
    if not invert:
        assert backward_error(Z, dense, B) <= 4 * n * np.finfo(dtype).eps
    # as close to the float64 answer as LAPACK's own trsm in the same dtype
    lapack = lax.linalg.triangular_solve(
        jnp.asarray(T),
        jnp.asarray(B),
        left_side=False,
        lower=lower,
        transpose_a=True,
        unit_diagonal=unit,
    )
    ref = np.linalg.solve(dense, B.astype(np.float64).T).T
    ours_err = np.linalg.norm(np.asarray(Z, np.float64) - ref)
    lapack_err = np.linalg.norm(np.asarray(lapack, np.float64) - ref)
    assert ours_err <= 10 * lapack_err + 10 * np.finfo(dtype).eps * np.linalg.norm(ref)


def test_small_sizes_are_lapacks_call_and_vmap_equals_loop():
    rng = np.random.default_rng(0)
    T = jnp.asarray(np.stack([triangle(rng, 8, True, False, np.float64)[0] for _ in range(4)]))
    B = jnp.asarray(rng.standard_normal((4, 8, 8)))
    batched = jax.vmap(lambda t, b: solve_right_transposed(t, b, lower=True))(T, B)
    for i in range(4):
        direct = lax.linalg.triangular_solve(
            T[i], B[i], left_side=False, lower=True, transpose_a=True
        )
        np.testing.assert_array_equal(batched[i], direct)


def test_forward_derivative_matches_trsm():
    rng = np.random.default_rng(1)
    n = LEAF + 40
    T, _ = triangle(rng, n, False, False, np.float64)
    B = rng.standard_normal((n, n))
    dT, dB = rng.standard_normal((n, n)), rng.standard_normal((n, n))

    def ours(T, B):
        return solve_right_transposed(T, B, lower=False)

    def lapack(T, B):
        return lax.linalg.triangular_solve(T, B, left_side=False, lower=False, transpose_a=True)

    _, t_ours = jax.jvp(ours, (T, B), (dT, dB))
    _, t_ref = jax.jvp(lapack, (T, B), (dT, dB))
    np.testing.assert_allclose(t_ours, t_ref, rtol=1e-9, atol=1e-9 * np.abs(t_ref).max())


@pytest.mark.parametrize(
    "shape", [(LEAF + 1, LEAF + 1), (2 * LEAF + 37, 2 * LEAF + 37), (300, 140)]
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lu_factor_is_getrf(shape, dtype):
    """Same pivots as LAPACK's getrf, A[perm] = L·U to O(n·eps), |L| <= 1."""
    m, n = shape
    A = np.random.default_rng(m + n).standard_normal(shape).astype(dtype)
    with jax.default_matmul_precision("highest"):
        lu, perm = jax.jit(lu_factor)(jnp.asarray(A))
    lu_ref, _, perm_ref = lax.linalg.lu(jnp.asarray(A))
    assert lu.shape == shape and lu.dtype == dtype and perm.shape == (m,)
    np.testing.assert_array_equal(perm, perm_ref)
    lu = np.asarray(lu, np.float64)
    L = np.tril(lu, -1)[:, :n] + np.eye(m, n)
    U = np.triu(lu)[:n]
    assert np.abs(L).max() <= 1 + 1e-6
    err = np.linalg.norm(A.astype(np.float64)[np.asarray(perm)] - L @ U) / np.linalg.norm(A)
    assert err <= 4 * n * np.finfo(dtype).eps
    np.testing.assert_allclose(
        lu, np.asarray(lu_ref, np.float64), atol=1e3 * n * np.finfo(dtype).eps
    )


def test_lu_factor_vmap_equals_loop():
    A = jnp.asarray(np.random.default_rng(5).standard_normal((3, LEAF + 20, LEAF + 20)))
    lu, perm = jax.vmap(lu_factor)(A)
    for i in range(3):
        lu_i, perm_i = lu_factor(A[i])
        np.testing.assert_array_equal(perm[i], perm_i)
        np.testing.assert_allclose(lu[i], lu_i, rtol=0, atol=1e-12)
