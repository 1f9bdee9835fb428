"""The report's analysis, pure: from the trials (a DataFrame) to :class:`ReportData`, the typed
result that the tables and the plots take (:mod:`analysis.render` draws it, and computes
nothing), and the labels of a configuration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from analysis.columns import FAMILY, KNOBS_SET, SCORES, SETTING
from analysis.families import FamilySummary, families_of, summarise
from analysis.pareto import default_reference, hypervolume, hypervolume_curve, pareto_front
from analysis.ranking import relative_drops
from analysis.recommend import (
    Recommendation,
    config_columns,
    configurations,
    has_knob,
    knobs_of,
    recommend,
    sanity_warnings,
)


@dataclass(frozen=True)
class BCurve:
    """The trials of one penalty family at its sweep λ, for the metrics against B."""

    family: str  # '' when the study ran one penalty family
    lam: float
    trials: pd.DataFrame
    #: B bounds pixels (the calibration's edit costs are on its axis); False: another space.
    pixels: bool


@dataclass
class ReportData:
    """Everything the report shows, computed once from the trials."""

    trials: pd.DataFrame  # finished trials, with on_front (per trial) and relative drops
    configs: pd.DataFrame  # one row per configuration: mean and std over seeds, on_front
    raw: tuple[float, float] | None
    rec: Recommendation
    hypervolume: float
    reference: dict[str, float]
    warnings: list[str]
    #: Per anonymizer family (when the study ran more than one): front, HV, picks.
    families: list[FamilySummary] = field(default_factory=list)
    #: The init point (f_A before the game: Top-1, cMAP, RMS), when the game trained an f_A.
    init: tuple[float, float, float] | None = None
    #: The penalty method's trials (those with B among their knobs), for the B and λ curves.
    learned: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: The curves against B, one per penalty family; the B of the λ ablation (None: none).
    b_curves: list[BCurve] = field(default_factory=list)
    ablation_bound: float | None = None
    #: The front's hypervolume after each trial, in the order they started.
    hypervolume_curve: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))


def analyse(
    df: pd.DataFrame,
    chance: Mapping[str, float] | None = None,
    reference: Mapping[str, float] | None = None,
) -> ReportData:
    """Pure: the configurations (means over seeds), their front, the recommendation, the
    hypervolume of the means (``reference``: default Top-1 = 0, cMAP = 1) and the sanity
    warnings (``chance``: the chance levels the study recorded)."""
    done = df.dropna(subset=["top1", "cmap"]).copy()
    if len(done) == 0:
        raise ValueError("no finished trial with top1 and cmap to analyse")
    done["on_front"] = pareto_front(done)
    done = relative_drops(done)
    raw = (
        (float(done["raw_top1"].mean()), float(done["raw_cmap"].mean()))
        if "raw_top1" in done and done["raw_top1"].notna().any()
        else None
    )
    init = (
        tuple(float(done[f"init_{m}"].mean()) for m in ("top1", "cmap", "rms"))
        if "init_top1" in done and done["init_top1"].notna().any()
        else None
    )
    drops = [f"{m}_drop" for m in SCORES]
    configs = configurations(done, metrics=(*SCORES, "rms", *drops))
    configs["on_front"] = pareto_front(configs)
    ref = dict(reference) if reference is not None else default_reference(configs)
    several = FAMILY in configs and len(families_of(configs)) > 1
    fixed = done["fixed_anonymizer"].eq(True) if "fixed_anonymizer" in done else None
    if KNOBS_SET in done:
        learned = done[has_knob(done, "B")]
    else:
        learned = done[~fixed] if fixed is not None else done
    order = "start_time" if "start_time" in done else None
    return ReportData(
        trials=done,
        configs=configs,
        raw=raw,
        rec=recommend(configs),
        hypervolume=hypervolume(configs, reference=ref),
        reference=ref,
        warnings=sanity_warnings(done, chance or {}),
        families=summarise(configs, ref, raw[1] if raw else None) if several else [],
        init=init,  # type: ignore[arg-type]
        learned=learned,
        b_curves=b_curves(learned),
        ablation_bound=ablation_bound(learned),
        hypervolume_curve=hypervolume_curve(done, reference=ref, order=order),
    )


def only_family(df: pd.DataFrame, family: str) -> pd.DataFrame:
    """The trials of one anonymizer family (``--family``); an unknown family is an error that
    lists those the study ran."""
    present = families_of(df) if FAMILY in df else []
    if family not in present:
        raise ValueError(
            f"--family {family}: the study ran no trial of that family; its families: "
            + (", ".join(present) or "none recorded (a study from before families)")
        )
    return df[df[FAMILY] == family]


def pm(row: pd.Series, metric: str) -> str:
    mean, std = row[metric], row.get(f"{metric}_std", float("nan"))
    return f"{mean:.4f}" + ("" if pd.isna(std) else f" ± {std:.4f}")


def row_knobs(row: pd.Series) -> list[str] | None:
    return knobs_of(row[KNOBS_SET]) if KNOBS_SET in row else None


def study_knobs(configs: pd.DataFrame) -> set[str]:
    """Every family field that describes some row of ``configs``."""
    if KNOBS_SET not in configs:
        return set()
    return {k for v in configs[KNOBS_SET] for k in knobs_of(v) or []}


def penalty_row(row: pd.Series) -> bool:
    knobs = row_knobs(row)
    return knobs is None or "B" in knobs


def setting(configs: pd.DataFrame, i: object) -> str:
    """A family's knobs in words as the study recorded them (``anonymizer.setting``), or for
    records without it the :func:`label` of the row less its B and λ (``penalty_on =
    action_features``); ''."""
    row = configs.loc[i]
    if SETTING in row and isinstance(row[SETTING], str) and row[SETTING]:
        return str(row[SETTING])
    return ", ".join(text for key, text in label_parts(configs, i) if key not in ("B", "lam"))


def label(configs: pd.DataFrame, i: object) -> str:
    """The configuration at row ``i`` by the config columns that vary, and by the family
    fields that describe it (B and λ always, for the penalty method; a family's own fields for
    its rows only)."""
    return ", ".join(text for _, text in label_parts(configs, i))


def label_parts(configs: pd.DataFrame, i: object) -> list[tuple[str, str]]:
    """:func:`label`'s parts: (column, ``name = value``)."""
    row = configs.loc[i]
    own, family_fields = row_knobs(row), study_knobs(configs)
    keys = [
        c
        for c in config_columns(configs)
        if (c in own if own is not None and c in family_fields else configs[c].nunique() > 1)
        or (own is None and c in ("B", "lam"))
    ]
    names = {"lam": "λ"}
    return [
        (k, f"{names.get(k, k)} = {row[k]:.3g}" if isinstance(row[k], float) else f"{k} = {row[k]}")
        for k in keys
    ]


