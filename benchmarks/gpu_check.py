"""Accelerator check: the tests that matter plus the solver targets, on whatever JAX sees.

    PYTHONPATH=. python3 benchmarks/gpu_check.py [--skip-tests] [--out benchmarks/results]

Runs in about 5 minutes on one GPU and writes ``benchmarks/results/<device>.md`` and
``.json``: the device, the core test modules' outcome, and for float32 (matmul precision
"highest" and "default", to show what TF32/bfloat16 matmuls do to the residual) and float64:
precgd steps and residual at κ = 10, 1e4, 1e8 (full N = 256 and rank 8 at N = 1024), time
against ``jnp.linalg.eigh`` at N = 1024, rank 8 at N = 4096 against a full eigh (the CPU
benchmark's signal + noise problem), 10,000 batched 8×8 beside batched Cholesky, and the
closed forms through ``solve`` against the direct ``jnp.linalg`` calls (single matrices:
target 1.10×; batches: 1.25×). Public API only; timing by ``benchmarks._harness``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import jaxsolve  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import _harness as H  # noqa: E402

TEST_TIMEOUT_S = 300
CORE_TESTS = [
    "tests/test_solve.py",
    "tests/test_closed_form.py",
    "tests/test_iterative.py",
    "tests/test_nn.py",
]


def device_name() -> str:
    dev = jax.devices()[0]
    kind = getattr(dev, "device_kind", dev.platform)
    return re.sub(r"[^A-Za-z0-9]+", "_", f"{dev.platform}_{kind}").strip("_").lower()


def _has_xdist() -> bool:
    try:
        import xdist  # noqa: F401
    except ImportError:
        return False
    return True


def run_tests() -> dict:
    tests = [t for t in CORE_TESTS if os.path.exists(t)]
    start = time.perf_counter()
    # several pytest workers share the one GPU: no preallocation of 75 % each
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    workers = ["-n", "4"] if _has_xdist() else []
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *workers, *tests],
            capture_output=True,
            text=True,
            env=env,
            timeout=TEST_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as err:
        out = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        return {
            "modules": tests,
            "returncode": None,
            "summary": f"timed out after {TEST_TIMEOUT_S} s; last output: {out[-300:]!r}",
            "seconds": TEST_TIMEOUT_S,
        }
    tail = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
    return {
        "modules": tests,
        "returncode": proc.returncode,
        "summary": tail[0] if tail else proc.stderr[-500:],
        "seconds": round(time.perf_counter() - start, 1),
    }


def timed(fn, *args, repeats=3):
    """(median seconds of ``repeats`` warm calls, compile seconds, output)."""
    t = H.time_interleaved([H.Candidate("f", fn, args)], rounds=repeats)["f"]
    return t.median_s, t.compile_s, t.output


def ratio(base, fn, *args, rounds=5):
    """Median over interleaved rounds of fn's time / base's time on the same input, and fn's
    output."""
    t = H.time_interleaved(
        [H.Candidate("base", base, args), H.Candidate("fn", fn, args)], rounds=rounds
    )
    return t["fn"].ratio, t["base"].median_s, t["fn"].output


def solver_rows(quick: bool = False) -> list[dict]:
    rows = []
    for dtype, precision in (
        ("float32", "highest"),
        ("float32", "default"),
        ("float64", "highest"),
    ):
        for cond in (1e1, 1e4, 1e8):
            for n, rank in ((64, None), (256, 8)) if quick else ((256, None), (1024, 8)):
                C = jnp.asarray(jaxsolve.random_psd(n, cond=cond, rank=rank, seed=1), dtype)
                fn = functools.partial(
                    jaxsolve.solve, method="precgd", rank=rank, precision=precision
                )
                seconds, _, sol = timed(fn, C)
                rows.append(
                    {
                        "case": f"precgd N={n} rank={rank or n} κ={cond:.0e}",
                        "dtype": dtype,
                        "precision": precision,
                        "steps": int(sol.steps),
                        "residual": float(sol.residual),
                        "status": jaxsolve.Status(int(sol.status)).name,
                        "seconds": seconds,
                    }
                )
    return rows


def _signal_plus_noise(n):
    # the CPU benchmark's problem (benchmarks/solvers.py, section C), built in O(N²·8)
    from benchmarks.solvers import optimal_rank_residual, signal_plus_noise

    return signal_plus_noise(n, cond=1e4, noise=1e-7, seed=2), optimal_rank_residual


def ratio_rows(quick: bool = False) -> list[dict]:
    """precgd's speed against eigh (and beside batched Cholesky), float64 and float32 (matmul
    precision "highest")."""
    rows = []
    full, big, batch = (256, 512, 1000) if quick else (1024, 4096, 10_000)
    for dtype in ("float64", "float32"):
        for kappa in (10.0, 1e4):
            C = jnp.asarray(jaxsolve.random_psd(full, cond=kappa, seed=2), dtype)
            r, _, sol = ratio(
                jnp.linalg.eigh, functools.partial(jaxsolve.solve, method="precgd"), C
            )
            rows.append(
                {
                    "case": f"full N={full} κ={kappa:.0e} {dtype}: precgd / eigh",
                    "ratio": r,
                    "target": "<= 3",
                    "residual": float(sol.residual),
                    "steps": int(sol.steps),
                }
            )

    C_np, optimal_rank_residual = _signal_plus_noise(big)
    for dtype in ("float64", "float32"):
        C = jnp.asarray(C_np, dtype)
        t_eigh, _, (lam, _) = timed(jnp.linalg.eigh, C, repeats=1)
        t_pre, _, sol = timed(functools.partial(jaxsolve.solve, method="precgd", rank=8), C)
        optimal = optimal_rank_residual(np.asarray(lam, np.float64), C_np, 8)
        rows.append(
            {
                "case": f"rank 8 at N={big} {dtype}: eigh / precgd",
                "ratio": t_eigh / t_pre,
                "target": ">= 20",
                "residual_gap": float(sol.residual) - optimal,
                "steps": int(sol.steps),
            }
        )

    for dtype in ("float64", "float32"):
        C = jnp.asarray(jaxsolve.random_psd(8, cond=100.0, batch=(batch,), seed=5), dtype)
        r, _, sol = ratio(
            jnp.linalg.cholesky, functools.partial(jaxsolve.solve, method="precgd"), C
        )
        rows.append(
            {
                "case": f"{batch:,} × 8×8 {dtype}: precgd / jnp.linalg.cholesky",
                "ratio": r,
                "target": "report",
                "max_residual": float(jnp.max(sol.residual)),
                "max_steps": int(jnp.max(sol.steps)),
            }
        )
    return rows


def closed_form_rows(quick: bool = False) -> list[dict]:
    """solve's closed forms (default, and measure_residual=True) over the direct jnp.linalg
    call: single matrices (target 1.10×) and batches (target 1.25×)."""
    rows = []
    sizes = (256, 512) if quick else (256, 1024, 2048, 4096)
    batches = ((3, 10_000), (8, 1_000)) if quick else ((3, 100_000), (8, 10_000), (16, 2_000))
    cases = [(n, ()) for n in sizes] + [(n, (b,)) for n, b in batches]
    for dtype in ("float64", "float32"):
        for method, direct in (("cholesky", jnp.linalg.cholesky), ("eigh", jnp.linalg.eigh)):
            for n, batch in cases:
                C = jnp.asarray(jaxsolve.random_psd(n, cond=100.0, seed=6, batch=batch), dtype)
                t = H.time_interleaved(
                    [
                        H.Candidate("direct", direct, (C,)),
                        H.Candidate(
                            "default", functools.partial(jaxsolve.solve, method=method), (C,)
                        ),
                        H.Candidate(
                            "measured",
                            functools.partial(jaxsolve.solve, method=method, measure_residual=True),
                            (C,),
                        ),
                    ],
                    rounds=5,
                )
                rows.append(
                    {
                        "case": f"{method} N={n} batch={batch[0] if batch else 1} {dtype}",
                        "direct_ms": 1e3 * t["direct"].median_s,
                        "ratio_default": t["default"].ratio,
                        "ratio_measured": t["measured"].ratio,
                        "target": "<= 1.25" if batch else "<= 1.10",
                    }
                )
    return rows


def to_markdown(report: dict) -> str:
    lines = [
        f"# Accelerator check: {report['device']}",
        "",
        f"jax {report['jax']}, {report['date']}, host {report['host']}",
        "",
    ]
    tests = report.get("tests")
    if tests:
        lines += [
            f"Tests ({', '.join(tests['modules'])}): `{tests['summary']}` "
            f"(exit {tests['returncode']}, {tests['seconds']} s)",
            "",
        ]
    lines += [
        "| case | dtype | matmul precision | steps | residual | status | time [ms] |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["solvers"]:
        lines.append(
            f"| {r['case']} | {r['dtype']} | {r['precision']} | {r['steps']} | "
            f"{r['residual']:.2e} | {r['status']} | {1e3 * r['seconds']:.2f} |"
        )
    lines += ["", "| ratio | measured | target | accuracy |", "|---|---|---|---|"]
    for r in report["ratios"]:
        acc = {k: v for k, v in r.items() if k not in ("case", "ratio", "target")}
        lines.append(
            f"| {r['case']} | {r['ratio']:.2f} | {r['target']} | "
            + ", ".join(f"{k} {v:.3g}" for k, v in acc.items())
            + " |"
        )
    lines += [
        "",
        "Closed forms through `solve` over the direct `jnp.linalg` call (median of "
        "interleaved per-round ratios):",
        "",
        "| case | jnp.linalg [ms] | solve (default) | target | solve (measure_residual=True) |",
        "|---|---|---|---|---|",
    ]
    for r in report.get("closed_forms", []):
        lines.append(
            f"| {r['case']} | {r['direct_ms']:.3f} | {r['ratio_default']:.2f} | "
            f"{r.get('target', '')} | {r['ratio_measured']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--out", default=os.path.join("benchmarks", "results"))
    args = parser.parse_args(argv)
    report = {
        "device": device_name(),
        "devices": [str(d) for d in jax.devices()],
        "jax": jax.__version__,
        "host": platform.node(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "tests": None if args.skip_tests else run_tests(),
        "solvers": solver_rows(args.quick),
        "ratios": ratio_rows(args.quick),
        "closed_forms": closed_form_rows(args.quick),
    }
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, report["device"])
    with open(base + ".json", "w") as fh:
        json.dump(report, fh, indent=2)
    with open(base + ".md", "w") as fh:
        fh.write(to_markdown(report))
    print(to_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
