"""Writing the study's results: ``results.json``, ``report.md`` and PNG plots."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_report"]

PLOTS = {
    "accuracy": "accuracy_curves.png",
    "ratio": "grad_ratio.png",
    "diagnostics": "diagnostics.png",
    "histograms": "effective_weights.png",
}


def _pyplot():
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError as err:
        raise ImportError(
            "the study's plots need matplotlib, which is not installed; "
            'run: pip install "jaxsolve[study]"'
        ) from err
    matplotlib.use("Agg", force=True)
    return importlib.import_module("matplotlib.pyplot")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _fmt(x: float | None, spec: str = ".3g") -> str:
    return "n/a" if x is None else format(x, spec)


def _optimizers(results: dict[str, Any]) -> list[str]:
    seen = []
    for run in results["runs"].values():
        opt = run["config"]["optimizer"]
        if opt not in seen:
            seen.append(opt)
    return seen


def _plot_accuracy(plt, results, path: Path) -> None:
    opts = _optimizers(results)
    fig, axes = plt.subplots(1, len(opts), figsize=(6 * len(opts), 4.2), squeeze=False)
    for ax, opt in zip(axes[0], opts, strict=True):
        for key, run in results["runs"].items():
            if run["config"]["optimizer"] != opt or run["group"] == "tempting":
                continue
            curve = [np.nan if v is None else v for v in run["curve"]["test_accuracy_mean"]]
            style = "-" if run["group"] == "baseline" else "--"
            ax.plot(run["curve"]["steps"], curve, style, label=key.split("/")[0])
        ax.axhline(results["chance_accuracy"], color="grey", lw=0.8, ls=":", label="chance")
        ax.set(title=f"{opt}: test accuracy", xlabel="step", ylabel="test accuracy", ylim=(0, 1))
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_ratio(plt, results, path: Path) -> None:
    opts = _optimizers(results)
    fig, axes = plt.subplots(1, len(opts), figsize=(6 * len(opts), 4.2), squeeze=False)
    for ax, opt in zip(axes[0], opts, strict=True):
        for key, run in results["runs"].items():
            diag = run.get("diagnostics")
            if run["config"]["optimizer"] != opt or diag is None or run["group"] == "tempting":
                continue
            curve = [np.nan if v is None else v for v in diag["grad_ratio_curve"]]
            ax.plot(run["curve"]["steps"], curve, label=key.split("/")[0])
        ax.set_yscale("log")
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.set(title=f"{opt}: ‖∇m‖ / ‖∇w‖ (median per window)", xlabel="step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_diagnostics(plt, results, path: Path) -> None:
    fields = [
        ("wrapped_fraction_curve", "fraction wrapped (|k| ≥ 1)", False),
        ("tooth_changes_curve", "entries changing tooth per step", True),
        ("m_sign_flips_curve", "sign changes of m per step", True),
    ]
    opts = _optimizers(results)
    fig, axes = plt.subplots(len(opts), 3, figsize=(16, 3.8 * len(opts)), squeeze=False)
    for row, opt in enumerate(opts):
        for col, (field, title, log) in enumerate(fields):
            ax = axes[row][col]
            for key, run in results["runs"].items():
                diag = run.get("diagnostics")
                if run["config"]["optimizer"] != opt or diag is None or run["group"] == "tempting":
                    continue
                curve = np.array([np.nan if v is None else v for v in diag[field]], float)
                if log:
                    curve = curve + 0.1  # show zero on a log axis
                ax.plot(run["curve"]["steps"], curve, label=key.split("/")[0])
            if log:
                ax.set_yscale("log")
            ax.set(title=f"{opt}: {title}", xlabel="step")
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_histograms(plt, results, path: Path) -> None:
    opt = _optimizers(results)[0]
    keys = [k for k, r in results["runs"].items() if r["config"]["optimizer"] == opt]
    keys = [k for k in keys if results["runs"][k]["group"] != "tempting"]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        hist = results["runs"][key]["histogram"]
        edges = np.asarray(hist["edges"])
        centres = 0.5 * (edges[1:] + edges[:-1])
        width = edges[1] - edges[0]
        ax.bar(centres, hist["first_layer_init"], width, alpha=0.5, label="init")
        ax.bar(centres, hist["first_layer_final"], width, alpha=0.5, label="trained")
        ax.set_title(key.split("/")[0], fontsize=8)
        ax.set_yscale("log")
        ax.set_xlabel("effective weight, layer 1")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{opt}: distribution of effective weights (seed {results['seeds'][0]})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    # a "|" inside a cell (as in |m|) would end the cell: escape it
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _markdown(results: dict[str, Any]) -> str:
    runs = results["runs"]
    verdicts = results["verdicts"]
    opts = _optimizers(results)
    s = results["settings"]
    out = [
        "# Why y = x·(w mod m) + b stops learning: measurements",
        "",
        f"Data: `{results['dataset']}` ({results['n_train']} train / {results['n_test']} test, "
        f"chance {_pct(results['chance_accuracy'])} %). Model: {s['depth']} dense layers of width "
        f"{s['width']}, ReLU, Keras initialisation (glorot-uniform kernels, zero biases, m drawn "
        f"like a kernel). {s['steps']} steps, batch {s['batch_size']}, seeds {results['seeds']}; "
        f"learning rates {results['learning_rates']}. Accuracies are means over seeds, in %.",
        "",
        "## The three layers",
        "",
    ]
    rows = []
    for opt in opts:
        for variant in ("plain", "w_mod", "b_mod"):
            run = runs.get(f"{variant}/{opt}")
            if run is None:
                continue
            diag = run.get("diagnostics", {})
            rows.append(
                [
                    opt,
                    run["label"],
                    f"{_pct(run['test_accuracy'])} ± {_pct(run['test_accuracy_std'])}",
                    _fmt(diag.get("grad_ratio_median")),
                    _pct(diag.get("wrapped_fraction_init")) if diag else "–",
                    _pct(diag.get("wrapped_fraction_final")) if diag else "–",
                    _fmt(diag.get("tooth_changes_per_step"), ".1f") if diag else "–",
                    _fmt(diag.get("m_sign_flips_per_step"), ".2f") if diag else "–",
                    str(run["nonfinite_steps"]),
                ]
            )
    out.append(
        _table(
            rows,
            [
                "optimizer",
                "layer",
                "test acc. %",
                "median ‖∇m‖/‖∇w‖",
                "wrapped % (init)",
                "wrapped % (end)",
                "tooth changes / step",
                "m sign flips / step",
                "non-finite loss steps",
            ],
        )
    )
    out += ["", "## Fixes and non-fixes of the w-mod layer", ""]
    rows = []
    for group in ("fix", "tempting"):
        for key, run in runs.items():
            if run["group"] != group:
                continue
            diag = run["diagnostics"]
            v = verdicts.get(key, {})
            rows.append(
                [
                    "fix" if group == "fix" else "tempting",
                    run["config"]["optimizer"],
                    run["label"],
                    f"{_pct(run['test_accuracy'])} ± {_pct(run['test_accuracy_std'])}",
                    _fmt(100 * v["gap_to_plain"], ".1f") if v else "n/a",
                    "yes" if v.get("within_2_points") else "no",
                    _fmt(diag.get("grad_ratio_median")),
                    _pct(diag.get("wrapped_fraction_final")),
                    _fmt(diag.get("tooth_changes_per_step"), ".1f"),
                    _fmt(diag.get("m_sign_flips_per_step"), ".2f"),
                    str(run["nonfinite_steps"]),
                ]
            )
    out.append(
        _table(
            rows,
            [
                "kind",
                "optimizer",
                "w-mod layer",
                "test acc. %",
                "points below plain",
                "within 2 points",
                "median ‖∇m‖/‖∇w‖",
                "wrapped % (end)",
                "tooth changes / step",
                "m sign flips / step",
                "non-finite steps",
            ],
        )
    )
    out += ["", "## What the numbers say", "", *_explanation(results), ""]
    out += [
        "## Plots",
        "",
        f"![test accuracy]({PLOTS['accuracy']})",
        "",
        f"![gradient ratio]({PLOTS['ratio']})",
        "",
        f"![diagnostics]({PLOTS['diagnostics']})",
        "",
        f"![effective weights]({PLOTS['histograms']})",
        "",
        f"Total wall time: {results['wall_seconds']} s"
        + (f" ({results['cpu_seconds']} s of CPU time)" if "cpu_seconds" in results else "")
        + ". Every number is in `results.json`.",
        "",
    ]
    return "\n".join(out)


def _explanation(results: dict[str, Any]) -> list[str]:
    runs = results["runs"]
    opt = _optimizers(results)[0]
    lines = []
    plain, wmod, bmod = (runs.get(f"{v}/{opt}") for v in ("plain", "w_mod", "b_mod"))
    if not (plain and wmod and bmod):
        return ["(The baseline runs are missing from this study, so no explanation is generated.)"]
    d = wmod["diagnostics"]
    db = bmod["diagnostics"]
    n = d["modded_entries"]
    lines += [
        f"* **The failure reproduces.** With {opt}, the w-mod MLP ends at "
        f"{_pct(wmod['test_accuracy'])} % (chance is {_pct(results['chance_accuracy'])} %), the "
        f"plain MLP at {_pct(plain['test_accuracy'])} % and the b-mod MLP at "
        f"{_pct(bmod['test_accuracy'])} %.",
        f"* **The gradient is there, and it points at m.** ∂(w mod m)/∂m = −floor(w/m). With m "
        f"drawn like a kernel, many |m| are far below |w|, so the median ‖∇m‖/‖∇w‖ is "
        f"{_fmt(d['grad_ratio_median'])} (already {_fmt(d['grad_ratio_first_step'])} at the "
        f"first step) against {_fmt(db['grad_ratio_median'])} for the b-mod layer, whose biases "
        f"start at 0 where floor(b/m) = 0.",
        f"* **Most weights are wrapped from the start.** {_pct(d['wrapped_fraction_init'])} % of "
        f"the {n} weights have |floor(w/m)| ≥ 1 at initialisation (every w of the other sign "
        f"than m wraps, plus every |w| > |m|), {_pct(d['wrapped_fraction_final'])} % at the end. "
        f"Floor mod gives every effective weight the sign of its m "
        f"({_pct(d['effective_sign_equals_m_sign'])} % agree at the end) and a size below |m|: "
        f"the network's weights are set by m, not by w.",
        "* **The teeth change all the time.** On average "
        f"{_fmt(d['tooth_changes_per_step'], '.0f')} weights "
        f"({_pct(d['tooth_changes_fraction_per_step'])} %) jump to another tooth at "
        f"every step and {_fmt(d['m_sign_flips_per_step'], '.1f')} moduli change sign, so each "
        f"step moves the effective weights by a median "
        f"{_pct(d['effective_change_per_step_median'])} % of their norm, in a direction the "
        f"gradient did not choose: the gradient is a local slope of a sawtooth whose teeth are "
        f"narrower than one optimizer step.",
    ]
    hw, hp = wmod["histogram"], plain["histogram"]
    lines.append(
        f"* **The effective weights shrink to the size of m.** In the first layer the trained "
        f"w-mod network's mean |w mod m| is {_fmt(hw['first_layer_final_mean_abs'])} against "
        f"{_fmt(hp['first_layer_final_mean_abs'])} for the plain network's |w|; the final mean |m| "
        f"over all layers is {_fmt(d['mean_abs_m_final'])}."
    )
    lines.append(
        f"* **Wrapping alone is not what kills learning: the b-mod layer wraps too** "
        f"({_pct(db['wrapped_fraction_final'])} % of its biases at the end, because a bias that "
        f"turns negative wraps to b + m), but it has only {db['modded_entries']} entries, they "
        f"change tooth {_fmt(db['tooth_changes_per_step'], '.1f')} times per step, m changes "
        f"sign {_fmt(db['m_sign_flips_per_step'], '.2f')} times per step, and the kernels, which "
        f"carry the network, are untouched."
    )
    sgd_w = runs.get("w_mod/sgd")
    if sgd_w and sgd_w["nonfinite_steps"]:
        first = [f for f in sgd_w["first_nonfinite_step"] if f is not None]
        lines.append(
            f"* **With SGD the modulus gradient explodes.** SGD steps m by lr·floor(w/m)·∂L/∂W, "
            f"so a small |m| receives a huge step, wraps more weights, and the loss becomes "
            f"non-finite after {min(first) if first else '?'} steps "
            f"({sgd_w['nonfinite_steps']} non-finite steps over all seeds); the network then "
            f"predicts one class ({_pct(sgd_w['test_accuracy'])} %)."
        )
    fixes = [(k, r) for k, r in runs.items() if r["group"] == "fix"]
    good = [k for k, _ in fixes if results["verdicts"].get(k, {}).get("within_2_points")]
    bad_tempting = [
        k
        for k, r in runs.items()
        if r["group"] == "tempting" and not results["verdicts"].get(k, {}).get("within_2_points")
    ]
    lines.append(
        "* **Fixes within 2 points of the plain MLP:** "
        + (", ".join(f"`{k}`" for k in good) if good else "none in this run")
        + ". **Tempting changes that stay far below:** "
        + (", ".join(f"`{k}`" for k in bad_tempting) if bad_tempting else "none")
        + "."
    )
    return lines


def write_report(results: dict[str, Any], folder: str | Path) -> dict[str, Path]:
    """Write ``results.json``, ``report.md`` and the PNG plots into ``folder``; return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plt = _pyplot()
    paths = {"json": folder / "results.json", "markdown": folder / "report.md"}
    paths["json"].write_text(json.dumps(results, indent=1, allow_nan=False) + "\n")
    for name, fn in (
        ("accuracy", _plot_accuracy),
        ("ratio", _plot_ratio),
        ("diagnostics", _plot_diagnostics),
        ("histograms", _plot_histograms),
    ):
        paths[name] = folder / PLOTS[name]
        fn(plt, results, paths[name])
    paths["markdown"].write_text(_markdown(results))
    return paths
