"""Benchmarks for ``jaxsolve.transforms``; one command, results in benchmarks/results/.

    python benchmarks/transforms.py            # full run (a few minutes; N = 50,000 included)
    python benchmarks/transforms.py --quick    # small sizes, no N = 50,000 (about a minute)

Measures, in one process against baselines run in the same process (the machine is shared
and noisy, so ratios mean more than absolute times):

1. ``pairwise_distances`` against ``scipy.spatial.distance.pdist`` (+ ``squareform``): time
   and the largest difference.
2. ``mds`` (classical MDS + jitted SMACOF) against scikit-learn's ``MDS`` at N = 1,000 on
   exact and noisy distances: time, and the raw stress Σ_{i<j} (d_ij(Y) − D_ij)² recomputed
   the same way (NumPy, float64) for every embedding.
3. ``blocked_distance_loss`` at N = 50,000 (float32): compiled temporary memory, the peak
   resident memory of the process (a child process, so nothing else counts), time per
   training step and the loss over a few Adam steps; beside it the memory the dense forms
   would need (XLA's memory analysis of the same gradient, compiled but not run).

Timing: compile once (reported separately), warm up, median over repeats, ``block_until_ready``
on every output. Threading: the libraries' defaults; ``JAXSOLVE_BENCH_THREADS=N`` pins
BLAS/LAPACK and XLA to N threads and writes ``transforms[_quick]_threads<N>.*`` instead.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

# As a script: the package's __init__ applies JAXSOLVE_BENCH_THREADS (default threading when
# unset) before NumPy and JAX load. Imported by benchmarks/run.py, it has already run.
if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import benchmarks  # isort: split

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


def _jax64():
    import jax

    jax.config.update("jax_enable_x64", True)  # an application: it may choose (not the library)
    return jax


def _median_time(fn, repeats):
    """``(median wall s, median process-CPU s, output)`` of ``fn()``, outputs blocked on.

    CPU time (all threads of this process) is the steadier number on a shared,
    oversubscribed machine; both are recorded and both give speed-ups.
    """
    import jax

    walls, cpus = [], []
    out = None
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        out = jax.block_until_ready(fn())
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return float(np.median(walls)), float(np.median(cpus)), out


def _raw_stress(Y, D):
    from scipy.spatial.distance import pdist

    return float(np.sum((pdist(np.asarray(Y, np.float64)) - squareform_upper(D)) ** 2))


def squareform_upper(D):
    i, j = np.triu_indices(D.shape[0], 1)
    return np.asarray(D, np.float64)[i, j]


# --- 1. values against scipy ----------------------------------------------------------------


def bench_pdist(sizes, repeats):
    jax = _jax64()
    from scipy.spatial.distance import pdist, squareform

    from jaxsolve.transforms import pairwise_distances

    rows = []
    for n in sizes:
        Y = np.random.default_rng(n).normal(size=(n, 3)) * 10
        t_pdist, c_pdist, _ = _median_time(lambda Y=Y: pdist(Y), repeats)
        t_square, c_square, ref = _median_time(lambda Y=Y: squareform(pdist(Y)), repeats)
        fn = jax.jit(pairwise_distances)
        start = time.perf_counter()
        compiled = fn.lower(Y).compile()
        t_compile = time.perf_counter() - start
        Yd = jax.device_put(Y)
        compiled(Yd).block_until_ready()
        t_ours, c_ours, D = _median_time(lambda Yd=Yd, c=compiled: c(Yd), repeats)
        err = float(np.max(np.abs(np.asarray(D) - ref)))
        rows.append(
            dict(
                n=n,
                scipy_pdist_s=t_pdist,
                scipy_pdist_squareform_s=t_square,
                jax_s=t_ours,
                jax_compile_s=t_compile,
                speedup_vs_pdist=t_pdist / t_ours,
                speedup_vs_pdist_squareform=t_square / t_ours,
                scipy_pdist_cpu_s=c_pdist,
                scipy_pdist_squareform_cpu_s=c_square,
                jax_cpu_s=c_ours,
                cpu_speedup_vs_pdist=c_pdist / c_ours,
                cpu_speedup_vs_pdist_squareform=c_square / c_ours,
                max_abs_error=err,
                max_distance=float(ref.max()),
            )
        )
        print(
            f"pdist N={n}: scipy {t_pdist * 1e3:.2f} ms (+squareform {t_square * 1e3:.2f} ms), "
            f"jax {t_ours * 1e3:.2f} ms (compile {t_compile:.2f} s), max |Δ| {err:.1e}"
        )
    return rows


# --- 2. MDS against scikit-learn ---------------------------------------------------------------


def bench_mds(n, noise, repeats, sk_repeats):
    jax = _jax64()
    from sklearn.manifold import MDS

    import jaxsolve
    from jaxsolve.transforms import align, classical_mds, mds, pairwise_distances

    rng = np.random.default_rng(0)
    Y_true = rng.normal(size=(n, 3)) * np.array([3.0, 2.0, 1.0])
    D_exact = np.asarray(pairwise_distances(Y_true))
    cases = []
    for level in (0.0, noise):
        E = np.triu(rng.normal(size=(n, n)) * level, 1)
        D = np.abs(D_exact + E + E.T)
        name = "exact" if level == 0 else f"noisy (σ = {level:g}, mean distance {D.mean():.2f})"
        result = dict(case=name, n=n, noise=level)

        # jaxsolve: the first call (with compilation) is reported apart from warm calls.
        runs = {
            "classical_eigh": lambda D=D: classical_mds(D, solver="eigh"),
            "classical_randomized": lambda D=D: classical_mds(D, solver="randomized"),
            "mds": lambda D=D: mds(D),  # randomized classical start + SMACOF
        }
        for key, fn in runs.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            result[f"{key}_first_call_s"] = time.perf_counter() - start
            wall, cpu, res = _median_time(fn, repeats)
            result.update(
                {
                    f"{key}_s": wall,
                    f"{key}_cpu_s": cpu,
                    f"{key}_stress": _raw_stress(res.Y, D),
                    f"{key}_steps": int(res.steps),
                    f"{key}_status": jaxsolve.Status(int(res.status)).name,
                    f"{key}_rmsd_to_truth": float(align(res.Y, Y_true, reflection=True).rmsd),
                }
            )
        for init in ("random", "classical_mds"):
            sk = MDS(
                n_components=3,
                metric="precomputed",
                init=init,
                n_init=1,
                max_iter=300,
                eps=1e-6,
                random_state=0,
            )
            key = f"sklearn_{init}"
            wall, cpu, Y = _median_time(lambda sk=sk, D=D: sk.fit_transform(D), sk_repeats)
            result.update(
                {
                    f"{key}_s": wall,
                    f"{key}_cpu_s": cpu,
                    f"{key}_stress": _raw_stress(Y, D),
                    f"{key}_steps": int(sk.n_iter_),
                    f"{key}_rmsd_to_truth": float(align(Y, Y_true, reflection=True).rmsd),
                    f"speedup_vs_{key}": wall / result["mds_s"],
                    f"cpu_speedup_vs_{key}": cpu / result["mds_cpu_s"],
                }
            )
        r = result
        print(
            f"MDS N={n} {name}: jaxsolve mds {r['mds_s']:.3f} s (cpu {r['mds_cpu_s']:.3f} s), "
            f"{r['mds_steps']} steps, stress {r['mds_stress']:.6g}; classical eigh "
            f"{r['classical_eigh_s']:.3f} s, randomized {r['classical_randomized_s']:.3f} s; "
            f"sklearn random init {r['sklearn_random_s']:.2f} s (cpu "
            f"{r['sklearn_random_cpu_s']:.2f} s) stress {r['sklearn_random_stress']:.6g} "
            f"-> {r['speedup_vs_sklearn_random']:.0f}x wall, "
            f"{r['cpu_speedup_vs_sklearn_random']:.0f}x cpu; sklearn classical init "
            f"{r['sklearn_classical_mds_s']:.2f} s stress "
            f"{r['sklearn_classical_mds_stress']:.6g} -> "
            f"{r['speedup_vs_sklearn_classical_mds']:.0f}x wall, "
            f"{r['cpu_speedup_vs_sklearn_classical_mds']:.0f}x cpu"
        )
        cases.append(result)
    return cases


# --- 3. the blocked loss at N = 50,000 (child process) ------------------------------------------


def _child_blocked(n, block, steps):
    import jax
    import jax.numpy as jnp
    import optax

    from jaxsolve.transforms import blocked_distance_loss, distance_loss, pairwise_distances

    rng = np.random.default_rng(0)
    Z = jnp.asarray(rng.normal(size=(n, 3)) * 20.0, jnp.float32)  # target coordinates
    Y = Z + jnp.asarray(rng.normal(size=(n, 3)) * 2.0, jnp.float32)
    out = dict(n=n, block_size=block, dtype="float32")

    def loss(y):
        return blocked_distance_loss(y, Z, block_size=block)

    # What the dense forms would need, from XLA's memory analysis (compiled, never run).
    for name, fn in (
        ("dense_pairwise_distances", lambda y: jnp.mean((pairwise_distances(y) - y[0, 0]) ** 2)),
        ("distance_loss_nxn", lambda y: distance_loss(y, jnp.zeros((n, n), jnp.float32))),
    ):
        try:
            stats = jax.jit(jax.grad(fn)).lower(Y).compile().memory_analysis()
            out[f"{name}_temp_bytes"] = int(stats.temp_size_in_bytes)
        except Exception as err:  # pragma: no cover - backend without analysis
            out[f"{name}_temp_bytes"] = None
            out[f"{name}_error"] = str(err)[:200]

    tx = optax.adam(0.5)

    @jax.jit
    def step(y, state):
        value, grad = jax.value_and_grad(loss)(y)
        updates, state = tx.update(grad, state, y)
        return optax.apply_updates(y, updates), state, value

    state = tx.init(Y)
    start = time.perf_counter()
    compiled = step.lower(Y, state).compile()
    out["compile_s"] = time.perf_counter() - start
    stats = compiled.memory_analysis()
    out["blocked_temp_bytes"] = int(stats.temp_size_in_bytes) if stats else None
    losses, times = [], []
    for _ in range(steps):
        start = time.perf_counter()
        Y, state, value = jax.block_until_ready(compiled(Y, state))
        times.append(time.perf_counter() - start)
        losses.append(float(value))
    out["step_s"] = times
    out["losses"] = losses
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(out))


def bench_blocked(n, block, steps):
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child-blocked",
        str(n),
        str(block),
        str(steps),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return {"n": n, "error": proc.stderr[-500:]}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    gb = 1e9
    print(
        f"blocked N={n} block={block}: peak RSS {out['peak_rss_bytes'] / gb:.2f} GB, compiled "
        f"temp {out['blocked_temp_bytes'] / gb:.2f} GB, step {np.median(out['step_s']):.1f} s, "
        f"loss {out['losses'][0]:.4g} -> {out['losses'][-1]:.4g}; dense would need "
        f"{(out['dense_pairwise_distances_temp_bytes'] or 0) / gb:.0f} GB, N×N form "
        f"{(out['distance_loss_nxn_temp_bytes'] or 0) / gb:.0f} GB"
    )
    return out


# --- report -------------------------------------------------------------------------------


def write_markdown(report, path):
    lines = ["# jaxsolve.transforms benchmarks", ""]
    lines.append(
        f"Machine: {report['machine']}. Generated by `python benchmarks/transforms.py"
        f"{' --quick' if report['quick'] else ''}`. Load average when it started: "
        f"{', '.join(f'{v:.1f}' for v in report['load_average_at_start'])} (the machine is "
        "shared: wall-clock times are noisy, ratios and CPU times less so). Threading: "
        f"{report['threads']}."
    )
    lines += [
        "",
        "## pairwise_distances vs scipy.spatial.distance.pdist (float64, 3-D points)",
        "",
        "Medians of warm calls; speed-ups as wall clock / process CPU time.",
        "",
        "| N | scipy pdist | pdist + squareform | jaxsolve (jit) | speed-up vs pdist | "
        "vs pdist + squareform | compile | max abs diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["pdist"]:
        lines.append(
            f"| {r['n']} | {r['scipy_pdist_s'] * 1e3:.2f} ms | "
            f"{r['scipy_pdist_squareform_s'] * 1e3:.2f} ms | {r['jax_s'] * 1e3:.2f} ms | "
            f"{r['speedup_vs_pdist']:.1f}× / {r['cpu_speedup_vs_pdist']:.1f}× | "
            f"{r['speedup_vs_pdist_squareform']:.1f}× / "
            f"{r['cpu_speedup_vs_pdist_squareform']:.1f}× | "
            f"{r['jax_compile_s']:.2f} s | {r['max_abs_error']:.1e} |"
        )
    lines += [
        "",
        "## MDS vs scikit-learn `MDS` (metric, precomputed, n_init=1, max_iter=300, eps=1e-6)",
        "",
        "Raw stress Σ_{i<j} (d_ij(Y) − D_ij)², recomputed identically (NumPy, float64) for every "
        "embedding. `mds` = classical MDS with the randomized solver (subspace iteration, then "
        '`jaxsolve.solve(QᵀGQ, method="eigh", rank=3)`) + jitted SMACOF with scikit-learn\'s '
        "stopping rule. Times: medians of warm calls, wall clock and process CPU (the machine "
        "is shared; CPU time is the steadier figure). First calls (with compilation) are in "
        "the JSON.",
        "",
        "| case | method | wall | CPU | stress | iterations | status | RMSD to truth "
        "| mds speed-up (wall / CPU) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    labels = {
        "mds": "jaxsolve `mds` (classical + SMACOF)",
        "classical_eigh": "jaxsolve `classical_mds` (eigh)",
        "classical_randomized": "jaxsolve `classical_mds` (randomized)",
        "sklearn_random": "sklearn `MDS` init=random",
        "sklearn_classical_mds": "sklearn `MDS` init=classical_mds",
    }
    for c in report["mds"]:
        first = True
        for key, label in labels.items():
            ratio = ""
            if key.startswith("sklearn"):
                ratio = f"{c['speedup_vs_' + key]:.0f}× / {c['cpu_speedup_vs_' + key]:.0f}×"
            lines.append(
                f"| {c['case'] if first else ''} | {label} | {c[key + '_s']:.3f} s | "
                f"{c[key + '_cpu_s']:.3f} s | {c[key + '_stress']:.6g} | {c[key + '_steps']} | "
                f"{c.get(key + '_status', '')} | {c[key + '_rmsd_to_truth']:.2e} | {ratio} |"
            )
            first = False
    b = report.get("blocked")
    if b and "error" not in b:
        gb = 1e9
        if report.get("blocked_reused_from_earlier_run"):
            lines += [
                "",
                "(The next section is copied from an earlier full run: `--reuse-blocked`.)",
            ]
        lines += [
            "",
            f"## blocked_distance_loss at N = {b['n']:,} (float32, block {b['block_size']})",
            "",
            "| quantity | value |",
            "|---|---|",
            f"| peak resident memory of the process | {b['peak_rss_bytes'] / gb:.2f} GB |",
            f"| XLA temporaries, value_and_grad + Adam step | "
            f"{b['blocked_temp_bytes'] / gb:.2f} GB |",
            f"| time per step (median) | {np.median(b['step_s']):.1f} s |",
            f"| compile | {b['compile_s']:.1f} s |",
            f"| loss over {len(b['losses'])} Adam steps | "
            + " → ".join(f"{v:.4g}" for v in b["losses"])
            + " |",
        ]
        if b.get("dense_pairwise_distances_temp_bytes"):
            lines.append(
                f"| dense `mean((pairwise_distances(Y) − T)²)` would need | "
                f"{b['dense_pairwise_distances_temp_bytes'] / gb:.0f} GB |"
            )
        if b.get("distance_loss_nxn_temp_bytes"):
            lines.append(
                f"| `distance_loss` (N×N, no N×N×3) would need | "
                f"{b['distance_loss_nxn_temp_bytes'] / gb:.0f} GB |"
            )
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def plot(report, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return
    rows = report["pdist"]
    n = [r["n"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.loglog(n, [r["scipy_pdist_s"] for r in rows], "o-", label="scipy pdist")
    ax.loglog(n, [r["scipy_pdist_squareform_s"] for r in rows], "s-", label="pdist + squareform")
    ax.loglog(n, [r["jax_s"] for r in rows], "^-", label="jaxsolve pairwise_distances")
    ax.set_xlabel("N points")
    ax.set_ylabel("seconds (median)")
    ax.legend()
    ax.set_title("Distance matrix, float64, CPU")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, skip N = 50,000")
    parser.add_argument("--blocked-n", type=int, default=50_000)
    parser.add_argument("--blocked-steps", type=int, default=2)
    parser.add_argument(
        "--reuse-blocked",
        action="store_true",
        help="copy the N = 50,000 section from the existing results/transforms.json",
    )
    parser.add_argument("--child-blocked", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_blocked:
        _child_blocked(*args.child_blocked)
        return 0
    run(
        args.quick,
        reuse_blocked=args.reuse_blocked,
        blocked_n=args.blocked_n,
        blocked_steps=args.blocked_steps,
    )
    return 0


def run(
    quick: bool,
    *,
    reuse_blocked: bool = False,
    blocked_n: int = 50_000,
    blocked_steps: int = 2,
) -> dict:
    """Benchmarks of jaxsolve.transforms (the ``run(quick) -> dict`` of benchmarks/run.py)."""
    jax = _jax64()
    report = dict(
        name="transforms",
        title="jaxsolve.transforms: distances, MDS, N = 50,000",
        quick=quick,
        load_average_at_start=os.getloadavg(),
        threads=(
            f"pinned to {benchmarks.THREADS} (JAXSOLVE_BENCH_THREADS)"
            if benchmarks.THREADS
            else "library defaults"
        ),
        machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"jax {jax.__version__} on {jax.default_backend()}",
    )
    sizes = (500, 1000) if quick else (500, 1000, 2000, 4000)
    report["pdist"] = bench_pdist(sizes, repeats=5 if quick else 7)
    report["mds"] = bench_mds(
        300 if quick else 1000, noise=0.1, repeats=7, sk_repeats=1 if quick else 2
    )
    previous = os.path.join(RESULTS, "transforms.json")
    if reuse_blocked and os.path.exists(previous):
        with open(previous) as fh:
            report["blocked"] = json.load(fh).get("blocked")
        report["blocked_reused_from_earlier_run"] = True
    elif not quick:
        report["blocked"] = bench_blocked(blocked_n, 256, blocked_steps)
    report["targets"] = _targets(report)
    os.makedirs(RESULTS, exist_ok=True)
    pinned = f"_threads{benchmarks.THREADS}" if benchmarks.THREADS else ""
    stem = os.path.join(RESULTS, "transforms" + ("_quick" if quick else "") + pinned)
    with open(stem + ".json", "w") as fh:
        json.dump(report, fh, indent=2)
    write_markdown(report, stem + ".md")
    plot(report, stem + ".png")
    print(f"wrote {stem}.json, .md and .png")
    return report


def _targets(report: dict) -> list[dict]:
    """The targets, measured (the shape benchmarks/run.py prints)."""
    out = []
    err = max(r["max_abs_error"] for r in report["pdist"])
    out.append(
        dict(
            target="pairwise_distances equals scipy pdist",
            measured=f"max |difference| {err:.1e}",
            met=bool(err < 1e-12),
        )
    )
    exact = next(c for c in report["mds"] if c["noise"] == 0)
    out.append(
        dict(
            target="noise-free float64 MDS recovers the points to RMSD <= 1e-8",
            measured=f"RMSD {exact['mds_rmsd_to_truth']:.1e} (N = {exact['n']})",
            met=bool(exact["mds_rmsd_to_truth"] <= 1e-8),
        )
    )
    for c in report["mds"]:
        for init in ("random", "classical_mds"):
            k = f"sklearn_{init}"
            ratio = min(c[f"speedup_vs_{k}"], c[f"cpu_speedup_vs_{k}"])
            lower = c["mds_stress"] <= c[f"{k}_stress"] * (1 + 1e-9) + 1e-20
            wall, cpu = c[f"speedup_vs_{k}"], c[f"cpu_speedup_vs_{k}"]
            case = c["case"].split(" ")[0]
            out.append(
                dict(
                    target=f">= 20x faster than sklearn MDS (init={init}) at equal or lower "
                    f"stress, N = {c['n']}, {case}",
                    measured=f"{wall:.0f}x wall / {cpu:.0f}x CPU, "
                    f"stress {c['mds_stress']:.4g} vs {c[f'{k}_stress']:.4g}",
                    met=bool(ratio >= 20 and lower),
                )
            )
    b = report.get("blocked")
    if b and "error" not in b:
        out.append(
            dict(
                target=f"N = {b['n']:,} trains in a few GB",
                measured=f"peak RSS {b['peak_rss_bytes'] / 1e9:.2f} GB, loss "
                + " -> ".join(f"{v:.3g}" for v in b["losses"]),
                met=bool(b["peak_rss_bytes"] < 4e9 and b["losses"][-1] < b["losses"][0]),
            )
        )
    return out


if __name__ == "__main__":
    sys.exit(main())
