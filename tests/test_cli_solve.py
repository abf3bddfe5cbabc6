"""``jaxsolve demo | solve | compare``: files in, X out, one-line errors with exit status 2."""

import json
import pickle
import warnings

import jax
import numpy as np
import pytest
from helpers import best_rank_k_psd_ref, gram, rel_error

import jaxsolve
from jaxsolve.cli import main
from jaxsolve.cli._solve_cmds import DEMO_PROBLEMS

N = 8
C = jaxsolve.random_psd(N, cond=10, seed=1)  # test_solve's C_PD: cached compiles


@pytest.fixture(autouse=True)
def _keep_x64():
    """The CLI sets jax_enable_x64 for its process (--dtype); restore the test setting."""
    yield
    jax.config.update("jax_enable_x64", True)


def run(argv):
    """main(argv) -> exit status, also for argparse's own errors (SystemExit)."""
    try:
        return main([str(a) for a in argv])
    except SystemExit as exit_:
        return exit_.code


@pytest.fixture
def files(tmp_path):
    np.save(tmp_path / "C.npy", C)
    np.savetxt(tmp_path / "C.csv", C, delimiter=",")
    np.savetxt(tmp_path / "C.txt", C)
    np.save(tmp_path / "B.npy", np.stack([C, 2 * C]))
    np.save(tmp_path / "indef.npy", jaxsolve.random_psd(N, negative=1, seed=2))
    return tmp_path


def test_solve_npy(files, capsys):
    out = files / "X.npy"
    assert run(["solve", files / "C.npy", "-o", out]) == 0
    X = np.load(out)
    assert X.shape == (N, N) and X.dtype == np.float64
    assert rel_error(gram(X), C) < 1e-13
    text = capsys.readouterr().out
    assert text.count("\n") == 1 and "residual" in text and "status SUCCESS" in text


@pytest.mark.parametrize("ext", [".csv", ".txt"])
def test_solve_text_formats(files, capsys, ext):
    out = files / f"X{ext}"
    assert run(["solve", files / f"C{ext}", "-o", out]) == 0
    X = np.loadtxt(out, delimiter="," if ext == ".csv" else None)
    assert rel_error(gram(X), C) < 1e-13  # written with 17 significant digits
    assert "status SUCCESS" in capsys.readouterr().out


def test_solve_method_and_rank(files, capsys):
    out = files / "X2.npy"
    assert run(["solve", files / "C.txt", "-o", out, "--method", "eigh", "--rank", 2]) == 0
    X = np.load(out)
    assert X.shape == (N, 2)
    assert rel_error(gram(X), best_rank_k_psd_ref(C, 2)) < 1e-10
    assert "status SUCCESS" in capsys.readouterr().out


def test_solve_batched_prints_each(files, capsys):
    assert run(["solve", files / "B.npy", "-o", files / "XB.npy"]) == 0
    assert np.load(files / "XB.npy").shape == (2, N, N)
    lines = capsys.readouterr().out.splitlines()
    assert [line[:3] for line in lines] == ["[0]", "[1]"]


def test_solve_statuses_and_exit_codes(files, capsys):
    assert run(["solve", files / "indef.npy"]) == 0  # informational: nearest PSD answer
    assert "status NOT_PSD" in capsys.readouterr().out
    assert run(["solve", files / "indef.npy", "--method", "cholesky"]) == 1
    assert "status CHOLESKY_FAILED" in capsys.readouterr().out


def test_solve_float32(files, capsys):
    out = files / "X32.npy"
    assert run(["solve", files / "C.npy", "-o", out, "--dtype", "float32"]) == 0
    X = np.load(out)
    assert X.dtype == np.float32
    assert rel_error(gram(X), C) < 1e-5
    assert "status SUCCESS" in capsys.readouterr().out


