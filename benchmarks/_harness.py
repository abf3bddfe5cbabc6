"""Shared benchmark machinery: x64, interleaved timing, result files, a ``main`` per module.

Timing: every JAX candidate is compiled ahead of time (the compile time reported
separately), warmed up once, and timed with ``block_until_ready`` on every output. The
candidates of one comparison are timed *interleaved*, round by round, and each round's time
is divided by the baseline's time of the same round; the median of those per-round ratios is
what the targets are judged on. On a shared, noisy machine, load that drifts over seconds
hits every candidate of a round alike.

A benchmark module exposes ``run(quick: bool) -> dict`` (see :func:`report`) and ends with
``if __name__ == "__main__": main(run)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


def enable_x64():
    """Turn on float64 in this process (an application may; the library never does)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax


# --- timing ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Candidate:
    """One thing to time: ``fn(*args)``; jitted (compiled ahead of time) unless ``jit=False``
    (NumPy/SciPy/cvxpy baselines, or a function that is already compiled)."""

    name: str
    fn: Callable[..., Any]
    args: tuple = ()
    jit: bool = True


@dataclasses.dataclass
class Timing:
    name: str
    median_s: float
    min_s: float
    compile_s: float
    ratio: float  # median over rounds of time / baseline time in the same round
    times_s: list[float]
    output: Any = dataclasses.field(repr=False, default=None)
    calls_per_round: int = 1  # back-to-back calls per timed round (see time_interleaved)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("output")
        return d


def _block(out):
    import jax

    return jax.block_until_ready(out)


def _jitted(fn):
    """``fn`` itself if it is already jitted (its compile cache is then shared across calls
    and candidates), else ``jax.jit(fn)``."""
    import jax

    return fn if hasattr(fn, "lower") else jax.jit(fn)


def compile_candidate(c: Candidate) -> tuple[Callable[[], Any], float, Any, float]:
    """(a zero-argument call, compile seconds, warm-up output, warm-up seconds)."""
    if not c.jit:
        # NumPy/SciPy code, or an already-jitted function: the first call is the warm-up
        # (for a jitted function it includes the compile, reported as ``compile_s``).
        start = time.perf_counter()
        out = _block(c.fn(*c.args))
        elapsed = time.perf_counter() - start
        return (lambda: c.fn(*c.args)), elapsed, out, elapsed
    start = time.perf_counter()
    compiled = _jitted(c.fn).lower(*c.args).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    out = _block(compiled(*c.args))  # warm-up
    return (lambda: compiled(*c.args)), compile_s, out, time.perf_counter() - start


def _calls_per_round(
    call: Callable[[], Any], min_round_s: float, warm_s: float, most: int = 1000
) -> int:
    """How many back-to-back calls make a round of at least ``min_round_s`` (1 for a call
    whose warm-up took that long already): one call of a few microseconds is below what a
    single timer read resolves on a busy machine."""
    if warm_s >= min_round_s:
        return 1
    start = time.perf_counter()
    _block(call())
    once = time.perf_counter() - start
    return max(1, min(most, math.ceil(min_round_s / max(once, 1e-7))))


def time_interleaved(
    candidates: Sequence[Candidate],
    *,
    rounds: int = 5,
    baseline: str | None = None,
    min_round_s: float = 2e-3,
) -> dict[str, Timing]:
    """Compile and warm up every candidate, then time ``rounds`` rounds in which each
    candidate runs once (the order rotates from round to round). Returns a :class:`Timing`
    per candidate with the median time and the median of per-round ratios to ``baseline``
    (default: the first candidate).

    A round of a call shorter than ``min_round_s`` runs the call several times back to back
    (each blocked until ready, so it is latency, not pipelined throughput) and records the
    mean; every candidate of the comparison gets the count the baseline needs."""
    baseline = candidates[0].name if baseline is None else baseline
    calls, compile_s, outs, warm_s = {}, {}, {}, {}
    for c in candidates:
        calls[c.name], compile_s[c.name], outs[c.name], warm_s[c.name] = compile_candidate(c)
    names = [c.name for c in candidates]
    repeat = _calls_per_round(calls[baseline], min_round_s, warm_s[baseline])
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for n in order:
            start = time.perf_counter()
            for _ in range(repeat):
                outs[n] = _block(calls[n]())
            times[n].append((time.perf_counter() - start) / repeat)
    result = {}
    for n in names:
        ratios = [t / b for t, b in zip(times[n], times[baseline], strict=True)]
        result[n] = Timing(
            name=n,
            median_s=statistics.median(times[n]),
            min_s=min(times[n]),
            compile_s=compile_s[n],
            ratio=statistics.median(ratios),
            times_s=times[n],
            output=outs[n],
            calls_per_round=repeat,
        )
    return result


