"""The Pareto front and its hypervolume over a DataFrame of trials. Pure functions."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

Objectives = Mapping[str, str]
DEFAULT_OBJECTIVES: dict[str, str] = {"top1": "max", "cmap": "min"}


def _as_minimisation(df: pd.DataFrame, objectives: Objectives) -> np.ndarray:
    """The objective columns as an (n, k) array in which smaller is better."""
    if not objectives:
        raise ValueError("at least one objective is needed")
    cols = []
    for name, direction in objectives.items():
        if name not in df.columns:
            raise KeyError(f"objective {name!r} is not a column; columns: {list(df.columns)}")
        if direction not in ("max", "min"):
            raise ValueError(
                f"objective {name!r}: direction must be 'max' or 'min', got {direction!r}"
            )
        v = df[name].to_numpy(dtype=float)
        cols.append(-v if direction == "max" else v)
    out = np.stack(cols, axis=1)
    if np.isnan(out).any():
        raise ValueError("objective columns contain NaN; drop unfinished trials first")
    return out


def pareto_front(df: pd.DataFrame, objectives: Objectives = DEFAULT_OBJECTIVES) -> np.ndarray:
    """Boolean mask of the rows on the Pareto front.

    A row is on the front iff no other row is at least as good in every objective and strictly
    better in one. Duplicated rows therefore share their fate: both on the front or both off.
    """
    x = _as_minimisation(df, objectives)
    if len(x) == 0:
        return np.zeros(0, dtype=bool)
    no_worse = (x[:, None, :] <= x[None, :, :]).all(axis=2)  # [j, i]: j at least as good as i
    better = (x[:, None, :] < x[None, :, :]).any(axis=2)  # [j, i]: j strictly better somewhere
    dominated = np.asarray((no_worse & better).any(axis=0), dtype=bool)
    return ~dominated


#: The fixed reference of the study's objectives: the worst value each can take (Top-1 = 0,
#: cMAP = 1), so that hypervolumes of different studies compare.
FIXED_REFERENCE: dict[str, float] = {"top1": 0.0, "cmap": 1.0}


def default_reference(
    df: pd.DataFrame, objectives: Objectives = DEFAULT_OBJECTIVES
) -> dict[str, float]:
    """The default reference point: :data:`FIXED_REFERENCE` for Top-1 and cMAP, the worst
    observed value for any other objective."""
    return {
        name: FIXED_REFERENCE[name]
        if name in FIXED_REFERENCE
        else float(df[name].min() if d == "max" else df[name].max())
        for name, d in objectives.items()
    }


def hypervolume(
    df: pd.DataFrame,
    objectives: Objectives = DEFAULT_OBJECTIVES,
    reference: Mapping[str, float] | None = None,
) -> float:
    """Volume of objective space dominated by the trials and bounded by ``reference``.

    ``reference`` defaults to :func:`default_reference` (Top-1 = 0, cMAP = 1, so that
    studies compare; the worst observed value of any other objective). Points not strictly better than the reference in every objective add nothing. Exact, by
    recursive slicing (fine for the few objectives and hundreds of trials of a study).
    """
    if len(df) == 0:
        return 0.0
    ref = dict(reference) if reference is not None else default_reference(df, objectives)
    x = _as_minimisation(df, objectives)
    r = np.array([-ref[n] if d == "max" else ref[n] for n, d in objectives.items()], dtype=float)
    x = x[(x < r).all(axis=1)]
    return float(_hv(x, r))


def _hv(x: np.ndarray, r: np.ndarray) -> float:
    if len(x) == 0:
        return 0.0
    if x.shape[1] == 1:
        return float(r[0] - x[:, 0].min())
    # Slice along the last objective: between consecutive levels, the (k-1)-D volume of the
    # points at or below the level.
    levels = np.unique(x[:, -1])
    total = 0.0
    for i, level in enumerate(levels):
        upper = levels[i + 1] if i + 1 < len(levels) else r[-1]
        total += _hv(x[x[:, -1] <= level][:, :-1], r[:-1]) * (upper - level)
    return total


def hypervolume_curve(
    df: pd.DataFrame,
    objectives: Objectives = DEFAULT_OBJECTIVES,
    reference: Mapping[str, float] | None = None,
    order: str | None = None,
) -> pd.Series:
    """Hypervolume of the first n trials, n = 1..N, in ``order`` (a column) or row order, with
    one fixed reference (default: :func:`default_reference`)."""
    ref = dict(reference) if reference is not None else default_reference(df, objectives)
    d = df.sort_values(order) if order else df
    return pd.Series(
        [hypervolume(d.iloc[: n + 1], objectives, ref) for n in range(len(d))],
        index=range(1, len(d) + 1),
        name="hypervolume",
    )
