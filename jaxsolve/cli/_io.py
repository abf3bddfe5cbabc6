"""Reading and writing matrices for the command line (.npy, .csv, .txt)."""

from __future__ import annotations

import os
import warnings

import numpy as np

from ._errors import CLIError

_TEXT_DELIMITERS = {".csv": ",", ".txt": None, ".tsv": "\t"}


def load_matrix(path: str, *, square: bool = True) -> np.ndarray:
    """A real 2-D (or batched, for .npy) array from ``path``; CLIError on any problem."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".npy", *_TEXT_DELIMITERS):
        raise CLIError(f"{path}: unsupported file type {ext or '(none)'}; use .npy, .csv or .txt")
    try:
        if ext == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "input contained no data": reported below
                arr = np.loadtxt(path, delimiter=_TEXT_DELIMITERS[ext], ndmin=2)
    except FileNotFoundError:
        raise CLIError(f"{path}: no such file") from None
    except (OSError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CLIError(f"{path}: cannot read a matrix ({reason})") from None
    if arr.dtype.kind not in "biuf":
        raise CLIError(f"{path}: expected real numbers, got dtype {arr.dtype}")
    if arr.size == 0 and ext != ".npy":
        raise CLIError(f"{path}: the file holds no numbers")
    if arr.ndim < 2:
        raise CLIError(f"{path}: expected a matrix (N, N), got shape {arr.shape}")
    if square and arr.shape[-1] != arr.shape[-2]:
        raise CLIError(f"{path}: expected a square matrix (N, N), got shape {arr.shape}")
    return arr


def save_matrix(path: str, arr: np.ndarray) -> None:
    ext = os.path.splitext(path)[1].lower()
    arr = np.asarray(arr)
    try:
        if ext == ".npy":
            np.save(path, arr)
        elif ext in _TEXT_DELIMITERS and arr.ndim == 2:
            np.savetxt(path, arr, delimiter=_TEXT_DELIMITERS[ext] or " ", fmt="%.17g")
        else:
            raise CLIError(
                f"{path}: cannot write shape {arr.shape} as {ext or '(no type)'}; use .npy"
            )
    except OSError as err:
        raise CLIError(f"{path}: cannot write ({err.strerror or err})") from None


def use_float64(enable: bool) -> None:
    """The command line is an application: it may choose JAX's dtype for its own process."""
    import jax

    jax.config.update("jax_enable_x64", bool(enable))


def positive_int(text: str) -> int:
    """argparse type: an int >= 1 (argparse turns the ValueError into a one-line exit 2)."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value
