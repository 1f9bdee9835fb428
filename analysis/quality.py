"""Whether a benchmark shows the trade-off the method exists for: the acceptance checks of the
quality benchmark (``python -m study.bench --quality``), as pure functions of its records.

A record is one row per (seed, point): ``point`` is ``"raw"`` for the raw reference, ``"init"``
for f_A before the game (the init point), or ``"B=<B> lam=<lam>"`` for a trial, with the columns
``seed``, ``B``, ``lam``, ``top1``, ``cmap``, ``f1``, ``rms`` and ``seconds`` (and, for trials,
``rms_first`` and ``rms_last``: the game's first and last epoch's RMS on its training batches).
Every figure is a mean (or std) over seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.pareto import FIXED_REFERENCE, hypervolume

#: The scores summarised per point.
SUMMARISED = ("top1", "cmap", "f1", "rms", "feature_distance", "rms_first", "rms_last", "seconds")
#: Slack allowed when checking that a score does not increase with B.
MONOTONE_SLACK = 0.02
#: How far a trial's mean RMS on the test clips may exceed its B at the binding λ.
RMS_SLACK = 0.02
#: The largest std over seeds of Top-1 and of cMAP at any point.
MAX_STD = 0.03
#: The points that are not trials.
REFERENCES = ("raw", "init")


@dataclass(frozen=True)
class Check:
    """One acceptance check: what it measures, the figure, the target and whether it holds."""

    name: str
    value: float
    target: str
    ok: bool

    def row(self) -> dict[str, object]:
        value = None if self.value != self.value else self.value  # NaN: not measured
        return {"check": self.name, "value": value, "target": self.target, "ok": self.ok}


def point_name(B: float, lam: float) -> str:
    return f"B={B:g} lam={lam:g}"


def summarise(records: pd.DataFrame) -> pd.DataFrame:
    """Mean and (sample) std over seeds of each score, one row per point: raw, then the init
    point, then the trials by lambda and B."""
    cols = [c for c in SUMMARISED if c in records]
    g = records.groupby("point", sort=False)
    out = g[cols].agg(["mean", "std"])
    out.columns = [f"{c}_{s}" for c, s in out.columns]
    out["seeds"] = g.size()
    out = out.join(g[["B", "lam"]].first())
    out["_order"] = [REFERENCES.index(p) if p in REFERENCES else len(REFERENCES) for p in out.index]
    return out.sort_values(["_order", "lam", "B"]).drop(columns="_order")


def attribute_ap(records: pd.DataFrame, attributes: Sequence[str]) -> pd.DataFrame:
    """The mean over seeds of each attribute's AP, one row per point (records with an ``ap``
    list per row, in ``attributes`` order)."""
    rows = records.dropna(subset=["ap"]) if "ap" in records else records.iloc[:0]
    wide = pd.DataFrame(rows["ap"].tolist(), columns=list(attributes), index=rows.index)
    wide["point"] = rows["point"]
    means = wide.groupby("point", sort=False).mean()
    return means


def _mean(summary: pd.DataFrame, point: str, col: str) -> float:
    return float(summary.loc[point, f"{col}_mean"]) if point in summary.index else float("nan")


def _std(summary: pd.DataFrame, point: str, col: str) -> float:
    if point not in summary.index:
        return float("nan")
    v = float(summary.loc[point, f"{col}_std"])
    return 0.0 if v != v and summary.loc[point, "seeds"] == 1 else v


def _ge(v: float, t: float) -> bool:
    return bool(v == v and v >= t)


def _le(v: float, t: float) -> bool:
    return bool(v == v and v <= t)


def largest_rise(values: Sequence[float]) -> float:
    """The largest increase from one value to any later one (0 when the sequence never rises):
    how far a score that should not increase with B does increase."""
    worst = 0.0
    for i, a in enumerate(values):
        for b in values[i + 1 :]:
            worst = max(worst, b - a)
    return worst


def checks(
    summary: pd.DataFrame,
    *,
    bounds: Sequence[float],
    lam: float,
    lam_off: float = 0.0,
    lam_bound: float = 0.1,
    trial_seconds: float = 45.0,
    bounded: str = "rms",
) -> list[Check]:
    """The acceptance checks of the benchmark (issue 26) on a :func:`summarise` table:
    ``bounds`` is the B sweep at the binding ``lam``; the λ ablation compares ``lam`` with
    ``lam_off`` at B = ``lam_bound``. ``bounded``: the column that B bounds (``rms``, or
    ``feature_distance`` for the feature-based penalty)."""
    out: list[Check] = []
    raw_top1, raw_cmap = _mean(summary, "raw", "top1"), _mean(summary, "raw", "cmap")

    init_rms = _mean(summary, "init", "rms")
    out.append(Check("init point RMS", init_rms, "<= 0.005", _le(init_rms, 0.005)))
    gap = max(
        abs(_mean(summary, "init", "top1") - raw_top1),
        abs(_mean(summary, "init", "cmap") - raw_cmap),
    )
    out.append(Check("init point: largest |score - raw| (Top-1, cMAP)", gap, "<= 0.01",
                     _le(gap, 0.01)))  # fmt: skip
    out.append(Check("raw Top-1", raw_top1, ">= 0.90", _ge(raw_top1, 0.90)))
    out.append(Check("raw cMAP", raw_cmap, ">= 0.85", _ge(raw_cmap, 0.85)))

    on, off = point_name(lam_bound, lam), point_name(lam_bound, lam_off)
    gain = _mean(summary, on, "top1") - _mean(summary, off, "top1")
    spread = max(_std(summary, on, "top1"), _std(summary, off, "top1"))
    out.append(
        Check(
            f"Top-1(lam={lam:g}) - Top-1(lam={lam_off:g}) at B={lam_bound:g}",
            gain,
            ">= 0.10",
            _ge(gain, 0.10),
        )
    )
    out.append(
        Check(
            f"that gain over twice the larger std ({2 * spread:.3f})",
            gain - 2 * spread,
            "> 0",
            bool(gain == gain and spread == spread and gain > 2 * spread),
        )
    )

    bs = sorted(bounds)
    over = max((_mean(summary, point_name(b, lam), bounded) - b for b in bs), default=float("nan"))
    what = "RMS" if bounded == "rms" else bounded.replace("_", " ")
    out.append(
        Check(
            f"largest mean {what} - B at lam={lam:g}", over, f"<= {RMS_SLACK}", _le(over, RMS_SLACK)
        )
    )
    for col, drop in (("top1", 0.08), ("cmap", 0.10)):
        series = [_mean(summary, point_name(b, lam), col) for b in bs]
        rise = largest_rise(series)
        out.append(
            Check(
                f"largest rise of {col} as B grows (lam={lam:g})",
                rise,
                f"<= {MONOTONE_SLACK}",
                _le(rise, MONOTONE_SLACK),
            )
        )
        d = series[0] - series[-1]
        out.append(
            Check(f"{col}(B={bs[0]:g}) - {col}(B={bs[-1]:g})", d, f">= {drop}", _ge(d, drop))
        )

    margins = [
        min(
            _mean(summary, point_name(b, lam), "top1") - (raw_top1 - 0.02),
            (raw_cmap - 0.05) - _mean(summary, point_name(b, lam), "cmap"),
        )
        for b in bs
    ]
    margins = [m for m in margins if m == m]
    best = max(margins) if margins else float("nan")
    out.append(
        Check(
            "sweet spot margin: best over B of min(Top-1 - (raw - 0.02), (raw - 0.05) - cMAP)",
            best,
            ">= 0",
            _ge(best, 0.0),
        )
    )

    stds = [_std(summary, p, c) for p in summary.index for c in ("top1", "cmap")]
    stds = [s for s in stds if s == s]
    worst = max(stds) if stds else float("nan")
    out.append(Check("largest std over seeds (Top-1, cMAP, any point)", worst, f"<= {MAX_STD}",
                     _le(worst, MAX_STD) and bool(summary["seeds"].min() >= 3)))  # fmt: skip
    trials = summary[~summary.index.isin(REFERENCES)]
    sec = float(trials["seconds_mean"].mean()) if len(trials) else float("nan")
    out.append(
        Check(
            "mean trial seconds (shared stages excluded)",
            sec,
            f"<= {trial_seconds:g}",
            _le(sec, trial_seconds),
        )
    )
    return out


@dataclass(frozen=True)
class SweepVolume:
    """The hypervolume of a B sweep (fixed reference Top-1 = 0, cMAP = 1): of the front of
    the points' seed means, and of each seed's own front (mean and std over seeds)."""

    of_means: float
    per_seed_mean: float
    per_seed_std: float
    seeds: int

    def row(self) -> dict[str, float]:
        return {
            "of_means": self.of_means,
            "per_seed_mean": self.per_seed_mean,
            "per_seed_std": self.per_seed_std,
            "seeds": self.seeds,
        }


def sweep_hypervolume(records: pd.DataFrame, bounds: Sequence[float], lam: float) -> SweepVolume:
    """:class:`SweepVolume` of the points B in ``bounds`` at ``lam`` of the bench's records:
    what two benches (the pixel and the feature-based penalty) compare."""
    names = {point_name(b, lam) for b in bounds}
    rows = records[records["point"].isin(names)] if "point" in records else records.iloc[:0]
    if len(rows) == 0:
        return SweepVolume(float("nan"), float("nan"), float("nan"), 0)
    means = rows.groupby("point")[["top1", "cmap"]].mean()
    per_seed = [hypervolume(g, reference=FIXED_REFERENCE) for _, g in rows.groupby("seed")]
    std = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else float("nan")
    return SweepVolume(
        hypervolume(means, reference=FIXED_REFERENCE), float(np.mean(per_seed)), std, len(per_seed)
    )
