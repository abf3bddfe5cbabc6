"""Full-rank precgd's first phase: ScaledGD's undamped step as Newton's iteration for the
polar factor, scaled, from the start α·I; the PSD check of a full-rank solve.

Works on one symmetric, finite S (N, N) in ``solve``'s scaled units; the damped loop of
:mod:`._iterative` finishes whatever this phase leaves.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._checks import default_tol
from ._closed_form import cholesky_succeeded
from ._numerics import relative, safe_divide, safe_norm, safe_sqrt
from ._sequence import run_after


def lapack_cholesky(S: jax.Array) -> jax.Array:
    """LAPACK's lower Cholesky factor (NaN where S is not PD). Not the unrolled kernel of the
    closed forms: inside the loops it would only add compile time."""
    return lax.linalg.cholesky(S, symmetrize_input=False)


NEWTON_MAX_STEPS = 30
"""At most this many Newton steps; the scaled iteration needs under 10 up to κ = 1e16."""
_NEWTON_RANGE_TOL = 1e-2  # steps are scaled while the tracked range [a, b] has b/a > 1 + this
_NEWTON_STALL = 0.7  # a change under _NEWTON_NEAR that shrinks by less than this: stalled
_NEWTON_NEAR = 0.1


def psd_shifted(S: jax.Array, lam_max: jax.Array) -> jax.Array:
    """S + (tol·λ_max + tiny)·I: its Cholesky factor exists iff S has no eigenvalue below
    −tol·λ_max, the PSD check of a full-rank solve."""
    n = S.shape[-1]
    shift = default_tol(n, S.dtype) * jnp.maximum(lam_max, 0.0) + jnp.finfo(S.dtype).tiny
    return S + shift * jnp.eye(n, dtype=S.dtype)


def identity_scale(S: jax.Array, lam_max: jax.Array) -> jax.Array:
    """α of full-rank precgd's start α·I: α² = tr(S)/N, the mean eigenvalue (λ_max where
    the trace is not positive)."""
    mean = jnp.trace(S) / max(S.shape[-1], 1)
    return safe_sqrt(jnp.where(mean > 0, mean, lam_max))


def smallest_eigenvalue_bound(L: jax.Array, steps: int = 3) -> jax.Array:
    """An upper bound on λ_min(L·Lᵀ) from its Cholesky factor: ``steps`` inverse power
    iterations give the Rayleigh quotient ρ ≤ λ_max((L·Lᵀ)⁻¹), so 1/ρ ≥ λ_min; capped by
    the smallest pivot L_ii², also ≥ λ_min. O(N²)."""
    n = L.shape[-1]
    start = np.random.default_rng(0x5CA1E).standard_normal(n)
    v = jnp.asarray(start / np.linalg.norm(start), L.dtype)

    def body(_, carry):
        v, _ = carry
        w = jax.scipy.linalg.cho_solve((L, True), v)
        return safe_divide(w, safe_norm(w)), jnp.dot(v, w)

    rho = lax.fori_loop(0, steps, body, (v, jnp.zeros((), L.dtype)))[1]
    tiny = jnp.finfo(L.dtype).tiny
    return jnp.minimum(1 / jnp.maximum(rho, tiny), jnp.min(jnp.diagonal(L)) ** 2)


def _polar_newton_range(a, b, mu):
    """Where one step u ← ½·(μ·u + 1/(μ·u)) maps singular values u in [a, b] (the map is
    convex with its minimum 1 at u = 1/μ)."""
    fa, fb = 0.5 * (mu * a + 1 / (mu * a)), 0.5 * (mu * b + 1 / (mu * b))
    low = jnp.where((a * mu <= 1) & (b * mu >= 1), 1.0, jnp.minimum(fa, fb))
    return low, jnp.maximum(fa, fb)


def _times_inverse_transpose(X: jax.Array, S: jax.Array) -> jax.Array:
    """S·X⁻ᵀ from the LU factors of X (X[perm] = L·U): S[:, perm]·L⁻ᵀ·U⁻ᵀ, two right-side
    triangular solves."""
    lu, _, perm = lax.linalg.lu(X)
    solve = lax.linalg.triangular_solve
    Z = solve(lu, S[:, perm], left_side=False, lower=True, transpose_a=True, unit_diagonal=True)
    return solve(lu, Z, left_side=False, lower=False, transpose_a=True)


def newton_phase(S, lam_max, max_steps, tol, atol):
    """Full-rank precgd's first phase from its start α·I: the PSD check, then ScaledGD's
    undamped step at η = ½ with scaling. Returns (X, steps, converged, psd).

    For square invertible X the step X − ½·(X·Xᵀ − S)·X·(XᵀX)⁻¹ is ½·(X + S·X⁻ᵀ): one LU of
    X and two triangular solves. With S = L·Lᵀ and X = L·U it is U ← ½·(U + U⁻ᵀ), Newton's
    iteration for the orthogonal polar factor of U (Higham 1986): globally and
    quadratically convergent and numerically stable whatever the conditioning of S. Each
    step is taken from μ·X (Kenney & Laub 1992), μ = 1/√(a·b) for the range [a, b] of U's
    singular values, tracked by the scalar map of the step from λ_max and a bound on λ_min
    (every iterate from α·I is a function of S), until b/a < 1 + 1e-2; the first step is
    ½·(g·I + S/g), g = det(S)^(1/2N) from the check's Cholesky factor.

    The PSD check is that Cholesky factor of S + tol·λ_max·I (``lam_max`` an estimate from
    below); where it fails (``psd`` False) no step is taken. The phase stops after a step
    that changed X by at most ``tol`` (relative; the error after it is about its square),
    when the change stops shrinking (the rounding floor, or eigenvalues below the dtype's
    resolution), before a step that would make X non-finite, or at ``max_steps``;
    ``converged`` means the first of these with the relative residual at most ``atol``,
    and the damped loop finishes the rest. Also returns lost = ‖X·Xᵀ − S‖."""
    n = S.shape[-1]
    eye = jnp.eye(n, dtype=S.dtype)
    tiny = jnp.finfo(S.dtype).tiny
    L = lapack_cholesky(psd_shifted(S, lam_max))
    psd = cholesky_succeeded(L)
    g = jnp.exp(jnp.mean(jnp.log(jnp.abs(jnp.diagonal(L)))))
    hi = jnp.maximum(lam_max, tiny)
    lo = jnp.clip(smallest_eigenvalue_bound(L), tiny, hi)
    low, high = _polar_newton_range(jnp.sqrt(lo) / g, jnp.sqrt(hi) / g, 1.0)
    X1 = run_after(0.5 * (g * eye + S / g), lo)  # (the LU below after the bound's solves)
    first = psd & (max_steps >= 1) & jnp.all(jnp.isfinite(X1))
    X0 = jnp.where(first, X1, identity_scale(S, lam_max) * eye)

    def body(c):
        X, steps, change, _, _, low, high = c
        scaled = high > (1 + _NEWTON_RANGE_TOL) * low
        mu = jnp.where(scaled, 1 / jnp.sqrt(low * high), 1.0)
        low, high = _polar_newton_range(low, high, mu)
        X_new = 0.5 * (mu * X + _times_inverse_transpose(X, S) / mu)
        new_change = safe_norm(X_new - X) / safe_norm(X_new)
        ok = jnp.isfinite(new_change)
        # the change is about the error before the step; the tracked range, after it
        converged = ok & ((new_change <= tol) | (high - 1 <= tol * tol))
        stalled = ~scaled & (new_change > _NEWTON_STALL * change) & (new_change < _NEWTON_NEAR)
        done = ~ok | converged | stalled | (steps + 1 >= max_steps)
        X = jnp.where(ok, X_new, X)
        return X, steps + ok.astype(jnp.int32), new_change, converged, done, low, high

    inf = jnp.full((), jnp.inf, S.dtype)
    init = (X0, first.astype(jnp.int32), inf, jnp.asarray(False), ~first | (max_steps <= 1))
    X, steps, _, converged, *_ = lax.while_loop(lambda c: ~c[4], body, (*init, low, high))
    lost = safe_norm(X @ X.T - S)
    return X, steps, converged & (relative(lost, safe_norm(S)) <= atol), psd, lost
