"""Placeholder until its issue lands: contributes no sub-command yet."""


def register(subparsers) -> None:
    return None
