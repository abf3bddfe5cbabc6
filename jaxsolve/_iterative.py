"""Gradient-descent solvers for X·Xᵀ = S: one optax-driven loop, masks, low rank.

The objective is ``f(X) = ¼‖M∘(X·Xᵀ − S)‖²_F`` with gradient ``(W∘(X·Xᵀ − S))·X``, where
``W = M∘M`` symmetrised (``W = 1`` without a mask). ``"gd"`` feeds that gradient to any optax
``GradientTransformation``; ``"precgd"`` is the same loop with :func:`scaled_gradient`
(ScaledGD / PrecGD) in front of a fixed step, so the two share every line of the loop.

Functions here work on one symmetric, finite matrix ``S`` (N, N); ``solve`` validates,
symmetrises, guards non-finite input and batches with ``vmap``.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from ._blocked_linalg import lu_factor, solve_right_transposed
from ._checks import default_tol
from ._closed_form import cholesky_succeeded, safe_sqrt
from ._sequence import after
from ._small_linalg import (
    cho_solve_lower,
    cho_solve_vector_batch_last,
    cholesky_lower,
    cholesky_rows_batch_last,
    gram_residual_norm_batch_last,
    log_det_and_times_inverse_transpose_batch_last,
    materialized,
    spd_solve,
    use_small,
)
from ._solution import Status

ITERATIVE_METHODS = ("gd", "precgd")


# --- the preconditioner as an optax transform ----------------------------------------------


class ScaledGradientState(NamedTuple):
    """Stateless; present for the optax protocol."""


def scaled_gradient(
    damping: float = 0.0, residual_weight: float = 0.5, orthogonal_scale: float = 1.0
) -> optax.GradientTransformationExtraArgs:
    """Right-precondition a gradient of a factor X: ``g ↦ g·(XᵀX + δI)⁻¹``.

    This is ScaledGD (Tong, Ma & Chi 2021), whose convergence rate does not depend on the
    condition number, with the damping of PrecGD (Zhang, Fattahi & Zhang 2021), which keeps
    the step bounded when X has more columns than the target has rank. The damping is
    ``δ = damping + residual_weight·residual_norm`` where ``residual_norm`` (passed by the
    solver as an extra argument: the solver's running estimate of ‖X·Xᵀ − C‖₂; 0 if absent)
    makes it vanish at an exact solution and match the clipped eigenvalues otherwise.

    ``orthogonal_scale`` multiplies the part of the step outside the column space of X
    (1: plain ScaledGD). Near a rank-k optimum that part evolves like subspace iteration,
    contracting by ``1 − η·(1 − λ_{k+1}/λ_k)`` a step, while the part inside the column
    space contracts by ``1 − 2η`` (Newton-like at η = ½). The solver's low-rank unmasked
    precgd uses η = ½ with ``orthogonal_scale=2``, a full step outside: both parts then
    contract as fast as they can (rate λ_{k+1}/λ_k instead of ½ + ½·λ_{k+1}/λ_k). With
    k = N there is no such part and nothing changes.

    Compose it like any optax transform, e.g. ``optax.chain(scaled_gradient(), optax.sgd(0.5))``.
    ``params`` (the factor X, shape (..., N, k)) must be passed to ``update``.
    """

    def init_fn(params):
        del params
        return ScaledGradientState()

    def update_fn(updates, state, params=None, *, residual_norm=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError("scaled_gradient needs params (the factor X) in update()")
        delta = damping + (0.0 if residual_norm is None else residual_weight * residual_norm)
        updates = jax.tree.map(
            lambda g, x: _right_solve(g, x, delta, orthogonal_scale), updates, params
        )
        return updates, state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _right_solve(g: jax.Array, x: jax.Array, delta, orthogonal_scale) -> jax.Array:
    """``g·(xᵀx + δI)⁻¹`` for the SPD Gram matrix (k×k: cheap next to the N×k products),
    with its component outside the column space of x scaled by ``orthogonal_scale``."""
    k = x.shape[-1]
    xt = jnp.swapaxes(x, -1, -2)
    gram = xt @ x
    # A floor relative to the Gram's size keeps the solve defined when X is rank deficient
    # (relative, so that the step does not depend on the scale of the problem).
    finfo = jnp.finfo(x.dtype)
    floor = finfo.eps * jnp.trace(gram, axis1=-2, axis2=-1) + finfo.tiny
    eye = jnp.eye(k, dtype=x.dtype)
    # The Gram is symmetric, so (g·G⁻¹)ᵀ = G⁻¹·gᵀ.
    damped = gram + (delta + floor)[..., None, None] * eye
    step = jnp.swapaxes(spd_solve(damped, jnp.swapaxes(g, -1, -2)), -1, -2)
    if isinstance(orthogonal_scale, (int, float)) and orthogonal_scale == 1:
        return step  # plain ScaledGD
    # x·(xᵀx)⁻¹·xᵀ·step: the part of the step inside the column space of x.
    # (its Cholesky waits for the first solve's: see _sequence)
    inside = x @ spd_solve(after(gram + floor[..., None, None] * eye, step), xt @ step)
    return inside + orthogonal_scale * (step - inside)


# --- spectral estimates: step size, PSD check, initial guess -------------------------------


def lanczos_extremes(S: jax.Array, steps: int = 32) -> tuple[jax.Array, jax.Array]:
    """Estimates of (λ_min, λ_max) of symmetric S from ``min(N, steps)`` Lanczos steps with
    full reorthogonalisation: O(N²·steps). Ritz values lie inside the spectrum and the
    extremes converge first; exact when ``steps >= N``. Differentiable (the default gd step
    and start scale depend on λ_max, so gradients through a fixed-step solve include it)."""
    n = S.shape[-1]
    if n <= steps:  # a Krylov space of size N is the whole space: ask LAPACK directly
        lam = jnp.linalg.eigvalsh(S)
        return lam[0], lam[-1]
    m = steps
    v = jax.random.normal(jax.random.PRNGKey(0), (n,), S.dtype) + 1.0
    Q = jnp.zeros((m + 1, n), S.dtype).at[0].set(v / jnp.linalg.norm(v))
    tiny = jnp.finfo(S.dtype).tiny

    def body(j, carry):
        Q, alpha, beta = carry
        w = S @ Q[j]
        a = jnp.dot(w, Q[j])
        w = w - Q.T @ (Q @ w)
        w = w - Q.T @ (Q @ w)
        b = jnp.linalg.norm(w)
        Q = Q.at[j + 1].set(jnp.where(b > tiny, w / jnp.where(b > tiny, b, 1.0), 0.0))
        return Q, alpha.at[j].set(a), beta.at[j].set(b)

    _, alpha, beta = lax.fori_loop(0, m, body, (Q, jnp.zeros(m, S.dtype), jnp.zeros(m, S.dtype)))
    off = beta[: m - 1]
    T = jnp.diag(alpha) + jnp.diag(off, 1) + jnp.diag(off, -1)
    theta = jnp.linalg.eigvalsh(T)
    return theta[0], theta[-1]


def spectral_norm_estimate(S: jax.Array, steps: int = 24) -> jax.Array:
    """‖S‖₂ = max |λ| of symmetric S, from below, by ``steps`` power iterations from a fixed
    random start: O(N²·steps) in matrix-vector products, no LAPACK call, so that a batch of
    many small matrices does not pay for an eigendecomposition each. It converges like
    |λ₂/λ₁|^steps: within a few % unless the top of the spectrum is tightly clustered, where
    any of the clustered values is as good a scale. gd's default step 1/(3·λ_max) keeps a
    threefold margin for it."""
    n = S.shape[-1]
    v = jax.random.normal(jax.random.PRNGKey(1), (n,), S.dtype)
    v = v / jnp.linalg.norm(v)
    tiny = jnp.finfo(S.dtype).tiny

    def body(_, carry):
        v, _ = carry
        w = S @ v
        norm = jnp.linalg.norm(w)
        return jnp.where(norm > tiny, w / jnp.where(norm > tiny, norm, 1.0), v), norm

    return lax.fori_loop(0, steps, body, (v, jnp.zeros((), S.dtype)))[1]


def spectral_init(
    S: jax.Array, rank: int, key: jax.Array, power_steps: int = 2
) -> tuple[jax.Array, jax.Array]:
    """A rank-``rank`` factor from a randomized eigendecomposition of S (Halko, Martinsson &
    Tropp 2011): range finder with oversampling and power steps, then Rayleigh–Ritz.
    O(N²·(k + p)) — the 'spectral initialisation' ScaledGD assumes. Also returns the k + p
    Ritz values: they lie inside S's spectrum, and the power steps pull them towards the
    eigenvalues largest in magnitude, negative ones included."""
    n = S.shape[-1]
    sketch = min(n, rank + 10)
    Y = S @ jax.random.normal(key, (n, sketch), S.dtype)
    for _ in range(power_steps):
        Y = S @ jnp.linalg.qr(Y)[0]
    Q = jnp.linalg.qr(Y)[0]
    theta, W = jnp.linalg.eigh(Q.T @ S @ Q)
    top_vals, top_vecs = theta[::-1][:rank], W[:, ::-1][:, :rank]
    return (Q @ top_vecs) * safe_sqrt(top_vals), theta


def identity_start(S: jax.Array, lam_max: jax.Array) -> jax.Array:
    """Full-rank precgd's start α·I. Near the answer the step is Newton's square-root
    iteration, which from α needs about log₂ max|log(α/√λ)| steps for each eigenvalue λ:
    α² = tr(S)/N, the mean eigenvalue, sits inside the spectrum and saves 1–4 steps over
    α² = λ_max on spread spectra (measured: 15 → 13 steps at κ = 1e4, N = 256; 11 → 9 for
    8×8 at κ = 100). λ_max where the trace is not positive."""
    return identity_scale(S, lam_max) * jnp.eye(S.shape[-1], dtype=S.dtype)


def identity_scale(S: jax.Array, lam_max: jax.Array) -> jax.Array:
    """α of :func:`identity_start` (0 only where λ_max and the trace are)."""
    mean = jnp.trace(S) / max(S.shape[-1], 1)
    return jnp.sqrt(jnp.where(mean > 0, mean, jnp.maximum(lam_max, 0.0)))


def _gaussian_scale(n: int, lam_max: jax.Array) -> jax.Array:
    """The entry size of an N-row Gaussian factor whose X·Xᵀ has about the size of λ_max."""
    return jnp.sqrt(jnp.maximum(lam_max, 0.0) / max(n, 1))


def random_init(S: jax.Array, rank: int, key: jax.Array, lam_max: jax.Array) -> jax.Array:
    """Gaussian factor scaled so that X·Xᵀ has about the size of S's top eigenvalue."""
    n = S.shape[-1]
    return _gaussian_scale(n, lam_max) * jax.random.normal(key, (n, rank), S.dtype)


# --- the loop ---------------------------------------------------------------------------------


class IterOptions(NamedTuple):
    """Traced numbers of the iterative solve (a sweep over them does not recompile)."""

    rtol: jax.Array
    atol: jax.Array
    max_steps: jax.Array
    learning_rate: jax.Array


class _Carry(NamedTuple):
    X: jax.Array
    opt_state: Any
    probe: jax.Array
    step: jax.Array
    status: jax.Array
    done: jax.Array
    rel: jax.Array  # the relative residual before the last step (inf at the start)
    start: jax.Array  # the relative residual at the first check (NaN before it)


def _residual_and_gradient(X, S, W, S_norm, probe, precision):
    """Relative residual ‖M∘(X·Xᵀ − S)‖/‖M∘S‖, ∇f = (W∘R)·X, and (W∘R)·probe.

    The probe rides along as one more column of the product with S (or W∘R): one pass over
    the N×N matrix a step, not two. Without a mask and with k < N the N×N residual is never
    formed: ∇f = X·(XᵀX) − S·X and the residual comes from ‖XᵀX‖² − 2·tr(XᵀSX) + ‖S‖²,
    O(N²k) with O(Nk) extra memory. That formula cancels below about sqrt(eps) (relative):
    ``run_descent`` measures the residual directly once it is that small.
    """
    k = X.shape[-1]
    if W is None and k < S.shape[-1]:
        Xp = jnp.concatenate([X, probe[:, None]], axis=1)
        SXp = jnp.matmul(S, Xp, precision=precision)
        SX, Sp = SXp[:, :k], SXp[:, k]
        gram = jnp.matmul(X.T, X, precision=precision)
        grad = jnp.matmul(X, gram, precision=precision) - SX
        res_sq = jnp.sum(gram * gram) - 2 * jnp.sum(X * SX) + S_norm**2
        abs_res = safe_sqrt(res_sq)
        R_probe = X @ (X.T @ probe) - Sp
        rel = _relative(abs_res, S_norm)
    else:
        WR, rel = _dense_residual(X, S, W, S_norm, precision)
        R_probe, grad = _dense_gradient(WR, X, probe, precision)
    return rel, R_probe, grad


def _norm(A: jax.Array) -> jax.Array:
    """‖A‖_F with derivative 0, not NaN (0·∞), at A = 0. A loop differentiated in reverse
    carries every norm's derivative, also of those only compared against a tolerance, and
    a solve that converges exactly (a residual of 0) would otherwise give NaN gradients."""
    return safe_sqrt(jnp.sum(A * A))


def _relative(abs_res, S_norm):
    return jnp.where(S_norm > 0, abs_res / jnp.where(S_norm > 0, S_norm, 1.0), abs_res)


def _dense_residual(X, S, W, S_norm, precision):
    """W∘R with R = X·Xᵀ − S formed (N×N), and the relative residual."""
    R = jnp.matmul(X, X.T, precision=precision) - S
    WR = R if W is None else W * R
    return WR, _relative(safe_sqrt(jnp.sum(R * WR)), S_norm)


def _dense_gradient(WR, X, probe, precision):
    """(W∘R)·probe and ∇f = (W∘R)·X, as one product."""
    k = X.shape[-1]
    WRXp = jnp.matmul(WR, jnp.concatenate([X, probe[:, None]], axis=1), precision=precision)
    return WRXp[:, k], WRXp[:, :k]


def product_change_norm(step, X, precision=None, *, factored: bool = False) -> jax.Array:
    """‖step·Xᵀ + X·stepᵀ‖_F, what a step does to X·Xᵀ (to first order). ``factored``
    (static; for k < N): from k×k products, O(N·k²) and no N×N matrix, by
    ‖A·Bᵀ + B·Aᵀ‖² = 2·tr(AᵀA·BᵀB) + 2·tr((AᵀB)²). The two traces cancel where the step
    mostly rotates X, so the value is exact only to about sqrt(eps)·‖step‖·‖X‖; where the
    stop test uses it (‖step‖ ≲ 1e-5·‖X‖ by then) that is at the level of its rtol·‖S‖.
    Matmuls only: no LAPACK call to keep in sequence (see _sequence)."""
    if factored:
        AtB = jnp.matmul(step.T, X, precision=precision)
        AtA = jnp.matmul(step.T, step, precision=precision)
        BtB = jnp.matmul(X.T, X, precision=precision)
        sq = 2 * jnp.sum(AtA * BtB) + 2 * jnp.sum(AtB * AtB.T)
        return safe_sqrt(sq)
    change = jnp.matmul(step, X.T, precision=precision)
    return _norm(change + change.T)


def _masked_norm(S, W):
    return safe_sqrt(jnp.sum(S * S if W is None else W * S * S))


def run_descent(
    S: jax.Array,
    W: jax.Array | None,
    X0: jax.Array,
    tx: optax.GradientTransformation,
    opts: IterOptions,
    *,
    fixed_steps: bool,
    precision: Any,
    certify: bool = True,
    converged: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Minimise ¼‖M∘(X·Xᵀ − S)‖² from X0 with ``tx``; returns (X, status, steps).
    ``converged``: X0 is already an answer (SUCCESS, no step and no check).

    Stops (SUCCESS) when the relative residual is at most ``atol``, or both the step and
    the gradient are negligible (step <= ``rtol·‖X‖`` and ‖∇f‖ <= ``rtol·‖S‖·‖X‖``: a
    stationary point, the nearest PSD or best rank-k answer; that last small step is
    applied and counted); at ``max_steps``
    (MAX_STEPS); when the residual grows 1e6-fold over its start (DIVERGED); or when a
    step turns X non-finite (NON_FINITE, the last finite X kept).
    ``certify``: ``tx`` is not precgd's own step, whose size measures the distance to a
    stationary point whatever the conditioning; a plain gradient along the small
    directions of an ill-conditioned X is tiny long before X is near one. A stop for
    stationarity is then confirmed (only when the cheap test says so) by the change the
    preconditioned step precgd would take, N = g·(XᵀX + δI)⁻¹/2, would make to the
    product: ‖N·Xᵀ + X·Nᵀ‖ <= rtol·‖S‖ (X·Xᵀ within about rtol of a stationary point).
    With ``fixed_steps`` it runs ``max_steps`` iterations of ``fori_loop``
    (reverse-differentiable; ``max_steps`` static): after a successful stop X keeps taking
    its negligible steps (see ``settle``), after any other stop it is frozen.
    """
    tx = optax.with_extra_args_support(tx)
    converged = jnp.asarray(False) if converged is None else converged
    S_norm = _masked_norm(S, W)
    tiny = jnp.finfo(S.dtype).tiny
    probe0 = jnp.ones(S.shape[-1], S.dtype) / jnp.sqrt(max(S.shape[-1], 1))
    factored = W is None and X0.shape[-1] < S.shape[-1]
    coarse = 1e3 * jnp.sqrt(jnp.finfo(S.dtype).eps)  # below this the factored residual is noise

    def exact_relative_residual(X):
        R = jnp.matmul(X, X.T, precision=precision) - S
        return _norm(R) / jnp.where(S_norm > 0, S_norm, 1.0)

    def product_change(step, X):
        return product_change_norm(step, X, precision, factored=factored)

    def check(X, probe, opt_state, prev_rel, start, early_exit=True):
        """The next update and whether to stop before applying it, with the status if so.
        ``early_exit``: where the residual is formed (N×N) and already at most ``atol``,
        skip the gradient and the update (not for ``settle``, which takes the update)."""
        if factored:
            rel, R_probe, grad = _residual_and_gradient(X, S, W, S_norm, probe, precision)
            # Near convergence the factored residual is noise: measure it (N×N, once a step).
            rel = lax.cond(rel < coarse, lambda: exact_relative_residual(X), lambda: rel)
            return decide(X, rel, R_probe, grad, probe, opt_state, prev_rel, start)
        WR, rel = _dense_residual(X, S, W, S_norm, precision)
        if not early_exit:
            return decide(
                X, rel, *_dense_gradient(WR, X, probe, precision), probe, opt_state, prev_rel, start
            )

        def converged():
            success = jnp.asarray(Status.SUCCESS, jnp.int32)
            no = jnp.asarray(False)
            return success, jnp.asarray(True), no, jnp.zeros_like(X), opt_state, probe, rel

        def full():
            R_probe, grad = _dense_gradient(WR, X, probe, precision)
            return decide(X, rel, R_probe, grad, probe, opt_state, prev_rel, start)

        return lax.cond(rel <= opts.atol, converged, full)

    def decide(X, rel, R_probe, grad, probe, opt_state, prev_rel, start):
        # ‖R‖₂ by one power step an iteration, warm-started: R changes slowly, so the probe
        # tracks its top eigenvector at O(N²) a step. PrecGD's damping uses it.
        spectral = _norm(R_probe)
        probe = jnp.where(
            spectral > tiny, R_probe / jnp.where(spectral > tiny, spectral, 1.0), probe
        )
        updates, opt_state = tx.update(grad, opt_state, X, residual_norm=spectral)
        # Stationary: the step no longer moves X (relative to X; for precgd this is the
        # preconditioned step, which does not shrink with the condition number) AND the
        # gradient is negligible, ‖∇f‖ <= rtol·‖S‖·‖X‖. Either alone fires early: a small
        # learning rate makes plain GD's steps tiny far from the solution, and the gradient
        # is tiny along the small directions of an ill-conditioned X.
        # (plus a floor at the scale of sqrt(‖S‖), so that X → 0 — the answer for a
        # negative semidefinite S — counts as stationary)
        x_norm = _norm(X) + jnp.finfo(S.dtype).eps * safe_sqrt(S_norm)
        small_step = _norm(updates) <= opts.rtol * x_norm
        small_grad = _norm(grad) <= opts.rtol * S_norm * x_norm
        # Or: the residual has stopped moving. Along the eigenvectors of eigenvalues near
        # zero (clipped negative ones included) X converges slowly while the product X·Xᵀ,
        # the objective and the residual have long converged; that is confirmed below by
        # what a Newton-like step would still change in X·Xᵀ.
        stalled = jnp.abs(prev_rel - rel) <= opts.rtol * rel
        if certify:

            def newton_step_small():
                # precgd's step (it does not shrink with the condition number); after the
                # update, whose optimizer may solve with LAPACK too (see _sequence: two
                # concurrent batched calls hang a 2-core machine)
                step = 0.5 * _right_solve(grad, after(X, updates), 0.5 * spectral, 1.0)
                return product_change(step, X) <= opts.rtol * S_norm

            candidate = ((small_step & small_grad) | stalled) & (rel > opts.atol)
            stationary = lax.cond(candidate, newton_step_small, lambda: jnp.asarray(False))
        else:
            settled = lax.cond(
                stalled & ~(small_step & small_grad),
                lambda: product_change(updates, X) <= opts.rtol * S_norm,
                lambda: jnp.asarray(False),
            )
            stationary = ((small_step & small_grad) | settled) & (rel > opts.atol)
        converged = (rel <= opts.atol) | stationary
        # (start: the residual at the first check; NaN until then)
        diverged = rel > 1e6 * jnp.maximum(jnp.where(jnp.isnan(start), rel, start), coarse)
        status = jnp.where(converged, Status.SUCCESS, Status.DIVERGED).astype(jnp.int32)
        return status, converged | diverged, stationary, updates, opt_state, probe, rel

    def step_fn(c: _Carry) -> _Carry:
        return advance(c, check(c.X, c.probe, c.opt_state, c.rel, c.start))

    def advance(c: _Carry, checked) -> _Carry:
        status, stop, stationary, updates, opt_state, probe, rel = checked
        # The check runs once more after the last allowed step, so a run that converges on
        # its final step reports SUCCESS rather than MAX_STEPS.
        halt = stop | (c.step >= opts.max_steps)
        status = jnp.where(stop, status, Status.MAX_STEPS)
        X = optax.apply_updates(c.X, updates)
        finite = jnp.all(jnp.isfinite(X))
        stop_here = halt | ~finite
        status = jnp.where(halt, status, Status.NON_FINITE).astype(jnp.int32)
        start = jnp.where(jnp.isnan(c.start), jnp.where(jnp.isfinite(rel), rel, jnp.inf), c.start)
        new = _Carry(X, opt_state, probe, c.step + 1, status, stop_here, rel, start)
        old = c._replace(status=status, done=stop_here, start=start)
        # Stopped because the step is negligible: that last step is already computed, and it
        # is what separates X from the stationary point (for precgd's Newton-like step the
        # error after it is about its square), so it is taken — unless the cap is reached
        # (steps never exceed max_steps). Any other stop keeps X.
        keep_new = ~stop_here | (stationary & finite & (c.step < opts.max_steps))
        return jax.tree.map(lambda a, b: jnp.where(keep_new, a, b), new, old)

    init = _Carry(
        X=X0,
        opt_state=tx.init(X0),
        probe=probe0,
        step=jnp.zeros((), jnp.int32),
        status=jnp.where(converged, Status.SUCCESS, Status.MAX_STEPS).astype(jnp.int32),
        done=jnp.asarray(converged),
        rel=jnp.full((), jnp.inf, S.dtype),
        start=jnp.full((), jnp.nan, S.dtype),
    )

    def settle(c: _Carry, checked) -> _Carry:
        # fixed_steps after a successful stop: status and count stay, X keeps taking its
        # (now negligible) steps. Its value barely moves, but the derivative of the
        # unrolled loop keeps converging to that of the solution instead of being frozen
        # wherever the values happened to converge (a spectral start that is already
        # exact would otherwise carry no derivative at all).
        _, _, _, updates, opt_state, probe, _ = checked
        X = optax.apply_updates(c.X, updates)
        moved = c._replace(X=X, opt_state=opt_state, probe=probe)
        finite = jnp.all(jnp.isfinite(X))
        return jax.tree.map(lambda a, b: jnp.where(finite, a, b), moved, c)

    def fixed_body(_, c: _Carry) -> _Carry:
        # One check serves both the running and the settling iteration: under vmap a
        # switch between them would compute two, and their two batched Cholesky factors
        # at once hang jaxlib < 0.11 on two cores (see _sequence). A run stopped without
        # success stays frozen.
        def live(c):
            checked = check(c.X, c.probe, c.opt_state, c.rel, c.start, early_exit=False)
            return jax.tree.map(
                lambda a, b: jnp.where(c.done, a, b), settle(c, checked), advance(c, checked)
            )

        frozen = c.done & (c.status != Status.SUCCESS)
        return lax.cond(frozen, lambda c: c, live, c)

    if fixed_steps:
        final = lax.fori_loop(0, opts.max_steps + 1, fixed_body, init)
    else:
        final = lax.while_loop(lambda c: ~c.done, step_fn, init)
    status = final.status
    return final.X, status.astype(jnp.int32), final.step


def _psd_cholesky(S, lam_max):
    """The Cholesky factor of S + tol·λ_max·I (NaN where S has eigenvalues below −tol·λ_max):
    the exact PSD check of a full-rank solve, O(N³) like one (a batch of tiny matrices
    factored by the unrolled code, see :func:`cholesky_lower`)."""
    return cholesky_lower(_psd_shifted(S, lam_max))


def _psd_shifted(S, lam_max):
    """S + (tol·λ_max + tiny)·I, for matrix axes first and any batch axes after them."""
    n, batch = S.shape[0], S.shape[2:]
    shift = default_tol(n, S.dtype) * jnp.maximum(lam_max, 0.0) + jnp.finfo(S.dtype).tiny
    return S + shift * jnp.eye(n, dtype=S.dtype).reshape((n, n) + (1,) * len(batch))


def _is_not_psd(S, rank, lam_min, lam_max):
    """Whether S has eigenvalues below −tol·λ_max: exact (:func:`_psd_cholesky`) when
    rank = N; from the estimate of λ_min when rank < N (kept O(N²k)): the sketch's Ritz
    values or Lanczos, which find the negative eigenvalues large in magnitude and can miss
    small ones inside the spectrum."""
    n = S.shape[-1]
    if rank < n:
        return lam_min < -default_tol(n, S.dtype) * jnp.maximum(lam_max, 0.0)
    return ~cholesky_succeeded(_psd_cholesky(S, lam_max))


_NEWTON_SCALED_STEPS = 2
"""Determinant scaling is applied to the first this many Newton steps only. It assumes a
non-singular S; with (nearly) singular directions the shifted determinant drags μ away
from the useful scale once X has adapted (measured at N = 256: with 2 scaled steps 5–10
steps for κ = 10…1e12 and 6–30 on half-rank S in float64, ≤ 9 in float32; with every
large step scaled, 20–50 on half-rank S)."""

_NEWTON_STALL = 0.7
_NEWTON_NEAR = 0.1
"""The Newton phase hands over once a step that changes X by less than ``_NEWTON_NEAR``
(relative) changes it by more than ``_NEWTON_STALL`` times the step before (measured: the
halving phase far from the answer moves X by 0.5–1 a step with ratios up to 0.96; a float32
S with eigenvalues just below zero, within the PSD tolerance, plateaus at ~1e-2)."""

_NEWTON_RANGE_TOL = 1e-2
"""The identity start's Newton steps are scaled while the tracked range [a, b] of U's
singular values has b/a above 1 + this (then μ = 1/√(a·b) is within 0.5 % of 1)."""

NEWTON_MAX_STEPS = 30
"""At most this many steps of full-rank precgd's Newton phase (see :func:`newton_phase`);
determinant scaling needs under 10 up to κ = 1e16, and a singular S converges linearly."""


def _log_det_and_times_inverse_transpose(X, S):
    """(log|det X|, S·X⁻ᵀ) for one square X and symmetric S.

    From the LU factorisation P·X = L·U: X⁻ᵀ = Pᵀ·L⁻ᵀ·U⁻ᵀ, two right-side triangular solves
    on the permuted columns of S, no transposes. Above 128×128 the LU and the solves are
    recursive (mostly matmuls, see _blocked_linalg), the solves with their 128×128 diagonal
    blocks inverted: an error that makes is one more perturbation of X, which the next
    Newton step corrects, and the result is measured (residuals unchanged, ≤ 1e-15, for
    κ up to 1e16 at N = 1024; a step 8 ms faster per solve). (Not through the Gram XᵀX,
    even for a batch of tiny matrices: it squares the condition number, and along the
    singular directions of a singular S, where X shrinks, the Newton phase then stalls
    early — measured 24–33 steps instead of 8–9 for half-rank 8×8 — and it was slower
    too.)"""
    lu, perm = lu_factor(X)
    solve = functools.partial(solve_right_transposed, invert_leaves=True)
    Z = solve(lu, S[..., perm], lower=True, unit_diagonal=True)
    Y = solve(lu, Z, lower=False)
    return jnp.sum(jnp.log(jnp.abs(jnp.diagonal(lu)))), Y


def _polar_newton_range(a, b, mu):
    """Where one Newton step u ← ½·(μ·u + 1/(μ·u)) maps singular values u in [a, b]: the
    map is convex with its minimum 1 at u = 1/μ."""
    fa, fb = 0.5 * (mu * a + 1 / (mu * a)), 0.5 * (mu * b + 1 / (mu * b))
    low = jnp.where((a * mu <= 1) & (b * mu >= 1), 1.0, jnp.minimum(fa, fb))
    return low, jnp.maximum(fa, fb)


class _Layout(NamedTuple):
    """The Newton phase's operations that depend on how its matrices are stored: one
    matrix (n, n), or a batch-last stack (n, n, b) of tiny ones (see _small_linalg). Every
    other operation is written for matrix axes first and any batch axes after them."""

    # S → (the factor, as cho_solve_vector takes it; its diagonal (…, n); success mask)
    cholesky: Callable[[jax.Array], tuple[Any, jax.Array, jax.Array]]
    cho_solve_vector: Callable[[Any, jax.Array], jax.Array]  # (L, v) → (L·Lᵀ)⁻¹·v
    times_inverse_transpose: Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]
    residual_norm: Callable[[jax.Array, jax.Array], jax.Array]  # (X, S) → ‖X·Xᵀ − S‖_F


def _one_matrix_cholesky(S):
    L = cholesky_lower(S)
    return L, jnp.diagonal(L), cholesky_succeeded(L)


def _batch_last_cholesky(S):
    rows, ok = cholesky_rows_batch_last(S)
    return rows, jnp.stack([rows[i][i] for i in range(len(rows))], axis=-1), ok


_ONE_MATRIX = _Layout(
    _one_matrix_cholesky,
    lambda L, v: cho_solve_lower(L, v[:, None])[:, 0],
    _log_det_and_times_inverse_transpose,
    lambda X, S: jnp.linalg.norm(X @ X.T - S),
)
_BATCH_LAST = _Layout(
    _batch_last_cholesky,
    cho_solve_vector_batch_last,
    log_det_and_times_inverse_transpose_batch_last,
    gram_residual_norm_batch_last,
)


def _sum_leading(A: jax.Array, axes: int) -> jax.Array:
    """The sum over the first ``axes`` axes (a matrix's, or a vector's), per batch entry.
    A batch-last stack is summed by unrolled adds of whole batch vectors, which fuse into
    one elementwise loop (XLA:CPU's reduction over the leading axes of (8, 8, 10,000)
    measured 3 ms, 10× the elementwise pass)."""
    if A.ndim == axes:
        return jnp.sum(A)
    return functools.reduce(operator.add, [A[idx] for idx in np.ndindex(A.shape[:axes])])


def _frobenius(A: jax.Array) -> jax.Array:
    return jnp.sqrt(_sum_leading(A * A, 2))


def smallest_eigenvalue_bound(
    L: Any, diagonal: jax.Array, steps: int = 3, layout: _Layout = _ONE_MATRIX
) -> jax.Array:
    """An upper bound on λ_min(L·Lᵀ) from its Cholesky factor (as ``layout`` stores it) and
    the factor's diagonal (…, n): ``steps`` inverse power iterations (two triangular
    solves with one vector each: O(N²), no N×N work) give the Rayleigh quotient
    ρ ≤ λ_max((L·Lᵀ)⁻¹), so 1/ρ ≥ λ_min; capped by min L_ii², the smallest pivot, which is
    also ≥ λ_min. Measured at N = 1024 (κ = 1e4, 1e8, half rank): within 1.3× after 3
    steps. The Newton phase's scaling needs it only within ~100×."""
    n, batch = diagonal.shape[-1], diagonal.shape[:-1]
    start = np.random.default_rng(0x5CA1E).standard_normal(n)
    v = jnp.asarray(start / np.linalg.norm(start), diagonal.dtype)
    v = jnp.broadcast_to(v.reshape((n,) + (1,) * len(batch)), (n, *batch))
    tiny = jnp.finfo(diagonal.dtype).tiny

    def body(_, carry):
        v, _ = carry
        w = layout.cho_solve_vector(L, v)
        norm = jnp.sqrt(_sum_leading(w * w, 1))
        return w / jnp.where(norm > tiny, norm, 1.0), _sum_leading(v * w, 1)

    rho = lax.fori_loop(0, steps, body, (v, jnp.zeros(batch, diagonal.dtype)))[1]
    smallest_pivot = jnp.min(diagonal, axis=-1) ** 2
    return jnp.minimum(1 / jnp.maximum(rho, tiny), smallest_pivot)


def newton_phase(
    S: jax.Array,
    start: jax.Array,
    lam_max: jax.Array,
    max_steps: jax.Array,
    tol: jax.Array,
    atol: jax.Array,
    *,
    identity: bool = False,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Full-rank precgd's first phase: the PSD check, then ScaledGD's undamped step at
    η = ½, with scaling, from X0 = ``start`` (or α·I for ``identity``, ``start`` = α).
    Returns (X, steps taken, converged, psd); converged means the relative residual is at
    most ``atol`` too.

    The PSD check is the Cholesky factor L of S + tol·λ_max·I (``lam_max`` an estimate of
    λ_max(S) from below); ``psd`` says it succeeded (S has no eigenvalue below −tol·λ_max).
    Where it fails, the phase takes no step.

    For a square invertible X the step X − ½·(X·Xᵀ − S)·X·(XᵀX)⁻¹ is ½·(X + S·X⁻ᵀ): one LU
    of X and one solve, no Gram, Cholesky or residual (about 3 N×N products' worth; a damped
    step costs about 6). With S = L·Lᵀ and X = L·U it is U ← ½·(U + U⁻ᵀ), Newton's iteration
    for the orthogonal polar factor of U (Higham 1986): globally and quadratically
    convergent for any invertible U and numerically stable, whatever the conditioning of
    S. Steps far from the answer are taken from μ·X (scaling, Kenney & Laub 1992), which
    centres U's singular values on 1.

    ``identity`` (static): X0 = α·I (the default start). Its first step is then
    ½·(g·I + S/g), g = det(S)^(1/2N) (μ·α = g whatever α), with no LU. From there every
    iterate is a function of S, so the range [a, b] of U's singular values follows from
    λ_max and a bound on λ_min (:func:`smallest_eigenvalue_bound`) by the scalar map
    (:func:`_polar_newton_range`), and each step takes the optimal μ = 1/√(a·b) until
    b/a < 1 + ``_NEWTON_RANGE_TOL``. Measured at N = 1024, float64: 5, 6, 7, 8 steps for
    κ = 10, 1e4, 1e8, 1e16, 8 on half-rank S (the determinant scaling of a general start
    below: 5, 7, 9, 12; 9–17 on half-rank S), and unchanged with the λ_min bound 100× too
    large or λ_max 0.7× too small. Otherwise (a given start) the first
    ``_NEWTON_SCALED_STEPS`` steps use determinant scaling, μ = |det U|^(−1/N), read off
    the LU of X and L.

    Along an exactly singular direction the step halves X (linear convergence). The phase
    takes at most ``max_steps`` steps, and stops after a step that changed X by at most
    ``tol`` (relative; the error after it is about that squared), once the change stops
    shrinking (the rounding floor, see ``_NEWTON_STALL``), or before a step that would turn
    X non-finite. ``converged`` (the first of these, once the residual confirms it: in
    float32 sub-resolution eigenvalues can end the phase above atol) lets the caller skip
    the damped loop; otherwise the damped loop starts from the result and finishes the job
    (sub-resolution or chaotic directions, or the step cap).

    Per matrix, and ``vmap``-ped by ``solve``: a batch of n ≤ SMALL_N matrices from the
    identity start runs as one batch-last loop (see _small_linalg): the factor stays in
    rows, and the iterates' solves are by elimination without pivoting, stable for them
    since they are close to symmetric positive definite. Other batches are ``vmap``-ped as
    they are.
    """
    loop = functools.partial(_newton_loop, identity=identity)
    one_matrix = functools.partial(loop, layout=_ONE_MATRIX)

    # Differentiated as the plain per-matrix loop: forward mode works as for any
    # while_loop, and reverse mode fails with JAX's while_loop message (the batching rule
    # below has no derivative of its own).
    @jax.custom_jvp
    def phase(*args):
        return batchable(*args)

    @phase.defjvp
    def _phase_jvp(primals, tangents):
        return jax.jvp(one_matrix, primals, tangents)

    @jax.custom_batching.custom_vmap
    def batchable(*args):
        return one_matrix(*args)

    @batchable.def_vmap
    def _phase_batched(axis_size, in_batched, *args):
        args = [
            a if batched else jnp.broadcast_to(a, (axis_size, *a.shape))
            for a, batched in zip(args, in_batched, strict=True)
        ]
        if identity and use_small(args[0].shape[-1]):
            S_last = materialized(jnp.moveaxis(args[0], 0, -1))
            X, steps, converged, psd = loop(S_last, *args[1:], layout=_BATCH_LAST)
            return (jnp.moveaxis(X, -1, 0), steps, converged, psd), (True,) * 4
        return jax.vmap(one_matrix)(*args), (True,) * 4

    as_array = functools.partial(jnp.asarray, dtype=S.dtype)
    numbers = (as_array(lam_max), jnp.asarray(max_steps), as_array(tol), as_array(atol))
    return phase(S, as_array(start), *numbers)


def _newton_loop(S, start, lam_max, max_steps, tol, atol, *, identity: bool, layout: _Layout):
    """:func:`newton_phase` on matrices stored as ``layout`` says (matrix axes first), every
    per-matrix number of shape ``S.shape[2:]``; ``start`` is X0, or α for the identity start."""
    n, batch = S.shape[0], S.shape[2:]
    eye = jnp.eye(n, dtype=S.dtype).reshape((n, n) + (1,) * len(batch))
    X0 = start * eye if identity else start
    L, diagonal, psd = layout.cholesky(_psd_shifted(S, lam_max))
    half_logdet_S = jnp.sum(jnp.log(jnp.abs(diagonal)), axis=-1)
    steps0 = jnp.zeros(batch, jnp.int32)
    change0 = jnp.full(batch, jnp.inf, S.dtype)
    converged0 = jnp.zeros(batch, bool)
    done0 = ~psd | (max_steps <= 0)
    # the tracked range of U's singular values (identity start only; [1, 1] = untracked)
    low0 = high0 = jnp.ones(batch, S.dtype)
    if identity:
        g = lax.stop_gradient(jnp.exp(half_logdet_S / max(n, 1)))
        X1 = 0.5 * (g * eye + S / g)
        change1 = _frobenius(X1 - X0) / _frobenius(X1)
        take = ~done0 & jnp.isfinite(change1)
        X0 = jnp.where(take, X1, X0)
        steps0 = take.astype(jnp.int32)
        change0 = jnp.where(take, change1, change0)
        converged0 = take & (change1 <= tol)
        done0 = done0 | ~take | converged0 | (max_steps <= 1)
        # u = ½·(g/√λ + √λ/g) over λ in [lo, hi]: the step from α·I, in U's terms
        tiny = jnp.finfo(S.dtype).tiny
        hi = jnp.maximum(lax.stop_gradient(lam_max), tiny)
        lo = smallest_eigenvalue_bound(L, diagonal, layout=layout)
        lo = jnp.clip(lax.stop_gradient(lo), tiny, hi)
        low0, high0 = _polar_newton_range(jnp.sqrt(lo) / g, jnp.sqrt(hi) / g, 1.0)
        low0, high0 = (jnp.where(jnp.isfinite(x), x, 1.0) for x in (low0, high0))

    def body(c):
        X, k, change, _, done_before, low, high = c
        log_det_X, Y = layout.times_inverse_transpose(X, S)
        if identity:
            # the tracked range says how far U is from orthogonal; near the answer μ = 1,
            # so that the convergence stays quadratic
            scaled = high > (1 + _NEWTON_RANGE_TOL) * low
            mu = jnp.where(scaled, 1 / jnp.sqrt(low * high), 1.0)
            low, high = _polar_newton_range(low, high, mu)
        else:
            # a step-length choice far from the answer; near it (μ → 1 anyway for a
            # non-singular S) it is switched off so that the convergence stays quadratic
            scaled = (change > 1e-2) & (k < _NEWTON_SCALED_STEPS)
            mu = jnp.where(scaled, jnp.exp((half_logdet_S - log_det_X) / max(n, 1)), 1.0)
        mu = lax.stop_gradient(mu)
        X_new = 0.5 * (mu * X + Y / mu)
        # (a non-finite entry makes the change non-finite: no separate pass over X_new)
        new_change = _frobenius(X_new - X) / _frobenius(X_new)
        ok = jnp.isfinite(new_change)
        converged = ok & (new_change <= tol)
        # Unscaled, the change shrinks quadratically, or halves along singular directions;
        # once it stops shrinking X is at the rounding floor of S·X⁻ᵀ, or S has eigenvalues
        # below the dtype's resolution (or slightly negative, within the PSD check's
        # tolerance, where Newton's iteration is chaotic): the damped loop takes over.
        # (Far from the answer the unscaled step moves X by ~½–1 of itself and shrinks
        # slowly while it halves the large directions: that is progress, not a stall.)
        stalled = (
            ~scaled
            & (k >= _NEWTON_SCALED_STEPS)
            & (new_change > _NEWTON_STALL * change)
            & (new_change < _NEWTON_NEAR)
        )
        done = ~ok | converged | stalled | (k + 1 >= max_steps)
        X = jnp.where(ok, X_new, X)
        new = (X, k + ok.astype(k.dtype), new_change, converged, done, low, high)
        if not batch:  # (one matrix: the loop ends with it)
            return new
        return jax.tree.map(lambda old, upd: jnp.where(done_before, old, upd), c, new)

    init = (X0, steps0, change0, converged0, done0, low0, high0)
    X, steps, _, converged, *_ = lax.while_loop(lambda c: jnp.any(~c[4]), body, init)
    S_norm = _frobenius(S)
    residual = layout.residual_norm(X, S) / jnp.where(S_norm > 0, S_norm, 1.0)
    return X, steps, converged & (residual <= atol), psd


def default_optimizer(
    method: str, learning_rate: jax.Array, split: bool = False
) -> optax.GradientTransformation:
    """Plain gradient descent for "gd"; the preconditioned step for "precgd" (``split``: twice
    the step outside the column space of X, a full step at the default ½, for low-rank
    unmasked problems; see :func:`scaled_gradient`)."""
    if method == "precgd":
        scale = 2.0 if split else 1.0
        return optax.chain(scaled_gradient(orthogonal_scale=scale), optax.sgd(learning_rate))
    return optax.sgd(learning_rate)


def iterative_factor(
    S: jax.Array,
    W: jax.Array | None,
    X0: jax.Array | None,
    key: jax.Array,
    *,
    method: str,
    rank: int,
    optimizer: optax.GradientTransformation | None,
    opts: IterOptions,
    fixed_steps: bool,
    precision: Any,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One matrix: pick the start and the optimizer, run the loop, add the PSD status.

    The spectral estimates (λ_min, λ_max) come from the sketch when precgd starts from one
    (rank < N, no x0): the Ritz values of its k + 10 columns, at no extra pass over S; with
    rank = N, where the PSD check is an exact Cholesky and only the scale λ_max is needed,
    from 24 power steps; otherwise from 32 Lanczos steps (32 passes).

    The sketched start is a constant for differentiation: it chooses the path, not the
    answer, and its eigenvectors' derivative blows up at (near-)repeated Ritz values, which
    a fixed-step solve would then carry for many steps. Every other start and estimate
    keeps its derivative (a fixed-step solve is differentiated as computed)."""
    n = S.shape[-1]
    sketched = method == "precgd" and rank < n and X0 is None
    if sketched:
        X0, ritz = spectral_init(S, rank, key)
        X0 = lax.stop_gradient(X0)
        lam_min, lam_max = ritz[0], ritz[-1]
    elif rank == n:
        lam_min, lam_max = jnp.zeros((), S.dtype), spectral_norm_estimate(S)
    else:
        lam_min, lam_max = lanczos_extremes(S)
    lam_max = jnp.maximum(lam_max, jnp.abs(lam_min))
    custom_optimizer = optimizer is not None
    own_step = method == "precgd" and not custom_optimizer
    newton = own_step and W is None and rank == n and not fixed_steps
    identity = X0 is None and method == "precgd" and rank == n
    # (the Newton phase from the identity start takes α itself, not the N×N α·I)
    alpha_only = identity and newton
    if X0 is None:
        if method == "gd":
            X0 = random_init(S, rank, key, lam_max)
        elif not alpha_only:
            X0 = identity_start(S, lam_max)
    if X0 is not None:
        # X = 0 is a saddle of f (a sketch that finds no positive part, or a given x0 = 0):
        # gradient and step vanish there, so it would pass for converged. Nudge it, along a
        # Gaussian direction that is a constant of the program (no random numbers drawn at
        # run time for the many starts that need no nudge). (α·I is 0 only where λ_max is,
        # and so is the nudge.)
        direction = np.random.default_rng(0x0DD6E).standard_normal((n, rank)).astype(S.dtype)
        X0 = jnp.where(jnp.any(X0 != 0), X0, 1e-3 * _gaussian_scale(n, lam_max) * direction)
    if optimizer is None:
        lr = opts.learning_rate
        if method == "gd":
            # NaN means "not given": 1/(3·λ_max) bounds the curvature of f near the
            # solution (about 2·λ_max), so plain GD converges without tuning.
            auto_lr = 1.0 / (3.0 * jnp.maximum(lam_max, jnp.finfo(S.dtype).tiny))
            lr = jnp.where(jnp.isnan(lr), auto_lr, lr)
        optimizer = default_optimizer(method, lr, split=W is None and rank < S.shape[-1])
    elif method == "precgd":
        optimizer = optax.chain(scaled_gradient(), optimizer)
    # The LAPACK calls of the estimates, the loop and the PSD check run one after another
    # (see _sequence).
    newton_steps = jnp.zeros((), jnp.int32)
    not_psd = converged = None
    if newton:
        start = identity_scale(S, lam_max) if alpha_only else X0
        start = after(start, lam_min, lam_max)
        # (the Newton step is the undamped step at the default learning rate ½ only)
        cap = jnp.where(opts.learning_rate == 0.5, jnp.minimum(opts.max_steps, NEWTON_MAX_STEPS), 0)
        X0, newton_steps, converged, psd = newton_phase(
            after(S, start),
            start,
            lam_max,
            cap,
            jnp.sqrt(opts.rtol),
            opts.atol,
            identity=alpha_only,
        )
        not_psd = ~psd
        opts = opts._replace(max_steps=opts.max_steps - newton_steps)
    else:
        X0 = after(X0, lam_min, lam_max)
    X, status, steps = run_descent(
        S,
        W,
        X0,
        optimizer,
        opts,
        fixed_steps=fixed_steps,
        precision=precision,
        certify=not own_step,
        converged=converged,
    )
    if W is None:
        if not_psd is None:
            not_psd = _is_not_psd(after(S, X), rank, lam_min, lam_max)
        not_psd = not_psd & (status == Status.SUCCESS)
        status = jnp.where(not_psd, Status.NOT_PSD, status).astype(jnp.int32)
    return X, status, steps + newton_steps
