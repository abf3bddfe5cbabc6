"""Modular weight maps ``w mod m`` and their derivatives with respect to ``w`` and ``m``.

Every map here takes two broadcastable arrays ``w`` (the value) and ``m`` (the modulus) and
returns ``w mod m`` in some convention. Write ``u = w / m``. Away from the jumps, every exact map
is ``w - m·k(u)`` for an integer-valued step function ``k``, so

    ∂/∂w (w mod m) = 1,        ∂/∂m (w mod m) = -k(u),

which is the whole story of the study in :mod:`jaxsolve.modular`: the derivative with respect to
the modulus is as large as the number of teeth ``w`` has wrapped around, unbounded when
``|m| ≪ |w|``.

Conventions shared by all maps (documented and tested):

* **At a jump** (``u`` an integer for floor mod, ``u`` a half-integer for the centred map) the
  value and both derivatives are those of the branch on which ``floor`` / ``round`` lands, i.e.
  the one-sided limit; JAX's derivative of ``floor``/``round``/``trunc`` is 0, so no delta
  function appears and nothing is infinite.
* **At m = 0** the map returns 0 (the limit of ``w mod m`` as ``m → 0``, since
  ``|w mod m| ≤ |m|``) and both derivatives are 0. The division is guarded with the double-``where``
  pattern so no ``inf``/``NaN`` leaks into the value or the gradient.
* Floating-point rounding can make the floor-mod result equal ``m`` exactly when ``w`` is a tiny
  negative number (``jnp.mod(-1e-20, 1.0) == 1.0``); the result lies in the closed interval
  between 0 and ``m``.
* ``NaN`` or ``inf`` inputs give ``NaN`` outputs: they are not hidden.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = [
    "MOD_MAPS",
    "centred_mod",
    "floor_mod",
    "fourier_mod",
    "get_mod_map",
    "ste_mod",
    "trunc_mod",
]


def _guard(w: ArrayLike, m: ArrayLike) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Promote, broadcast, and swap ``m == 0`` for 1 (first half of the double ``where``)."""
    w, m = jnp.asarray(w), jnp.asarray(m)
    dtype = jnp.result_type(w, m)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(dtype, jnp.float32)
    w, m = jnp.broadcast_arrays(w.astype(dtype), m.astype(dtype))
    zero = m == 0
    return w, jnp.where(zero, jnp.ones_like(m), m), zero


def _check_terms(terms) -> int:
    if not isinstance(terms, int) or isinstance(terms, bool) or terms < 1:
        raise ValueError(f"`terms` must be a positive int, got {terms!r}.")
    return terms


def _check_bound(bound) -> float:
    try:
        value = float(bound)
    except (TypeError, ValueError):
        value = float("nan")
    if not value >= 0:
        raise ValueError(f"`bound` must be a non-negative number, got {bound!r}.")
    return value


def floor_mod(w: ArrayLike, m: ArrayLike) -> jax.Array:
    """Floor mod, ``jnp.mod`` semantics: ``w - m·floor(w/m)``; the result has the sign of ``m``.

    This is Python's ``%``, ``torch.remainder`` and ``tf.math.floormod``. The result lies in
    ``[0, m)`` for ``m > 0`` and in ``(m, 0]`` for ``m < 0``: the sign of an effective weight is the
    sign of its modulus, whatever the sign of ``w``.

    Derivatives: ``∂/∂w = 1``, ``∂/∂m = -floor(w/m)``. At ``m = 0``: value 0, derivatives 0.

    >>> floor_mod(-0.3, 1.0)   # doctest: +SKIP
    Array(0.7, dtype=float32)
    """
    w, safe_m, zero = _guard(w, m)
    return jnp.where(zero, jnp.zeros_like(w), jnp.mod(w, safe_m))


def trunc_mod(w: ArrayLike, m: ArrayLike) -> jax.Array:
    """Truncated mod, ``jnp.fmod`` / C ``fmod``: ``w - m·trunc(w/m)``; the sign of ``w``.

    The result lies in ``(-|m|, |m|)`` with the sign of ``w``; for ``|w| < |m|`` it is ``w``
    itself (identity), whatever the sign of ``m``.

    Derivatives: ``∂/∂w = 1``, ``∂/∂m = -trunc(w/m)``. At ``m = 0``: value 0, derivatives 0.
    """
    w, safe_m, zero = _guard(w, m)
    return jnp.where(zero, jnp.zeros_like(w), jnp.fmod(w, safe_m))


