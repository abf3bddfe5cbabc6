"""``jaxsolve demo``, ``jaxsolve solve`` and ``jaxsolve compare``."""

from __future__ import annotations

import argparse
import time

import numpy as np

from ._errors import CLIError, library_call
from ._io import (
    as_dtype,
    check_output_path,
    load_matrix,
    positive_int,
    save_json,
    save_matrix,
    use_float64,
)

# (name, keyword arguments of jaxsolve.random_psd): the demo's built-in problems.
DEMO_PROBLEMS = (
    ("well-conditioned (κ=10)", dict(n=64, cond=1e1, seed=0)),
    ("ill-conditioned (κ=1e10)", dict(n=64, cond=1e10, seed=1)),
    ("singular (rank 16 of 64)", dict(n=64, rank=16, cond=1e2, seed=2)),
    ("indefinite (4 negative eigenvalues)", dict(n=64, negative=4, cond=1e2, seed=3)),
)


def _add_dtype(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        default="float64",
        help="floating type to solve in (default float64)",
    )


def _add_method_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rank", type=int, default=None, help="columns k of X (default N)")


def _solve_options(args: argparse.Namespace, n: int) -> dict:
    if args.rank is not None and not 1 <= args.rank <= n:
        raise CLIError(f"--rank must be between 1 and N={n}; got {args.rank}")
    return {"rank": args.rank}


def _methods(args: argparse.Namespace) -> tuple[str, ...] | None:
    import jaxsolve

    if args.methods is None:
        return None
    choices = ", ".join(jaxsolve.METHODS)
    methods = tuple(m.strip() for m in args.methods.split(","))
    if not all(methods):
        raise CLIError(
            f"--methods expects method names separated by commas, got {args.methods!r} "
            f"(an empty name); choose from {choices}"
        )
    unknown = [m for m in methods if m not in jaxsolve.METHODS]
    if unknown:
        raise CLIError(f"--methods: unknown {unknown}; choose from {choices}")
    repeated = sorted({m for m in methods if methods.count(m) > 1})
    if repeated:
        raise CLIError(f"--methods names {', '.join(repeated)} more than once")
    return methods


def run_demo(args: argparse.Namespace) -> int:
    check_output_path(args.json, "--json")
    use_float64(args.dtype == "float64")
    import jaxsolve

    start = time.perf_counter()
    report = []
    for name, spec in DEMO_PROBLEMS:
        C = np.asarray(jaxsolve.random_psd(**spec), dtype=args.dtype)
        comparison = jaxsolve.compare(C, repeats=args.repeats)
        print(f"\n## {name}")
        print(comparison)
        report.append({"problem": name, **comparison.to_dict()})
    print(f"\nstatus codes: {', '.join(f'{s.value}={s.name}' for s in jaxsolve.Status)}")
    print(f"demo finished in {time.perf_counter() - start:.1f} s")
    if args.json:
        save_json(args.json, report)
    return 0


def run_solve(args: argparse.Namespace) -> int:
    use_float64(args.dtype == "float64")
    import jaxsolve

    C = load_matrix(args.matrix)
    check_output_path(args.output, "--output", ndim=C.ndim)
    options = _solve_options(args, C.shape[-1])
    if args.method == "cholesky" and options["rank"] not in (None, C.shape[-1]):
        raise CLIError("--rank is not available with --method cholesky")
    C = as_dtype(C, args.dtype, args.matrix)
    # a one-off call: report the residual measured on X, rounding included
    sol = library_call(jaxsolve.solve, C, method=args.method, measure_residual=True, **options)
    if args.output:
        save_matrix(args.output, np.asarray(sol.X))
    residual = np.atleast_1d(np.asarray(sol.residual))
    for i, (res, msg) in enumerate(zip(residual, sol.messages(), strict=True)):
        prefix = f"[{i}] " if residual.size > 1 else ""
        print(f"{prefix}residual {res:.3e}  status {msg}")
    # Exit 1 when a matrix could not be solved at all (an informational status such as
    # NOT_PSD still produced the nearest answer).
    failed = np.asarray(sol.status) >= jaxsolve.Status.CHOLESKY_FAILED
    return 1 if bool(np.any(failed)) else 0


def run_compare(args: argparse.Namespace) -> int:
    use_float64(args.dtype == "float64")
    import jaxsolve

    C = load_matrix(args.matrix)
    check_output_path(args.json, "--json")
    options = _solve_options(args, C.shape[-1])
    methods = _methods(args)
    C = as_dtype(C, args.dtype, args.matrix)
    comparison = library_call(jaxsolve.compare, C, methods, repeats=args.repeats, **options)
    print(comparison)
    if args.json:
        save_json(args.json, comparison.to_dict())
    return 0


def register(subparsers) -> None:
    import jaxsolve

    demo = subparsers.add_parser(
        "demo", help="compare every method on built-in problems (the main job)"
    )
    _add_dtype(demo)
    demo.add_argument("--repeats", type=positive_int, default=3, help="timed calls per method")
    demo.add_argument("--json", help="also write the results to this JSON file")
    demo.set_defaults(run=run_demo)

    solve = subparsers.add_parser("solve", help="solve X·Xᵀ = C for a matrix in a file")
    solve.add_argument("matrix", help="C as .npy, .csv or .txt")
    solve.add_argument("-o", "--output", help="write X here (.npy, .csv or .txt)")
    solve.add_argument("--method", choices=jaxsolve.METHODS, default="auto")
    _add_method_options(solve)
    _add_dtype(solve)
    solve.set_defaults(run=run_solve)

    compare = subparsers.add_parser("compare", help="run every method on a matrix in a file")
    compare.add_argument("matrix", help="C as .npy, .csv or .txt")
    compare.add_argument("--methods", help="comma-separated methods (default: all)")
    compare.add_argument("--repeats", type=positive_int, default=5, help="timed calls per method")
    compare.add_argument("--json", help="also write the results to this JSON file")
    _add_method_options(compare)
    _add_dtype(compare)
    compare.set_defaults(run=run_compare)
