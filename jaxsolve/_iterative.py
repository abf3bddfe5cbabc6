"""Gradient-descent solvers for X·Xᵀ = S: one loop, and the pieces that plug into it.

The objective is ``f(X) = ¼‖M∘(X·Xᵀ − S)‖²_F`` with gradient ``(W∘(X·Xᵀ − S))·X``, where
``W = M∘M`` symmetrised (``W = 1`` without a mask). ``"gd"`` feeds that gradient to any optax
``GradientTransformation``; ``"precgd"`` puts :func:`scaled_gradient` (ScaledGD / PrecGD) in
front of a fixed step. Both run the same loop, :func:`run_descent`, whose one stopping rule is
written in :func:`_decide`; ``run_descent`` takes a ``measure`` function, so that other
representations of S (observed entries, :mod:`._observed`) and other steps (Gauss–Newton,
:mod:`._completion`) use it too. Full-rank precgd from its default start first runs the
scaled Newton iteration of :mod:`._newton` for the same fixed point; rank-k precgd without a
mask is block Rayleigh–Ritz (:mod:`._lowrank`), with the same stopping rule. The starts and
spectral estimates are :mod:`._spectral`'s.

Functions here work on one symmetric, finite matrix ``S`` (N, N) in ``solve``'s scaled units
(largest entries near 1); ``solve`` validates, symmetrises, scales and batches.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from ._checks import check_int, check_real, default_tol
from ._closed_form import cholesky_succeeded
from ._newton import NEWTON_MAX_STEPS, identity_scale, lapack_cholesky, newton_phase, psd_shifted
from ._numerics import relative, safe_divide, safe_norm, safe_sqrt
from ._sequence import run_after
from ._solution import Status
from ._spectral import lanczos_extremes, nudged_from_zero, random_init, spectral_init

ITERATIVE_METHODS = ("gd", "precgd", "gauss_newton")
"""The methods that iterate (``"gauss_newton"``, for completion, is :mod:`._completion`)."""
DEFAULT_MAX_STEPS = {"gd": 5000, "precgd": 1000, "gauss_newton": 200}
PRECGD_LEARNING_RATE = 0.5
"""precgd's default step: the fraction ½ of the preconditioned step (Newton-like at ½)."""
_INT32_MAX = int(np.iinfo(np.int32).max)
DIVERGENCE_FACTOR = 1e6
"""A run whose residual grows this many times over its start has DIVERGED."""


# --- the preconditioner as an optax transform ----------------------------------------------


class ScaledGradientState(NamedTuple):
    """Stateless; present for the optax protocol."""


