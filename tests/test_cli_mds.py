"""``jaxsolve mds``: files in, coordinates out, one-line errors."""

import warnings

import jax
import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from jaxsolve.cli._main import main

RNG = np.random.default_rng(5)
Y_TRUE = RNG.normal(size=(25, 3))
D_TRUE = squareform(pdist(Y_TRUE))


@pytest.fixture(autouse=True)
def _keep_x64():
    """The CLI sets jax_enable_x64 for its process (--dtype); restore the test setting."""
    yield
    jax.config.update("jax_enable_x64", True)


def _kabsch_rmsd(A, B):
    A, B = A - A.mean(0), B - B.mean(0)
    U, _, Vt = np.linalg.svd(A.T @ B)
    return np.sqrt(np.mean(np.sum((A @ U @ Vt - B) ** 2, axis=1)))


def test_mds_recovers_coordinates(tmp_path, capsys):
    np.save(tmp_path / "D.npy", D_TRUE)
    np.save(tmp_path / "Y_true.npy", Y_TRUE)
    out = tmp_path / "Y.npy"
    rc = main(
        [
            "mds",
            str(tmp_path / "D.npy"),
            "-o",
            str(out),
            "--dim",
            "3",
            "--reference",
            str(tmp_path / "Y_true.npy"),
        ]
    )
    assert rc == 0
    Y = np.load(out)
    assert Y.shape == (25, 3)
    assert _kabsch_rmsd(Y, Y_TRUE) < 1e-8
    text = capsys.readouterr().out
    assert "status SUCCESS" in text and "RMSD to reference" in text


def test_mds_csv_dim2_and_missing(tmp_path, capsys):
    D = D_TRUE.copy()
    D[0, 7] = D[7, 0] = np.nan
    np.savetxt(tmp_path / "D.csv", D, delimiter=",")
    rc = main(
        [
            "mds",
            str(tmp_path / "D.csv"),
            "-o",
            str(tmp_path / "Y.csv"),
            "--nan-missing",
            "--dim",
            "3",
            "--steps",
            "50",
        ]
    )
    assert rc == 0
    assert np.loadtxt(tmp_path / "Y.csv", delimiter=",").shape == (25, 3)
    rc = main(
        [
            "mds",
            str(tmp_path / "D.csv"),
            "--dim",
            "2",
            "--nan-missing",
            "--refine",
            "adam",
            "--steps",
            "20",
        ]
    )
    assert rc == 0
    assert "N=25 dim=2" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("make", "args", "match"),
    [
        (lambda p: np.save(p, np.ones((3, 4))), [], "square"),
        (lambda p: np.save(p, -D_TRUE), [], "non-negative"),
        (lambda p: np.save(p, np.where(np.eye(25) > 0, 0, np.nan)), [], "--nan-missing"),
        (lambda p: np.save(p, D_TRUE), ["--dim", "0"], "--dim must be"),
        (lambda p: np.save(p, D_TRUE), ["--mask", "missing.npy"], "no such file"),
    ],
    ids=["not-square", "negative", "nan", "dim", "mask-file"],
)
def test_mds_user_errors_are_one_line(tmp_path, capsys, make, args, match):
    path = tmp_path / "D.npy"
    make(path)
    rc = main(["mds", str(path), *args])
    assert rc == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("scale", [1e-160, 1e160])
def test_mds_at_extreme_scales(tmp_path, capsys, scale):
    np.save(tmp_path / "D.npy", D_TRUE * scale)
    out = tmp_path / "Y.npy"
    assert main(["mds", str(tmp_path / "D.npy"), "-o", str(out)]) == 0
    assert _kabsch_rmsd(np.load(out) / scale, Y_TRUE) < 1e-8
    text = capsys.readouterr().out
    assert "status SUCCESS" in text and "nan" not in text.lower()


def _unreadable(tmp_path):
    np.save(tmp_path / "D.npy", D_TRUE)
    (tmp_path / "empty.npy").write_bytes(b"")
    (tmp_path / "garbage.npy").write_bytes(b"\x00\x01 not numpy")
    (tmp_path / "folder.npy").mkdir()
    np.save(tmp_path / "object.npy", np.array([[0, None], [None, 0]], object), allow_pickle=True)
    np.save(tmp_path / "huge.npy", D_TRUE * 1e300)


MDS_ERRORS = {
    "empty": ["{d}/empty.npy"],
    "garbage": ["{d}/garbage.npy"],
    "folder": ["{d}/folder.npy"],
    "object": ["{d}/object.npy"],
    "empty-mask": ["{d}/D.npy", "--mask", "{d}/empty.npy"],
    "empty-reference": ["{d}/D.npy", "--reference", "{d}/empty.npy"],
    "output-folder": ["{d}/D.npy", "-o", "{d}/folder.npy"],
    "output-no-folder": ["{d}/D.npy", "-o", "{d}/no/such/Y.npy"],
    "rtol-nan": ["{d}/D.npy", "--rtol", "nan"],
    "rtol-negative": ["{d}/D.npy", "--rtol", "-1"],
    "learning-rate-inf": ["{d}/D.npy", "--learning-rate", "inf"],
    "learning-rate-zero": ["{d}/D.npy", "--learning-rate", "0"],
    "overflow-float32": ["{d}/huge.npy", "--dtype", "float32"],
}


@pytest.mark.parametrize("args", MDS_ERRORS.values(), ids=MDS_ERRORS.keys())
def test_mds_unreadable_input_and_bad_options_are_one_line(tmp_path, capsys, args):
    _unreadable(tmp_path)
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            rc = main(["mds", *(a.format(d=tmp_path) for a in args)])
        except SystemExit as exit_:  # argparse's own errors
            rc = exit_.code
    captured = capsys.readouterr()
    assert not caught, [str(w.message) for w in caught]
    assert rc == 2 and captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and "error" in lines[0] and "Traceback" not in captured.err


def test_mds_overflow_message_names_float32(tmp_path, capsys):
    _unreadable(tmp_path)
    assert main(["mds", str(tmp_path / "huge.npy"), "--dtype", "float32"]) == 2
    err = capsys.readouterr().err
    assert "huge.npy" in err and "overflow float32" in err and "NaN" not in err


def test_mds_help_lists_options(capsys):
    with pytest.raises(SystemExit):
        main(["mds", "--help"])
    text = capsys.readouterr().out
    for option in ("--dim", "--refine", "--mask", "--dtype", "-o"):
        assert option in text