def test_compare(files, capsys):
    out = files / "cmp.json"
    assert run(["compare", files / "C.npy", "--repeats", 1, "--json", out]) == 0
    text = capsys.readouterr().out
    assert "method" in text and "residual" in text
    for m in ("cholesky", "eigh", "sqrt", "gd", "precgd"):
        assert m in text
    data = json.loads(out.read_text())
    assert [r["method"] for r in data["results"]] == ["cholesky", "eigh", "sqrt", "gd", "precgd"]
    assert all(r["status_name"] == "SUCCESS" for r in data["results"])


def test_compare_methods_and_rank_error_row(files, capsys):
    argv = ["compare", files / "C.csv", "--methods", "cholesky,eigh", "--rank", 2]
    assert run([*argv, "--repeats", 1]) == 0
    text = capsys.readouterr().out
    chol = next(line for line in text.splitlines() if line.startswith("cholesky"))
    assert "n/a" in chol and "rank" in chol
    assert "gd" not in text.replace("cholesky", "")


@pytest.mark.slow
def test_demo(tmp_path, capsys):
    out = tmp_path / "demo.json"
    assert run(["demo", "--repeats", 1, "--json", out]) == 0
    text = capsys.readouterr().out
    for name, _ in DEMO_PROBLEMS:
        assert f"## {name}" in text
    for m in ("cholesky", "eigh", "sqrt", "gd", "precgd"):
        assert text.count(f"\n{m} ") == len(DEMO_PROBLEMS)
    assert "status codes:" in text and "demo finished" in text
    data = json.loads(out.read_text())
    assert [d["problem"] for d in data] == [name for name, _ in DEMO_PROBLEMS]
    rows = {d["problem"]: {r["method"]: r for r in d["results"]} for d in data}
    well = rows[DEMO_PROBLEMS[0][0]]
    assert all(r["status_name"] == "SUCCESS" for r in well.values())
    indefinite = rows[DEMO_PROBLEMS[-1][0]]
    assert indefinite["cholesky"]["status_name"] == "CHOLESKY_FAILED"
    assert indefinite["eigh"]["status_name"] == "NOT_PSD"


# --- errors: exit 2, one line on stderr, no traceback -------------------------------------------


def _bad_files(tmp_path):
    (tmp_path / "bad.csv").write_text("1,2\n3,x\n")
    (tmp_path / "garbage.npy").write_bytes(b"not a numpy file")
    (tmp_path / "empty.csv").write_text("")
    np.save(tmp_path / "rect.npy", np.ones((3, 4)))
    np.save(tmp_path / "cplx.npy", np.eye(3) * 1j)
    np.save(tmp_path / "vec.npy", np.ones(3))
    np.save(tmp_path / "B.npy", np.stack([C, C]))
    np.save(tmp_path / "C.npy", C)
    _unreadable_files(tmp_path)


