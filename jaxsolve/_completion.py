"""PSD matrix completion by Riemannian Gauss–Newton on the rank-k PSD matrices.

Minimises ``f(X) = ¼‖M∘(X·Xᵀ − S)‖²`` (weights ``W = M∘M``, 0 where S is unobserved) over
X (N, k). Each step (:func:`gauss_newton`) takes U, an orthonormal basis of X's columns,
solves the least-squares problem over the tangent space {U·Bᵀ + B·Uᵀ} of the rank-k
matrices matrix-free by preconditioned conjugate gradients (:func:`conjugate_gradient`,
:func:`row_preconditioner`), and retracts to the best rank-k PSD approximation of the
fitted matrix (:func:`best_psd_rank_k`). In the orthonormal U the operator's spectrum does
not depend on the condition number of the target. Far from the answer (relative misfit
above :data:`GLOBAL_PHASE_MISFIT`) each step fits S afresh from B = 0, tightly (the
minimum-norm solution of R2RILS, Bauch, Nadler & Zilber 2021, symmetric, with the
truncation in place of its averaging); near it, it solves for the correction from 0 to an
inexact-Newton forcing tolerance. The gauge (B ↦ B + U·Ω, Ω skew) is the operator's null
space; its right-hand side is orthogonal to it, so conjugate gradients never move along it.

The outer loop is :func:`._iterative.run_descent`, with the step as an optax transform, so
that its stopping rule (SUCCESS at ``atol`` or at a certified stationary point, MAX_STEPS,
DIVERGED, NON_FINITE) holds here. The observations enter only through
:class:`DenseObservations` (a dense mask) or :class:`ListedObservations` (observed entries,
:mod:`._observed`), which have the same methods.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from ._iterative import (
    IterOptions,
    _not_psd_masked,
    dense_measure,
    run_descent,
)
from ._numerics import conjugate_gradient, row_dots, safe_divide, safe_norm, safe_sqrt
from ._sequence import run_after
from ._solution import Status
from ._spectral import spectral_init

CG_MAX_STEPS = 400
"""Conjugate-gradient iterations per outer step at most."""
CG_FORCING = 0.1
"""The inner solve stops once its residual is at most min(this, sqrt(relative misfit))
times the right-hand side's: loose far from the answer, tight near it (superlinear)."""
GLOBAL_PHASE_MISFIT = 1e-4
"""Above this relative misfit each step solves its least-squares problem afresh (from
B = 0, R2RILS's minimum-norm fit of S), tightly, as long as those steps make progress
(:data:`FRESH_PROGRESS`); below, or once they stall, it solves for the correction from
D = 0 to the forcing tolerance (a Gauss–Newton step, superlinear)."""
FRESH_PROGRESS = 0.9
"""A fresh step is taken only while the previous step cut the relative misfit to at most
this fraction: with noise the misfit levels off above :data:`GLOBAL_PHASE_MISFIT`, and the
correction steps then converge to the stationary point (the fresh fit, solved to
:data:`FRESH_TOL`, would leave X that far from it)."""
FRESH_TOL = 1e-8
"""The fresh solve's residual, relative to its right-hand side (at least 100·eps)."""


# --- the observations ------------------------------------------------------------------------


class DenseObservations(NamedTuple):
    """S and its weights as dense N×N matrices: every "observation-space" array is N×N
    (zero weight where unobserved). O(N²·k) per product."""

    S: jax.Array  # (N, N) symmetric
    W: jax.Array  # (N, N) symmetric weights in [0, 1]

    def misfit(self, X: jax.Array) -> jax.Array:
        """X·Xᵀ − S where observed (the entries' values; weights applied by the others)."""
        return X @ X.T - self.S

    def symmetric_product(self, A: jax.Array, B: jax.Array) -> jax.Array:
        """A·Bᵀ + B·Aᵀ where observed."""
        P = A @ B.T
        return P + P.T

    def half_square(self, E: jax.Array) -> jax.Array:
        """¼·Σ W∘E² over the observed entries."""
        return 0.25 * jnp.sum(self.W * E * E)

    def weighted_times(self, E: jax.Array, B: jax.Array) -> jax.Array:
        """(W∘E)·B for a symmetric E in observation space."""
        return (self.W * E) @ B

    def row_grams(self, U: jax.Array) -> jax.Array:
        """G (N, k, k) with G_i = Σ_j W_ij·u_j·u_jᵀ (u_j the rows of U)."""
        n, k = U.shape
        return (self.W @ (U[:, :, None] * U[:, None, :]).reshape(n, k * k)).reshape(n, k, k)


