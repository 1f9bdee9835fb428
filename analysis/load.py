"""Trials into one DataFrame (one row per trial) from the MLflow records of a study."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from analysis.columns import CONFIG as CONFIG_COLUMNS
from analysis.columns import FAMILY, FLOAT_CONFIG, INIT, KNOBS_SET, SETTING
from analysis.columns import METRICS as METRIC_COLUMNS
from analysis.robustness import is_per_model

#: The tag in which each trial records "learned" or "fixed" (a baseline) for its anonymizer.
KIND_TAG = "tags.anonymizer.kind"
#: The tags in which each trial records its anonymizer's family, the family fields that
#: describe it and their words, and the columns they become.
TAG_COLUMNS = {
    "tags.anonymizer.family": FAMILY,
    "tags.anonymizer.knobs": KNOBS_SET,
    "tags.anonymizer.setting": SETTING,
}


def _tidy(df: pd.DataFrame) -> pd.DataFrame:
    for c in FLOAT_CONFIG:
        if c in df:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    if "seed" in df:
        df["seed"] = pd.to_numeric(df["seed"], errors="coerce").astype("Int64")
    for c in (*METRIC_COLUMNS, *INIT):
        if c in df:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    first = [c for c in ("run_id", *CONFIG_COLUMNS, *METRIC_COLUMNS, "status", "node") if c in df]
    return df[first + [c for c in df.columns if c not in first]].reset_index(drop=True)


@dataclass(frozen=True)
class StudyRecord:
    """What a study's parent run recorded besides its trials."""

    run_id: str
    #: Reference edit name -> its mean RMS cost on the action test set.
    calibration: dict[str, float]
    #: ``top1``: the Top-1 of always answering the commonest class; ``cmap``: the mean
    #: prevalence of the attributes (a random scorer's cMAP), on the raw test sets.
    chance: dict[str, float]
    #: Other parent runs of the same experiment (other studies under that name).
    others: list[str]
    #: Reference edit name -> its mean feature distance (the feature-based penalty's space).
    feature_calibration: dict[str, float] = field(default_factory=dict)
    #: The study sampled its trials (a search), so the order in which they finished means
    #: something; False for a grid.
    searched: bool = False


def _searched(row: pd.Series) -> bool:
    """Whether a parent run's params say its study was a search (``study.search``; a study
    recorded before that param: a sampler was given, which only a search takes)."""
    flag = row.get("params.study.search")
    if isinstance(flag, str) and flag:
        return flag.lower() == "true"
    sampler = row.get("params.study.sampler")
    return isinstance(sampler, str) and bool(sampler)


def _experiment(experiment: str, tracking_uri: str) -> str:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        raise ValueError(f"no MLflow experiment named {experiment!r} at {tracking_uri}")
    return str(exp.experiment_id)


def study_from_mlflow(experiment: str, tracking_uri: str, parent: str = "") -> StudyRecord:
    """The study's parent run: ``parent`` if given, else the newest parent run of the
    experiment (two studies may share an experiment name; each report keys on one parent)."""
    import mlflow

    exp_id = _experiment(experiment, tracking_uri)
    runs = mlflow.search_runs(
        experiment_ids=[exp_id],
        filter_string="tags.`study.role` = 'parent'",
        order_by=["attributes.start_time DESC"],
    )
    if len(runs) == 0:
        raise ValueError(f"experiment {experiment!r} at {tracking_uri} holds no study parent run")
    ids = [str(r) for r in runs["run_id"]]
    if parent and parent not in ids:
        raise ValueError(
            f"--parent {parent}: not a study parent run of {experiment!r}; its parent runs "
            f"(newest first): {', '.join(ids)}"
        )
    run_id = parent or ids[0]
    row = runs.iloc[ids.index(run_id)]

    def prefixed(prefix: str) -> dict[str, float]:
        return {
            c[len(prefix) :]: float(row[c])
            for c in runs.columns
            if c.startswith(prefix) and "/" not in c[len(prefix) :] and pd.notna(row[c])
        }

    return StudyRecord(
        run_id=run_id,
        calibration=prefixed("metrics.calibration/"),
        feature_calibration=prefixed("metrics.calibration_features/"),
        chance=prefixed("metrics.chance/"),
        others=[i for i in ids if i != run_id],
        searched=_searched(row),
    )


def trials_from_mlflow(experiment: str, tracking_uri: str, parent: str = "") -> pd.DataFrame:
    """The child runs (one per trial) of an MLflow experiment, via ``mlflow.search_runs``; with
    ``parent``, only that study's."""
    import mlflow

    exp_id = _experiment(experiment, tracking_uri)
    only = f" and tags.`mlflow.parentRunId` = '{parent}'" if parent else ""
    runs = mlflow.search_runs(
        experiment_ids=[exp_id],
        filter_string="tags.`study.role` = 'trial'" + only,
        max_results=100000,
    )
    if len(runs) == 0:
        return pd.DataFrame(columns=["run_id", *CONFIG_COLUMNS, *METRIC_COLUMNS, "status"])
    out = pd.DataFrame({"run_id": runs["run_id"], "status": runs["status"]})
    for col in runs.columns:
        for prefix in ("params.", "metrics."):
            name = col[len(prefix) :]
            if col.startswith(prefix) and ("/" not in name or is_per_model(name)):
                out[name] = runs[col].to_numpy()
    if "tags.node" in runs:
        out["node"] = runs["tags.node"].to_numpy()
    if KIND_TAG in runs:  # what each trial recorded of its anonymizer
        out["fixed_anonymizer"] = (runs[KIND_TAG] == "fixed").to_numpy()
    for tag, column in TAG_COLUMNS.items():
        if tag in runs:
            out[column] = runs[tag].fillna("").to_numpy()
    if "tags.mlflow.parentRunId" in runs:
        out["parent_run_id"] = runs["tags.mlflow.parentRunId"].to_numpy()
    out["start_time"] = runs["start_time"].to_numpy()
    return _tidy(out)
