"""Run every registered benchmark: ``python -m benchmarks.run [--quick] [--only NAME ...]``.

Each registered module exposes ``run(quick: bool) -> dict``, writes its own results under
``benchmarks/results/`` (``<name>.json``/``.md``/``.png``; ``<name>_quick.*`` with ``--quick``)
and returns its report; this runner prints every report's targets table at the end. Add a
benchmark with one line in ``REGISTRY``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback

from benchmarks._harness import enable_x64, print_targets

# (name, module): the module's ``run(quick) -> dict`` is called. Add one line per benchmark.
REGISTRY: list[tuple[str, str]] = [
    ("closed_forms", "benchmarks.closed_forms"),
    ("solvers", "benchmarks.solvers"),
    ("transforms", "benchmarks.transforms"),
    ("matrix_classification", "benchmarks.matrix_classification"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (under 2 minutes)")
    parser.add_argument(
        "--only",
        action="append",
        choices=[name for name, _ in REGISTRY],
        help="run only this benchmark (repeatable)",
    )
    args = parser.parse_args(argv)
    enable_x64()
    selected = [(n, m) for n, m in REGISTRY if not args.only or n in args.only]
    reports, failed = [], []
    start = time.perf_counter()
    for name, module in selected:
        print(f"--- {name} ({'quick' if args.quick else 'full'})", flush=True)
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
