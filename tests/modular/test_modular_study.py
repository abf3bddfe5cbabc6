"""The trainer, the study's summaries and report, and ``jaxsolve study mod`` — on tiny settings."""

import json

import numpy as np
import pytest

from jaxsolve.cli import main
from jaxsolve.modular import RunConfig, TrainSettings, default_entries, load_dataset, train

pytest.importorskip("matplotlib")

# The command line builds the same settings from `--steps 20 --width 8` (batch 64, eval every 10),
# so its runs reuse the programs compiled here: the module compiles two programs in all.
TINY = TrainSettings(steps=20, width=8, batch_size=64, eval_every=10)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def wmod_run(digits):
    return train(RunConfig("w", variant="w_mod"), digits, [0, 1], TINY)


def test_train_shapes_and_diagnostics(wmod_run):
    r = wmod_run
    assert r["test_accuracy"].shape == (2,)
    assert r["test_accuracy_curve"].shape == (2, 2)
    np.testing.assert_array_equal(r["eval_steps"], [10, 20])
    for key in ("loss", "grad_norm_m", "grad_norm_w", "wrapped", "tooth_changes", "m_sign_flips"):
        assert r[key].shape == (2, 20), key
    assert r["n_modded_entries"] == 64 * 8 + 8 * 8 + 8 * 10
    # Keras init: w and m independent U(-a, a): |floor(w/m)| >= 1 for 3/4 of the entries
    assert 0.65 < r["wrapped"][:, 0].mean() < 0.85
    # the mechanism: ∂/∂m = -floor(w/m) makes ‖∇m‖ far larger than ‖∇w‖ from the first step
    ratio = r["grad_norm_m"] / r["grad_norm_w"]
    assert np.all(np.median(ratio, axis=1) > 3), ratio
    assert np.all(r["finite"][:, 0])


def test_same_seed_same_numbers(digits, wmod_run):
    again = train(RunConfig("w", variant="w_mod"), digits, [0, 1], TINY)
    for key in ("test_accuracy_curve", "loss", "grad_norm_m", "tooth_changes", "effective"):
        np.testing.assert_array_equal(again[key], wmod_run[key])
    # and seeds differ from each other
    assert not np.array_equal(wmod_run["loss"][0], wmod_run["loss"][1])


def test_frozen_modulus_never_flips_and_plain_has_no_modulus(digits):
    frozen = train(RunConfig("f", variant="w_mod", m_lr_scale=0.0), digits, [0, 1], TINY)
    assert frozen["m_sign_flips"].sum() == 0
    plain = train(RunConfig("p", variant="plain"), digits, [0, 1], TINY)
    assert plain["n_modded_entries"] == 0 and "wrapped" not in plain
    assert np.all(plain["grad_norm_m"] == 0)


def test_config_validation():
    with pytest.raises(ValueError, match="`optimizer`"):
        RunConfig("x", optimizer="rmsprop")
    with pytest.raises(ValueError, match="`eval_every`"):
        TrainSettings(steps=25, eval_every=10)
    with pytest.raises(ValueError, match="`width`"):
        TrainSettings(width=0)


def test_default_entries_cover_variants_fixes_and_tempting():
    entries = default_entries()
    keys = {e.key for e in entries}
    for variant in ("plain", "w_mod", "b_mod"):
        assert {f"{variant}/adam", f"{variant}/sgd"} <= keys
    groups = [e.group for e in entries]
    assert groups.count("fix") >= 4 and groups.count("tempting") >= 4
    assert len(keys) == len(entries)


def test_cli_writes_report_and_results(tmp_path, capsys):
    out = tmp_path / "report"
    argv = ["study", "mod", "--seeds", "0,1", "--steps", "20", "--width", "8", "--no-progress"]
    argv += ["--optimizers", "adam", "--only", "plain,w_mod", "--output", str(out)]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["runs"]) == {"plain/adam", "w_mod/adam"}
    for run in results["runs"].values():
        assert 0.0 <= run["test_accuracy"] <= 1.0
    assert "diagnostics" in results["runs"]["w_mod/adam"]
    report = (out / "report.md").read_text()
    assert "| optimizer |" in report and "‖∇m‖/‖∇w‖" in report
    for png in ("accuracy_curves.png", "grad_ratio.png", "effective_weights.png"):
        assert (out / png).stat().st_size > 1000
    assert "w_mod/adam" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra",
    [
        ["--seeds", "a,b"],
        ["--steps", "0"],
        ["--optimizers", "rmsprop"],
        ["--only", "nonsense"],
        ["--dataset", "cifar"],
    ],
)
def test_cli_bad_options_exit_2(tmp_path, capsys, extra):
    argv = ["study", "mod", "--no-progress", "--output", str(tmp_path / "o"), *extra]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse rejects --dataset itself
        code = exc.code
    assert code == 2
    assert "error" in capsys.readouterr().err


def test_summary_counts_diagnostics_over_finite_steps_only():
    from jaxsolve.modular._study import StudyEntry, _summarise

    steps = 4
    finite = np.array([[True, True, False, False]])
    raw = {
        "test_accuracy": np.array([0.1]),
        "test_accuracy_curve": np.array([[0.5, 0.1]]),
        "eval_steps": np.array([2, 4]),
        "loss": np.array([[1.0, 2.0, np.nan, np.nan]]),
        "finite": finite,
        "grad_norm_m": np.array([[10.0, 20.0, np.nan, np.nan]]),
        "grad_norm_w": np.ones((1, steps)),
        "wrapped": np.array([[0.5, 0.5, 0.0, 0.0]]),
        # after divergence NaN != NaN makes every entry "change": these must not be counted
        "tooth_changes": np.array([[2, 4, 100, 100]]),
        "m_sign_flips": np.array([[0, 1, 100, 100]]),
        "eff_change": np.array([[0.1, 0.2, np.nan, np.nan]]),
        "effective": np.zeros((1, 6)),
        "effective_init": np.zeros((1, 6)),
        "m_sign_agreement": np.array([np.nan]),
        "m_abs_final": np.array([np.nan]),
        "n_modded_entries": 10,
    }
    entry = StudyEntry("w_mod/adam", "baseline", "w mod m", RunConfig("w", variant="w_mod"))
    out = _summarise(entry, raw, np.linspace(-1, 1, 5))
    d = out["diagnostics"]
    assert d["tooth_changes_per_step"] == 3.0
    assert d["m_sign_flips_per_step"] == 0.5
    assert d["wrapped_fraction_final"] == 0.5
    assert d["grad_ratio_median"] == 15.0
    assert d["mean_abs_m_final"] is None  # NaN is written as null, never as a number
    assert out["nonfinite_steps"] == 2 and out["first_nonfinite_step"] == [2]
    json_text = __import__("json").dumps(out, allow_nan=False)
    assert "NaN" not in json_text
