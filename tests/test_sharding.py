"""Sharded solves (batches, rows, observed entries) on a fake 8-device CPU mesh (in a
subprocess: the device count is fixed when JAX starts)."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import jaxsolve

SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    from jax.sharding import NamedSharding, PartitionSpec as P
    import jaxsolve

    assert jax.device_count() == 8, jax.devices()
    C = jaxsolve.random_psd(6, cond=100.0, negative=0, batch=(16,), seed=4)
    C[3] = jaxsolve.random_psd(6, negative=2, seed=5)      # one indefinite matrix
    C[5, 0, 0] = np.nan                                    # one non-finite matrix
    for method in ("auto", "eigh", "precgd"):
        sharded = jaxsolve.sharded_solve(C, method=method)
        single = jaxsolve.solve(C, method=method)
        for leaf in sharded:
            assert isinstance(leaf.sharding, NamedSharding), (method, leaf.sharding)
            assert leaf.sharding.spec == P("batch"), (method, leaf.sharding.spec)
        np.testing.assert_array_equal(sharded.status, single.status)
        ok = np.asarray(single.status) != jaxsolve.Status.NON_FINITE_INPUT
        np.testing.assert_allclose(
            np.asarray(sharded.X @ sharded.X.mT)[ok], np.asarray(single.X @ single.X.mT)[ok],
            atol=1e-12,
        )

    # An input that is already sharded keeps its sharding, eagerly and under jit.
    Cs = jaxsolve.shard_batch(C)
    for out in (jaxsolve.solve(Cs, method="eigh"),
                jax.jit(jaxsolve.solve, static_argnames="method")(Cs, method="precgd")):
        assert out.X.sharding.spec == P("batch"), out.X.sharding
        assert out.status.sharding.spec == P("batch"), out.status.sharding

    # One large problem split by rows: C and X stay sharded, no N×N all-gather.
    big = jaxsolve.random_psd(128, rank=4, cond=10.0, seed=1)
    sol = jaxsolve.sharded_solve(big, by="rows", method="precgd", rank=4)
    assert sol.X.sharding.spec == P("rows", None), sol.X.sharding
    assert float(sol.residual) < 1e-10 and int(sol.status) == 0
    hlo = jax.jit(lambda c: jaxsolve.solve(c, method="precgd", rank=4)).lower(
        jaxsolve.shard_rows(big)).compile().as_text()
    gathers = [line for line in hlo.splitlines() if " all-gather(" in line]
    assert not [g for g in gathers if "128,128" in g.split("=")[1].split(" ")[1]], gathers

    # Observed entries: the pairs split over the 8 devices (small blocks: several scan steps,
    # each split), X replicated; the same answer as one device.
    n, k = 120, 3
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((n, k))
    rows = np.repeat(np.arange(n), 12)
    cols = rng.integers(0, n, rows.size)
    keep = np.unique(np.minimum(rows, cols) * n + np.maximum(rows, cols))
    rows, cols = keep // n, keep % n
    C = jaxsolve.observed_entries(rows, cols, np.einsum("ij,ij->i", Y[rows], Y[cols]), n)
    mesh = jaxsolve.device_mesh(axis_name="pairs")
    for method in ("precgd", "gauss_newton"):
        one = jaxsolve.solve_observed(C, method=method, rank=k, chunk_size=64)
        eight = jaxsolve.solve_observed(C, method=method, rank=k, chunk_size=64, mesh=mesh)
        assert int(one.status) == int(eight.status) == 0, (method, one.status, eight.status)
        G1, G8 = np.asarray(one.X @ one.X.T), np.asarray(eight.X @ eight.X.T)
        np.testing.assert_allclose(G8, G1, atol=1e-9 * np.abs(G1).max())
        np.testing.assert_allclose(G8, Y @ Y.T, atol=1e-8 * np.abs(G1).max())
    lowered = jax.jit(
        lambda C: jaxsolve.solve_observed(C, method="precgd", rank=k, chunk_size=64, mesh=mesh)
    )
    assert "all_reduce" in lowered.lower(C).as_text()  # each device sums its share, one psum
    print("SHARDING-OK")
    """
)


def test_sharded_solves_on_eight_fake_devices():
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu"
    )
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SHARDING-OK" in proc.stdout


def test_bad_sharding_arguments_raise_clear_errors():
    C = np.stack([np.eye(3)] * 3)
    mesh = jaxsolve.device_mesh()
    if mesh.size > 1:  # pragma: no cover - only on multi-device hosts
        with pytest.raises(ValueError, match="divisible"):
            jaxsolve.shard_batch(C, mesh)
    with pytest.raises(ValueError, match="batch axis"):
        jaxsolve.shard_batch(np.eye(3))
    with pytest.raises(ValueError, match="single"):
        jaxsolve.shard_rows(C)
    with pytest.raises(ValueError, match="by"):
        jaxsolve.sharded_solve(C, by="columns")
    with pytest.raises(ValueError, match="mesh"):
        jaxsolve.shard_batch(C, mesh="not a mesh")
    with pytest.raises(TypeError, match="hashable"):
        jaxsolve.sharded_solve(C, method="precgd", mask=np.ones((3, 3, 3)))
