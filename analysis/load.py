"""Trials into one DataFrame (one row per trial) from the MLflow records of a study."""

from __future__ import annotations

import pandas as pd

from analysis.columns import CONFIG as CONFIG_COLUMNS
from analysis.columns import FLOAT_CONFIG
from analysis.columns import METRICS as METRIC_COLUMNS

#: The tag in which each trial records "learned" or "fixed" (a baseline) for its anonymizer.
KIND_TAG = "tags.anonymizer.kind"


def _tidy(df: pd.DataFrame) -> pd.DataFrame:
    for c in FLOAT_CONFIG:
        if c in df:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    if "seed" in df:
        df["seed"] = pd.to_numeric(df["seed"], errors="coerce").astype("Int64")
    for c in METRIC_COLUMNS:
        if c in df:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    first = [c for c in ("run_id", *CONFIG_COLUMNS, *METRIC_COLUMNS, "status", "node") if c in df]
    return df[first + [c for c in df.columns if c not in first]].reset_index(drop=True)


def calibration_from_mlflow(experiment: str, tracking_uri: str) -> dict[str, float]:
    """The calibration the study recorded on its parent run: edit name -> mean RMS cost."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    runs = mlflow.search_runs(
        experiment_names=[experiment], filter_string="tags.`study.role` = 'parent'"
    )
    if len(runs) == 0:
        return {}
    row = runs.iloc[0]
    prefix = "metrics.calibration/"
    return {
        c[len(prefix) :]: float(row[c])
        for c in runs.columns
        if c.startswith(prefix) and pd.notna(row[c])
    }


def trials_from_mlflow(experiment: str, tracking_uri: str) -> pd.DataFrame:
    """The child runs (one per trial) of an MLflow experiment, via ``mlflow.search_runs``."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        raise ValueError(f"no MLflow experiment named {experiment!r} at {tracking_uri}")
    runs = mlflow.search_runs(
        experiment_names=[experiment],
        filter_string="tags.`study.role` = 'trial'",
        max_results=100000,
    )
    if len(runs) == 0:
        return pd.DataFrame(columns=["run_id", *CONFIG_COLUMNS, *METRIC_COLUMNS, "status"])
    out = pd.DataFrame({"run_id": runs["run_id"], "status": runs["status"]})
    for col in runs.columns:
        for prefix in ("params.", "metrics."):
            if col.startswith(prefix) and "/" not in col:
                out[col[len(prefix) :]] = runs[col].to_numpy()
    if "tags.node" in runs:
        out["node"] = runs["tags.node"].to_numpy()
    if KIND_TAG in runs:  # what each trial recorded of its anonymizer
        out["fixed_anonymizer"] = (runs[KIND_TAG] == "fixed").to_numpy()
    if "tags.mlflow.parentRunId" in runs:
        out["parent_run_id"] = runs["tags.mlflow.parentRunId"].to_numpy()
    out["start_time"] = runs["start_time"].to_numpy()
    return _tidy(out)