def scaled_gradient(
    damping: float = 0.0, residual_weight: float = 0.5
) -> optax.GradientTransformationExtraArgs:
    """Right-precondition a gradient of a factor X: ``g ↦ g·(XᵀX + δI)⁻¹``.

    This is ScaledGD (Tong, Ma & Chi 2021), whose convergence rate does not depend on the
    condition number, with the damping of PrecGD (Zhang, Fattahi & Zhang 2021), which keeps
    the step bounded when X has more columns than the target has rank. The damping is
    ``δ = damping + residual_weight·residual_norm`` where ``residual_norm`` (passed by the
    solver as an extra argument: its running estimate of ‖X·Xᵀ − C‖₂; 0 if absent) makes it
    vanish at an exact solution and match the clipped eigenvalues otherwise.

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
        updates = jax.tree.map(lambda g, x: right_precondition(g, x, delta), updates, params)
        return updates, state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _spd_solve(G: jax.Array, B: jax.Array) -> jax.Array:
    """``G⁻¹·B`` for symmetric positive definite G (..., k, k) by Cholesky."""
    return jax.scipy.linalg.cho_solve((lapack_cholesky(G), True), B)


def right_precondition(g: jax.Array, x: jax.Array, delta) -> jax.Array:
    """``g·(xᵀx + δI)⁻¹`` (the k×k Gram is cheap next to the N×k products)."""
    k = x.shape[-1]
    gram = jnp.swapaxes(x, -1, -2) @ x
    # a floor relative to the Gram's size keeps the solve defined where x is rank deficient
    finfo = jnp.finfo(x.dtype)
    floor = (finfo.eps * jnp.trace(gram, axis1=-2, axis2=-1) + finfo.tiny)[..., None, None]
    eye = jnp.eye(k, dtype=x.dtype)
    delta = jnp.asarray(delta, x.dtype)[..., None, None]
    return jnp.swapaxes(_spd_solve(gram + (delta + floor) * eye, jnp.swapaxes(g, -1, -2)), -1, -2)


# --- one step's numbers --------------------------------------------------------------------


class _Measured(NamedTuple):
    """What one check of X yields."""

    lost: jax.Array  # ‖X·Xᵀ − S‖, weighted by W where there is a mask
    rel: jax.Array  # relative residual: lost / ‖S‖ (weighted)
    grad: jax.Array  # ∇f = (W∘R)·X
    R_probe: jax.Array  # (W∘R)·probe, for the power estimate of ‖W∘R‖₂


def _measure(X, S, W, S_norm, probe) -> _Measured:
    """Residual, gradient and (W∘R)·probe, the probe riding along as one more column of the
    product with S (or W∘R). Without a mask and with k < N the N×N residual is never formed:
    ∇f = X·(XᵀX) − S·X and ‖R‖² = ‖XᵀX‖² − 2·tr(XᵀSX) + ‖S‖², O(N²k). That formula cancels
    below about sqrt(eps) (relative); there the residual is formed once to measure it."""
    k = X.shape[-1]
    Xp = jnp.concatenate([X, probe[:, None]], axis=1)
    if W is None and k < S.shape[-1]:
        SXp = S @ Xp
        SX = SXp[:, :k]
        gram = X.T @ X
        lost = safe_sqrt(jnp.sum(gram * gram) - 2 * jnp.sum(X * SX) + S_norm**2)
        coarse = 1e3 * jnp.sqrt(jnp.finfo(S.dtype).eps)
        near = relative(lost, S_norm) < coarse
        lost = lax.cond(near, lambda: safe_norm(X @ X.T - S), lambda: lost)
        return _Measured(lost, relative(lost, S_norm), X @ gram - SX, X @ (X.T @ probe) - SXp[:, k])
    R = X @ X.T - S
    WR = R if W is None else W * R
    WRXp = WR @ Xp
    lost = safe_sqrt(jnp.sum(R * WR))
    return _Measured(lost, relative(lost, S_norm), WRXp[:, :k], WRXp[:, k])


def product_change_norm(step: jax.Array, X: jax.Array, factored: bool) -> jax.Array:
    """‖step·Xᵀ + X·stepᵀ‖_F, what a step does to X·Xᵀ to first order. ``factored`` (k < N):
    from k×k products, O(N·k²), by ‖A·Bᵀ + B·Aᵀ‖² = 2·tr(AᵀA·BᵀB) + 2·tr((AᵀB)²); exact to
    about sqrt(eps)·‖step‖·‖X‖ (the traces cancel where the step mostly rotates X)."""
    if factored:
        AtB = step.T @ X
        return safe_sqrt(2 * jnp.sum((step.T @ step) * (X.T @ X)) + 2 * jnp.sum(AtB * AtB.T))
    change = step @ X.T
    return safe_norm(change + change.T)


# --- the loop ---------------------------------------------------------------------------------


class IterOptions(NamedTuple):
    """Traced numbers of the iterative solve (a sweep over them does not recompile)."""

    rtol: jax.Array
    atol: jax.Array
    max_steps: jax.Array
    learning_rate: jax.Array | None  # None: the method's default


def check_iterative_options(
    dtype,
    n: int,
    method: str = "precgd",
    *,
    rtol=None,
    atol=None,
    max_steps=None,
    learning_rate=None,
    optimizer=None,
    **others,
) -> IterOptions:
    """The traced numbers of an iterative solve, validated where concrete; a ValueError for
    an ``optimizer`` or ``learning_rate`` given to "gauss_newton" (its step has no size).
    ``others`` (x0, key) are checked where they are used."""
    del others
    if method == "gauss_newton" and (optimizer is not None or learning_rate is not None):
        raise ValueError(
            "optimizer and learning_rate apply to methods ('gd', 'precgd'); got "
            "method='gauss_newton' (a Gauss–Newton step has no step size)"
        )
    n = max(n, 1)
    eps = float(jnp.finfo(dtype).eps)
    rtol = check_real(rtol, "rtol", dtype, default=10 * math.sqrt(n) * eps, low=0.0)
    atol = check_real(atol, "atol", dtype, default=4 * math.sqrt(n) * eps, low=0.0)
    lr = check_real(learning_rate, "learning_rate", dtype, default=None, low=0.0, open_low=True)
    if max_steps is None:
        max_steps = DEFAULT_MAX_STEPS[method]
    if not isinstance(max_steps, jax.Array):
        max_steps = check_int(max_steps, "max_steps", low=0, high=_INT32_MAX)
        steps = jnp.asarray(max_steps, jnp.int32)
    else:  # a traced cap, for a sweep without recompiling
        steps = check_real(max_steps, "max_steps", jnp.int32, default=None, low=0, high=_INT32_MAX)
    return IterOptions(rtol, atol, steps, lr)


class _State(NamedTuple):
    X: jax.Array
    opt_state: Any
    probe: jax.Array  # unit vector tracking the top eigenvector of W∘R
    lost: jax.Array  # ‖X·Xᵀ − S‖ (weighted) at X, from its last check
    steps: jax.Array
    start: jax.Array  # the relative residual at the first check
    status: jax.Array
    done: jax.Array
    iteration: jax.Array  # iterations run, the same for every matrix of a batch


def _decide(m: _Measured, change: jax.Array, S_norm, state: _State, opts: IterOptions):
    """The stopping rule: (stop before stepping, step and then stop, status). SUCCESS once the
    relative residual is at most ``atol`` (no step), or once the preconditioned step would
    change X·Xᵀ by at most ``rtol·‖S‖`` (stationary: the nearest PSD or best rank-k answer);
    DIVERGED once the residual exceeds 1e6× its start;
    NON_FINITE where the residual is not finite (NaN, or ±Inf from the start); MAX_STEPS at
    the cap."""
    broken = ~jnp.isfinite(m.rel)
    fitted = m.rel <= opts.atol
    stationary = ~fitted & ~broken & (change <= opts.rtol * S_norm)
    start = jnp.where(state.steps == 0, m.rel, state.start)
    floor = jnp.sqrt(jnp.finfo(S_norm.dtype).eps)
    diverged = m.rel > DIVERGENCE_FACTOR * jnp.maximum(start, floor)  # (also: overflowed)
    capped = state.steps >= opts.max_steps
    status = jnp.select(
        [fitted | stationary, diverged, broken, capped],
        [Status.SUCCESS, Status.DIVERGED, Status.NON_FINITE, Status.MAX_STEPS],
        Status.SUCCESS,
    ).astype(jnp.int32)
    stop_now = fitted | broken | diverged | capped
    return stop_now, stationary, status, start


def dense_measure(S: jax.Array, W: jax.Array | None, S_norm: jax.Array):
    """The ``measure`` of :func:`run_descent` for a dense S with weights W (or None)."""
    return lambda X, probe: _measure(X, S, W, S_norm, probe)


def run_descent(
    measure,
    S_norm: jax.Array,
    X0: jax.Array,
    tx: optax.GradientTransformation,
    opts: IterOptions,
    *,
    factored: bool,
    converged: tuple[jax.Array, jax.Array] | None = None,
    certify_every: int = 1,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Minimise f(X) = ¼‖M∘(X·Xᵀ − S)‖² from X0 with ``tx``; returns (X, status, steps,
    lost), lost = ‖X·Xᵀ − S‖ (weighted) at the returned X.

    ``measure(X, probe)`` gives X's :class:`_Measured` numbers (:func:`dense_measure`, or
    any other representation of S and its weights); ``S_norm`` is ‖S‖ (weighted);
    ``factored``: whether X has fewer columns than rows and the product change is measured
    from k×k products (:func:`product_change_norm`).

    Each iteration measures X, forms the update of ``tx`` and, every ``certify_every``
    iterations (static; 1 for precgd, whose every step costs as much as the certificate),
    the step precgd would take, ½·∇f·(XᵀX + δI)⁻¹ with δ = ½‖W∘R‖₂ (it does not shrink with
    the condition number, so its effect on X·Xᵀ certifies a stationary point for any
    ``tx``), applies :func:`_decide`, and takes the update unless stopping; an update that
    would make X non-finite is not taken (NON_FINITE, the last finite X kept).
    ``converged``: (whether X0 is already an answer, its lost): then SUCCESS, no step.
    """
    tx = optax.with_extra_args_support(tx)
    n = X0.shape[0]
    dtype = X0.dtype

    def iterate(state: _State) -> _State:
        m = measure(state.X, state.probe)
        spectral = safe_norm(m.R_probe)
        probe = jnp.where(spectral > 0, safe_divide(m.R_probe, spectral), state.probe)
        updates, opt_state = tx.update(m.grad, state.opt_state, state.X, residual_norm=spectral)

        def certificate():
            # (its Cholesky after the update's: see _sequence)
            X = run_after(state.X, updates)
            newton = 0.5 * right_precondition(m.grad, X, 0.5 * spectral)
            return product_change_norm(newton, state.X, factored)

        if certify_every == 1:
            change = certificate()
        else:  # (the counter is the same for every matrix of a batch: a real cond under vmap)
            due = state.iteration % certify_every == 0
            change = lax.cond(due, certificate, lambda: jnp.full((), jnp.inf, dtype))
        stop_now, stationary, status, start = _decide(m, change, S_norm, state, opts)
        X_next = optax.apply_updates(state.X, updates)
        finite = jnp.all(jnp.isfinite(X_next))
        status = jnp.where(stop_now | stationary | finite, status, Status.NON_FINITE)
        take = ~stop_now & ~stationary & finite

        def pick(new, old):
            return jnp.where(take, new, old)

        return _State(
            X=pick(X_next, state.X),
            opt_state=jax.tree.map(pick, opt_state, state.opt_state),
            probe=probe,
            lost=m.lost,
            steps=state.steps + take.astype(jnp.int32),
            start=start,
            status=status.astype(jnp.int32),
            done=stop_now | stationary | ~finite,
            iteration=state.iteration + 1,
        )

    done, lost = (
        (jnp.asarray(False), jnp.full((), jnp.nan, dtype)) if converged is None else converged
    )
    init = _State(
        X=X0,
        opt_state=tx.init(X0),
        probe=jnp.full((n,), 1 / math.sqrt(max(n, 1)), dtype),
        lost=lost,
        steps=jnp.zeros((), jnp.int32),
        start=jnp.full((), jnp.inf, dtype),
        status=jnp.asarray(Status.SUCCESS, jnp.int32),
        done=done,
        iteration=jnp.zeros((), jnp.int32),
    )
    final = lax.while_loop(lambda s: ~s.done, iterate, init)
    return final.X, final.status, final.steps, final.lost


