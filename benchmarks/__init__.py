"""jaxsolve benchmarks: ``python -m benchmarks.run [--quick] [--only NAME]`` (see README.md).

The benchmarks run at the libraries' default threading, which is what users get. Setting
``JAXSOLVE_BENCH_THREADS=N`` before the process starts (or ``python -m benchmarks.run
--threads N``, which starts such a process) pins BLAS/LAPACK and XLA's CPU client to ``N``
threads instead; those figures are written beside the default ones
(``results/<name>_threads<N>.*``), never over them. The variables are set here, on import of
the package, because NumPy and JAX read them once, when they load.
"""

import os

THREADS = os.environ.get("JAXSOLVE_BENCH_THREADS", "").strip()
if THREADS in ("default", "all"):
    THREADS = ""
if THREADS:
    if not THREADS.isdigit() or int(THREADS) < 1:
        raise ValueError(f"JAXSOLVE_BENCH_THREADS must be a positive integer; got {THREADS!r}")
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = THREADS
    _flags = os.environ.get("XLA_FLAGS", "")
    if "intra_op_parallelism_threads" not in _flags:
        _eigen = " --xla_cpu_multi_thread_eigen=false" if THREADS == "1" else ""
        os.environ["XLA_FLAGS"] = f"{_flags}{_eigen} intra_op_parallelism_threads={THREADS}"
