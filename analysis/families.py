"""Every anonymizer family on one front: per family, its own Pareto front, hypervolume and
recommended operating points (both ranking methods), and which family owns which part of the
overall front. Pure functions over the configurations table (one row per configuration, with a
``family`` column)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import markdown
from analysis.columns import FAMILY
from analysis.pareto import hypervolume, pareto_front
from analysis.ranking import rank_ideal_distance, rank_topsis

#: How far below raw cMAP a point must be to count as protecting privacy (the note's target).
PRIVACY_MARGIN = 0.15


def families_of(configs: pd.DataFrame) -> list[str]:
    """The families present, in the order their first rows come (the study's records name
    them; the analysis keeps no list of its own)."""
    return [str(f) for f in configs[FAMILY].dropna().unique()] if FAMILY in configs else []


@dataclass(frozen=True)
class FamilySummary:
    """One family's share of the comparison."""

    family: str
    configurations: int
    #: Hypervolume of the family's configuration means (the study's reference).
    hypervolume: float
    #: Rows of the configurations table: the family's front, and its picks by ideal distance
    #: and by TOPSIS (over its own front).
    front: list[int]
    ideal: int
    topsis: int
    #: Configurations of the family on the overall front.
    on_overall_front: int
    #: The best Top-1 among the family's configurations whose cMAP is at most raw - margin
    #: (NaN when none reaches it, or when there is no raw reference).
    best_top1_private: float


def summarise(
    configs: pd.DataFrame,
    reference: Mapping[str, float],
    raw_cmap: float | None,
    margin: float = PRIVACY_MARGIN,
) -> list[FamilySummary]:
    """Per family: front, hypervolume, recommended points and the best Top-1 at cMAP <=
    ``raw_cmap`` - ``margin``. ``configs`` carries ``on_front`` (the overall front)."""
    out = []
    for fam in families_of(configs):
        g = configs[configs[FAMILY] == fam]
        front = g[pareto_front(g)]
        private = g[g["cmap"] <= raw_cmap - margin] if raw_cmap is not None else g.iloc[:0]
        out.append(
            FamilySummary(
                family=fam,
                configurations=len(g),
                hypervolume=hypervolume(g, reference=reference),
                front=[int(i) for i in front.index],
                ideal=int(rank_ideal_distance(g).index),
                topsis=int(rank_topsis(g).index),
                on_overall_front=int(g["on_front"].sum()) if "on_front" in g else 0,
                best_top1_private=float(private["top1"].max()) if len(private) else float("nan"),
            )
        )
    return out


def front_owners(configs: pd.DataFrame) -> pd.DataFrame:
    """The overall front, from the highest Top-1 down: each point's family, Top-1 and cMAP, so
    that a reader sees which family owns which stretch of the front."""
    front = configs[configs["on_front"]] if "on_front" in configs else configs.iloc[:0]
    cols = [c for c in (FAMILY, "anonymizer", "top1", "cmap") if c in front]
    return front.sort_values("top1", ascending=False)[cols].reset_index()


def stretches(owners: pd.DataFrame) -> list[tuple[str, float, float]]:
    """Consecutive runs of one family along :func:`front_owners`: (family, highest Top-1,
    lowest Top-1) of each run."""
    out: list[tuple[str, float, float]] = []
    for fam, top1 in zip(owners[FAMILY], owners["top1"], strict=True):
        if out and out[-1][0] == fam:
            out[-1] = (fam, out[-1][1], float(top1))
        else:
            out.append((str(fam), float(top1), float(top1)))
    return out


def families_markdown(
    configs: pd.DataFrame,
    summaries: list[FamilySummary],
    label: object,
    raw_cmap: float | None,
    margin: float = PRIVACY_MARGIN,
) -> list[str]:
    """The families section of summary.md. ``label(configs, row)`` names a configuration."""
    assert callable(label)
    target = f"cMAP ≤ raw − {margin:g}" + (f" = {raw_cmap - margin:.4f}" if raw_cmap else "")
    header = ["family", "configurations", "hypervolume", "on the overall front",
              f"best Top-1 at {target}", "pick (ideal distance)", "pick (TOPSIS)"]  # fmt: skip
    rows = [
        [
            s.family,
            s.configurations,
            f"{s.hypervolume:.5f}",
            s.on_overall_front,
            "none reaches it" if np.isnan(s.best_top1_private) else f"{s.best_top1_private:.4f}",
            label(configs, s.ideal),
            label(configs, s.topsis),
        ]
        for s in summaries
    ]
    lines = ["## Anonymizer families", "", *markdown.table(header, rows)]
    runs = stretches(front_owners(configs))
    if runs:
        lines += ["", "The overall front, from the highest Top-1 down:", ""]
        lines += [
            f"- {fam}: Top-1 {hi:.4f}" + ("" if hi == lo else f" to {lo:.4f}")
            for fam, hi, lo in runs
        ]
    return lines + [""]
