"""Argument validation shared by every entry point.

Everything here runs at trace time on shapes, dtypes and static options only, and raises
``TypeError``/``ValueError`` naming the argument, what was given and what is expected.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse


def as_float_array(value: Any, name: str) -> jax.Array:
    """``value`` as a JAX array of a floating dtype (integers and bools promoted).

    Raises ``TypeError`` for complex, string or object input.
    """
    if isinstance(value, sparse.BCOO):
        raise TypeError(
            f"{name} must be a dense array; got a sparse BCOO matrix (observed entries are "
            "solved by jaxsolve.solve or jaxsolve.solve_observed)"
        )
    if not isinstance(value, jax.Array):
        try:
            host = np.asarray(value)
        except Exception as err:  # ragged lists and the like
            raise TypeError(f"{name} must be an array of real numbers; got {value!r:.80}") from err
        if host.dtype.kind not in "biuf":
            raise TypeError(
                f"{name} must be an array of real numbers; got dtype {host.dtype}"
                + (" (complex input is not supported)" if host.dtype.kind == "c" else "")
            )
        value = host
    dtype = value.dtype
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise TypeError(f"{name} must be real; got complex dtype {dtype} (not supported)")
    if not (
        jnp.issubdtype(dtype, jnp.floating)
        or jnp.issubdtype(dtype, jnp.integer)
        or dtype == jnp.bool_
    ):
        raise TypeError(f"{name} must be an array of real numbers; got dtype {dtype}")
    # Integers and bools promote to JAX's default float; float64 input becomes float32 when
    # x64 is off (canonicalised here, so without JAX's truncation warning).
    target = dtype if jnp.issubdtype(dtype, jnp.floating) else np.float64
    if jnp.finfo(target).bits < 32:
        target = np.float32  # float16/bfloat16: the decompositions need at least float32
    return jnp.asarray(value, dtype=jax.dtypes.canonicalize_dtype(target))


def as_square_matrices(value: Any, name: str = "C") -> jax.Array:
    """A float array of shape ``(..., N, N)``."""
    arr = as_float_array(value, name)
    if arr.ndim < 2:
        raise ValueError(
            f"{name} must have shape (..., N, N) with at least 2 dimensions; got shape {arr.shape}"
        )
    if arr.shape[-1] != arr.shape[-2]:
        raise ValueError(
            f"{name} must be square in its last two dimensions (..., N, N); got shape {arr.shape}"
        )
    return arr


def check_choice(value: Any, name: str, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_int(value: Any, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """A Python int (not bool) in ``[low, high]``."""
    if isinstance(value, bool) or isinstance(value, jax.core.Tracer):
        raise TypeError(f"{name} must be a static Python int; got {value!r}")
    try:
        out = operator.index(value)
    except TypeError as err:
        raise TypeError(f"{name} must be an int; got {type(value).__name__} {value!r}") from err
    if (low is not None and out < low) or (high is not None and out > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{name} must be an int in [{lo}, {hi}]; got {out}")
    return out


def check_rank(rank: Any, n: int) -> int:
    """The number of columns k of the factor: ``n`` when ``rank`` is None, else 1 <= rank <= n."""
    if rank is None:
        return n
    return check_int(rank, "rank", low=1 if n > 0 else 0, high=n)


def default_tol(n: int, dtype: Any) -> float:
    """Relative tolerance for symmetry and PSD checks: rounding of an n-term sum, with margin."""
    return 10.0 * max(n, 1) * float(jnp.finfo(dtype).eps)


def check_key(key: Any) -> jax.Array:
    """One PRNG key (``jax.random.key(…)`` or the raw uint32 ``jax.random.PRNGKey(…)``);
    ``PRNGKey(0)`` for None. A batch of keys is refused: ``solve`` derives one key per
    matrix from the one given."""
    if key is None:
        return jax.random.PRNGKey(0)
    try:
        arr = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    except TypeError as err:
        raise TypeError(f"key must be a PRNG key from jax.random.key; got {key!r:.80}") from err
    if jnp.issubdtype(arr.dtype, jax.dtypes.prng_key):
        if arr.shape != ():
            raise ValueError(
                f"key must be a single PRNG key; got a key array of shape {arr.shape} "
                "(solve derives one key per matrix of a batch from the one given)"
            )
        return arr
    message = (
        "key must be a single PRNG key (jax.random.key(seed) or jax.random.PRNGKey(seed));"
        f" got an array of dtype {arr.dtype} and shape {arr.shape}"
    )
    if arr.dtype != jnp.uint32 or arr.ndim != 1:
        raise TypeError(message)
    try:  # raw key data of the default implementation's shape (2 words for threefry)
        jax.eval_shape(lambda k: jax.random.fold_in(k, 0), arr)
    except (TypeError, ValueError) as err:
        raise ValueError(message) from err
    return arr


def check_bool(value: Any, name: str) -> bool:
    """A Python (or NumPy) bool; a TypeError for anything else (``"yes"``, 1, an array)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False; got {type(value).__name__} {value!r:.80}")


def check_real(
    value: Any,
    name: str,
    dtype: Any,
    *,
    default: Any,
    low: float | None = None,
    high: float | None = None,
    open_low: bool = False,
) -> jax.Array | None:
    """A real scalar as a JAX array of ``dtype`` (``default`` where ``value`` is None; None
    stays None). A concrete value must be finite and in [low, high] (``open_low``: above
    low); a traced one (a sweep under ``jit``) is taken as given."""
    if value is None:
        return None if default is None else jnp.asarray(default, dtype)
    if isinstance(value, (str, bytes)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__} {value!r:.80}")
    try:
        arr = value if isinstance(value, jax.Array) else np.asarray(value)
    except Exception as err:
        raise TypeError(f"{name} must be a real number; got {value!r:.80}") from err
    if arr.dtype.kind not in "biuf" and not jnp.issubdtype(arr.dtype, jnp.number):
        raise TypeError(f"{name} must be a real number; got dtype {arr.dtype}")
    if jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(f"{name} must be real; got complex {value!r:.80}")
    if arr.shape != ():
        raise ValueError(f"{name} must be a scalar; got an array of shape {arr.shape}")
    if not isinstance(arr, jax.core.Tracer):
        number = float(arr)
        below = number <= low if open_low else number < low
        if (
            not math.isfinite(number)
            or (low is not None and below)
            or (high is not None and number > high)
        ):
            bound = f"{'>' if open_low else '>='} {low}" if low is not None else "finite"
            extra = f" and <= {high}" if high is not None else ""
            raise ValueError(f"{name} must be a finite number {bound}{extra}; got {number!r}")
    return jnp.asarray(arr, dtype)
