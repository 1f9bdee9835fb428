"""Relative drops, replicate summaries and the ranking methods that pick a sweet spot on the
Pareto front. Pure functions over a DataFrame of trials."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from analysis.columns import SCORES
from analysis.pareto import DEFAULT_OBJECTIVES, Objectives, pareto_front


def relative_drops(df: pd.DataFrame, metrics: Sequence[str] = SCORES) -> pd.DataFrame:
    """Add ``<m>_drop``: the relative drop (raw - m) / raw from each row's ``raw_<m>``, as in
    the paper's Table 1 (positive = lower than raw)."""
    out = df.copy()
    for m in metrics:
        raw = out[f"raw_{m}"].astype(float)
        out[f"{m}_drop"] = (raw - out[m].astype(float)) / raw.where(raw != 0)
    return out


def replicate_summary(
    df: pd.DataFrame, by: Sequence[str], metrics: Sequence[str] = SCORES
) -> pd.DataFrame:
    """Mean and standard deviation (ddof=1; NaN for one seed) of each metric over the rows that
    share ``by`` (replicate seeds), with the number of seeds ``n``."""
    g = df.groupby(list(by), dropna=False)
    out = g[list(metrics)].agg(["mean", "std"])
    out.columns = [f"{m}_{s}" for m, s in out.columns]
    out["n"] = g.size()
    return out.reset_index()


class Choice(NamedTuple):
    """The sweet spot a ranking method picked."""

    method: str
    # The DataFrame index of the chosen row (a field named like tuple.index, which it hides).
    index: Any
    score: float
    B: float | None
    lam: float | None


def _normalised(df: pd.DataFrame, objectives: Objectives) -> np.ndarray:
    """Objectives scaled to [0, 1] over the rows given, 1 = best."""
    cols = []
    for name, d in objectives.items():
        v = df[name].to_numpy(dtype=float)
        v = v if d == "max" else -v  # higher is better from here on
        span = v.max() - v.min()
        cols.append((v - v.min()) / span if span > 0 else np.ones_like(v))
    return np.stack(cols, axis=1)


def _choice(method: str, df: pd.DataFrame, pos: int, score: float) -> Choice:
    row = df.iloc[pos]
    return Choice(
        method,
        df.index[pos],
        float(score),
        float(row["B"]) if "B" in df else None,
        float(row["lam"]) if "lam" in df else None,
    )


def rank_ideal_distance(
    df: pd.DataFrame,
    objectives: Objectives = DEFAULT_OBJECTIVES,
    weights: Sequence[float] | None = None,
) -> Choice:
    """The front row closest (Euclidean, min-max normalised over the front) to the ideal
    point, which has the best observed value of every objective."""
    front = df[pareto_front(df, objectives)]
    z = _normalised(front, objectives)
    w = np.ones(z.shape[1]) if weights is None else np.asarray(weights, dtype=float)
    dist = np.sqrt((w * (1 - z) ** 2).sum(axis=1))
    pos = int(np.argmin(dist))
    return _choice("ideal_distance", front, pos, dist[pos])


def rank_topsis(
    df: pd.DataFrame,
    objectives: Objectives = DEFAULT_OBJECTIVES,
    weights: Sequence[float] | None = None,
) -> Choice:
    """TOPSIS over the front: vector-normalised, weighted objectives; the row with the highest
    closeness d- / (d+ + d-) to the ideal (d+) versus the anti-ideal (d-) solution."""
    front = df[pareto_front(df, objectives)]
    x = front[list(objectives)].to_numpy(dtype=float)
    norm = np.sqrt((x**2).sum(axis=0))
    v = x / np.where(norm > 0, norm, 1)
    w = np.ones(v.shape[1]) / v.shape[1] if weights is None else np.asarray(weights, float)
    v = v * w
    is_max = np.array([d == "max" for d in objectives.values()])
    ideal = np.where(is_max, v.max(axis=0), v.min(axis=0))
    anti = np.where(is_max, v.min(axis=0), v.max(axis=0))
    d_plus = np.sqrt(((v - ideal) ** 2).sum(axis=1))
    d_minus = np.sqrt(((v - anti) ** 2).sum(axis=1))
    denom = d_plus + d_minus
    close = np.where(denom > 0, d_minus / np.where(denom > 0, denom, 1), 1.0)
    pos = int(np.argmax(close))
    return _choice("topsis", front, pos, close[pos])
