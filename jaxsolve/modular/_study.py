"""The ``w mod m`` study: which configurations run, their summaries, and the written report.

:func:`run_study` trains every :class:`StudyEntry` over the seeds and returns a JSON-ready dict;
:func:`write_report` turns it into ``report.md``, ``results.json`` and PNG plots. The command
``jaxsolve study mod`` is these two calls plus a progress bar.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._data import load_dataset
from ._train import RunConfig, TrainSettings, train

__all__ = ["StudyEntry", "default_entries", "run_study"]

LEARNING_RATES = {"adam": 1e-3, "sgd": 0.05}
"""Adam at Keras's default rate; plain SGD at a rate where the plain MLP trains in 2,000 steps."""

WITHIN = 0.02
"""A fix counts when its mean test accuracy is at most 2 points below the plain MLP's."""


@dataclasses.dataclass(frozen=True)
class StudyEntry:
    """A configuration of the study: ``group`` is ``baseline``, ``fix`` or ``tempting``."""

    key: str
    group: str
    label: str
    config: RunConfig


# (key, label, RunConfig options other than name/optimizer/lr, lr factor)
_FIXES = [
    (
        "identity_start",
        "fmod, |m| = 2× glorot limit (> every |w|), m at lr/100",
        dict(mod="trunc", m_init="constant", m_scale=2.0, m_lr_scale=0.01),
        1.0,
    ),
    (
        "fourier",
        "smooth Fourier surrogate of floor mod (8 terms), Keras init",
        dict(mod="fourier", mod_options=(("terms", 8),)),
        1.0,
    ),
    (
        "softplus_centred",
        "centred mod, m = softplus(ρ)+ε > 0 from 8× glorot limit",
        dict(mod="centred", m_param="softplus", m_init="constant", m_scale=8.0),
        1.0,
    ),
]
_TEMPTING = [
    ("clip", "floor mod + gradient clipping (global norm 1)", dict(clip_norm=1.0), 1.0),
    ("low_lr", "floor mod + learning rate ÷ 10", {}, 0.1),
    ("freeze_m", "floor mod, m frozen at its Keras init", dict(m_lr_scale=0.0), 1.0),
    (
        "ste_only",
        "floor mod + bounded ∂/∂m (|·| ≤ 1, straight-through), Keras init",
        dict(mod="ste", mod_options=(("bound", 1.0),)),
        1.0,
    ),
    (
        "softplus_only",
        "floor mod, m = softplus(ρ)+ε > 0, Keras-sized",
        dict(m_param="softplus"),
        1.0,
    ),
    (
        "big_m_floor",
        "floor mod, |m| = 4× glorot limit, m at lr/100",
        dict(m_init="constant", m_scale=4.0, m_lr_scale=0.01),
        1.0,
    ),
]


def default_entries(optimizers: Sequence[str] = ("adam", "sgd")) -> list[StudyEntry]:
    """The study's configurations: the three layer variants, the fixes, the tempting non-fixes."""
    entries = []
    for opt in optimizers:
        lr = LEARNING_RATES[opt]
        for variant, label in (
            ("plain", "y = x·w + b"),
            ("w_mod", "y = x·(w mod m) + b"),
            ("b_mod", "y = x·w + (b mod m)"),
        ):
            cfg = RunConfig(f"{variant}/{opt}", variant=variant, optimizer=opt, lr=lr)
            entries.append(StudyEntry(f"{variant}/{opt}", "baseline", label, cfg))
        for group, table in (("fix", _FIXES), ("tempting", _TEMPTING)):
            for key, label, options, lr_factor in table:
                name = f"w_mod:{key}/{opt}"
                cfg = RunConfig(name, variant="w_mod", optimizer=opt, lr=lr * lr_factor, **options)
                entries.append(StudyEntry(name, group, label, cfg))
    return entries


