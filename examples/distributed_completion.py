"""Completion from observed entries over several processes (hosts) with ``jax.distributed``.

Each process holds a share of the observed pairs; the pairs of all processes form one global
array split over every device of every host, X (N, k) is replicated, and each step every
device gathers and scatters its share of the pairs, then one all-reduce adds the partial
products (see ``jaxsolve._observed``). The answer equals a one-device solve to rounding.

Run on one machine as two processes with four CPU devices each (the same command on real
hosts, with the coordinator's address):

    python examples/distributed_completion.py --num-processes 2 --process-id 0 &
    python examples/distributed_completion.py --num-processes 2 --process-id 1

or as a single process: ``python examples/distributed_completion.py``.

The pairs must be in canonical form across processes (each unordered pair {i, j} once in
all, i ≤ j): :func:`observed_pairs` on each share, with shares split by pair, does that.
"""

from __future__ import annotations

import argparse
import os


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--coordinator", default="localhost:12355")
    parser.add_argument("--local-devices", type=int, default=4)
    parser.add_argument("--n", type=int, default=2_000)
    parser.add_argument("--rank", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault(
        "XLA_FLAGS", f"--xla_force_host_platform_device_count={args.local_devices}"
    )

    import jax

    if args.num_processes > 1:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    jax.config.update("jax_enable_x64", True)
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec

    import jaxsolve
    from jaxsolve._observed import ObservedPairs, observed_pairs, solve_observed

    n, k = args.n, args.rank
    # every process draws the same problem; each keeps its share of the pairs
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((n, k))
    i = np.repeat(np.arange(n), 30)
    j = rng.integers(0, n, i.size)
    keys = np.unique(np.minimum(i, j) * n + np.maximum(i, j))
    share = np.array_split(keys, args.num_processes)[args.process_id]
    rows, cols = share // n, share % n
    local = observed_pairs((rows, cols, np.einsum("ij,ij->i", Y[rows], Y[cols]), n))

    # one global array per field: each process's share, padded to one length (count 0)
    mesh = jaxsolve.device_mesh(axis_name="pairs")
    width = max(len(s) for s in np.array_split(keys, args.num_processes))
    width = -(-width // jax.local_device_count()) * jax.local_device_count()
    pad = width - local.values.shape[0]
    sharding = NamedSharding(mesh, PartitionSpec("pairs"))

    def global_array(a, fill):
        a = np.pad(np.asarray(a), (0, pad), constant_values=fill)
        return jax.make_array_from_process_local_data(sharding, a)

    pairs = ObservedPairs(
        rows=global_array(local.rows, n - 1),
        cols=global_array(local.cols, n - 1),
        values=global_array(local.values, 0.0),
        skew=global_array(local.skew, 0.0),
        count=global_array(local.count, 0.0),
        valid=local.valid,
        n=n,
    )
    sol = solve_observed(pairs, method="precgd", rank=k, mesh=mesh)
    X = np.asarray(jax.device_get(sol.X))  # replicated: every process holds all of X
    test = rng.integers(0, n, (2, 1000))
    truth = np.einsum("ij,ij->i", Y[test[0]], Y[test[1]])
    est = np.einsum("ij,ij->i", X[test[0]], X[test[1]])
    print(
        f"process {args.process_id}/{args.num_processes}, {jax.device_count()} devices: "
        f"status {jaxsolve.Status(int(sol.status)).name}, steps {int(sol.steps)}, "
        f"held-out error {np.linalg.norm(est - truth) / np.linalg.norm(truth):.1e}"
    )


if __name__ == "__main__":
    main()