# --- one matrix: start, optimizer, loop, PSD status -------------------------------------------


def _default_optimizer(method, learning_rate, lam_max):
    """Plain gradient descent at 1/(3·λ_max) for "gd" (f's curvature near the solution is
    about 2·λ_max); the preconditioned step at ½ for "precgd"."""
    if method == "gd":
        # (a double where: the derivative of 1/λ is not ∞·0 at λ = 0)
        usable = lam_max > jnp.finfo(lam_max.dtype).tiny
        default = jnp.where(usable, 1.0 / (3.0 * jnp.where(usable, lam_max, 1.0)), 1.0)
        return optax.sgd(default if learning_rate is None else learning_rate)
    learning_rate = PRECGD_LEARNING_RATE if learning_rate is None else learning_rate
    return optax.chain(scaled_gradient(), optax.sgd(learning_rate))


def _not_psd_unmasked(S, rank, lam_min, lam_max):
    """Whether S has eigenvalues below −tol·λ_max: exactly (a Cholesky factor of the shifted
    S) when rank = N; from the estimate of λ_min when rank < N (kept O(N²k): the sketch's
    Ritz values or Lanczos, which find negative eigenvalues large in magnitude)."""
    n = S.shape[-1]
    if rank < n:
        return lam_min < -default_tol(n, S.dtype) * jnp.maximum(lam_max, 0.0)
    return ~cholesky_succeeded(lapack_cholesky(psd_shifted(S, lam_max)))