def time_once(c: Candidate) -> Timing:
    """Compile (reported) and time one call without a separate warm-up: for a baseline too
    slow to repeat (a full eigh at N = 4096). A JAX CPU call has no first-call cost beyond
    compilation, which is excluded."""
    if c.jit:
        start = time.perf_counter()
        compiled = _jitted(c.fn).lower(*c.args).compile()
        compile_s = time.perf_counter() - start
    else:
        compiled, compile_s = c.fn, 0.0
    start = time.perf_counter()
    out = _block(compiled(*c.args))
    t = time.perf_counter() - start
    return Timing(c.name, t, t, compile_s, math.nan, [t], out)


# --- reports -----------------------------------------------------------------------------------


THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS")


def threads() -> str:
    """``"default"`` (the libraries' own threading) or the pinned count from
    ``JAXSOLVE_BENCH_THREADS`` (applied by ``benchmarks/__init__.py``)."""
    import benchmarks

    return benchmarks.THREADS or "default"


def threading_info() -> dict[str, Any]:
    """What decides the threads: the pinned count or "default", and the variables read."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    return {
        "threads": threads(),
        "usable_cores": usable,
        **{v: os.environ.get(v, "") for v in THREAD_VARS},
    }


def code_info() -> dict[str, Any]:
    """Which jaxsolve was measured: its location, and the git commit of its tree (with
    ``dirty`` when the tree has uncommitted changes to tracked files)."""
    import subprocess

    import jaxsolve

    root = os.path.dirname(os.path.dirname(os.path.abspath(jaxsolve.__file__)))
    info: dict[str, Any] = {"jaxsolve": jaxsolve.__version__, "jaxsolve_path": root}
    try:
        git = ["git", "-C", root]
        info["commit"] = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no", "--", "jaxsolve"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        info["dirty"] = bool(dirty)
    except (OSError, subprocess.CalledProcessError):  # not a git checkout
        pass
    return info


def machine_info() -> dict[str, Any]:
    import jax

    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover
        load = (math.nan,) * 3
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15": [round(x, 2) for x in load],
        "python": platform.python_version(),
        "numpy": np.__version__,
        "x64": bool(jax.config.jax_enable_x64),
        "threading": threading_info(),
        "code": code_info(),
    }


def target(
    group: str, target: str, measured: str, met: bool | None, **detail: Any
) -> dict[str, Any]:
    """One row of the targets table; ``met=None`` for a row that reports without a target."""
    return {"group": group, "target": target, "measured": measured, "met": met, **detail}


def report(
    name: str,
    title: str,
    *,
    quick: bool,
    targets: list[dict[str, Any]],
    tables: list[dict[str, Any]],
    notes: Sequence[str] = (),
    wall_s: float | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The dict every benchmark ``run`` returns. ``tables``: ``{"title", "columns", "rows"}``."""
    return {
        "name": name,
        "title": title,
        "quick": quick,
        "machine": machine_info(),
        "wall_s": wall_s,
        "process_cpu_s": time.process_time(),
        "targets": targets,
        "tables": tables,
        "notes": list(notes),
        "data": data or {},
    }


def _fmt_met(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "report"}[met]


def _cell(x: Any) -> str:
    if isinstance(x, float):
        if math.isnan(x):
            return "–"
        return f"{x:.3g}"
    return str(x).replace("|", "\\|")


def threading_text(m: dict[str, Any]) -> str:
    t = m.get("threading", {})
    if t.get("threads", "default") == "default":
        return "threading: library defaults"
    pinned = ", ".join(f"{v}={t[v]}" for v in THREAD_VARS if t.get(v))
    return f"threading: pinned to {t['threads']} ({pinned})"


