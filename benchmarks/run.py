"""Run every registered benchmark: ``python -m benchmarks.run [--quick] [--only NAME ...]``.

Each registered module exposes ``run(quick: bool) -> dict``, writes its own results under
``benchmarks/results/`` (``<name>.json``/``.md``/``.png``; ``<name>_quick.*`` with ``--quick``)
and returns its report; this runner prints every report's targets table at the end. Add a
benchmark with one line in ``REGISTRY``.

The libraries run at their default threading. ``--threads N`` runs the same benchmarks in a
fresh process with BLAS/LAPACK and XLA pinned to ``N`` threads (the variables must be set
before NumPy and JAX load) and writes ``<name>[_quick]_threads<N>.*`` beside the default files.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import time
import traceback

import benchmarks
from benchmarks._harness import enable_x64, print_targets

# (name, module): the module's ``run(quick) -> dict`` is called. Add one line per benchmark.
REGISTRY: list[tuple[str, str]] = [
    ("closed_forms", "benchmarks.closed_forms"),
    ("solvers", "benchmarks.solvers"),
    ("lowrank", "benchmarks.lowrank"),
    ("transforms", "benchmarks.transforms"),
    ("matrix_classification", "benchmarks.matrix_classification"),
    ("observed", "benchmarks.observed"),
    ("implicit", "benchmarks.implicit"),
    ("completion", "benchmarks.completion"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    parser.add_argument(
        "--only",
        action="append",
        choices=[name for name, _ in REGISTRY],
        help="run only this benchmark (repeatable)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="pin BLAS/LAPACK and XLA to N threads (an extra figure, written beside the "
        "default-threading results)",
    )
    args = parser.parse_args(argv)
    if args.threads is not None and str(args.threads) != benchmarks.THREADS:
        if args.threads < 1:
            parser.error("--threads must be at least 1")
        # NumPy and JAX are loaded by now: pin the threads in a fresh process.
        env = {**os.environ, "JAXSOLVE_BENCH_THREADS": str(args.threads)}
        rest = list(sys.argv[1:] if argv is None else argv)
        cmd = [sys.executable, "-m", "benchmarks.run", *rest]
        return subprocess.run(cmd, env=env, check=False).returncode
    enable_x64()
    selected = [(n, m) for n, m in REGISTRY if not args.only or n in args.only]
    reports, failed = [], []
    start = time.perf_counter()
    for name, module in selected:
        mode = "quick" if args.quick else "full"
        print(f"--- {name} ({mode}, threads: {benchmarks.THREADS or 'default'})", flush=True)
        t0 = time.perf_counter()
        try:
            rep = importlib.import_module(module).run(args.quick)
        except Exception:  # one broken benchmark must not hide the others' results
            traceback.print_exc()
            failed.append(name)
            continue
        print(f"--- {name}: {time.perf_counter() - t0:.0f} s", flush=True)
        if isinstance(rep, dict):
            reports.append(rep)
    for rep in reports:
        print_targets(rep)
    print(
        f"\ntotal {time.perf_counter() - start:.0f} s" + (f"; FAILED: {failed}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
