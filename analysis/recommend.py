"""A recommendation that survives seed noise: the configurations of a study (trials that differ
only in their seed), their mean and spread over seeds, the Pareto front and rankings of those
means, the configurations not distinguishable from the chosen one, and warnings when the
evidence is void. Pure functions over a DataFrame of trials."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.columns import COMPARED, FAMILY, KNOBS, KNOBS_SET, SCORES, SETTING
from analysis.pareto import DEFAULT_OBJECTIVES, Objectives
from analysis.ranking import Choice, rank_ideal_distance, rank_topsis

#: Config columns a search may vary besides the compared ones; with COMPARED (minus the seed)
#: they tell configurations apart.
SEARCHED = ("lr_anon", "lr_action", "lr_privacy", "w_action", "w_privacy")
#: How close to chance (Top-1) or to the attributes' prevalence (cMAP) the raw reference may
#: come before the report warns that the study measures nothing.
CHANCE_MARGIN = 0.05
#: How far a penalised trial's mean RMS on the test clips may exceed its B before the report
#: says the bound did not hold (the hinge is on training batches; the test clips differ a bit).
RMS_SLACK = 0.02


def knobs_of(value: object) -> list[str] | None:
    """The family fields a trial recorded as describing it (its ``knobs`` cell); None where it
    recorded none (a study from before families, where B and λ describe every row)."""
    if not isinstance(value, str):
        return None
    return [k for k in value.split(",") if k]


def has_knob(df: pd.DataFrame, knob: str) -> pd.Series:
    """Per row, whether ``knob`` describes it (every row, in records from before families)."""
    if KNOBS_SET not in df:
        return pd.Series(True, index=df.index)
    return df[KNOBS_SET].apply(lambda v: knob in (knobs_of(v) or [knob]))


def config_columns(df: pd.DataFrame) -> list[str]:
    """The columns that define a configuration: every compared or searched config column but
    the seed, and every family field that the trials' records name (``penalty_on`` among
    them: the pixel and the feature-based penalty at one B are two configurations)."""
    named = {k for v in df[KNOBS_SET] for k in knobs_of(v) or []} if KNOBS_SET in df else set()
    columns = dict.fromkeys((*COMPARED, *SEARCHED, *KNOBS, *sorted(named)))
    return [c for c in columns if c != "seed" and c in df]


def configurations(df: pd.DataFrame, metrics: Sequence[str] = (*SCORES, "rms")) -> pd.DataFrame:
    """One row per configuration: ``n`` seeds, ``<m>`` the mean and ``<m>_std`` the standard
    deviation (ddof=1, NaN for one seed) of each metric, the runs (``run_ids``) and the
    ``run_id`` of the seed closest to the mean (the one to download)."""
    keys = config_columns(df)
    metrics = [m for m in metrics if m in df]
    rows = []
    for values, g in df.groupby(keys, dropna=False, sort=True):
        values = values if isinstance(values, tuple) else (values,)
        row: dict[str, object] = dict(zip(keys, values, strict=True))
        row["n"] = len(g)
        for m in metrics:
            row[m] = float(g[m].mean())
            row[f"{m}_std"] = float(g[m].std()) if len(g) > 1 else float("nan")
        if "run_id" in g:
            dist = sum((g[m] - g[m].mean()) ** 2 for m in ("top1", "cmap") if m in g)
            row["run_id"] = str(g.loc[dist.idxmin(), "run_id"])
            row["run_ids"] = " ".join(map(str, g["run_id"]))
        if "fixed_anonymizer" in g:
            row["fixed_anonymizer"] = bool(g["fixed_anonymizer"].iloc[0])
        for col in (FAMILY, KNOBS_SET, SETTING):  # one configuration: one anonymizer
            if col in g:
                row[col] = str(g[col].iloc[0])
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Recommendation:
    """The chosen configuration (by ideal distance over the front of means), the TOPSIS choice,
    and the configurations whose mean ± std overlaps the chosen one's in every objective."""

    chosen: Choice
    topsis: Choice
    run_id: str
    indistinct: list[int]  # rows of the configurations table
    seeds: int  # the fewest seeds of any configuration


def _interval(row: pd.Series, m: str) -> tuple[float, float]:
    std = row.get(f"{m}_std", float("nan"))
    std = 0.0 if pd.isna(std) else float(std)
    return float(row[m]) - std, float(row[m]) + std


def indistinguishable(
    configs: pd.DataFrame, chosen: int, objectives: Objectives = DEFAULT_OBJECTIVES
) -> list[int]:
    """Rows (other than ``chosen``) whose interval mean ± std overlaps the chosen row's in
    every objective: the seeds do not tell them apart."""
    c = configs.loc[chosen]
    out = []
    for i, row in configs.iterrows():
        if i == chosen:
            continue
        if all(
            _interval(row, m)[0] <= _interval(c, m)[1]
            and _interval(c, m)[0] <= _interval(row, m)[1]
            for m in objectives
        ):
            out.append(int(i))
    return out