def b_curves(learned: pd.DataFrame) -> list[BCurve]:
    """One curve against B per penalty family of the study (the pixel penalty and the
    feature-based one are separate families), each at its own :func:`sweep_lambda`."""
    several = FAMILY in learned and learned[FAMILY].nunique() > 1
    parts = (
        [(str(f), g) for f, g in learned.groupby(FAMILY, sort=False)]
        if several
        else [("", learned)]
    )
    out = []
    for fam, part in parts:
        lam = sweep_lambda(part)
        if lam is not None:
            pixels = not (KNOBS_SET in part and has_knob(part, "penalty_on").any())
            out.append(BCurve(fam, lam, part[part["lam"] == lam], pixels))
    return out


def sweep_lambda(learned: pd.DataFrame) -> float | None:
    """The λ > 0 at which the most bounds B were tried (at least two; the largest such λ, the
    one that binds, on a tie), for the plot against B."""
    if not {"B", "lam"} <= set(learned) or len(learned) == 0:
        return None
    on = learned[learned["lam"] > 0]
    counts = on.groupby("lam")["B"].nunique()
    if counts.empty or counts.max() < 2:
        return None
    return float(counts[counts == counts.max()].index.max())


def ablation_bound(learned: pd.DataFrame) -> float | None:
    """The B at which the most λ values were tried (at least two), for the λ ablation."""
    if not {"B", "lam"} <= set(learned) or len(learned) == 0:
        return None
    counts = learned.groupby("B")["lam"].nunique()
    return float(counts.idxmax()) if counts.max() > 1 else None


def drop_text(drop: float) -> str:
    """A relative drop from raw as the paper prints it, with an arrow that cannot be misread:
    ``↓ 65.2%`` below raw, ``↑ 3.1%`` above it, ``0.0%`` at raw, ``''`` when unknown."""
    if pd.isna(drop):
        return ""
    if round(abs(drop), 3) == 0:
        return "0.0%"
    return f"{'↓' if drop > 0 else '↑'} {abs(drop):.1%}"


def constant_columns(df: pd.DataFrame, columns: Sequence[str]) -> dict[str, str]:
    """The columns of ``columns`` in ``df`` that hold one value in every row (NaN counts as a
    value), each with that value as text: what a table or plot can say once, in its caption."""
    out = {}
    for c in columns:
        if c in df and len(df) and df[c].astype(str).nunique(dropna=False) == 1:
            v = df[c].iloc[0]
            out[c] = f"{v:.3g}" if isinstance(v, float) else str(v)
    return out
