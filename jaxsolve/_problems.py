"""Test matrices with a prescribed spectrum, for demos, tests and benchmarks (NumPy, host)."""

from __future__ import annotations

import numpy as np

from ._checks import check_int


def random_psd(
    n: int,
    *,
    cond: float = 10.0,
    rank: int | None = None,
    negative: int = 0,
    seed: int = 0,
    batch: tuple[int, ...] = (),
) -> np.ndarray:
    """A random symmetric matrix ``Q·diag(λ)·Qᵀ`` (float64) with a chosen spectrum.

    Args:
        n: size N.
        cond: condition number of the positive part: eigenvalues spaced geometrically
            from 1 down to 1/cond.
        rank: keep only the ``rank`` largest eigenvalues (the rest are 0): a singular matrix.
        negative: make this many of the smallest kept eigenvalues negative: indefinite.
        seed: NumPy seed; same seed, same matrix.
        batch: leading batch shape.
    Returns:
        array of shape ``(*batch, n, n)``, exactly symmetric.
    """
    n = check_int(n, "n", low=0)
    rank = n if rank is None else check_int(rank, "rank", low=0, high=n)
    negative = check_int(negative, "negative", low=0, high=rank)
    if not cond >= 1:
        raise ValueError(f"cond must be >= 1; got {cond}")
    rng = np.random.default_rng(seed)
    size = int(np.prod(batch, dtype=int))
    lam = np.zeros(n)
    lam[:rank] = np.geomspace(1.0, 1.0 / cond, rank) if rank else []
    if negative:
        lam[rank - negative : rank] *= -1
    out = np.empty((size, n, n))
    for i in range(size):
        Q, R = np.linalg.qr(rng.standard_normal((n, n)))
        Q = Q * np.sign(np.diag(R))
        M = (Q * lam) @ Q.T
        out[i] = (M + M.T) / 2
    return out.reshape((*batch, n, n))
