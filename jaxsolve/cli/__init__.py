"""The ``jaxsolve`` command line: parsing and printing only, no numerics.

Each sub-command lives in its own module that exposes ``register(subparsers)``;
the module adds its parser(s) and sets ``run=callable(args) -> int``.
"""

from ._main import main as main

__all__ = ["main"]
