"""Triangular solves and LU of large matrices by recursive blocking, so that most of the
work is matrix products.

A triangular solve with N right-hand sides costs N³ flops like half a matrix product, but
XLA:CPU hands it to BLAS ``trsm``, which on one thread ran 3.4× slower per flop than XLA's
own matmul (jax 0.10, N = 1024, float64: 35 ms against 21 ms for a product with twice
the flops), and LAPACK ``getrf`` is similarly slow. Splitting the triangle (or the
columns) in halves turns all but the diagonal blocks into one product per level (the
standard recursive formulations, backward stable like ``trsm`` and ``getrf``). Measured at
N = 1024: solves 35 → 22–26 ms (27 ms with the leaves inverted, see
:func:`solve_right_transposed`, against 43 ms for trsm in the same run), LU 28.6 → 21 ms.
Accelerators run the same code. Sequencing: every LAPACK call of a leaf depends on the
one before it (see _sequence: two concurrent batched calls hang jaxlib 0.10 on 2 cores).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from ._sequence import after

LEAF = 128
"""Diagonal blocks up to this size go to LAPACK (measured: 64–256 within 15 % of each other
at N = 1024–2048; 128 the best on average)."""


def _leaf_solve(T, B, *, lower, unit_diagonal, invert):
    if not invert:
        return lax.linalg.triangular_solve(
            T, B, left_side=False, lower=lower, transpose_a=True, unit_diagonal=unit_diagonal
        )
    # T⁻¹ by one small solve (after B: the leaves' LAPACK calls stay in sequence), then a
    # product with all m rows
    eye = jnp.eye(T.shape[-1], dtype=T.dtype)
    T_inv = lax.linalg.triangular_solve(
        after(T, B), eye, left_side=True, lower=lower, unit_diagonal=unit_diagonal
    )
    return B @ T_inv.T


def solve_right_transposed(
    T: jax.Array,
    B: jax.Array,
    *,
    lower: bool,
    unit_diagonal: bool = False,
    invert_leaves: bool = False,
) -> jax.Array:
    """``B·T⁻ᵀ`` for one triangular ``T`` (n, n) and ``B`` (m, n): the Z with Z·Tᵀ = B.

    The same as ``lax.linalg.triangular_solve(T, B, left_side=False, lower=lower,
    transpose_a=True, unit_diagonal=unit_diagonal)``, which it calls for n <= :data:`LEAF`
    (so a batch of small matrices under ``vmap`` is unchanged). The products run at the
    ambient matmul precision (``solve`` sets it).

    ``invert_leaves`` (static): where B has more rows than a diagonal block, the block is
    inverted (n_b³/3 flops) and applied as a product, so that all the O(m·n²) work is
    matmul (27 against 35 ms at N = 1024). Not backward stable for an ill-conditioned
    block, unlike ``trsm``: for callers whose errors a later step corrects and whose
    result is measured (full-rank precgd's Newton step)."""
    n = T.shape[-1]
    if n <= LEAF:
        invert = invert_leaves and n < B.shape[0]
        return _leaf_solve(T, B, lower=lower, unit_diagonal=unit_diagonal, invert=invert)
    h = n // 2
    first, second = slice(0, h), slice(h, n)

    def diagonal_block(block, rhs):
        return solve_right_transposed(
            T[block, block],
            rhs,
            lower=lower,
            unit_diagonal=unit_diagonal,
            invert_leaves=invert_leaves,
        )

    if lower:  # Tᵀ = [[T₁₁ᵀ, T₂₁ᵀ], [0, T₂₂ᵀ]]: Z₁ first, then Z₂ = (B₂ − Z₁·T₂₁ᵀ)·T₂₂⁻ᵀ
        Z1 = diagonal_block(first, B[:, first])
        Z2 = diagonal_block(second, B[:, second] - Z1 @ T[second, first].T)
    else:  # Tᵀ = [[T₁₁ᵀ, 0], [T₁₂ᵀ, T₂₂ᵀ]]: Z₂ first, then Z₁ = (B₁ − Z₂·T₁₂ᵀ)·T₁₁⁻ᵀ
        Z2 = diagonal_block(second, B[:, second])
        Z1 = diagonal_block(first, B[:, first] - Z2 @ T[first, second].T)
    return jnp.concatenate([Z1, Z2], axis=1)


def lu_factor(A: jax.Array) -> tuple[jax.Array, jax.Array]:
    """LU factorisation with partial pivoting of one (m, n) matrix, m >= n, by recursive
    halving of the columns (Toledo 1997): ``A[perm] = L·U`` with ``L`` unit lower
    trapezoidal and ``U`` upper triangular, packed in one (m, n) array as
    ``lax.linalg.lu`` returns them. Returns (lu, perm).

    Panels of up to :data:`LEAF` columns go to ``lax.linalg.lu`` (LAPACK ``getrf``); the
    rest is one triangular solve (:func:`solve_right_transposed`, matmuls) and one product
    per level. The pivots are those of ``getrf`` up to ties in rounding, and so is the
    backward error. (XLA:CPU's ``getrf`` at N = 1024, float64, one thread: 28.6 ms against
    21 ms here, leaves of 64 or 128 columns alike.)"""
    n = A.shape[1]
    if n <= LEAF:
        lu, _, perm = lax.linalg.lu(A)
        return lu, perm
    h = n // 2
    lu_left, perm_left = lu_factor(A[:, :h])
    right = A[perm_left, h:]
    L11, L21 = lu_left[:h], lu_left[h:]
    # U12 = L11⁻¹·A12, as (A12ᵀ·L11⁻ᵀ)ᵀ
    U12 = solve_right_transposed(L11, right[:h].T, lower=True, unit_diagonal=True).T
    # (the trailing panel's getrf after the solve's trsm calls: data-dependent already)
    lu_trailing, perm_trailing = lu_factor(right[h:] - L21 @ U12)
    top = jnp.concatenate([lu_left[:h], U12], axis=1)
    bottom = jnp.concatenate([L21[perm_trailing], lu_trailing], axis=1)
    perm = jnp.concatenate([perm_left[:h], perm_left[h:][perm_trailing]])
    return jnp.concatenate([top, bottom], axis=0), perm
