"""Keeping two LAPACK calls from running side by side on CPU (jaxlib < 0.11).

jaxlib's CPU LAPACK kernels before 0.11 split a batched call (``potrf``, ``syevd``, ``getrf``,
…) into chunks on XLA's intra-op thread pool and block a pool thread until the chunks are
done. When two such calls run at once — XLA runs independent operations concurrently — on a
pool of two threads (a two-core machine), both threads wait on chunks that no free thread is
left to run, and the process hangs at 0 % CPU. Python 3.10 and 3.11 cannot install jaxlib
0.11, so users still meet it. Wherever two LAPACK calls of jaxsolve would be independent of
each other, the second takes its input through :func:`run_after`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def run_after(x: jax.Array, *deps) -> jax.Array:
    """``x``, computed only once every array in ``deps`` is: ``x + 0·isnan(d₀)`` for one
    entry d₀ of each, a data dependency that XLA keeps (it does not fold a floating-point
    product with zero, and ``lax.optimization_barrier`` is dropped before scheduling) and
    that never turns ``x`` NaN."""
    token = jnp.zeros((), x.dtype)
    for dep in jax.tree.leaves(deps):
        if dep.size:
            token = token + jnp.isnan(jnp.ravel(dep)[0]).astype(x.dtype)
    return x + 0.0 * token
