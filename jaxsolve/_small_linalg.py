"""The Cholesky factorisation of a stack of tiny matrices as unrolled straight-line code.

On XLA:CPU, ``lax.linalg.cholesky`` on a stack of tiny matrices makes one LAPACK call per
matrix. Here the factorisation is written over the ``n(n+1)/2`` entries, unrolled at trace
time: each operation works on one entry of every matrix at once, and XLA fuses the lot into
a few loop kernels. The stack is moved to the last axis first, so that one entry of every
matrix is a contiguous vector. It pays for n ≤ ``SMALL_N`` (on two CPU cores, float64:
100,000 3×3 factors about 10× faster than LAPACK's loop, 10,000 8×8 about 3×); beyond that
XLA stops keeping the intermediates in registers and it loses.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

SMALL_N = 8
"""The largest matrix size for which :func:`unrolled_cholesky` is used."""


def _cholesky_entries(a: jax.Array) -> tuple[list[list[jax.Array]], jax.Array]:
    """Left-looking Cholesky of ``a`` (n, n, b), reading only ``a[i, j]`` with ``i >= j``.

    Returns the rows of L as lists of (b,) vectors (``L[i][j]`` for ``j <= i``) and a (b,)
    mask of the matrices whose pivots were all positive (NaN pivots count as failures).
    """
    n = a.shape[0]
    L: list[list[jax.Array]] = [[] for _ in range(n)]
    ok = None
    for j in range(n):
        d = a[j, j]
        for k in range(j):
            d = d - L[j][k] * L[j][k]
        ok_j = d > 0
        ok = ok_j if ok is None else ok & ok_j
        # a failed pivot is replaced by 1 before sqrt and 1/x: neither the value nor the
        # derivative of the (later masked) entries can be NaN or inf because of it
        l_jj = jnp.sqrt(jnp.where(ok_j, d, 1))
        L[j].append(l_jj)
        inv = 1 / l_jj
        for i in range(j + 1, n):
            s = a[i, j]
            for k in range(j):
                s = s - L[i][k] * L[j][k]
            L[i].append(s * inv)
    return L, ok


def unrolled_cholesky(A: jax.Array) -> jax.Array:
    """Lower-triangular ``L`` with ``L·Lᵀ = A`` for a stack ``A`` (..., n, n), 1 ≤ n ≤
    ``SMALL_N``, from its lower triangles. As with ``lax.linalg.cholesky``, a matrix that is
    not positive definite (a pivot ≤ 0 or NaN) gets NaN on and below its diagonal, zeros
    above; the rest of the stack is unaffected."""
    batch, n = A.shape[:-2], A.shape[-1]
    if A.size == 0:
        return jnp.zeros_like(A)
    rows, ok = _cholesky_entries(jnp.moveaxis(A.reshape(-1, n, n), 0, -1))
    zero = jnp.zeros_like(rows[0][0])
    L = jnp.stack([jnp.stack(row + [zero] * (n - len(row))) for row in rows])
    L = jnp.where(ok | ~np.tri(n, dtype=bool)[:, :, None], L, jnp.nan)
    return jnp.moveaxis(L, -1, 0).reshape(*batch, n, n)
