"""``compare``: one row per method, a table, JSON, error rows instead of exceptions."""

import json
import math

import numpy as np
import pytest
from helpers import ITERATIVE, best_rank_k_residual, isolve

import jaxsolve
from jaxsolve import METHODS, Comparison, MethodResult, Status, compare

N = 8  # the matrix of test_solve/test_iterative: their compiled solves are reused
C = jaxsolve.random_psd(N, cond=10, seed=1)


@pytest.fixture(scope="module")
def full():
    return compare(C, repeats=1)


def test_one_row_per_default_method(full):
    assert isinstance(full, Comparison)
    # (gauss_newton is completion: a default row only with a mask)
    assert [r.method for r in full.results] == [
        m for m in METHODS if m not in ("auto", "gauss_newton")
    ]
    assert full.shape == (N, N) and full.dtype == "float64"
    for r in full.results:
        assert isinstance(r, MethodResult)
        assert r.error is None
        assert r.status == Status.SUCCESS and r.status_name == "SUCCESS"
        assert 0 <= r.residual < 1e-10
        assert r.time_s > 0 and r.compile_s > 0
        assert (r.steps > 0) == (r.method in ("gd", "precgd"))


def test_residuals_agree_with_solve(full):
    # compare reports residuals measured on X for every method, closed forms included
    for r in full.results:
        if r.method in ITERATIVE:
            sol = isolve(C, r.method)
        else:
            sol = jaxsolve.solve(C, method=r.method, measure_residual=True)
        assert r.steps == int(sol.steps)
        np.testing.assert_allclose(r.residual, float(sol.residual), rtol=1e-6, atol=1e-15)


def test_str_is_a_table(full):
    text = str(full)
    lines = text.splitlines()
    assert lines[0] == f"C: shape ({N}, {N}), float64"
    header = [c.strip() for c in lines[1].split("|")]
    assert header == ["method", "residual", "status", "steps", "time [ms]", "compile [ms]"]
    assert set(lines[2]) <= {"-", "+"}
    body = lines[3:]
    assert [line.split("|")[0].strip() for line in body] == [r.method for r in full.results]
    assert all("SUCCESS" in line for line in body)


def test_to_dict_is_json(full):
    d = full.to_dict()
    back = json.loads(json.dumps(d))
    assert back["shape"] == [N, N] and back["dtype"] == "float64"
    assert [r["method"] for r in back["results"]] == [r.method for r in full.results]
    for row, r in zip(back["results"], full.results, strict=True):
        assert row["residual"] == r.residual and row["status_name"] == r.status_name
        assert set(row) >= {"steps", "time_s", "compile_s", "error", "status"}


def test_cholesky_with_rank_is_an_error_row():
    comparison = compare(C, ["cholesky", "eigh"], rank=2, repeats=1)
    chol, eigh = comparison.results
    assert chol.method == "cholesky" and "rank" in chol.error
    assert math.isnan(chol.residual) and chol.status_name == "-"
    assert eigh.error is None
    np.testing.assert_allclose(eigh.residual, best_rank_k_residual(C, 2), rtol=1e-10)
    text = str(comparison)
    assert "n/a" in text and "rank" in text
    json.dumps(comparison.to_dict())


def test_to_dict_with_error_row_is_strict_json():
    comparison = compare(C, ["cholesky"], rank=2, repeats=1)
    json.dumps(comparison.to_dict(), allow_nan=False)


def test_batched_and_failing_input_reports_worst():
    B = np.stack([C, jaxsolve.random_psd(N, negative=1, seed=2)])
    comparison = compare(B, ["cholesky", "eigh"], repeats=1)
    assert comparison.shape == (2, N, N)
    rows = {r.method: r for r in comparison.results}
    assert rows["cholesky"].status == Status.CHOLESKY_FAILED
    assert math.isnan(rows["cholesky"].residual)
    for m in ("eigh",):
        assert rows[m].status == Status.NOT_PSD
        expected = float(np.max(np.asarray(jaxsolve.solve(B, method=m).residual)))
        np.testing.assert_allclose(rows[m].residual, expected, rtol=1e-10)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="methods"):
        compare(C, ["eigh", "lu"])
    with pytest.raises(ValueError, match="repeats"):
        compare(C, ["eigh"], repeats=0)
    with pytest.raises(ValueError, match="C"):
        compare(np.ones((3, 4)))
    with pytest.raises(TypeError, match="C"):
        compare(np.eye(3) * 1j)
    with pytest.raises(TypeError, match="dense C"):
        compare(jaxsolve.observed_entries([0, 1], [0, 1], [1.0, 2.0], 2))