def centred_mod(w: ArrayLike, m: ArrayLike) -> jax.Array:
    """Centred mod: ``w - m·floor(w/m + 1/2)``, the representative nearest zero.

    The result lies in ``[-|m|/2, |m|/2)`` (for ``m > 0``); for ``|w| < |m|/2`` it is ``w``
    (identity), whatever the sign of ``m``. Implemented as ``floor_mod(w + m/2, m) - m/2``.

    Derivatives: ``∂/∂w = 1``, ``∂/∂m = -floor(w/m + 1/2)``. At ``m = 0``: value 0, derivatives 0.
    """
    w, safe_m, zero = _guard(w, m)
    half = 0.5 * safe_m
    return jnp.where(zero, jnp.zeros_like(w), jnp.mod(w + half, safe_m) - half)


def fourier_mod(w: ArrayLike, m: ArrayLike, terms: int = 8) -> jax.Array:
    """Smooth surrogate of :func:`floor_mod`: a truncated Fourier series of the sawtooth.

    With ``u = w/m`` and ``K = terms``::

        value = m · ( 1/2 - (1/π) Σ_{k=1..K} sin(2πk u) / k )
        ∂/∂w  = -2 Σ_{k=1..K} cos(2πk u)                  (≈ 1 inside a tooth, ≈ -2K at a jump)
        ∂/∂m  = value/m + 2u Σ_{k=1..K} cos(2πk u)        (≈ -floor(u) inside a tooth)

    Smooth everywhere in ``w`` and ``m ≠ 0``, and converges to ``floor_mod`` away from the jumps
    as ``K → ∞`` (with Gibbs overshoot of about 9% of ``m`` next to each jump). At ``m = 0``: value
    0, derivatives 0. Note that the surrogate does not remove the growth of ``∂/∂m`` with ``|u|``.
    """
    _check_terms(terms)
    w, safe_m, zero = _guard(w, m)
    theta = (2 * math.pi) * (w / safe_m)
    # sin(kθ) by the Chebyshev recurrence s_k = 2cos(θ)·s_{k-1} - s_{k-2}: two transcendental
    # calls per entry instead of K (the model evaluates this for every weight at every step).
    sin1, two_cos = jnp.sin(theta), 2 * jnp.cos(theta)
    prev, cur = jnp.zeros_like(theta), sin1
    series = sin1
    for k in range(2, terms + 1):
        prev, cur = cur, two_cos * cur - prev
        series = series + cur / k
    value = safe_m * (0.5 - series / math.pi)
    return jnp.where(zero, jnp.zeros_like(w), value)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _ste_mod(w: jax.Array, m: jax.Array, bound: float) -> jax.Array:
    return floor_mod(w, m)


@_ste_mod.defjvp
def _ste_mod_jvp(bound, primals, tangents):
    w, m = primals
    dw, dm = tangents
    _, safe_m, zero = _guard(w, m)
    slope_m = jnp.clip(-jnp.floor(w / safe_m), -bound, bound)
    out = floor_mod(w, m)
    tangent = jnp.where(zero, jnp.zeros_like(out), dw + slope_m * dm)
    return out, tangent


def ste_mod(w: ArrayLike, m: ArrayLike, bound: float = 1.0) -> jax.Array:
    """Floor mod forward, bounded straight-through derivative for ``m`` backward.

    Value: exactly :func:`floor_mod`. Derivatives (as in learned step-size quantization, where the
    step-size gradient is clipped to the quantizer's range)::

        ∂/∂w = 1,    ∂/∂m = clip(-floor(w/m), -bound, bound)

    so ``‖∇m‖`` can never exceed ``bound·‖∂L/∂(w mod m)‖``. ``bound = 0`` stops the gradient to
    ``m`` (a frozen modulus as far as training is concerned). At ``m = 0``: value 0, derivatives 0.
    """
    bound = _check_bound(bound)
    w, m = jnp.asarray(w), jnp.asarray(m)
    dtype = jnp.result_type(w, m)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(dtype, jnp.float32)
    w, m = jnp.broadcast_arrays(w.astype(dtype), m.astype(dtype))
    return _ste_mod(w, m, bound)


MOD_MAPS = {
    "floor": floor_mod,
    "trunc": trunc_mod,
    "centred": centred_mod,
    "fourier": fourier_mod,
    "ste": ste_mod,
}
"""The maps by name, as the model and the command line select them."""


def get_mod_map(name: str, **options):
    """Return ``f(w, m)`` for the map called ``name`` (a key of :data:`MOD_MAPS`).

    ``options`` go to the map: ``terms`` for ``"fourier"``, ``bound`` for ``"ste"``.
    """
    if name not in MOD_MAPS:
        raise ValueError(f"`mod` must be one of {sorted(MOD_MAPS)}, got {name!r}.")
    allowed = {"fourier": {"terms"}, "ste": {"bound"}}.get(name, set())
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(
            f"mod map {name!r} takes options {sorted(allowed)}, got unexpected {sorted(unknown)}."
        )
    fn = MOD_MAPS[name]
    if "terms" in options:  # validate now, at construction time, not at the first call
        _check_terms(options["terms"])
    if "bound" in options:
        _check_bound(options["bound"])
    return functools.partial(fn, **options) if options else fn
