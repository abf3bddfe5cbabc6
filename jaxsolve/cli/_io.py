"""Reading and writing files for the command line (.npy, .csv, .txt, .json).

Every problem with a file, read or written, is a :class:`CLIError` naming the file: one line
on stderr and exit status 2, never a traceback. Output paths are checked before the work
starts, so that a long run does not end in an unwritable file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import warnings
from typing import Any

import numpy as np

from ._errors import CLIError

_TEXT_DELIMITERS = {".csv": ",", ".txt": None, ".tsv": "\t"}
_MATRIX_TYPES = (".npy", *_TEXT_DELIMITERS)
_NPY_MAGIC = b"\x93NUMPY"


def _reason(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else ""
    return text or type(err).__name__


def _read_npy(path: str) -> Any:
    # np.load guesses the format from the first bytes (a zip is read as .npz, an empty file
    # raises EOFError): accept only what starts as a .npy file.
    with open(path, "rb") as fh:
        start = fh.read(len(_NPY_MAGIC))
    if not start:
        raise CLIError(f"{path}: the file is empty")
    if start.startswith(b"PK"):
        raise CLIError(f"{path}: a zip archive (.npz?), not a .npy file; save one array")
    if start != _NPY_MAGIC:
        raise CLIError(f"{path}: not a NumPy .npy file (it does not start with the .npy header)")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise CLIError(f"{path}: holds Python objects, not numbers (dtype object)") from None
        raise


def load_matrix(path: str, *, square: bool = True) -> np.ndarray:
    """A real 2-D (or batched, for .npy) array from ``path``; CLIError on any problem."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in _MATRIX_TYPES:
        raise CLIError(f"{path}: unsupported file type {ext or '(none)'}; use .npy, .csv or .txt")
    if os.path.isdir(path):
        raise CLIError(f"{path}: is a directory, not a file")
    try:
        if ext == ".npy":
            arr = _read_npy(path)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "input contained no data": reported below
                arr = np.loadtxt(path, delimiter=_TEXT_DELIMITERS[ext], ndmin=2)
    except FileNotFoundError:
        raise CLIError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise CLIError(f"{path}: not a text file (it holds bytes that are not UTF-8)") from None
    except (OSError, ValueError, EOFError, MemoryError) as err:
        raise CLIError(f"{path}: cannot read a matrix ({_reason(err)})") from None
    if not isinstance(arr, np.ndarray):
        raise CLIError(f"{path}: expected one array, got {type(arr).__name__}")
    if arr.dtype.kind not in "biuf":
        raise CLIError(f"{path}: expected real numbers, got dtype {arr.dtype}")
    if arr.size == 0 and ext != ".npy":
        raise CLIError(f"{path}: the file holds no numbers")
    if arr.ndim < 2:
        raise CLIError(f"{path}: expected a matrix (N, N), got shape {arr.shape}")
    if square and arr.shape[-1] != arr.shape[-2]:
        raise CLIError(f"{path}: expected a square matrix (N, N), got shape {arr.shape}")
    return arr


def as_dtype(arr: np.ndarray, dtype: str, path: str) -> np.ndarray:
    """``arr`` in the floating type ``dtype``; CLIError where that would change its numbers
    beyond rounding: finite entries that overflow to Inf, or a matrix whose every non-zero
    entry falls below the smallest normal number (it would be all zeros or subnormals)."""
    dtype = np.dtype(dtype)
    info = np.finfo(dtype)
    # Python floats: comparing float64 values with a float32 scalar would cast them to float32.
    largest_float, smallest_normal = float(info.max), float(info.smallest_normal)
    host = np.asarray(arr, np.float64) if arr.dtype.kind in "biu" else arr
    magnitude = np.abs(np.where(np.isfinite(host), host, 0.0))
    largest = float(np.max(magnitude, initial=0.0))
    if largest > largest_float:
        raise CLIError(
            f"{path}: entries as large as {largest:.4g} overflow {dtype.name} (largest "
            f"{largest_float:.4g}); use --dtype float64 or rescale the data"
        )
    narrower = host.dtype.kind == "f" and np.finfo(host.dtype).minexp < info.minexp
    per_matrix = np.max(magnitude, axis=(-2, -1), initial=0.0) if narrower else 0.0
    if np.any((per_matrix > 0) & (per_matrix < smallest_normal)):
        raise CLIError(
            f"{path}: every non-zero entry of a matrix is below {dtype.name}'s smallest normal "
            f"number {smallest_normal:.4g}, so it would lose all precision; use "
            "--dtype float64 or rescale the data"
        )
    return arr.astype(dtype)


def check_output_path(path: str | None, option: str, *, ndim: int | None = None) -> None:
    """Raise CLIError, before any work, if ``path`` (given with ``option``) cannot be written:
    a directory, a missing folder, or (for a matrix of ``ndim`` dimensions) an unsupported
    file type. ``ndim=None``: not a matrix (JSON)."""
    if not path:
        return
    if os.path.isdir(path):
        raise CLIError(f"{option} {path}: is a directory; name a file in it")
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise CLIError(f"{option} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise CLIError(f"{option} {path}: the folder {folder} is not writable")
    if ndim is not None:
        ext = os.path.splitext(path)[1].lower()
        if ext not in _MATRIX_TYPES:
            raise CLIError(
                f"{option} {path}: unsupported file type {ext or '(none)'}; use .npy, .csv or .txt"
            )
        if ext != ".npy" and ndim != 2:
            raise CLIError(f"{option} {path}: a batch of matrices can only be written as .npy")


def check_output_folder(path: str, option: str) -> None:
    """Raise CLIError if the folder ``path`` can neither be used nor created."""
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise CLIError(f"{option} {path}: exists and is not a folder")
        return
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise CLIError(f"{option} {path}: cannot create a folder inside the file {parent}")
    if not os.access(parent, os.W_OK):
        raise CLIError(f"{option} {path}: the folder {parent} is not writable")


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


def save_json(path: str, data: Any) -> None:
    try:
        with open(path, "w") as fh:
            json.dump(data, fh, indent=2)
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


def nonnegative_float(text: str) -> float:
    """argparse type: a finite float >= 0."""
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite float > 0."""
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value