def _window(a: np.ndarray, n_windows: int, reduce=np.nanmean) -> np.ndarray:
    """(S, T) -> (S, n_windows) by reducing each evaluation window."""
    s, t = a.shape
    return reduce(a.reshape(s, n_windows, t // n_windows), axis=-1)


def _num(x) -> float | None:
    """A JSON number, or ``None`` for NaN/inf (never a silent NaN in the file)."""
    x = float(x)
    return x if math.isfinite(x) else None


def _nums(a) -> list:
    return [_num(v) for v in np.ravel(a)]


def _summarise(entry: StudyEntry, raw: dict[str, Any], edges: np.ndarray) -> dict[str, Any]:
    # A diverged run has all-NaN windows: they become None in the JSON, without a warning each.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _summarise_quietly(entry, raw, edges)


def _summarise_quietly(entry: StudyEntry, raw: dict[str, Any], edges: np.ndarray) -> dict:
    acc = raw["test_accuracy"]
    n_windows = len(raw["eval_steps"])
    finite = raw["finite"].astype(bool)
    out: dict[str, Any] = {
        "group": entry.group,
        "label": entry.label,
        "config": dataclasses.asdict(entry.config),
        "test_accuracy": _num(acc.mean()),
        "test_accuracy_std": _num(acc.std()),
        "test_accuracy_per_seed": _nums(acc),
        "curve": {
            "steps": raw["eval_steps"].tolist(),
            "test_accuracy_mean": _nums(raw["test_accuracy_curve"].mean(0)),
            "test_accuracy_per_seed": [_nums(c) for c in raw["test_accuracy_curve"]],
            "train_loss_mean": _nums(
                _window(np.where(finite, raw["loss"], np.nan), n_windows).mean(0)
            ),
        },
        "nonfinite_steps": int((~finite).sum()),
        "first_nonfinite_step": [int(np.argmax(~f)) if (~f).any() else None for f in finite],
        "histogram": {
            "edges": edges.tolist(),
            "first_layer_init": np.histogram(
                np.clip(raw["effective_init"][0], edges[0], edges[-1]), edges
            )[0].tolist(),
            "first_layer_final": np.histogram(
                np.clip(raw["effective"][0], edges[0], edges[-1]), edges
            )[0].tolist(),
            "first_layer_final_fraction_positive": _num(np.mean(raw["effective"][0] > 0)),
            "first_layer_final_mean_abs": _num(np.mean(np.abs(raw["effective"][0]))),
        },
    }
    if entry.config.variant == "plain":
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(finite, raw["grad_norm_m"] / raw["grad_norm_w"], np.nan)
    n_mod = raw["n_modded_entries"]
    # Once the loss is non-finite the parameters are NaN and "k changed" / "sign changed" are
    # true for every entry: count the diagnostics over the finite steps only.
    live = finite & np.isfinite(raw["eff_change"])
    wrapped, teeth, flips, eff = (
        np.where(live, raw[k].astype(float), np.nan)
        for k in ("wrapped", "tooth_changes", "m_sign_flips", "eff_change")
    )
    last = [int(np.flatnonzero(row)[-1]) if row.any() else 0 for row in live]
    wrapped_final = np.array([wrapped[i, t] for i, t in enumerate(last)])
    out["diagnostics"] = {
        "modded_entries": n_mod,
        "grad_ratio_median": _num(np.nanmedian(ratio)) if np.isfinite(ratio).any() else None,
        "grad_ratio_first_step": _num(np.nanmedian(ratio[:, 0])),
        "grad_ratio_curve": _nums(np.nanmedian(_window(ratio, n_windows, np.nanmedian), 0))
        if np.isfinite(ratio).any()
        else [None] * n_windows,
        "diagnostics_over_finite_steps_only": True,
        "wrapped_fraction_init": _num(raw["wrapped"][:, 0].mean()),
        "wrapped_fraction_final": _num(np.nanmean(wrapped_final)),
        "wrapped_fraction_curve": _nums(np.nanmean(_window(wrapped, n_windows), 0)),
        "tooth_changes_per_step": _num(np.nanmean(teeth)),
        "tooth_changes_fraction_per_step": _num(np.nanmean(teeth) / max(n_mod, 1)),
        "tooth_changes_curve": _nums(np.nanmean(_window(teeth, n_windows), 0)),
        "m_sign_flips_per_step": _num(np.nanmean(flips)),
        "m_sign_flips_curve": _nums(np.nanmean(_window(flips, n_windows), 0)),
        "effective_change_per_step_median": _num(np.nanmedian(eff))
        if np.isfinite(eff).any()
        else None,
        "effective_sign_equals_m_sign": _num(np.nanmean(raw["m_sign_agreement"])),
        "mean_abs_m_final": _num(np.nanmean(raw["m_abs_final"])),
    }
    return out


def run_study(
    dataset: str = "digits",
    *,
    seeds: Sequence[int] = (0, 1, 2),
    settings: TrainSettings | None = None,
    entries: Sequence[StudyEntry] | None = None,
    progress: Callable[[StudyEntry], None] | None = None,
) -> dict[str, Any]:
    """Train every entry on ``dataset`` over ``seeds``; return the JSON-ready results.

    ``progress(entry)`` is called after each entry (the command line drives a progress bar
    with it). Same arguments, same numbers: data split, initialisation and batches all derive
    from the seeds.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("`seeds` must name at least one seed.")
    settings = settings or TrainSettings()
    entries = list(entries) if entries is not None else default_entries()
    data = load_dataset(dataset)
    limit = math.sqrt(6.0 / (data.x_train.shape[1] + settings.width))
    edges = np.linspace(-3 * limit, 3 * limit, 61)
    runs: dict[str, Any] = {}
    started = time.perf_counter()
    cpu_started = time.process_time()
    for entry in entries:
        t0 = time.perf_counter()
        raw = train(entry.config, data, seeds, settings)
        runs[entry.key] = _summarise(entry, raw, edges)
        runs[entry.key]["wall_seconds"] = round(time.perf_counter() - t0, 2)
        if progress is not None:
            progress(entry)
    verdicts = {}
    for key, run in runs.items():
        if run["group"] == "baseline":
            continue
        opt = run["config"]["optimizer"]
        plain = runs.get(f"plain/{opt}")
        if plain is None or run["test_accuracy"] is None:
            continue
        gap = plain["test_accuracy"] - run["test_accuracy"]
        verdicts[key] = {"gap_to_plain": round(gap, 4), "within_2_points": bool(gap <= WITHIN)}
    return {
        "dataset": dataset,
        "n_train": len(data.y_train),
        "n_test": len(data.y_test),
        "seeds": seeds,
        "settings": dataclasses.asdict(settings),
        "learning_rates": LEARNING_RATES,
        "chance_accuracy": 1.0 / data.n_classes,
        "runs": runs,
        "verdicts": verdicts,
        "wall_seconds": round(time.perf_counter() - started, 1),
        # CPU time says more than wall time on a machine shared with other jobs
        "cpu_seconds": round(time.process_time() - cpu_started, 1),
    }