def _not_psd_masked(S, W, X):
    """Whether no positive-semidefinite matrix fits the observed entries: X·Xᵀ misses them
    (relative residual above sqrt(eps)) and G = W∘(X·Xᵀ − S) is positive semidefinite (to
    sqrt(eps) of its norm). With G·X = 0 (stationary), that is the optimality condition of
    the convex problem min ‖M∘(P − S)‖ over all P ⪰ 0, of any rank: its optimum leaves a
    misfit. Where G has negative eigenvalues, it is the rank k that leaves it."""
    G = W * (X @ X.T - S)
    sqrt_eps = jnp.sqrt(jnp.finfo(S.dtype).eps)
    misfit = relative(safe_norm(G, weights=safe_divide(1.0, W)), safe_norm(S, weights=W))
    lam_min, lam_max = lanczos_extremes(G)
    return (misfit > sqrt_eps) & (lam_min >= -sqrt_eps * jnp.maximum(lam_max, -lam_min))


def uses_lowrank(method: str, W, rank: int, n: int, optimizer) -> bool:
    """Whether precgd runs as block Rayleigh–Ritz (:mod:`._lowrank`): rank < N, no mask and
    no optimizer (an optimizer asks for the gradient step; Rayleigh–Ritz has no step size,
    so ``learning_rate`` does not apply)."""
    return method == "precgd" and W is None and rank < n and optimizer is None


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
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """One matrix: the start and the optimizer, the Newton phase where it applies, the loop,
    the PSD status. Returns (X, status, steps, lost), lost = ‖X·Xᵀ − S‖ (weighted).

    (precgd with rank < N, no mask and no optimizer is not solved here but by the block
    Rayleigh–Ritz method of :mod:`._lowrank`: see :func:`uses_lowrank`.)

    The scale λ_max (and λ_min) come from the sketch where precgd starts from one (rank < N,
    no x0): its Ritz values, at no extra pass over S; otherwise from 32 Lanczos steps.
    ``solve`` differentiates the answer implicitly (:mod:`._implicit`), never this path."""
    n = S.shape[-1]
    if method == "precgd" and rank < n and X0 is None:
        X0, ritz = spectral_init(S, rank, key)
        lam_min, lam_max = ritz[0], ritz[-1]
    else:
        lam_min, lam_max = lanczos_extremes(S)
    lam_max = jnp.maximum(lam_max, jnp.abs(lam_min))
    lr = opts.learning_rate
    if optimizer is None:
        tx = _default_optimizer(method, lr, lam_max)
    else:
        tx = optax.chain(scaled_gradient(), optimizer) if method == "precgd" else optimizer
    own_step = method == "precgd" and optimizer is None
    newton = own_step and W is None and rank == n and X0 is None
    converged, newton_steps = None, jnp.zeros((), jnp.int32)
    if newton:
        # the Newton step is the undamped step at the default learning rate ½ only
        default_lr = jnp.asarray(True) if lr is None else lr == PRECGD_LEARNING_RATE
        cap = jnp.where(default_lr, jnp.minimum(opts.max_steps, NEWTON_MAX_STEPS), 0)
        S_after = run_after(S, lam_min, lam_max)
        X0, newton_steps, done, psd, lost = newton_phase(
            S_after, lam_max, cap, jnp.sqrt(opts.rtol), opts.atol
        )
        converged = (done, lost)
        opts = opts._replace(max_steps=opts.max_steps - newton_steps)
    else:
        if X0 is None:
            if method == "gd":
                X0 = random_init(n, rank, key, lam_max, S.dtype)
            else:
                X0 = identity_scale(S, lam_max) * jnp.eye(n, dtype=S.dtype)
        X0 = run_after(nudged_from_zero(X0, lam_max), lam_min, lam_max)
    S_norm = safe_norm(S, weights=W)
    X, status, steps, lost = run_descent(
        dense_measure(S, W, S_norm),
        S_norm,
        X0,
        tx,
        opts,
        factored=W is None and rank < n,
        converged=converged,
        certify_every=1 if method == "precgd" else 8,  # (precgd's steps cost as much)
    )
    if newton:
        not_psd = ~psd
    elif W is None:
        not_psd = _not_psd_unmasked(run_after(S, X), rank, lam_min, lam_max)
    else:
        not_psd = _not_psd_masked(S, W, run_after(X, lam_min))
    status = jnp.where(not_psd & (status == Status.SUCCESS), Status.NOT_PSD, status)
    return X, status.astype(jnp.int32), steps + newton_steps, lost
