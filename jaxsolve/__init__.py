"""jaxsolve: solve X·Xᵀ = C by gradient descent in JAX, beside the closed forms."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("jaxsolve")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"