class ListedObservations(NamedTuple):
    """S and its weights at a list of entries (i, j), both (i, j) and (j, i) listed for
    i ≠ j: "observation-space" arrays are (m,). O(m·k) per product. Entries of weight 0
    (padding) count for nothing."""

    rows: jax.Array  # (m,) int
    cols: jax.Array  # (m,) int
    S: jax.Array  # (m,) values of S there
    W: jax.Array  # (m,) weights
    n: int  # N (static)

    @classmethod
    def from_pairs(cls, rows, cols, S, weights, n: int) -> ListedObservations:
        """From unordered pairs (i, j) (each once, diagonal included) with the values of S
        and the weight of one orientation: both orientations listed, a diagonal pair
        once (its second copy weighs 0)."""
        mirrored = jnp.where(rows == cols, 0.0, weights)
        return cls(
            jnp.concatenate([rows, cols]),
            jnp.concatenate([cols, rows]),
            jnp.concatenate([S, S]),
            jnp.concatenate([weights, mirrored]),
            n,
        )

    def misfit(self, X: jax.Array) -> jax.Array:
        return row_dots(X[self.rows], X[self.cols], X.shape[1]) - self.S

    def symmetric_product(self, A: jax.Array, B: jax.Array) -> jax.Array:
        k = A.shape[1]
        return row_dots(A[self.rows], B[self.cols], k) + row_dots(B[self.rows], A[self.cols], k)

    def half_square(self, E: jax.Array) -> jax.Array:
        return 0.25 * jnp.sum(self.W * E * E)

    def weighted_times(self, E: jax.Array, B: jax.Array) -> jax.Array:
        return jax.ops.segment_sum((self.W * E)[:, None] * B[self.cols], self.rows, self.n)

    def row_grams(self, U: jax.Array) -> jax.Array:
        Uc = U[self.cols]
        outer = self.W[:, None, None] * Uc[:, :, None] * Uc[:, None, :]
        return jax.ops.segment_sum(outer, self.rows, self.n)


# --- the inner solve --------------------------------------------------------------------------


def row_preconditioner(obs, U: jax.Array):
    """``V ↦`` each row i of V solved with ``2·G_i`` (G_i = Σ_j W_ij·u_j·u_jᵀ, k×k, the
    block of row i of the normal operator's term ``(W∘(Δ·Uᵀ))·U``): the row-wise
    least-squares solves of alternating least squares, which take the spread of the number
    of observations per row out of the inner solve's conditioning. A floor of eps^(3/4) of
    the mean diagonal keeps rows with fewer than k observations solvable."""
    G = 2.0 * obs.row_grams(U)
    k = U.shape[-1]
    diag = jnp.trace(G, axis1=-2, axis2=-1) / k
    floor = jnp.finfo(U.dtype).eps ** 0.75 * jnp.mean(diag) + jnp.finfo(U.dtype).tiny
    L = jnp.linalg.cholesky(G + floor * jnp.eye(k, dtype=U.dtype))

    def precondition(V):
        return jax.scipy.linalg.cho_solve((L, True), V[..., None])[..., 0]

    return precondition


# --- the outer step as an optax transform -----------------------------------------------------


class GaussNewtonState(NamedTuple):
    inner_steps: jax.Array  # conjugate-gradient iterations so far
    basis: jax.Array  # (N, k) orthonormal: the eigenvectors of the last retraction
    misfit: jax.Array  # the relative misfit at the last step's start (∞ before the first)


