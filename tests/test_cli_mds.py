"""``jaxsolve mds``: files in, coordinates out, one-line errors."""

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from jaxsolve.cli._main import main

RNG = np.random.default_rng(5)
Y_TRUE = RNG.normal(size=(25, 3))
D_TRUE = squareform(pdist(Y_TRUE))


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


def test_mds_help_lists_options(capsys):
    with pytest.raises(SystemExit):
        main(["mds", "--help"])
    text = capsys.readouterr().out
    for option in ("--dim", "--refine", "--mask", "--dtype", "-o"):
        assert option in text
