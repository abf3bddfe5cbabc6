"""align (Kabsch) and rmsd."""

import jax
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from jaxsolve.transforms import align, rmsd

RNG = np.random.default_rng(1)
B = RNG.normal(size=(25, 3))
R_TRUE = Rotation.random(random_state=2).as_matrix()
A = (B - 0.3) @ R_TRUE.T + np.array([1.0, -2.0, 5.0])  # B rotated and moved


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_recovers_rigid_motion(dtype):
    res = align(A.astype(dtype), B.astype(dtype))
    eps = np.finfo(dtype).eps
    assert res.aligned.dtype == dtype
    assert float(res.rmsd) < 100 * eps * np.abs(A).max()
    np.testing.assert_allclose(res.aligned, B, atol=100 * eps * np.abs(A).max())
    R = np.asarray(res.rotation, np.float64)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=100 * eps)
    assert np.linalg.det(R) > 0
    np.testing.assert_allclose(
        A @ R + np.asarray(res.translation), res.aligned, atol=100 * eps * np.abs(A).max()
    )


def test_reflection_only_when_allowed():
    mirrored = A * np.array([1.0, 1.0, -1.0])
    proper = align(mirrored, B)
    improper = align(mirrored, B, reflection=True)
    assert float(improper.rmsd) < 1e-12
    assert float(proper.rmsd) > 0.1
    assert np.linalg.det(improper.rotation) < 0
    assert np.linalg.det(proper.rotation) > 0


def test_matches_scipy_optimal_rmsd_on_noisy_points():
    noisy = A + 0.05 * RNG.normal(size=A.shape)
    res = align(noisy, B)
    rot, _ = Rotation.align_vectors(B - B.mean(0), noisy - noisy.mean(0))
    ref = (noisy - noisy.mean(0)) @ rot.as_matrix().T + B.mean(0)
    ref_rmsd = np.sqrt(np.mean(np.sum((ref - B) ** 2, axis=1)))
    np.testing.assert_allclose(float(res.rmsd), ref_rmsd, rtol=1e-10)


def test_batched_jit_vmap():
    As = np.stack([A, A + 1.0, 2 * A])
    eager = align(As, B)
    assert eager.aligned.shape == (3, 25, 3) and eager.rmsd.shape == (3,)
    jitted = jax.jit(align)(As, B)
    mapped = jax.vmap(align, in_axes=(0, None))(As, B)
    np.testing.assert_allclose(jitted.rmsd, eager.rmsd, atol=1e-12)
    np.testing.assert_allclose(mapped.aligned, eager.aligned, atol=1e-12)
    for i in range(3):
        np.testing.assert_allclose(eager.rmsd[i], align(As[i], B).rmsd, atol=1e-12)


def test_rmsd_and_its_gradient_at_zero():
    assert float(rmsd(B, B)) == 0.0
    g = jax.grad(lambda a: rmsd(a, B))(B)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(float(rmsd(B + 1.0, B)), np.sqrt(3.0), rtol=1e-12)


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        (np.zeros((5, 3)), np.zeros((6, 3)), "same number of points"),
        (np.zeros((5, 3)), np.zeros((5, 2)), r"B must have shape \(\.\.\., N, 3\)"),
        (np.zeros((5, 2)), np.zeros((5, 2)), r"A must have shape \(\.\.\., N, 3\)"),
    ],
)
def test_bad_input(a, b, match):
    with pytest.raises(ValueError, match=match):
        align(a, b)
    with pytest.raises(TypeError, match="static bool"):
        align(B, B, reflection=1)