def best_psd_rank_k(U: jax.Array, B: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(X, V): the factor X (N, k) of the best rank-k PSD approximation of U·Bᵀ + B·Uᵀ (U, B
    of shape (N, k)) and the orthonormal eigenvectors V (N, k) of its k largest
    eigenvalues (kept where an eigenvalue is not positive and X's column is 0), from one QR
    of [U, B] and the eigendecomposition of a 2k×2k core: O(N·k²)."""
    k = U.shape[-1]
    Q, R = jnp.linalg.qr(jnp.concatenate([U, B], axis=1))
    P = R[:, :k] @ R[:, k:].T
    lam, V = jnp.linalg.eigh(P + P.T)
    top_vals, top_vecs = lam[::-1][:k], V[:, ::-1][:, :k]
    V = Q @ top_vecs
    return V * safe_sqrt(top_vals), V


def gauss_newton(obs, cg_max_steps=CG_MAX_STEPS) -> optax.GradientTransformationExtraArgs:
    """The Riemannian Gauss–Newton step of f(X) = ¼‖M∘(X·Xᵀ − S)‖² on the rank-k PSD
    matrices, for observations ``obs`` (:class:`DenseObservations` or
    :class:`ListedObservations`), as an optax transform: ``update(grad, state, X)``
    returns ``X⁺ − X``; X must be passed as ``params`` (``grad`` is not used: the step
    forms its own right-hand side).

    With U an orthonormal basis of X's columns (the eigenvectors of the last retraction,
    kept in the state, so that a direction whose eigenvalue was clipped to 0 stays in the
    basis), the tangent space of the rank-k matrices at X·Xᵀ is {U·Bᵀ + B·Uᵀ}, and
    X·Xᵀ = U·B₀ᵀ + B₀·Uᵀ with B₀ = ½·U·(UᵀX)(UᵀX)ᵀ. The step solves the least-squares
    problem min_D ‖M∘(E + U·Dᵀ + D·Uᵀ)‖ (E = X·Xᵀ − S) by preconditioned conjugate
    gradients on its normal equations ``2·(W∘(U·Dᵀ + D·Uᵀ))·U = −2·(W∘E)·U``:

    - above the relative misfit :data:`GLOBAL_PHASE_MISFIT`, while these steps cut it by
      10 % or more (:data:`FRESH_PROGRESS`), from D = −B₀ (B = 0: a fresh
      minimum-norm fit of S over the tangent space, R2RILS's least-squares problem, Bauch,
      Nadler & Zilber 2021) to :data:`FRESH_TOL` of the fit's right-hand side. Unresolved
      components of an inexact solve then stay near 0 instead of at the current, possibly
      wrong, X: this is what finds the small eigen-directions at κ = 1e6;
    - below it, from D = 0 to min(0.1, sqrt(relative misfit)) of the correction's
      right-hand side (an inexact Newton forcing term: superlinear near the answer).

    In the orthonormal U the operator's spectrum does not depend on the condition number of
    X; :func:`row_preconditioner` takes out the spread of the observations per row. The
    gauge D = U·Ω (Ω skew) is the operator's null space, and the right-hand side is
    orthogonal to it, so the iterates never move along it. X⁺ is the factor of the best
    rank-k PSD approximation of X·Xᵀ + U·Dᵀ + D·Uᵀ (:func:`best_psd_rank_k`), a retraction
    that lets small eigen-directions of X turn freely (X + d would add d·dᵀ, which for an
    ill-conditioned X dwarfs the step's effect on its small columns). Every step is taken;
    the loop's DIVERGED and NON_FINITE checks catch a bad one."""

    def init_fn(params):
        return GaussNewtonState(
            inner_steps=jnp.zeros((), jnp.int32),
            basis=jnp.linalg.qr(params)[0],
            misfit=jnp.full((), jnp.inf, params.dtype),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del updates, extra_args
        if params is None:
            raise ValueError("gauss_newton needs params (the factor X) in update()")
        X = params
        # (X lies in the span of the basis: X·Xᵀ = U·T·Tᵀ·Uᵀ = U·B₀ᵀ + B₀·Uᵀ)
        U = state.basis
        T = U.T @ X
        B0 = 0.5 * U @ (T @ T.T)
        E = obs.misfit(X)
        rel_misfit = safe_divide(
            jnp.sqrt(obs.half_square(E)), jnp.sqrt(obs.half_square(obs.S)), 1.0
        )

        def normal(D):
            return 2.0 * obs.weighted_times(obs.symmetric_product(D, U), U)

        rhs = -2.0 * obs.weighted_times(E, U)
        fresh = (rel_misfit > GLOBAL_PHASE_MISFIT) & (rel_misfit <= FRESH_PROGRESS * state.misfit)
        eps = jnp.finfo(X.dtype).eps
        fit_scale = safe_norm(2.0 * obs.weighted_times(obs.S, U))
        target = jnp.where(
            fresh,
            jnp.maximum(FRESH_TOL, 100 * eps) * fit_scale,
            jnp.minimum(CG_FORCING, jnp.sqrt(rel_misfit)) * safe_norm(rhs),
        )
        start = jnp.where(fresh, -B0, jnp.zeros_like(B0))
        precondition = row_preconditioner(obs, U)
        D, iters = conjugate_gradient(normal, precondition, rhs, start, target, cg_max_steps)
        X_new, U_new = best_psd_rank_k(U, B0 + D)
        return X_new - X, GaussNewtonState(state.inner_steps + iters, U_new, rel_misfit)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


# --- one matrix -------------------------------------------------------------------------------


def completion_start(obs, target, rank: int, key: jax.Array) -> jax.Array:
    """The spectral start: the top-``rank`` factor of ``target`` (S with its observed
    entries scaled up to the full matrix's: the dense S/s, s the mean weight, or an
    operator with ``@``), then scaled by the α ≥ 0 that minimises ‖M∘(α·X·Xᵀ − S)‖ over
    the observations ``obs``."""
    X0, _ = spectral_init(target, rank, key)
    P = obs.misfit(X0) + obs.S  # X0·X0ᵀ where observed
    alpha = safe_divide(jnp.sum(obs.W * P * obs.S), jnp.sum(obs.W * P * P), 1.0)
    return X0 * jnp.sqrt(jnp.maximum(alpha, 0.0))


def completion_factor(
    S: jax.Array,
    W: jax.Array,
    X0: jax.Array | None,
    key: jax.Array,
    *,
    rank: int,
    opts: IterOptions,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """One matrix: PSD completion of S (N, N), symmetric, in scaled units (largest entries
    near 1), observed with symmetric weights W in [0, 1], by Riemannian Gauss–Newton
    (:func:`gauss_newton`) from the spectral start (:func:`completion_start`) or ``X0``.
    Returns (X, status, steps, lost), X (N, rank), lost = ‖X·Xᵀ − S‖ weighted by W at X.

    Statuses: SUCCESS (relative weighted residual ≤ ``opts.atol``, or a certified
    stationary point), NOT_PSD (stationary, and no PSD matrix fits the observed entries),
    MAX_STEPS (``opts.max_steps`` outer steps; rejected steps count), DIVERGED, NON_FINITE.
    ``opts.learning_rate`` is not used. jit- and vmap-able; float32 and float64.

    Every product is dense, O(N²·k); observed entries (:mod:`._observed`) run the same
    step on :class:`ListedObservations`, O(|Ω|·k) a product.

    Example::

        X, status, steps, lost = completion_factor(S, W, None, key, rank=5, opts=opts)
    """
    obs = DenseObservations(S, W)
    if X0 is None:
        # (S's observed entries scaled up by the observed fraction, the mean weight)
        X0 = completion_start(obs, safe_divide(S, jnp.mean(W), 1.0), rank, key)
    S_norm = safe_norm(S, weights=W)
    measure = dense_measure(S, W, S_norm)
    X, status, steps, lost = run_descent(
        measure, S_norm, X0, gauss_newton(obs), opts, factored=False, certify_every=1
    )
    not_psd = _not_psd_masked(S, W, run_after(X, lost))
    status = jnp.where(not_psd & (status == Status.SUCCESS), Status.NOT_PSD, status)
    return X, status.astype(jnp.int32), steps, lost