def recommend(configs: pd.DataFrame, objectives: Objectives = DEFAULT_OBJECTIVES) -> Recommendation:
    """Rank the front of the configuration means; name what the seeds cannot tell apart."""
    chosen = rank_ideal_distance(configs, objectives)
    topsis = rank_topsis(configs, objectives)
    run_id = str(configs.loc[chosen.index, "run_id"]) if "run_id" in configs else ""
    return Recommendation(
        chosen=chosen,
        topsis=topsis,
        run_id=run_id,
        indistinct=indistinguishable(configs, int(chosen.index), objectives),
        seeds=int(configs["n"].min()) if "n" in configs else 1,
    )


def sanity_warnings(
    trials: pd.DataFrame, chance: Mapping[str, float], margin: float = CHANCE_MARGIN
) -> list[str]:
    """Why the evidence may be void: the raw reference within ``margin`` of chance Top-1 or of
    the attributes' prevalence (the cMAP of a random scorer), or every trial scoring the same.
    ``chance`` holds ``top1`` and ``cmap`` when the study recorded them."""
    out = []
    raw_top1 = trials["raw_top1"].mean() if "raw_top1" in trials else float("nan")
    raw_cmap = trials["raw_cmap"].mean() if "raw_cmap" in trials else float("nan")
    if "top1" in chance and pd.notna(raw_top1) and raw_top1 - chance["top1"] < margin:
        out.append(
            f"Raw Top-1 {raw_top1:.3f} is within {margin} of chance ({chance['top1']:.3f}): the "
            "action model learns nothing even from raw data, so no trial's Top-1 means anything."
        )
    if "cmap" in chance and pd.notna(raw_cmap) and raw_cmap - chance["cmap"] < margin:
        out.append(
            f"Raw cMAP {raw_cmap:.3f} is within {margin} of the attributes' prevalence "
            f"({chance['cmap']:.3f}, a random scorer's cMAP): privacy cannot be seen even in raw "
            "data, so no trial's cMAP shows protection."
        )
    scores = trials[[m for m in ("top1", "cmap") if m in trials]].to_numpy(dtype=float)
    if len(trials) > 1 and np.allclose(scores, scores[0], rtol=0, atol=1e-9):
        out.append(
            f"All {len(trials)} trials score the same Top-1 and cMAP: B and λ changed nothing "
            "that the evaluation sees."
        )
    return out + penalty_warnings(trials)


def _penalised(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials whose knobs are B and λ (the penalty's) and whose penalty is on (λ > 0 and
    B < 1)."""
    if not {"B", "lam", "rms"} <= set(trials):
        return trials.iloc[:0]
    own = trials[has_knob(trials, "B")]
    if "fixed_anonymizer" in own:
        own = own[~own["fixed_anonymizer"].eq(True)]
    return own[(own["lam"] > 0) & (own["B"] < 1)]


def bounded_distance(trials: pd.DataFrame) -> pd.Series:
    """What each trial's B bounds: its feature distance on the test clips where it recorded
    one (the feature-based penalty does), its mean RMS otherwise."""
    if "feature_distance" not in trials:
        return trials["rms"]
    return trials["feature_distance"].where(trials["feature_distance"].notna(), trials["rms"])


def unbound(trials: pd.DataFrame, slack: float = RMS_SLACK) -> pd.DataFrame:
    """The penalised trials whose bounded distance (:func:`bounded_distance`) exceeds B +
    ``slack``: the bound did not hold, so it is not what shaped their result."""
    p = _penalised(trials)
    return p[bounded_distance(p) > p["B"] + slack] if len(p) else p


def identical_across_b(trials: pd.DataFrame) -> list[list[float]]:
    """Sets of bounds B that gave identical results (Top-1, cMAP and RMS) in penalised trials
    that differ only in B: the hinge was active on every sample, so B changed nothing."""
    p = _penalised(trials)
    keys = [c for c in config_columns(p) if c != "B"] + (["seed"] if "seed" in p else [])
    cols = [m for m in ("top1", "cmap", "rms") if m in p]
    out: list[list[float]] = []
    if len(p) < 2:
        return out
    for _, g in p.groupby(keys, dropna=False, sort=True):
        for _, same in g.groupby(cols, sort=True):
            bs = sorted({float(b) for b in same["B"]})
            if len(bs) > 1 and bs not in out:
                out.append(bs)
    return out


def penalty_warnings(trials: pd.DataFrame, slack: float = RMS_SLACK) -> list[str]:
    """Why B may not be what shaped the results: penalised trials that differ only in B and
    scored identically, or whose mean RMS exceeds their B by more than ``slack``."""
    out = []
    for bs in identical_across_b(trials):
        out.append(
            "The penalty did not bind: trials that differ only in B ("
            + ", ".join(f"{b:g}" for b in bs)
            + ") gave identical results, so B changed nothing. Raise λ until it does."
        )
    over = unbound(trials, slack)
    if len(over):
        worst = (bounded_distance(over) - over["B"]).max()
        over_bs = ", ".join(f"{b:g}" for b in sorted(set(over["B"].astype(float))))
        lams = ", ".join(f"{v:g}" for v in sorted(set(over["lam"].astype(float))))
        out.append(
            f"The penalty did not bind in {len(over)} of {len(_penalised(trials))} penalised "
            f"trials: their mean RMS on the test clips (their feature distance, under the "
            f"feature-based penalty) exceeds B + {slack:g} (by up to "
            f"{worst:.3f}; B in {over_bs}; λ in {lams}). The bound was not what shaped those results; "
            "a larger λ holds it."
        )
    return out
