"""Derivatives of an iterative solve by the implicit function theorem.

An iterative solve returns X (N, k) with ∇f(X; S, W) = (W∘(X·Xᵀ − S))·X = 0, the
stationarity condition of f = ¼‖M∘(X·Xᵀ − S)‖² (W = M∘M). Differentiating the condition
gives the tangent of the solution:

    H·dX = −∂_S∇f·dS − ∂_W∇f·dW,     H = ∂_X∇f, the Hessian of f at X,

solved matrix-free by conjugate gradients preconditioned with the forward method's own
step, dX ↦ dX·(XᵀX + δI)⁻¹ (O(N²k) a product with a dense S), inside
``lax.custom_linear_solve``. Forward mode is that solve; reverse mode is its transpose (H
is symmetric), so neither unrolls the forward iteration nor stores its steps, and the
derivative is that of the solution whatever path reached it.

H is singular along X·Ω for skew Ω (X·Xᵀ does not see an orthogonal factor of X): the
tangent returned is the one with Xᵀ·dX symmetric, the component orthogonal to those
directions. Derivatives of functions of X·Xᵀ do not depend on that choice.

Full rank without a mask, the tangent has a closed form in S's eigenbasis
(:func:`full_rank_tangent`, O(N³) like the forward Newton phase). The data reach the tangent
through an :class:`Objective`: a dense S and W by default; observed entries bring their own
(:func:`._observed.pair_objective`, O(|Ω|·k) a product).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._iterative import right_precondition
from ._numerics import conjugate_gradient, safe_norm
from ._spectral import lanczos_extremes


def factor_gradient(X: jax.Array, S: jax.Array, W: jax.Array | None) -> jax.Array:
    """∇f = (W∘(X·Xᵀ − S))·X; without weights X·(XᵀX) − S·X (no N×N product)."""
    if W is None:
        return X @ (X.T @ X) - S @ X
    return (W * (X @ X.T - S)) @ X


def horizontal_projection(X: jax.Array) -> Callable[[jax.Array], jax.Array]:
    """The orthogonal projection (Frobenius inner product) onto the tangents V with Xᵀ·V
    symmetric: V ↦ V − X·Ω, Ω skew, G·Ω + Ω·G = XᵀV − VᵀX (G = XᵀX), solved in G's
    eigenbasis (one k×k eigendecomposition, then O(N·k² + k³) a call). It removes the
    directions X·Ω, in which X·Xᵀ does not move; pairs of G's eigenvalues that sum to
    rounding level (columns of X that are zero) are left alone."""
    k = X.shape[-1]
    g, Q = jnp.linalg.eigh(X.T @ X)
    pair_sum = g[:, None] + g[None, :]
    floor = k * jnp.finfo(X.dtype).eps * jnp.max(jnp.abs(g)) + jnp.finfo(X.dtype).tiny
    usable = pair_sum > floor
    inverse = jnp.where(usable, 1.0 / jnp.where(usable, pair_sum, 1.0), 0.0)

    def project(V):
        XtV = X.T @ V
        Omega = Q @ (inverse * (Q.T @ (XtV - XtV.T) @ Q)) @ Q.T
        return V - X @ Omega

    return project


def full_rank_tangent(X: jax.Array, S: jax.Array, dS: jax.Array) -> jax.Array:
    """The tangent of a full-rank (N×N) factor of the PSD part of a fully observed S, in
    closed form from S = V·Λ·Vᵀ, O(N³): dX = L·X with L symmetric, so Xᵀ·dX = XᵀLX is
    symmetric; L·P + P·L = dP for P = X·Xᵀ = V·Λ₊·Vᵀ and dP its Daleckii–Krein
    derivative, which together give Vᵀ·L·V = E∘(Vᵀ·dS·V) with
    E_ij = 1/(|λ_i| + |λ_j|) where λ_i or λ_j is positive, else 0."""
    lam, V = jnp.linalg.eigh(S)
    scale = jnp.abs(lam)
    pair_sum = scale[:, None] + scale[None, :]
    positive = lam > 0
    kept = (positive[:, None] | positive[None, :]) & (pair_sum > 0)
    E = jnp.where(kept, 1.0 / jnp.where(kept, pair_sum, 1.0), 0.0)
    return V @ (E * (V.T @ dS @ V)) @ (V.T @ X)


class Objective(NamedTuple):
    """f(X) = ¼‖M∘(X·Xᵀ − S)‖² for one representation of its data (S, W): the pieces a
    tangent needs, each a function of (X, S, W). :data:`DENSE` is S (N, N) with W (N, N)
    or None; observed entries bring their own (:mod:`._observed`)."""

    gradient: Callable  # ∇f = (W∘(X·Xᵀ − S))·X
    residual_norm: Callable  # ‖X·Xᵀ − S‖, weighted by W
    residual_extremes: Callable  # estimates of (λ_min, λ_max) of W∘(X·Xᵀ − S)
    dense: bool = False  # S is the N×N matrix: full rank without weights has a closed form


def _dense_residual_norm(X, S, W):
    return safe_norm(X @ X.T - S, weights=W)


def _dense_residual_extremes(X, S, W):
    R = X @ X.T - S
    return lanczos_extremes(R if W is None else W * R)


DENSE = Objective(factor_gradient, _dense_residual_norm, _dense_residual_extremes, dense=True)


def solution_tangent(objective: Objective, X, S, W, dS, dW, max_steps) -> jax.Array:
    """The tangent dX of the solution X of ∇f(X; S, W) = 0 for tangents dS, dW of the
    data (see the module docstring), with Xᵀ·dX symmetric: conjugate gradients on the
    Hessian restricted to those tangents (every direction projected), preconditioned by
    dX ↦ dX·(XᵀX + δI)⁻¹ with δ = ‖W∘(X·Xᵀ − S)‖₂ (at least eps, S being in units near 1),
    the damping of the forward step, which sizes the directions in which X·Xᵀ is clipped
    (where S is not PSD or has fewer than k positive eigenvalues)."""
    if objective.dense and W is None and X.shape[-1] == X.shape[-2]:
        return full_rank_tangent(X, S, dS)
    eps = jnp.finfo(X.dtype).eps
    gradient = objective.gradient
    _, hessian = jax.linearize(lambda Y: gradient(Y, S, W), X)
    _, rhs = jax.jvp(lambda S, W: -gradient(X, S, W), (S, W), (dS, dW))
    lam_min, lam_max = objective.residual_extremes(X, S, W)
    delta = jnp.maximum(jnp.maximum(-lam_min, lam_max), eps)
    project = horizontal_projection(X)

    def precondition(V):
        return project(right_precondition(project(V), X, delta))

    def solve(matvec, b):
        def projected(V):
            return project(matvec(V))

        b = project(b)
        target = eps**0.75 * safe_norm(b)
        return conjugate_gradient(projected, precondition, b, jnp.zeros_like(b), target, max_steps)[
            0
        ]

    return jax.lax.custom_linear_solve(hessian, rhs, solve, symmetric=True)


def _integer_tangent(x: jax.Array) -> np.ndarray:
    return np.zeros(x.shape, jax.dtypes.float0)


def differentiated_implicitly(solver: Callable, objective: Objective = DENSE) -> Callable:
    """``solver(S, W, X0, key, opts) -> (X, status, steps, lost)``, with X a stationary
    point of the ``objective``'s f and lost = ‖X·Xᵀ − S‖ (weighted by W), made
    differentiable with respect to S and W by the implicit function theorem at the
    returned X (X0, key and opts have no derivative: they choose the path, not the
    answer). ``opts.max_steps`` also caps the conjugate-gradient steps of a tangent. Where
    the solve stopped short of a stationary point (its status says so) the tangent is that
    of the condition at the returned X."""

    @jax.custom_jvp
    def solved(S, W, X0, key, opts):
        return solver(S, W, X0, key, opts)

    @solved.defjvp
    def solved_jvp(primals, tangents):
        S, W, _, _, opts = primals
        dS, dW = tangents[:2]
        X, status, steps, _ = out = solver(*primals)
        dX = solution_tangent(objective, X, S, W, dS, dW, opts.max_steps)
        _, dlost = jax.jvp(objective.residual_norm, (X, S, W), (dX, dS, dW))
        return out, (dX, _integer_tangent(status), _integer_tangent(steps), dlost)

    return solved
