"""Per-element classification of 30×30 matrices: fully convolutional net versus flatten → MLP.

Run:  python benchmarks/matrix_classification.py [--quick]   (full: ~10 min on 2 CPU cores)

Writes benchmarks/results/matrix_classification[_quick][_threads<N>].{json,md} (and .png when
matplotlib is installed); ``run(quick) -> dict`` is the entry point for the benchmark runner.

Data: integer matrices 0–75, label 1 where an element exceeds the mean of its 3×3 neighbourhood
(wrap-around). Each model is trained on the same data with its default budget
from ``jaxsolve.matrix_learning.DEFAULT_SPECS``; test accuracy is per element on independent
matrices. Repeated over seeds. A purely linear flatten model (900 → 900) is included because the
rule is a thresholded linear stencil that it can represent exactly; the flattened models are then
given 5× and 15× more data (and the linear one 10,000 steps) to show how slowly they catch up.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import time

# As a script: the package's __init__ applies JAXSOLVE_BENCH_THREADS (default threading when
# unset) before NumPy and JAX load. Imported by benchmarks/run.py, it has already run.
if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import _harness as H  # isort: split

import jax
import numpy as np

from jaxsolve.matrix_learning import DEFAULT_SPECS, FlattenMLP, ModelSpec, compare_models

RESULTS = pathlib.Path(__file__).parent / "results"


def _linear(rngs, shape, boundary):
    return FlattenMLP(shape, hidden=(), rngs=rngs)


def _row(setting, seed, n_train, n_test, report):
    return {
        "setting": setting,
        "model": report.name,
        "seed": seed,
        "n_train": n_train,
        "n_test": n_test,
        "num_params": report.num_params,
        "steps": report.steps,
        "batch_size": report.batch_size,
        "learning_rate": report.learning_rate,
        "train_accuracy": report.train_accuracy,
        "test_accuracy": report.test_accuracy,
        "test_exact_match": report.test_exact_match,
        "test_loss": report.test_loss,
        "final_train_loss": float(np.mean(report.losses[-50:])),
        "compile_seconds": report.compile_seconds,
        "run_seconds": report.run_seconds,
    }


def run(quick: bool = False, seeds: int = 3) -> dict:
    """Per-element matrix classification: fully convolutional net versus flatten → MLP.

    Returns the report dict (``name``, ``title``, ``quick``, ``targets``, ``tables``, ``notes``,
    ``data``) and writes ``benchmarks/results/matrix_classification[_quick].{json,md,png}``.
    ``quick``: one seed, no linear model and no extra-data settings (about a minute).
    """
    seed_list = [0] if quick else list(range(seeds))
    n_train, n_test = 2000, 1000
    rows, curves = [], {}
    start = time.perf_counter()
    default_specs = dict(DEFAULT_SPECS)
    if not quick:
        default_specs["flatten_linear"] = ModelSpec(
            _linear, steps=3000, batch_size=64, learning_rate=3e-3
        )
    for seed in seed_list:
        reports = compare_models(
            jax.random.key(seed), n_train=n_train, n_test=n_test, specs=default_specs
        )
        for report in reports.values():
            rows.append(_row("default", seed, n_train, n_test, report))
            print(f"seed {seed} {report.name:14s} test acc {report.test_accuracy:.4f}", flush=True)
            curves.setdefault(report.name, report.losses)
    if not quick:
        # More data (and, for the linear map, more steps): how fast does flattening catch up?
        long_linear = ModelSpec(_linear, steps=10000, batch_size=64, learning_rate=1e-3)
        for big, specs in [
            (10000, {"flatten_mlp": DEFAULT_SPECS["flatten_mlp"], "flatten_linear": long_linear}),
            (30000, {"flatten_linear": long_linear}),
        ]:
            reports = compare_models(jax.random.key(100), n_train=big, n_test=n_test, specs=specs)
            for report in reports.values():
                rows.append(_row("more_data", 100, big, n_test, report))
                print(f"n_train {big} {report.name:14s} test acc {report.test_accuracy:.4f}")
    total = time.perf_counter() - start

    summary = {}
    for row in rows:
        key = f"{row['setting']}/{row['model']}/n_train={row['n_train']}"
        summary.setdefault(key, []).append(row["test_accuracy"])
    summary = {
        k: {
            "median_test_accuracy": statistics.median(v),
            "min": min(v),
            "max": max(v),
            "runs": len(v),
        }
        for k, v in summary.items()
    }
    conv = summary["default/fully_conv/n_train=2000"]
    mlp = summary["default/flatten_mlp/n_train=2000"]
    targets = [
        {
            "group": "matrix classification",
            "target": "FullyConvNet per-element test accuracy >= 0.99 (every seed)",
            "measured": f"min {conv['min']:.4f}, median {conv['median_test_accuracy']:.4f}",
            "met": conv["min"] >= 0.99,
        },
        {
            "group": "matrix classification",
            "target": "FlattenMLP per-element test accuracy, reported honestly (no target)",
            "measured": f"median {mlp['median_test_accuracy']:.4f}",
            "met": None,
        },
    ]
    columns = [
        "setting",
        "model",
        "num_params",
        "n_train",
        "steps",
        "seed",
        "train_accuracy",
        "test_accuracy",
        "test_exact_match",
        "compile_seconds",
        "run_seconds",
    ]
    rep = {
        "name": "matrix_classification",
        "title": "Per-element matrix classification (30×30, entries 0–75, 3×3-mean rule)",
        "quick": quick,
        "machine": {**H.machine_info(), "machine": platform.machine()},
        "wall_s": total,
        "targets": targets,
        "tables": [
            {"title": "runs", "columns": columns, "rows": [[r[c] for c in columns] for r in rows]}
        ],
        "notes": [
            f"Accuracy is per element on {n_test} independent test matrices; exact = fraction "
            "of test matrices with no wrong element."
        ],
        "data": {"summary": summary, "runs": rows},
    }
    _write(rep, rows, summary, curves, n_test)
    return rep


def _write(rep, rows, summary, curves, n_test) -> None:
    RESULTS.mkdir(exist_ok=True)
    stem = pathlib.Path(H.stem("matrix_classification", rep["quick"]))
    stem.with_suffix(".json").write_text(json.dumps(rep, indent=2) + "\n")
    meta = rep["machine"]
    lines = [
        f"# {rep['title']}{' (quick)' if rep['quick'] else ''}",
        "",
        f"{meta['date_utc']} UTC · jax {meta['jax']} on {meta['backend']} · "
        f"{meta['cpu_count']} CPU cores · {H.threading_text(meta)}; total {rep['wall_s']:.0f} s. "
        + rep["notes"][0],
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for t in rep["targets"]:
        met = {True: "yes", False: "**no**", None: "n/a"}[t["met"]]
        lines.append(f"| {t['target']} | {t['measured']} | {met} |")
    lines += [
        "",
        "| setting | model | params | n_train | steps | seed | train acc | test acc | exact | "
        "compile s | run s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['setting']} | {r['model']} | {r['num_params']:,} | {r['n_train']} | "
            f"{r['steps']} | {r['seed']} | {r['train_accuracy']:.4f} | {r['test_accuracy']:.4f} | "
            f"{r['test_exact_match']:.3f} | {r['compile_seconds']:.1f} | {r['run_seconds']:.1f} |"
        )
    lines += [
        "",
        "| setting / model | median test acc | min | max | runs |",
        "|---|---:|---:|---:|---:|",
    ]
    for k, v in summary.items():
        lines.append(
            f"| {k} | {v['median_test_accuracy']:.4f} | {v['min']:.4f} | {v['max']:.4f} | "
            f"{v['runs']} |"
        )
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, losses in curves.items():
        window = 20
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(len(smooth)) + window, smooth, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("mini-batch BCE (20-step mean)")
    ax.set_title("30×30 per-element classification, 3×3-mean rule")
    ax.legend()
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, MLP and conv only")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    rep = run(args.quick, args.seeds)
    print(
        pathlib.Path(H.stem("matrix_classification", rep["quick"])).with_suffix(".md").read_text()
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
