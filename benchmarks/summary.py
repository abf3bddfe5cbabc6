"""One Markdown table of the key figures of ``closed_forms`` and ``solvers`` from their JSON.

    python -m benchmarks.summary [--results DIR] [--suffix S] [--against DIR] [--against-suffix S]

``--results``: the folder of ``closed_forms<S>.json`` / ``solvers<S>.json`` (default
``benchmarks/results``, suffix none; ``_quick`` or ``_threads1`` read those runs).
``--against DIR``: a second set of results (another machine, another commit, pinned threads)
shown in a column beside, row by row. Reads files only; runs nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import numpy as np

from benchmarks._harness import RESULTS


def _load(folder: str, name: str, suffix: str) -> dict[str, Any] | None:
    path = os.path.join(folder, name + suffix + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def _paired(rec: dict[str, Any], name: str, over: str) -> float:
    t = rec["times"]
    return float(np.median(np.divide(t[name]["times_s"], t[over]["times_s"])))


Row = tuple[str, str, str, bool | None]  # case, target, measured, met (None: reported)


def _closed_rows(rep: dict[str, Any]) -> list[Row]:
    """(case, target, measured, met) rows."""
    rows = []
    sweep = rep["data"]["sweep"]
    for dtype in ("float64", "float32"):
        for method in ("cholesky", "eigh"):
            recs = [r for r in sweep if r["method"] == method and r["dtype"] == dtype]
            if not recs:
                continue
            rows.append(
                (
                    f"solve {method} {dtype}, one matrix",
                    "≤ 1.10× jnp.linalg",
                    ", ".join(f"N={r['n']}: {r['times']['solve']['ratio']:.2f}" for r in recs),
                    all(r["times"]["solve"]["ratio"] <= 1.10 for r in recs),
                )
            )
    batches = rep["data"]["batches"]
    shapes = list(dict.fromkeys((r["dtype"], r["batch"], r["n"]) for r in batches))
    for dtype, b, n in shapes:
        recs = [r for r in batches if (r["dtype"], r["batch"], r["n"]) == (dtype, b, n)]
        rows.append(
            (
                f"solve {b:,} × {n}×{n} {dtype}",
                "≤ 1.25× jnp.linalg",
                ", ".join(f"{r['method']}: {r['times']['solve']['ratio']:.2f}" for r in recs)
                + " (solve / NumPy: "
                + ", ".join(f"{_paired(r, 'solve', 'numpy'):.2f}" for r in recs)
                + ")",
                all(r["times"]["solve"]["ratio"] <= 1.25 for r in recs),
            )
        )
    return rows


def _solver_rows(rep: dict[str, Any]) -> list[Row]:
    rows = []
    d = rep["data"]
    conv = d.get("convergence", [])
    for dtype in ("float64", "float32"):
        mine = [r for r in conv if r[2] == dtype]
        if mine:
            tol = "1e-10" if dtype == "float64" else "1e-5"
            worst = max(r[4] for r in mine)
            rows.append(
                (
                    f"precgd steps, κ = 10…1e8, {dtype}",
                    f"residual ≤ {tol} in ≤ 30 steps",
                    f"at most {max(r[5] for r in mine)} steps, residual ≤ {worst:.1e}",
                    worst <= float(tol) and max(r[5] for r in mine) <= 30,
                )
            )
    for r in d.get("full_vs_eigh", []):
        rows.append((f"precgd full rank N={r[0]} κ={r[1]}", "≤ 3× eigh", f"{r[4]:.2f}×", r[4] <= 3))
    for r in d.get("low_rank_large", []):
        rows.append(
            (
                f"precgd rank 8 at N={r[0]} vs one full eigh",
                "≥ 20× faster, gap ≤ 1e-8",
                f"{r[3]:.1f}× faster, gap {r[6]:.1e}",
                r[3] >= 20 and abs(r[6]) <= 1e-8,
            )
        )
    batched = {r[0]: r for r in d.get("batched", [])}
    if "precgd" in batched:
        p, c = batched["precgd"], batched.get("solve cholesky")
        text = f"{p[2]:.1f}× jnp.linalg.cholesky"
        if c:
            text += f", {p[2] / c[2]:.1f}× solve cholesky"
        rows.append(("precgd batched 8×8", "reported", text + f", {p[4]} steps", None))
    masked = d.get("masked", [])
    if masked:
        rows.append(
            (
                "masked completion, unobserved error",
                "≤ 1e-6",
                f"{masked[0][1]:.1e} in {masked[0][3]} steps"
                + (
                    f" (cvxpy/SCS {masked[-1][1]:.1e})"
                    if len(masked) > 2 and masked[-1][1] is not None
                    else ""
                ),
                masked[0][1] <= 1e-6,
            )
        )
    for problem in dict.fromkeys(r[0] for r in d.get("gd", [])):
        mine = [r for r in d["gd"] if r[0] == problem][:3]  # gd, Adam, precgd
        rows.append(
            (
                f"steps to 1e-6, {problem}",
                "reported",
                "; ".join(
                    f"{r[1].split(' (')[0]} {r[3]}" + ("" if r[7] else " (cap)") for r in mine
                ),
                None,
            )
        )
    return rows


def _rows(folder: str, suffix: str) -> tuple[list[Row], list[dict[str, Any]]]:
    rows, machines = [], []
    for name, fn in (("closed_forms", _closed_rows), ("solvers", _solver_rows)):
        rep = _load(folder, name, suffix)
        if rep is not None:
            rows += fn(rep)
            machines.append({"name": name, **rep["machine"], "wall_s": rep.get("wall_s")})
    return rows, machines


def _machine_line(m: dict[str, Any]) -> str:
    t = m.get("threading", {}).get("threads", "?")
    code = m.get("code", {})
    return (
        f"`{m['name']}`: {m['date_utc']} UTC, jax {m['jax']} ({m['backend']}), "
        f"{m['cpu_count']} cores, load average {m['load_average_1_5_15']}, threading {t}"
        + (f", jaxsolve {code['commit']}" if "commit" in code else "")
        + (" + uncommitted changes" if code.get("dirty") else "")
        + (f", {m['wall_s']:.0f} s" if m.get("wall_s") else "")
    )


def _met(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "–"}[met]


def table(
    results: str, suffix: str = "", against: str | None = None, against_suffix: str = ""
) -> str:
    rows, machines = _rows(results, suffix)
    lines = [f"- {_machine_line(m)}" for m in machines]
    if against:
        other, other_machines = _rows(against, against_suffix)
        lines += [f"- beside: {_machine_line(m)}" for m in other_machines]
        other_by_key = {k: (v, m) for k, _, v, m in other}
        lines += [
            "",
            "| case | target | measured | met? | beside | met? |",
            "|---|---|---|---|---|---|",
        ]
        for key, tgt, val, met in rows:
            o_val, o_met = other_by_key.get(key, ("–", None))
            lines.append(f"| {key} | {tgt} | {val} | {_met(met)} | {o_val} | {_met(o_met)} |")
    else:
        lines += ["", "| case | target | measured | met? |", "|---|---|---|---|"]
        lines += [f"| {key} | {tgt} | {val} | {_met(met)} |" for key, tgt, val, met in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=RESULTS)
    parser.add_argument("--suffix", default="", help="e.g. _quick or _threads1")
    parser.add_argument("--against", default=None, help="a second results folder, beside")
    parser.add_argument("--against-suffix", default="")
    args = parser.parse_args(argv)
    sys.stdout.write(table(args.results, args.suffix, args.against, args.against_suffix))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
