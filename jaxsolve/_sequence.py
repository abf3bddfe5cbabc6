"""Ordering of LAPACK calls on CPU.

jaxlib's CPU LAPACK kernels before 0.11 split a batched call (``potrf``, ``syevd``, ``trsm``,
…) into chunks on XLA's intra-op thread pool and block a pool thread until the chunks are
done. When two such calls run at the same time — XLA's thunk executor runs independent
operations concurrently — on a pool of two threads (a two-core machine), both threads wait
on chunks that no free thread is left to run: the process hangs at 0 % CPU (reproduced with
jax 0.10.2 on ``solve(1000 × 16×16, method="auto")``; jax 0.11.2 removed the parallel path).
Every place in jaxsolve where two LAPACK calls would otherwise be independent is therefore
chained with :func:`after`, at no cost in arithmetic.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def after(x: jax.Array, *deps: jax.Array) -> jax.Array:
    """``x``, computed only once ``deps`` are: ``x + 0·isnan(d₀)`` for one entry d₀ of each
    dependency, a data dependency that XLA keeps (it does not fold a floating-point product
    with zero, and ``lax.optimization_barrier`` is dropped before scheduling) and that never
    turns ``x`` NaN. Costs one elementwise pass over ``x``."""
    token = jnp.zeros((), x.dtype)
    for dep in jax.tree.leaves(deps):
        if dep.size:
            token = token + jnp.isnan(jnp.ravel(dep)[0]).astype(x.dtype)
    return x + 0.0 * token
