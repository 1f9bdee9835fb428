"""Does a cheap early signal predict a trial's final scores? Pure functions over a DataFrame of
trials that carries the signals (e.g. the game's first-epoch f_T accuracy) and the final
metrics."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def spearman(a: pd.Series, b: pd.Series) -> float:
    """Spearman's rank correlation of two columns (average ranks for ties); NaN when either is
    constant, where no ranking exists to predict."""
    ra, rb = a.rank(method="average"), b.rank(method="average")
    if ra.nunique() < 2 or rb.nunique() < 2:
        return float("nan")
    return float(ra.corr(rb))


def early_signal_table(
    df: pd.DataFrame, signals: Sequence[str], targets: Sequence[str] = ("top1", "cmap")
) -> pd.DataFrame:
    """One row per signal, one column per target: the Spearman correlation over the trials."""
    return pd.DataFrame(
        {t: [spearman(df[s], df[t]) for s in signals] for t in targets},
        index=pd.Index(list(signals), name="signal"),
    )


def predictive_signals(table: pd.DataFrame, threshold: float = 0.8) -> list[str]:
    """The signals whose |Spearman| reaches ``threshold`` for every target."""
    ok = table.abs().ge(threshold).all(axis=1)
    return [str(s) for s in table.index[ok]]
