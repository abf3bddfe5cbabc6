"""Entry point of the ``jaxsolve`` command: builds the parser from the sub-command modules."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ._errors import CLIError

# Modules under jaxsolve.cli that contribute sub-commands, in the order `--help` lists them.
_COMMAND_MODULES = ("_solve_cmds", "_study", "_mds", "_shape")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="jaxsolve",
        description="Solve X·Xᵀ = C by gradient descent and closed forms, and related studies.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except CLIError as err:
        print(f"jaxsolve {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("jaxsolve: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
