"""The cost of a gradient through an iterative solve: backward pass against the forward solve,
and the backward pass's memory against the number of forward steps.

``python -m benchmarks.implicit [--quick]``. The backward pass is timed alone: ``jax.vjp``
runs the solve once, and the timed call applies its pullback to a cotangent (the implicit
tangent solve, transposed). The loss is a gauge-invariant function of X·Xᵀ.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks import _harness as H
from benchmarks.solvers import signal_plus_noise


def _problems(quick: bool):
    """(label, C, solve options): rank 16 of a signal + noise matrix, and full rank."""
    import jaxsolve

    n_low, n_full = (256, 128) if quick else (1024, 512)
    low = signal_plus_noise(n_low, rank=16, cond=1e3, noise=1e-6, seed=0)
    full = jaxsolve.random_psd(n_full, cond=1e4, seed=0)
    return [
        (f"precgd rank 16, N = {n_low}", low, dict(method="precgd", rank=16)),
        (f"precgd full rank, N = {n_full}", full, dict(method="precgd")),
    ]


def _loss_and_parts(C, options):
    import jax
    import jax.numpy as jnp

    import jaxsolve

    weights = jnp.asarray(np.random.default_rng(0).standard_normal(C.shape))

    def factor(c):
        return jaxsolve.solve(c, **options).X

    def loss_of_factor(X):
        return jnp.sum(weights * (X @ X.T))

    X, pullback = jax.vjp(factor, jnp.asarray(C))
    cotangent = jax.grad(loss_of_factor)(X)
    return factor, pullback, cotangent


def bench_cost(quick: bool) -> list[list]:
    import jax.numpy as jnp

    import jaxsolve

    rows = []
    for label, C, options in _problems(quick):
        factor, pullback, cotangent = _loss_and_parts(C, options)
        steps = int(jaxsolve.solve(C, **options).steps)
        timings = H.time_interleaved(
            [
                H.Candidate("forward solve", factor, (jnp.asarray(C),)),
                H.Candidate("backward pass", lambda p, ct: p(ct), (pullback, cotangent)),
            ],
            rounds=3 if quick else 5,
        )
        fwd, bwd = timings["forward solve"], timings["backward pass"]
        rows.append([label, steps, fwd.median_s, bwd.median_s, bwd.ratio])
    return rows


def bench_memory(quick: bool) -> list[list]:
    """XLA's memory analysis of ``jit(grad(loss))`` with gd capped at 50 and at 500 steps,
    beside the steps each ran (a problem gd needs hundreds of steps for)."""
    import jax
    import jax.numpy as jnp

    import jaxsolve

    n = 128 if quick else 256
    C = jnp.asarray(signal_plus_noise(n, rank=8, cond=1e2, noise=1e-6, seed=1))
    weights = jnp.asarray(np.random.default_rng(1).standard_normal((n, n)))
    rows = []
    for cap in (50, 500):

        def loss(c, cap=cap):
            X = jaxsolve.solve(c, method="gd", rank=8, max_steps=cap).X
            return jnp.sum(weights * (X @ X.T))

        compiled = jax.jit(jax.grad(loss)).lower(C).compile()
        memory = compiled.memory_analysis()
        steps = int(jaxsolve.solve(C, method="gd", rank=8, max_steps=cap).steps)
        grad = compiled(C)
        rows.append(
            [
                cap,
                steps,
                memory.temp_size_in_bytes / 2**20,
                memory.argument_size_in_bytes / 2**20,
                bool(jnp.all(jnp.isfinite(grad))),
            ]
        )
    return rows


def run(quick: bool) -> dict:
    """Implicit differentiation of iterative solves: backward vs forward cost, memory."""
    start = time.perf_counter()
    H.enable_x64()
    cost = bench_cost(quick)
    memory = bench_memory(quick)
    targets = [
        H.target(
            "cost",
            f"backward pass ≤ 2× the forward solve: {row[0]}",
            f"{row[4]:.2f}× ({row[3] * 1e3:.0f} ms vs {row[2] * 1e3:.0f} ms)",
            row[4] <= 2.0,
        )
        for row in cost
    ]
    temp = [row[2] for row in memory]
    targets.append(
        H.target(
            "memory",
            "backward memory does not grow with the forward steps (gd capped at 50 and 500)",
            f"{temp[0]:.2f} MiB and {temp[1]:.2f} MiB of temporaries "
            f"({memory[0][1]} and {memory[1][1]} steps run)",
            temp[1] <= temp[0] * 1.01,
        )
    )
    rep = H.report(
        "implicit",
        "Gradients through iterative solves (implicit differentiation)",
        quick=quick,
        targets=targets,
        tables=[
            dict(
                title="Backward pass against the forward solve (float64)",
                columns=["problem", "forward steps", "forward s", "backward s", "backward/forward"],
                rows=cost,
            ),
            dict(
                title="XLA memory analysis of jit(grad(loss)), gd rank 8",
                columns=["max_steps", "steps run", "temporaries MiB", "arguments MiB", "finite"],
                rows=memory,
            ),
        ],
        notes=[
            "The backward pass solves one linear system with the Hessian of f at the solution "
            "(conjugate gradients, preconditioned by the forward step; closed form in C's "
            "eigenbasis at full rank without a mask): its cost does not depend on how many "
            "steps the forward solve took, and nothing of the forward iteration is stored.",
        ],
        wall_s=time.perf_counter() - start,
    )
    H.write(rep)
    return rep


if __name__ == "__main__":
    raise SystemExit(H.main(run))