def _unreadable_files(tmp_path):
    """Files that are not matrices, each of which must give one line and exit status 2."""
    (tmp_path / "empty.npy").write_bytes(b"")
    (tmp_path / "folder.npy").mkdir()
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00\x01")
    np.save(tmp_path / "object.npy", np.array([[1, None], [None, 1]], object), allow_pickle=True)
    with open(tmp_path / "pickle.npy", "wb") as fh:
        pickle.dump(C.tolist(), fh)
    with open(tmp_path / "archive.npy", "wb") as fh:
        np.savez(fh, C=C)
    np.save(tmp_path / "truncated.npy", C)
    data = (tmp_path / "truncated.npy").read_bytes()
    (tmp_path / "truncated.npy").write_bytes(data[: len(data) // 2])
    np.save(tmp_path / "strings.npy", np.array([["a", "b"], ["c", "d"]]))
    np.save(tmp_path / "huge.npy", C * 1e300)
    np.save(tmp_path / "tiny.npy", C * 1e-300)


UNREADABLE = (
    "empty.npy",
    "folder.npy",
    "folder.csv",
    "binary.csv",
    "object.npy",
    "pickle.npy",
    "archive.npy",
    "truncated.npy",
    "strings.npy",
)


ERROR_CASES = {
    "missing": ["solve", "{d}/missing.npy"],
    "malformed-csv": ["solve", "{d}/bad.csv"],
    "garbage-npy": ["solve", "{d}/garbage.npy"],
    "non-square": ["solve", "{d}/rect.npy"],
    "complex": ["solve", "{d}/cplx.npy"],
    "vector": ["solve", "{d}/vec.npy"],
    "unknown-ext": ["solve", "{d}/C.xyz"],
    "bad-option": ["solve", "{d}/C.npy", "--bogus"],
    "bad-method": ["solve", "{d}/C.npy", "--method", "lu"],
    "rank-not-int": ["solve", "{d}/C.npy", "--rank", "x"],
    "rank-zero": ["solve", "{d}/C.npy", "--rank", "0"],
    "rank-too-big": ["solve", "{d}/C.npy", "--rank", "99"],
    "cholesky-rank": ["solve", "{d}/C.npy", "--method", "cholesky", "--rank", "2"],
    "bad-dtype": ["solve", "{d}/C.npy", "--dtype", "float16"],
    "output-ext": ["solve", "{d}/C.npy", "-o", "{d}/X.pdf"],
    "output-dir": ["solve", "{d}/C.npy", "-o", "{d}/no/such/dir/X.npy"],
    "batch-to-csv": ["solve", "{d}/B.npy", "-o", "{d}/X.csv"],
    "no-matrix": ["solve"],
    "no-command": [],
    "unknown-command": ["frobnicate"],
    "compare-missing": ["compare", "{d}/missing.csv"],
    "compare-methods": ["compare", "{d}/C.npy", "--methods", "eigh,lu"],
    "compare-non-square": ["compare", "{d}/rect.npy"],
    "compare-methods-comma": ["compare", "{d}/C.npy", "--methods", ","],
    "compare-methods-empty": ["compare", "{d}/C.npy", "--methods", ""],
    "compare-methods-empty-entry": ["compare", "{d}/C.npy", "--methods", "eigh,,gd"],
    "compare-methods-twice": ["compare", "{d}/C.npy", "--methods", "eigh,eigh"],
    "compare-json-no-folder": ["compare", "{d}/C.npy", "--json", "{d}/no/such/x.json"],
    "compare-json-folder": ["compare", "{d}/C.npy", "--json", "{d}"],
    "demo-json-no-folder": ["demo", "--json", "{d}/no/such/x.json"],
    "demo-json-folder": ["demo", "--json", "{d}"],
    "output-is-folder": ["solve", "{d}/C.npy", "-o", "{d}/folder.npy"],
    "solve-overflow-float32": ["solve", "{d}/huge.npy", "--dtype", "float32"],
    "compare-overflow-float32": ["compare", "{d}/huge.npy", "--dtype", "float32"],
    "solve-underflow-float32": ["solve", "{d}/tiny.npy", "--dtype", "float32"],
    **{
        f"{cmd}-{name}": [cmd, f"{{d}}/{name}"]
        for cmd in ("solve", "compare")
        for name in UNREADABLE
    },
}


def _check_one_line_error(argv, tmp_path, capsys):
    _bad_files(tmp_path)
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        # a warning would be printed on stderr by a real run (pytest captures it here)
        warnings.simplefilter("always")
        rc = run([a.format(d=tmp_path) for a in argv])
    err = capsys.readouterr().err
    assert not caught, [str(w.message) for w in caught]
    assert rc == 2
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("jaxsolve"), err
    assert "error" in lines[0]


@pytest.mark.parametrize("argv", ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_errors_are_one_line_exit_2(argv, tmp_path, capsys):
    _check_one_line_error(argv, tmp_path, capsys)


def test_empty_text_file_is_one_line_exit_2(tmp_path, capsys):
    _check_one_line_error(["solve", "{d}/empty.csv"], tmp_path, capsys)


def test_error_messages_name_the_problem(tmp_path, capsys):
    _bad_files(tmp_path)
    for argv, words in [
        (["solve", tmp_path / "missing.npy"], ["missing.npy", "no such file"]),
        (["solve", tmp_path / "rect.npy"], ["square", "(3, 4)"]),
        (["solve", tmp_path / "C.npy", "--rank", "99"], ["--rank", "99"]),
        (["solve", tmp_path / "cplx.npy"], ["complex"]),
    ]:
        assert run(argv) == 2
        err = capsys.readouterr().err
        for word in words:
            assert word in err


@pytest.mark.parametrize(
    "argv",
    [["compare", "{d}/C.npy", "--repeats", "0"], ["demo", "--repeats", "-1"]],
    ids=["compare", "demo"],
)
def test_bad_repeats_is_one_line_exit_2(argv, tmp_path, capsys):
    _check_one_line_error(argv, tmp_path, capsys)


def test_unreadable_files_say_what_is_wrong(tmp_path, capsys):
    _bad_files(tmp_path)
    for name, words in [
        ("empty.npy", ["empty"]),
        ("folder.npy", ["directory"]),
        ("binary.csv", ["not a text file"]),
        ("object.npy", ["Python objects"]),
        ("pickle.npy", ["not a NumPy .npy file"]),
        ("archive.npy", ["zip archive"]),
        ("truncated.npy", ["cannot read"]),
        ("strings.npy", ["real numbers"]),
    ]:
        assert run(["solve", tmp_path / name]) == 2
        err = capsys.readouterr().err
        assert name in err, err
        for word in words:
            assert word in err, err


def test_output_paths_are_checked_before_the_work(tmp_path, capsys):
    _bad_files(tmp_path)
    for argv, words in [
        (["compare", tmp_path / "C.npy", "--json", "/nonexistent/x.json"], ["/nonexistent"]),
        (["compare", tmp_path / "C.npy", "--json", tmp_path], ["--json", "directory"]),
        (["solve", tmp_path / "C.npy", "-o", tmp_path / "folder.npy"], ["--output", "directory"]),
        (["solve", tmp_path / "B.npy", "-o", tmp_path / "X.csv"], ["batch", ".npy"]),
    ]:
        assert run(argv) == 2
        err = capsys.readouterr()
        assert err.out == ""  # nothing was computed
        for word in words:
            assert word in err.err, err.err


def test_json_write_failure_is_one_line(tmp_path, capsys, monkeypatch):
    """A failure at write time (a full disk, a folder removed meanwhile) is one line too."""
    _bad_files(tmp_path)
    target = tmp_path / "gone" / "cmp.json"
    target.parent.mkdir()
    original = jaxsolve.compare

    def compare_then_remove_folder(*args, **kwargs):
        result = original(*args, **kwargs)
        target.parent.rmdir()
        return result

    monkeypatch.setattr(jaxsolve, "compare", compare_then_remove_folder)
    argv = ["compare", tmp_path / "C.npy", "--methods", "eigh", "--repeats", 1, "--json", target]
    assert run(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "cmp.json: cannot write" in err[0]


def test_values_that_overflow_float32_are_named(tmp_path, capsys):
    _bad_files(tmp_path)
    assert run(["solve", tmp_path / "huge.npy", "--dtype", "float32"]) == 2
    err = capsys.readouterr().err
    assert "overflow float32" in err and "NaN" not in err
    assert run(["solve", tmp_path / "huge.npy"]) == 0  # float64 holds them
    assert "status SUCCESS" in capsys.readouterr().out


def test_methods_list_names_the_problem(tmp_path, capsys):
    _bad_files(tmp_path)
    for methods, word in [(",", "empty name"), ("", "empty name"), ("eigh,lu", "unknown")]:
        assert run(["compare", tmp_path / "C.npy", "--methods", methods]) == 2
        err = capsys.readouterr().err
        assert "--methods" in err and word in err and "cholesky" in err
