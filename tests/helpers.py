"""Shared problem generators and float64 NumPy references for the solver tests.

Everything that checks an answer works on invariants computed on the host in float64:
``X·Xᵀ`` (X is unique only up to an orthogonal factor), the nearest PSD matrix, the best
rank-k PSD approximation and the relative residual.

``jaxsolve.solve`` is jitted with its static options, so calls that differ only in values
(not in static options, shapes or which options are given) reuse one compiled program across
test modules; :func:`isolve` passes the numeric options of the iterative methods the same way
every time.
"""

from __future__ import annotations

import numpy as np

import jaxsolve

jsolve = jaxsolve.solve

# The numeric options of the iterative methods spelled out, so that every call has the same
# pytree structure (None vs a value would compile twice); these equal solve's defaults.
ITERATIVE_DEFAULTS = {
    "gd": {"max_steps": 5000},
    "precgd": {"max_steps": 1000, "learning_rate": 0.5},
    "gauss_newton": {"max_steps": 200},
}
CLOSED_FORMS = ("cholesky", "eigh", "sqrt", "auto")
ITERATIVE = ("gd", "precgd")


def isolve(C, method: str, **options) -> jaxsolve.Solution:
    """Iterative ``solve`` with the numeric options always passed."""
    return jsolve(C, method=method, **{**ITERATIVE_DEFAULTS[method], **options})


def eps(dtype) -> float:
    return float(np.finfo(dtype).eps)


# --- references (NumPy, float64) ---------------------------------------------------------------


def gram(X) -> np.ndarray:
    """X·Xᵀ over the last two axes, in float64 on the host."""
    X = np.asarray(X, dtype=np.float64)
    return X @ np.swapaxes(X, -1, -2)


def rel_residual(X, C) -> np.ndarray:
    """‖X·Xᵀ − C‖_F / ‖C‖_F per matrix (absolute where C = 0), float64."""
    C = np.asarray(C, dtype=np.float64)
    err = np.linalg.norm(gram(X) - C, axis=(-2, -1))
    norm = np.linalg.norm(C, axis=(-2, -1))
    return np.where(norm > 0, err / np.where(norm > 0, norm, 1.0), err)


def rel_error(A, B) -> float:
    """‖A − B‖_F / ‖B‖_F over the whole array, float64."""
    A, B = np.asarray(A, np.float64), np.asarray(B, np.float64)
    return float(np.linalg.norm(A - B) / np.linalg.norm(B))


def sym(C) -> np.ndarray:
    C = np.asarray(C, dtype=np.float64)
    return (C + np.swapaxes(C, -1, -2)) / 2


def nearest_psd_ref(C) -> np.ndarray:
    """Higham (1988): symmetrise, clip negative eigenvalues. Batched."""
    lam, V = np.linalg.eigh(sym(C))
    return (V * np.maximum(lam, 0.0)[..., None, :]) @ np.swapaxes(V, -1, -2)


def best_rank_k_psd_ref(C, k: int) -> np.ndarray:
    """The Frobenius-nearest PSD matrix of rank <= k (Eckart–Young on the PSD part)."""
    lam, V = np.linalg.eigh(sym(C))
    lam = np.maximum(lam, 0.0)
    lam[..., : lam.shape[-1] - k] = 0.0  # eigh is ascending: keep the k largest
    return (V * lam[..., None, :]) @ np.swapaxes(V, -1, -2)


def best_rank_k_residual(C, k: int) -> float:
    """‖C − best_rank_k_psd(C)‖_F / ‖C‖_F: the smallest residual any rank-k X can reach."""
    return rel_error(best_rank_k_psd_ref(C, k), C)


def is_psd(A, rtol: float = 1e-12) -> bool:
    lam = np.linalg.eigvalsh(sym(A))
    return bool(lam.min() >= -rtol * max(np.abs(lam).max(), 1e-300))


# --- generators ----------------------------------------------------------------------------


def random_factor(n: int, k: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, k))


def skew(n: int, scale: float, seed: int = 0) -> np.ndarray:
    """A random antisymmetric matrix: adds asymmetry without changing the symmetric part."""
    A = np.random.default_rng(seed).standard_normal((n, n))
    return scale * (A - A.T) / 2


def symmetric_mask(n: int, fraction: float, seed: int = 0) -> np.ndarray:
    """A symmetric boolean mask observing about ``fraction`` of the entries, diagonal kept."""
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.random((n, n)) < fraction, 1)
    return upper | upper.T | np.eye(n, dtype=bool)


def directional_fd(f, x, direction, h: float = 1e-5) -> float:
    """Central finite difference of a scalar ``f`` at ``x`` along ``direction`` (float64)."""
    x = np.asarray(x, np.float64)
    return float((f(x + h * direction) - f(x - h * direction)) / (2 * h))
