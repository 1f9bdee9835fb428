"""Whether a benchmark shows the trade-off the method exists for: the acceptance checks of the
quality benchmark (``python -m study.bench --quality``), as pure functions of its records.

A record is one row per (seed, point): ``point`` is ``"raw"`` for the raw reference or
``"B=<B> lam=<lam>"`` for a trial, with the columns ``seed``, ``B``, ``lam``, ``top1``,
``cmap``, ``f1``, ``rms`` and ``seconds``. Every figure is a mean (or std) over seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

#: The scores summarised per point.
SUMMARISED = ("top1", "cmap", "f1", "rms", "seconds")
#: Slack allowed when checking that a score does not increase with B.
MONOTONE_SLACK = 0.02


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
    """Mean and (sample) std over seeds of each score, one row per point, raw first, then the
    trials by lambda and B."""
    cols = [c for c in SUMMARISED if c in records]
    g = records.groupby("point", sort=False)
    out = g[cols].agg(["mean", "std"])
    out.columns = [f"{c}_{s}" for c, s in out.columns]
    out["seeds"] = g.size()
    out = out.join(g[["B", "lam"]].first())
    out["_trial"] = out.index != "raw"
    return out.sort_values(["_trial", "lam", "B"]).drop(columns="_trial")


def _mean(summary: pd.DataFrame, point: str, col: str) -> float:
    return float(summary.loc[point, f"{col}_mean"]) if point in summary.index else float("nan")


def _std(summary: pd.DataFrame, point: str, col: str) -> float:
    return float(summary.loc[point, f"{col}_std"]) if point in summary.index else float("nan")


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
    lam: float = 1.0,
    lam_off: float = 0.0,
    lam_bound: float = 0.1,
    sweet_bounds: Sequence[float] = (0.05, 0.1),
    trial_seconds: float = 45.0,
) -> list[Check]:
    """The acceptance checks of issue 11 on a :func:`summarise` table."""
    out: list[Check] = []
    raw_top1, raw_cmap = _mean(summary, "raw", "top1"), _mean(summary, "raw", "cmap")
    out.append(Check("raw Top-1", raw_top1, ">= 0.90", _ge(raw_top1, 0.90)))
    out.append(Check("raw cMAP", raw_cmap, ">= 0.85", _ge(raw_cmap, 0.85)))
    s = _std(summary, "raw", "top1")
    out.append(Check("std of raw Top-1 over seeds", s, "<= 0.02", _le(s, 0.02)))
    on = point_name(lam_bound, lam)
    s = _std(summary, on, "top1")
    out.append(Check(f"std of Top-1 at {on}", s, "<= 0.03", _le(s, 0.03)))
    gain = _mean(summary, on, "top1") - _mean(summary, point_name(lam_bound, lam_off), "top1")
    out.append(
        Check(
            f"Top-1(lam={lam:g}) - Top-1(lam={lam_off:g}) at B={lam_bound:g}",
            gain,
            ">= 0.15",
            _ge(gain, 0.15),
        )
    )
    bs = sorted(bounds)
    for col, drop in (("top1", 0.15), ("cmap", 0.20)):
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
    best = float("nan")
    found = False
    for b in sweet_bounds:
        p = point_name(b, lam)
        t, c = _mean(summary, p, "top1"), _mean(summary, p, "cmap")
        if t == t and c == c:
            margin = min(t - (raw_top1 - 0.05), (raw_cmap - 0.15) - c)
            best = margin if best != best else max(best, margin)
            found = found or margin >= 0
    out.append(
        Check(
            "sweet spot margin: min(Top-1 - (raw - 0.05), (raw - 0.15) - cMAP), best of B in "
            + ",".join(f"{b:g}" for b in sweet_bounds),
            best,
            ">= 0",
            found,
        )
    )
    trials = summary[summary.index != "raw"]
    sec = float(trials["seconds_mean"].mean()) if len(trials) else float("nan")
    out.append(Check("mean trial seconds (shared stages excluded)", sec, "<= 45", _le(sec, 45)))
    return out