def _code_text(m: dict[str, Any]) -> str:
    c = m.get("code", {})
    if "commit" not in c:
        return ""
    return f" · jaxsolve at {c['commit']}" + (" + uncommitted changes" if c.get("dirty") else "")


def markdown(rep: dict[str, Any]) -> str:
    m = rep["machine"]
    lines = [
        f"# {rep['title']}{' (quick)' if rep['quick'] else ''}",
        "",
        f"{m['date_utc']} UTC · jax {m['jax']} ({m['backend']}) · {m['cpu_count']} CPU cores · "
        f"load average {m['load_average_1_5_15']} · x64 {m['x64']} · "
        + threading_text(m)
        + _code_text(m)
        + (
            f" · run took {rep['wall_s']:.0f} s wall, process CPU so far "
            f"{rep.get('process_cpu_s', 0):.0f} s"
            if rep.get("wall_s")
            else ""
        ),
        "",
        "Times are medians of interleaved rounds after compile + warm-up; *ratios* are the "
        "median of per-round ratios against the baseline named in each table (the machine is "
        "shared and noisy: trust ratios, not absolute times).",
        "",
        "## Targets",
        "",
        "| group | target | measured | met? |",
        "|---|---|---|---|",
    ]
    for t in rep["targets"]:
        lines.append(
            f"| {t.get('group', '')} | {_cell(t['target'])} | {_cell(t['measured'])} | "
            f"{_fmt_met(t['met'])} |"
        )
    for tab in rep["tables"]:
        lines += ["", f"## {tab['title']}", ""]
        if tab.get("caption"):
            lines += [tab["caption"], ""]
        lines.append("| " + " | ".join(tab["columns"]) + " |")
        lines.append("|" + "---|" * len(tab["columns"]))
        for row in tab["rows"]:
            lines.append("| " + " | ".join(_cell(x) for x in row) + " |")
    if rep["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in rep["notes"]]
    return "\n".join(lines) + "\n"


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if dataclasses.is_dataclass(x):
        return x.to_dict() if hasattr(x, "to_dict") else dataclasses.asdict(x)
    return str(x)


def _sanitize(x: Any) -> Any:
    """NaN/inf → None so the JSON is strict."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _sanitize(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_sanitize(v) for v in x]
    return x


def stem(name: str, quick: bool) -> str:
    """``results/<name>[_quick][_threads<N>]``: pinned-thread figures sit beside the default
    ones, never over them."""
    pinned = "" if threads() == "default" else f"_threads{threads()}"
    return os.path.join(RESULTS, name + ("_quick" if quick else "") + pinned)


def write(rep: dict[str, Any], plot: Callable[[dict[str, Any], str], None] | None = None):
    """Write ``<stem>.json`` and ``.md`` under benchmarks/results/ (see :func:`stem`), and
    the PNG(s) by ``plot(report, path_stem)``. Returns the stem."""
    os.makedirs(RESULTS, exist_ok=True)
    base = stem(rep["name"], rep["quick"])
    clean = _sanitize(json.loads(json.dumps(rep, default=_json_default)))
    with open(base + ".json", "w") as f:
        json.dump(clean, f, indent=1, allow_nan=False)
        f.write("\n")
    with open(base + ".md", "w") as f:
        f.write(markdown(rep))
    if plot is not None:
        try:
            import matplotlib

            matplotlib.use("Agg")
            plot(rep, base)
        except ImportError:  # pragma: no cover - matplotlib is in the bench extra
            print("matplotlib not installed: no plots", file=sys.stderr)
    return base


def print_targets(rep: dict[str, Any], file=sys.stdout) -> None:
    print(f"\n== {rep.get('title', rep.get('name'))} ==", file=file)
    for t in rep.get("targets", []):
        print(f"[{_fmt_met(t.get('met')).strip('*'):>6}] {t['target']}: {t['measured']}", file=file)


def main(run: Callable[[bool], dict[str, Any]], argv: Sequence[str] | None = None) -> int:
    """Command line for one benchmark module: ``python -m benchmarks.<name> [--quick]``."""
    parser = argparse.ArgumentParser(description=(run.__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    args = parser.parse_args(argv)
    rep = run(args.quick)
    print_targets(rep)
    return 0
