"""Argument checks shared by the matrix-learning modules (messages name the argument)."""

from __future__ import annotations

import operator


def positive_int(value, name: str) -> int:
    """``value`` as a Python int >= 1; TypeError for non-integers (bools too), else ValueError."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a positive int, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be a positive int, got {value!r} of type {type(value).__name__}"
        ) from None
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value
