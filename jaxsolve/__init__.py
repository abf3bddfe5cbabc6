"""jaxsolve: solve X·Xᵀ = C by gradient descent in JAX, beside the closed forms."""

from importlib.metadata import PackageNotFoundError, version

from ._closed_form import nearest_psd as nearest_psd
from ._compare import Comparison as Comparison
from ._compare import MethodResult as MethodResult
from ._compare import compare as compare
from ._iterative import scaled_gradient as scaled_gradient
from ._observed import observed_entries as observed_entries
from ._observed import solve_observed as solve_observed
from ._problems import random_psd as random_psd
from ._sharding import device_mesh as device_mesh
from ._sharding import shard_batch as shard_batch
from ._sharding import shard_rows as shard_rows
from ._sharding import sharded_solve as sharded_solve
from ._solution import Solution as Solution
from ._solution import Status as Status
from ._solve import METHODS as METHODS
from ._solve import solve as solve

try:
    __version__ = version("jaxsolve")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"
del PackageNotFoundError, version

# Sub-packages load on first use (`jaxsolve.transforms.gram`), keeping `import jaxsolve` light.
_SUBMODULES = ("matrix_learning", "modular", "nn", "shapes", "transforms")


def __getattr__(name: str):
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "METHODS",
    "Comparison",
    "MethodResult",
    "Solution",
    "Status",
    "__version__",
    "compare",
    "device_mesh",
    "nearest_psd",
    "observed_entries",
    "random_psd",
    "scaled_gradient",
    "shard_batch",
    "shard_rows",
    "sharded_solve",
    "solve",
    "solve_observed",
]
