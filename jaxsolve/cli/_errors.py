"""The one error type the command line turns into a one-line message and exit status 2."""


class CLIError(Exception):
    """A user mistake on the command line (bad file, bad option): exit 2, one line, no traceback."""
