"""The one error type the command line turns into a one-line message and exit status 2."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class CLIError(Exception):
    """A user mistake on the command line (bad file, bad option): exit 2, one line, no traceback."""


def library_call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` with the library's argument errors (``ValueError``/``TypeError``,
    which name the argument) turned into a :class:`CLIError`."""
    try:
        return fn(*args, **kwargs)
    except (ValueError, TypeError) as err:
        raise CLIError(str(err).replace("\n", " ")) from None
