"""The result pytree of every solver and the status codes it carries."""

from __future__ import annotations

import enum
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Status(enum.IntEnum):
    """Integer status per matrix in :class:`Solution`; ``0`` means success.

    Each member has an actionable :attr:`message`. When several apply, the most severe
    (the largest value) is reported.
    """

    SUCCESS = 0
    NOT_SYMMETRIC = 1
    NOT_PSD = 2
    MAX_STEPS = 3
    CHOLESKY_FAILED = 4
    DIVERGED = 5
    NON_FINITE = 6
    NON_FINITE_INPUT = 7

    @property
    def message(self) -> str:
        return _MESSAGES[self]

    @classmethod
    def describe(cls, code: int) -> str:
        """``"NAME: message"`` for an integer status code."""
        status = cls(int(code))
        return f"{status.name}: {status.message}"


_MESSAGES = {
    Status.SUCCESS: "X·Xᵀ matches C to the solver's tolerance.",
    Status.NOT_SYMMETRIC: (
        "C is not symmetric. X·Xᵀ is always symmetric, so X solves for the symmetric part "
        "(C + Cᵀ)/2; `residual` measures against C as given and includes the skew part."
    ),
    Status.NOT_PSD: (
        "C (its symmetric part) has negative eigenvalues, so no X gives X·Xᵀ = C. X is the "
        "factor of the nearest positive-semidefinite matrix in Frobenius norm (Higham 1988); "
        "`residual` is the distance that remains. Check how C was built, or use nearest_psd(C)."
    ),
    Status.MAX_STEPS: (
        "The iteration stopped at max_steps before reaching rtol/atol. Raise max_steps, "
        "loosen the tolerances, or use method='precgd', whose step count does not grow with "
        "the condition number."
    ),
    Status.CHOLESKY_FAILED: (
        "Cholesky failed: C is not numerically positive definite (singular, indefinite or "
        "too ill-conditioned for this dtype). X is all NaN. Use method='eigh' or 'auto', "
        "which fall back to the nearest positive-semidefinite factor."
    ),
    Status.DIVERGED: (
        "The iteration diverged (the residual grew a million-fold over its start, or "
        "overflowed). Lower the learning rate (or the optimizer's), start from a smaller x0, "
        "or use method='precgd', whose step is sized by the problem."
    ),
    Status.NON_FINITE: (
        "A non-finite value appeared: in x0 or the residual of the start, during the "
        "iteration (X is the last finite iterate: lower the learning rate, or use float64), "
        "or in the eigendecomposition (LAPACK did not converge; X is NaN)."
    ),
    Status.NON_FINITE_INPUT: (
        "C contains NaN or Inf; this matrix was not solved and X is all NaN. Other matrices "
        "of the batch are unaffected."
    ),
}


class StatusResult:
    """What every result pytree with a ``status`` field offers: ``ok`` and ``messages()``.

    A mixin for ``NamedTuple`` results; a subclass words its messages for its own problem by
    overriding :meth:`describe`.
    """

    __slots__ = ()
    status: jax.Array

    @property
    def ok(self) -> jax.Array:
        """Boolean per matrix: status is SUCCESS."""
        return self.status == Status.SUCCESS

    @staticmethod
    def describe(code: int) -> str:
        """``"NAME: message"`` for one status code."""
        return Status.describe(code)

    def messages(self) -> list[str]:
        """The status of each matrix as ``"NAME: message"`` (host-side; not for jit)."""
        return [self.describe(code) for code in np.ravel(np.asarray(self.status))]


class _SolutionFields(NamedTuple):
    X: jax.Array
    residual: jax.Array
    status: jax.Array
    steps: jax.Array


class Solution(StatusResult, _SolutionFields):
    """Result of :func:`jaxsolve.solve` (a pytree: it passes through ``jit`` and ``vmap``).

    Attributes:
        X: the factor, shape ``(..., N, k)``.
        residual: ``‖X·Xᵀ − C‖_F / ‖C‖_F`` per matrix, shape ``(...)`` (the absolute
            ``‖X·Xᵀ − C‖_F`` where ``C`` is zero).
        status: integer :class:`Status` code per matrix, shape ``(...)``; 0 is success.
        steps: iterations taken per matrix, shape ``(...)``; 0 for the closed forms.
    """

    __slots__ = ()


def worst_status(*codes: jax.Array) -> jax.Array:
    """The most severe of several status arrays (statuses are ordered by severity)."""
    out = jnp.asarray(codes[0], jnp.int32)
    for code in codes[1:]:
        out = jnp.maximum(out, jnp.asarray(code, jnp.int32))
    return out
