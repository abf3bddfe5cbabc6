"""``compare``: every method on one input, compiled first and timed correctly."""

from __future__ import annotations

import dataclasses
import functools
import math
import statistics
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import sparse

from ._checks import as_square_matrices, check_int, check_rank
from ._closed_form import CLOSED_FORMS
from ._iterative import ITERATIVE_METHODS, check_iterative_options
from ._solution import Status
from ._solve import ITERATIVE_OPTIONS, METHODS, relative_residual, solve

DEFAULT_METHODS = tuple(m for m in METHODS if m != "auto")


@dataclasses.dataclass(frozen=True)
class MethodResult:
    """One method's outcome on the compared input (batch statistics where C is batched).

    ``residual`` is the largest relative residual over the batch (measured on X),
    ``status`` the most severe status, ``steps`` the largest step count, ``time_s`` the
    median wall time of a compiled call and ``compile_s`` the time to compile it.
    ``error`` is set (and the numbers are NaN) when the method does not apply to this
    input, e.g. cholesky with ``rank < N``.
    """

    method: str
    residual: float
    status: int
    steps: int
    time_s: float
    compile_s: float
    error: str | None = None

    @property
    def status_name(self) -> str:
        return "-" if self.error else Status(self.status).name


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Results of :func:`compare`, one :class:`MethodResult` per method; ``str()`` is a table."""

    shape: tuple[int, ...]
    dtype: str
    results: tuple[MethodResult, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain types for ``json.dumps``; NaN (a failed or not-applicable method) is None."""

        def clean(value):
            return None if isinstance(value, float) and math.isnan(value) else value

        rows = [
            {k: clean(v) for k, v in dataclasses.asdict(r).items()} | {"status_name": r.status_name}
            for r in self.results
        ]
        return {"shape": list(self.shape), "dtype": self.dtype, "results": rows}

    def __str__(self) -> str:
        header = ("method", "residual", "status", "steps", "time [ms]", "compile [ms]")
        rows = [header]
        for r in self.results:
            if r.error:
                rows.append((r.method, "n/a", "-", "-", "-", r.error))
                continue
            rows.append(
                (
                    r.method,
                    f"{r.residual:.2e}",
                    r.status_name,
                    str(r.steps),
                    f"{1e3 * r.time_s:.3f}",
                    f"{1e3 * r.compile_s:.1f}",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
        lines.insert(1, "-+-".join("-" * w for w in widths))
        title = f"C: shape {self.shape}, {self.dtype}"
        return "\n".join([title, *lines])


def time_compiled(fn: Any, *args: Any, repeats: int = 5) -> tuple[float, float, Any]:
    """(median seconds per call, compile seconds, output) of ``jax.jit(fn)(*args)``.

    Compiles ahead of time, warms up once, then times ``repeats`` calls, each waiting for
    every output with ``block_until_ready``.
    """
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    out = jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times), compile_s, out


def _reported_residual(method: str, sol: Any, C: jax.Array) -> jax.Array:
    """The residual each row reports, measured on X for every method: the closed forms'
    own (by default from the decomposition, rounding left out) would read 0 beside the
    iterative methods' measured ones. Measured after timing, so the times stay those of a
    plain ``solve`` call."""
    if method not in CLOSED_FORMS:
        return sol.residual
    return jax.jit(relative_residual)(sol.X, C)


def compare(
    C: jax.typing.ArrayLike,
    methods: Sequence[str] | None = None,
    *,
    repeats: int = 5,
    **solve_options: Any,
) -> Comparison:
    """Run each method of :func:`jaxsolve.solve` on ``C`` and time it.

    Args:
        C: ``(..., N, N)``, as for :func:`solve`.
        methods: a method's name or a sequence of them (default: every method except
            ``"auto"``, and ``"gauss_newton"`` unless a ``mask`` is given).
        repeats: timed calls per method; the median is reported.
        **solve_options: passed to every method (e.g. ``rank=``), except the options only
            the iterative methods take (``max_steps``, ``rtol``, ``optimizer``, …; see
            ``ITERATIVE_OPTIONS``), which go to the iterative methods only. Options a
            method does not take (``mask=`` for a closed form, ``rank=`` for Cholesky) make
            that method's row an error row instead of failing the comparison; options that
            are wrong for every method (``rank`` out of range, a negative ``max_steps``)
            raise, once.

    Returns:
        a :class:`Comparison`; ``print()`` it for a table, ``.to_dict()`` for JSON.
    """
    if isinstance(C, sparse.BCOO):
        raise TypeError(
            "compare takes a dense C of shape (..., N, N); observed entries (a BCOO matrix) "
            "have no closed form to compare with: solve them with jaxsolve.solve"
        )
    C = as_square_matrices(C, "C")
    repeats = check_int(repeats, "repeats", low=1)
    if isinstance(methods, str):  # one name, not its letters
        methods = (methods,)
    if methods is None:  # (gauss_newton is completion: only with a mask)
        masked = solve_options.get("mask") is not None
        methods = tuple(m for m in DEFAULT_METHODS if masked or m != "gauss_newton")
    methods = tuple(methods)
    if not methods:
        raise ValueError(f"methods must name at least one method from {METHODS}; got none")
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"methods must name methods from {METHODS}; got {m!r}")
    check_rank(solve_options.get("rank"), C.shape[-1])
    if any(m in ITERATIVE_METHODS for m in methods):
        iterative = {k: v for k, v in solve_options.items() if k in ITERATIVE_OPTIONS}
        check_iterative_options(C.dtype, C.shape[-1], **iterative)
    results = []
    for m in methods:
        options = solve_options
        if m not in ITERATIVE_METHODS:
            options = {k: v for k, v in options.items() if k not in ITERATIVE_OPTIONS}
        fn = functools.partial(solve, method=m, **options)
        try:
            jax.eval_shape(fn, C)
        except (TypeError, ValueError) as err:
            nan = float("nan")
            results.append(MethodResult(m, nan, -1, -1, nan, nan, error=str(err)))
            continue
        median, compile_s, sol = time_compiled(fn, C, repeats=repeats)
        residual = np.asarray(_reported_residual(m, sol, C))
        results.append(
            MethodResult(
                method=m,
                residual=float(np.max(residual)) if residual.size else 0.0,
                status=int(np.max(np.asarray(sol.status), initial=0)),
                steps=int(np.max(np.asarray(sol.steps), initial=0)),
                time_s=median,
                compile_s=compile_s,
            )
        )
    return Comparison(tuple(C.shape), str(C.dtype), tuple(results))
