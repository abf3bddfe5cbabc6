"""Completion from observed entries and localization from sparse distances.

``python -m benchmarks.observed [--quick] [--part completion|scaling|localization]``

* Completion: ``jaxsolve.solve`` on a BCOO of |Ω| observed symmetric pairs of an exactly
  rank-10 PSD matrix, N = 100,000, |Ω| = 5·10⁶ (float64, default tolerances): steps, time
  per step, total, peak RSS, and the relative error on 100,000 held-out pairs; the same
  with additive noise on the observations (error against the noise level); time per step
  at |Ω| = 10⁶, 5·10⁶, 2·10⁷ (rank 2, the difference of a 5-step and a 45-step run over the
  steps between them, so the start is not counted).
* Localization: ``jaxsolve.transforms.sparse_mds`` from 40 distances per point on a
  random geometric graph, N = 20,000 in 3-D: RMSD after ``align``; beside scikit-learn's
  ``MDS`` on the dense matrix at N = 2,000, and beside ``s_gd2`` in 2-D where it installs.

Peak RSS is the process's (``resource.getrusage``), so the completion case runs first.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import time

import numpy as np

import benchmarks  # isort: split  (pins threads before NumPy/JAX load, if asked)
from benchmarks._harness import enable_x64, print_targets, report, target, write

jax = enable_x64()
import jax.numpy as jnp  # noqa: E402

import jaxsolve  # noqa: E402
from jaxsolve import observed_entries  # noqa: E402

del benchmarks


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


# --- completion --------------------------------------------------------------------------------


def _pairs(n: int, m: int, rng, exclude=None):
    """m distinct unordered pairs i < j of [0, n) (none of ``exclude``'s keys)."""
    keys = np.empty(0, np.int64)
    while keys.size < m:
        i = rng.integers(0, n, 2 * (m - keys.size) + 1000)
        j = rng.integers(0, n, i.size)
        k = np.minimum(i, j).astype(np.int64) * n + np.maximum(i, j)
        k = k[i != j]
        if exclude is not None:
            k = k[~np.isin(k, exclude)]
        keys = np.unique(np.concatenate([keys, k]))
    keys = rng.permutation(keys)[:m]
    keys.sort()
    return keys // n, keys % n, keys


def completion_problem(n: int, m: int, held_out: int, rank: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((n, rank))
    rows, cols, keys = _pairs(n, m, rng)
    test_r, test_c, _ = _pairs(n, held_out, rng, exclude=keys)
    del keys
    values = np.einsum("ij,ij->i", Y[rows], Y[cols])
    truth = np.einsum("ij,ij->i", Y[test_r], Y[test_c])
    return Y, rows, cols, values, (test_r, test_c, truth)


def held_out_error(X, test) -> float:
    X = np.asarray(X)
    r, c, truth = test
    est = np.einsum("ij,ij->i", X[r], X[c])
    return float(np.linalg.norm(est - truth) / np.linalg.norm(truth))


def _solve_timed(C, **options):
    t0 = time.perf_counter()
    sol = jaxsolve.solve(C, method="precgd", **options)
    jax.block_until_ready(sol)
    return sol, time.perf_counter() - t0


def completion(quick: bool):
    n, m, held = (10_000, 500_000, 10_000) if quick else (100_000, 5_000_000, 100_000)
    rows_out, targets = [], []
    _, rows, cols, values, test = completion_problem(n, m, held)
    C = observed_entries(rows, cols, values, n)
    t0 = time.perf_counter()
    _solve_timed(C, rank=10, max_steps=jnp.asarray(1, jnp.int32))  # compile
    compile_s = time.perf_counter() - t0
    sol, total = _solve_timed(C, rank=10, max_steps=jnp.asarray(1000, jnp.int32))
    steps = int(sol.steps)
    err = held_out_error(sol.X, test)
    rss = _rss_gb()
    rows_out.append(
        [
            "exact",
            n,
            m,
            steps,
            total / max(steps, 1),
            total,
            compile_s,
            float(sol.residual),
            err,
            int(sol.status),
            rss,
            _load(),
        ]
    )
    targets.append(
        target(
            "completion",
            f"held-out error ≤ 1e-6, N = {n}, |Ω| = {m}",
            f"{err:.2e} ({steps} steps, {total:.0f} s)",
            err <= 1e-6,
        )
    )
    targets.append(target("completion", "peak memory ≤ 4 GB", f"{rss:.2f} GB RSS", rss <= 4.0))

    # noise: σ = 1e-3 of the entries' RMS, the held-out error against σ/RMS
    rng = np.random.default_rng(1)
    rms = float(np.sqrt(np.mean(values**2)))
    sigma = 1e-3 * rms
    noisy = observed_entries(rows, cols, values + sigma * rng.standard_normal(m), n)
    sol, total = _solve_timed(noisy, rank=10, max_steps=jnp.asarray(1000, jnp.int32))
    steps = int(sol.steps)
    err = held_out_error(sol.X, test)
    level = sigma / float(np.sqrt(np.mean(test[2] ** 2)))
    rows_out.append(
        [
            "noise 1e-3",
            n,
            m,
            steps,
            total / max(steps, 1),
            total,
            float("nan"),
            float(sol.residual),
            err,
            int(sol.status),
            _rss_gb(),
            _load(),
        ]
    )
    targets.append(
        target(
            "completion",
            "noisy: held-out error ≤ 1.5× noise level",
            f"{err:.2e} vs noise {level:.2e} ({err / level:.2f}×, {steps} steps)",
            err <= 1.5 * level,
        )
    )
    return targets, [_completion_table(rows_out)]


def scaling(quick: bool):
    """Time per step against |Ω| at N = 100,000 (10,000 quick), rank 2: the difference of a
    45-step and a 5-step run over the steps between them (the start, the sketch and the
    final checks cancel)."""
    n = 10_000 if quick else 100_000
    rows_out, targets = [], []
    sizes = (100_000, 500_000, 2_000_000) if quick else (1_000_000, 5_000_000, 20_000_000)
    per_step = []
    for size in sizes:
        _, r, c, v, _ = completion_problem(n, size, 10, seed=2)
        Cs = observed_entries(r, c, v, n)
        del r, c, v
        # rank 2 (five or more observations an unknown at every size) and no tolerance
        # (rtol = atol = 0): every run takes its max_steps
        options = dict(rank=2, rtol=0.0, atol=0.0)
        _solve_timed(Cs, max_steps=jnp.asarray(1, jnp.int32), **options)  # compile
        times, steps = {}, {}
        for s in (5, 45):
            sol, times[s] = _solve_timed(Cs, max_steps=jnp.asarray(s, jnp.int32), **options)
            steps[s] = int(sol.steps)
        taken = steps[45] - steps[5]
        per_step.append((times[45] - times[5]) / taken if taken > 0 else float("nan"))
        rows_out.append(
            [
                "scaling",
                n,
                size,
                taken,
                per_step[-1],
                times[45],
                float("nan"),
                float("nan"),
                float("nan"),
                -1,
                _rss_gb(),
                _load(),
            ]
        )
        del Cs
    ratio = (per_step[-1] / sizes[-1]) / (per_step[0] / sizes[0])
    marginal = [
        (per_step[i + 1] - per_step[i]) / (sizes[i + 1] - sizes[i]) for i in range(len(sizes) - 1)
    ]
    targets.append(
        target(
            "completion",
            "time per step grows (at most) linearly in |Ω|: time per pair at the largest "
            "|Ω| ≤ 1.5× that at the smallest",
            " / ".join(f"{t:.3f} s" for t in per_step)
            + f"; per pair, largest/smallest: {ratio:.2f}; marginal cost a pair "
            + " then ".join(f"{m * 1e9:.0f} ns" for m in marginal),
            ratio <= 1.5,
        )
    )
    return targets, [_completion_table(rows_out)]


def _completion_table(rows_out):
    return {
        "title": "Completion from observed entries (precgd, rank 10, float64)",
        "columns": [
            "case",
            "N",
            "|Ω|",
            "steps",
            "s/step",
            "total s",
            "compile s",
            "residual",
            "held-out error",
            "status",
            "peak RSS GB",
            "load",
        ],
        "rows": rows_out,
    }


# --- localization ---------------------------------------------------------------------------


def geometric_graph(n: int, dim: int, degree: float, seed: int = 0):
    """Uniform points in the unit cube and every pair closer than the radius of mean
    ``degree`` (boundary points have fewer)."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    P = rng.random((n, dim))
    ball = np.pi ** (dim / 2) / math.gamma(dim / 2 + 1)
    radius = (degree / (n * ball)) ** (1 / dim)
    pairs = cKDTree(P).query_pairs(radius, output_type="ndarray")
    rows, cols = pairs[:, 0], pairs[:, 1]
    return P, rows, cols, np.linalg.norm(P[rows] - P[cols], axis=1)


def _pair_stress(Y, rows, cols, dist) -> float:
    Y = np.asarray(Y, np.float64)
    return float(np.sum((np.linalg.norm(Y[rows] - Y[cols], axis=1) - dist) ** 2))


def _sparse_layout(P, rows, cols, dist, dim):
    from jaxsolve.transforms import align, sparse_mds

    n = P.shape[0]
    t0 = time.perf_counter()
    res = jax.block_until_ready(sparse_mds((rows, cols, dist, n), dim=dim))
    total = time.perf_counter() - t0
    rmsd = float(align(res.Y, P, reflection=True, dim=dim).rmsd)
    return res, total, rmsd


def _layout_row(res, rows, cols, dist, dim, total, rmsd) -> list:
    """One table row of a sparse_mds run."""
    n = res.Y.shape[0]
    stress = _pair_stress(res.Y, rows, cols, dist)
    return [
        "jaxsolve sparse_mds",
        dim,
        n,
        rows.size,
        2 * rows.size / n,
        total,
        int(res.steps),
        stress,
        rmsd,
        int(res.status),
    ]


def localization(quick: bool):
    """sparse_mds at N = 20,000 in 3-D (40 distances a point); beside scikit-learn's MDS on
    the dense matrix at N = 2,000, and beside s_gd2 in 2-D."""
    from jaxsolve.transforms import align

    rows_out, targets = [], []
    n_big, n_dense, n_2d = (3_000, 500, 1_000) if quick else (20_000, 2_000, 5_000)
    # (the first call compiles; a second instance of the size times the solve alone)
    P, r, c, d = geometric_graph(n_big, 3, 40)
    res, total, rmsd = _sparse_layout(P, r, c, d, 3)
    rows_out.append(_layout_row(res, r, c, d, 3, total, rmsd))
    targets.append(
        target(
            "localization",
            f"RMSD ≤ 1e-6 after align, N = {n_big}, 3-D",
            f"{rmsd:.1e} ({int(res.steps)} steps, {total:.0f} s incl. compile)",
            rmsd <= 1e-6,
        )
    )

    # beside scikit-learn's SMACOF on the dense matrix
    from sklearn.manifold import MDS

    P, r, c, d = geometric_graph(n_dense, 3, 40, seed=1)
    _sparse_layout(P, r, c, d, 3)  # compile at this size
    res, total, rmsd = _sparse_layout(P, r, c, d, 3)
    rows_out.append(_layout_row(res, r, c, d, 3, total, rmsd))
    D = np.linalg.norm(P[:, None] - P[None], axis=-1)
    t0 = time.perf_counter()
    skl = MDS(
        n_components=3,
        metric="precomputed",
        n_init=1,
        init="classical_mds",
        random_state=0,
        normalized_stress=False,
    ).fit(D)
    skl_t = time.perf_counter() - t0
    skl_rmsd = float(align(skl.embedding_, P, reflection=True).rmsd)
    rows_out.append(
        [
            "scikit-learn MDS (dense D)",
            3,
            n_dense,
            n_dense * (n_dense - 1) // 2,
            n_dense - 1,
            skl_t,
            int(skl.n_iter_),
            _pair_stress(skl.embedding_, r, c, d),
            skl_rmsd,
            -1,
        ]
    )
    targets.append(
        target(
            "localization",
            f"time and stress beside scikit-learn MDS, N = {n_dense}",
            f"{total:.1f} s vs {skl_t:.1f} s; RMSD {rmsd:.1e} vs {skl_rmsd:.1e}",
            None,
        )
    )

    # beside s_gd2 in 2-D, at stress over the observed pairs
    P, r, c, d = geometric_graph(n_2d, 2, 40, seed=2)
    _sparse_layout(P, r, c, d, 2)  # compile at this size
    res, total, rmsd = _sparse_layout(P, r, c, d, 2)
    ours = _pair_stress(res.Y, r, c, d)
    rows_out.append(_layout_row(res, r, c, d, 2, total, rmsd))
    try:
        import s_gd2

        t0 = time.perf_counter()
        Y = s_gd2.layout_convergent(r.astype(np.int32), c.astype(np.int32), d)
        sgd_t = time.perf_counter() - t0
        theirs = _pair_stress(Y, r, c, d)
        sgd_rmsd = float(align(Y, P, reflection=True, dim=2).rmsd)
        rows_out.append(
            [
                "s_gd2 layout_convergent",
                2,
                n_2d,
                r.size,
                2 * r.size / n_2d,
                sgd_t,
                float("nan"),
                theirs,
                sgd_rmsd,
                -1,
            ]
        )
        targets.append(
            target(
                "localization",
                "2-D: stress ≤ s_gd2's (observed pairs)",
                f"{ours:.2e} vs {theirs:.2e}; {total:.1f} s vs {sgd_t:.1f} s",
                ours <= theirs,
            )
        )
    except ImportError:
        targets.append(target("localization", "2-D beside s_gd2", "s_gd2 not installed", None))
    table = {
        "title": "Localization from sparse distances (random geometric graph, ~40 a point)",
        "columns": [
            "method",
            "dim",
            "N",
            "pairs",
            "pairs a point",
            "time s",
            "steps",
            "stress (observed pairs)",
            "RMSD after align",
            "status",
        ],
        "rows": rows_out,
    }
    return targets, [table]


def run(quick: bool, part: str | None = None) -> dict:
    """Completion from observed entries and sparse localization."""
    start = time.perf_counter()
    targets, tables = [], []
    load = _load()
    parts = (("completion", completion), ("scaling", scaling), ("localization", localization))
    for name, fn in parts:
        if part in (None, name):
            t, tb = fn(quick)
            targets += t
            tables += tb
    notes = [
        f"load average at start {load}, at end {_load()} (2 shared cores); peak RSS "
        f"{_rss_gb():.2f} GB",
        "time per step (scaling): (45-step run − 5-step run) over the steps between them, "
        "rank 2, rtol = atol = 0; the totals include the start and the final checks",
    ]
    rep = report(
        "observed" + ("" if part is None else f"_{part}"),
        "Sparse observations: completion and localization",
        quick=quick,
        targets=targets,
        tables=tables,
        notes=notes,
        wall_s=time.perf_counter() - start,
    )
    write(rep)
    return rep


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--part", choices=["completion", "scaling", "localization"])
    args = parser.parse_args(argv)
    print_targets(run(args.quick, args.part))
    return 0


if __name__ == "__main__":
    sys.exit(main())
