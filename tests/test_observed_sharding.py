"""Observed entries split over the devices of a fake 8-device CPU mesh (in a subprocess: the
device count is fixed when JAX starts): the same answer as one device."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np
    jax.config.update("jax_enable_x64", True)
    import jaxsolve
    from jaxsolve._observed import observed_entries, solve_observed

    assert jax.device_count() == 8, jax.devices()
    n, k = 300, 3
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((n, k))
    rows = np.repeat(np.arange(n), 12)
    cols = rng.integers(0, n, rows.size)
    keep = np.unique(np.minimum(rows, cols) * n + np.maximum(rows, cols))
    rows, cols = keep // n, keep % n
    C = observed_entries(rows, cols, np.einsum("ij,ij->i", Y[rows], Y[cols]), n)
    mesh = jaxsolve.device_mesh(axis_name="pairs")
    # small blocks: several scan steps, each split over the 8 devices
    one = solve_observed(C, rank=k, chunk_size=256)
    eight = solve_observed(C, rank=k, chunk_size=256, mesh=mesh)
    assert int(one.status) == int(eight.status) == 0, (one.status, eight.status)
    G1, G8 = np.asarray(one.X @ one.X.T), np.asarray(eight.X @ eight.X.T)
    np.testing.assert_allclose(G8, G1, atol=1e-9 * np.abs(G1).max())
    np.testing.assert_allclose(G8, Y @ Y.T, atol=1e-8 * np.abs(G1).max())
    assert abs(int(one.steps) - int(eight.steps)) <= 2, (one.steps, eight.steps)
    # the pairs are split: each device's share of the measure is |Ω|/8 (one psum each)
    hlo = jax.jit(lambda C: solve_observed(C, rank=k, chunk_size=256, mesh=mesh)).lower(
        C).compile().as_text()
    assert "all-reduce" in hlo
    print("OBSERVED-SHARDING-OK")
    """
)


def test_observed_entries_split_over_eight_fake_devices():
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu"
    )
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OBSERVED-SHARDING-OK" in proc.stdout
