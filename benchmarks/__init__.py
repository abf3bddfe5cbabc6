"""jaxsolve benchmarks: ``python -m benchmarks.run [--quick] [--only NAME]`` (see README.md).

Importing this package pins XLA's CPU client and the BLAS/LAPACK libraries to one thread
(before JAX or NumPy load), unless ``JAXSOLVE_BENCH_THREADS`` says otherwise (a number, or
``all`` for the libraries' defaults). On a shared, oversubscribed CPU the multi-threaded
kernels spin on barriers while their threads are descheduled: a 128×128 Cholesky measured
~400 ms multi-threaded against 0.14 ms on one thread on this machine. One thread on both
sides of every comparison keeps the ratios meaningful.
"""

import os

THREADS = os.environ.get("JAXSOLVE_BENCH_THREADS", "1")
if THREADS != "all":
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, THREADS)
    _flags = os.environ.get("XLA_FLAGS", "")
    if "intra_op_parallelism_threads" not in _flags:
        _eigen = "" if THREADS != "1" else " --xla_cpu_multi_thread_eigen=false"
        os.environ["XLA_FLAGS"] = f"{_flags}{_eigen} intra_op_parallelism_threads={THREADS}"
