"""Test-wide set-up: float64 on (the library itself never touches global config), and one
on-disk compilation cache shared by the test processes of a run: the suite's time is mostly
XLA compiling the same solver programs in different tests and workers."""

import os
import tempfile

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# one XLA thread per test process: the workers of `pytest -n 2` then do not compete for the
# cores (tests that need more threads start their own process)
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import jax

jax.config.update("jax_enable_x64", True)
_CACHE = os.environ.get(
    "JAXSOLVE_TEST_CACHE", os.path.join(tempfile.gettempdir(), "jaxsolve-test-xla-cache")
)
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
