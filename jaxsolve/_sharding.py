"""Spreading solves over devices with ``jax.sharding``: batches by matrix, large problems by row.

Nothing here is a parallel engine of its own: it builds a ``Mesh``, places arrays with a
``NamedSharding`` and lets XLA's sharding propagation partition :func:`jaxsolve.solve` (every
step of which is a batched or row-wise array operation). The same calls work on one CPU, on
the GPUs of one host, and across hosts after ``jax.distributed.initialize()`` (then
``jax.devices()`` lists every host's devices and each process passes its global arrays, e.g.
built with ``jax.make_array_from_process_local_data``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._checks import as_square_matrices
from ._solution import Solution
from ._solve import solve


def device_mesh(devices: Sequence[jax.Device] | None = None, axis_name: str = "batch") -> Mesh:
    """A one-axis ``Mesh`` over ``devices`` (default: all of ``jax.devices()``)."""
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("devices must name at least one device")
    return Mesh(np.asarray(devices), (axis_name,))


def _single_axis(mesh: Mesh) -> str:
    if not isinstance(mesh, Mesh) or len(mesh.axis_names) != 1:
        raise ValueError(f"mesh must be a jax.sharding.Mesh with one axis; got {mesh!r}")
    return mesh.axis_names[0]


def shard_batch(C: jax.typing.ArrayLike, mesh: Mesh | None = None) -> jax.Array:
    """Place C (..., N, N) with its first batch axis split over the mesh's devices.

    The first axis must be divisible by the number of devices (ValueError otherwise).
    """
    C = as_square_matrices(C, "C")
    mesh = device_mesh() if mesh is None else mesh
    axis = _single_axis(mesh)
    if C.ndim < 3:
        raise ValueError(f"C must have a batch axis (B, ..., N, N) to shard; got shape {C.shape}")
    if C.shape[0] % mesh.size:
        raise ValueError(
            f"C's batch axis ({C.shape[0]}) must be divisible by the number of devices "
            f"({mesh.size}); pad the batch or pass a mesh over fewer devices"
        )
    return jax.device_put(C, NamedSharding(mesh, PartitionSpec(axis)))


def shard_rows(C: jax.typing.ArrayLike, mesh: Mesh | None = None) -> jax.Array:
    """Place one large matrix C (N, N) split by rows over the mesh's devices, for a solve
    whose N×N data does not fit one device (use ``method="precgd"`` with a ``rank``: its
    steps are row-wise products, so each device holds N/D rows of C and of X)."""
    C = as_square_matrices(C, "C")
    mesh = device_mesh(axis_name="rows") if mesh is None else mesh
    axis = _single_axis(mesh)
    if C.ndim != 2:
        raise ValueError(f"C must be a single (N, N) matrix to shard by rows; got {C.shape}")
    if C.shape[0] % mesh.size:
        raise ValueError(
            f"C's rows ({C.shape[0]}) must be divisible by the number of devices ({mesh.size})"
        )
    return jax.device_put(C, NamedSharding(mesh, PartitionSpec(axis, None)))


@functools.lru_cache(maxsize=64)
def _jitted_solve(options: tuple[tuple[str, Any], ...], out_specs: tuple) -> Any:
    mesh, specs = out_specs
    shardings = Solution(*(NamedSharding(mesh, spec) for spec in specs))
    return jax.jit(functools.partial(solve, **dict(options)), out_shardings=shardings)


def sharded_solve(
    C: jax.typing.ArrayLike, *, mesh: Mesh | None = None, by: str = "batch", **options: Any
) -> Solution:
    """:func:`jaxsolve.solve` with C spread over devices; results equal a one-device solve.

    Args:
        C: (B, ..., N, N) for ``by="batch"`` (B divisible by the device count), or one
            (N, N) matrix for ``by="rows"``. An array already placed with the right
            ``NamedSharding`` is used as it is.
        mesh: a one-axis mesh (default: all devices, see :func:`device_mesh`).
        by: ``"batch"`` (each device solves B/D matrices) or ``"rows"`` (one large problem;
            C and X split by rows).
        **options: static-hashable options of :func:`solve` (method, rank, max_steps, ...).

    Returns:
        the :class:`Solution`, sharded like the input (batch outputs over the batch axis,
        X over rows for ``by="rows"``).
    """
    if by not in ("batch", "rows"):
        raise ValueError(f"by must be 'batch' or 'rows'; got {by!r}")
    if by == "batch":
        mesh = device_mesh() if mesh is None else mesh
        C = shard_batch(C, mesh)
        axis = _single_axis(mesh)
        specs = (PartitionSpec(axis),) * 4
    else:
        mesh = device_mesh(axis_name="rows") if mesh is None else mesh
        C = shard_rows(C, mesh)
        axis = _single_axis(mesh)
        specs = (PartitionSpec(axis, None), PartitionSpec(), PartitionSpec(), PartitionSpec())
    try:
        key = tuple(sorted(options.items()))
        hash(key)
    except TypeError as err:
        raise TypeError(f"options of sharded_solve must be hashable (static); {err}") from None
    return _jitted_solve(key, (mesh, specs))(C)
