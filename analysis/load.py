"""Trials into one DataFrame (one row per trial): from an MLflow experiment or a Ray Tune
study dir. Both give the same columns."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from trainables.config import from_dict

CONFIG_COLUMNS = (
    "B",
    "lam",
    "seed",
    "anonymizer",
    "anon_encoder",
    "action_model",
    "privacy_model",
    "scale",
    "dataset",
)
METRIC_COLUMNS = ("top1", "cmap", "f1", "rms", "raw_top1", "raw_cmap", "raw_f1", "seconds")
FLOAT_CONFIG = ("B", "lam")


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
    if "tags.mlflow.parentRunId" in runs:
        out["parent_run_id"] = runs["tags.mlflow.parentRunId"].to_numpy()
    out["start_time"] = runs["start_time"].to_numpy()
    return _tidy(out)


def trials_from_tune(study_root: Path) -> pd.DataFrame:
    """The trials of a Ray Tune experiment (``STUDY/ray/tune``): each trial's config and its
    last result that carries the final metrics."""
    tune_dir = Path(study_root) / "ray" / "tune"
    if not tune_dir.is_dir():
        raise ValueError(f"no Ray Tune experiment in {tune_dir}")
    rows = []
    for trial in sorted(p for p in tune_dir.iterdir() if (p / "params.json").exists()):
        # Tune stores only what the study set; the scale fills in the rest.
        row = from_dict(json.loads((trial / "params.json").read_text())).to_dict()
        final: dict = {}
        result = trial / "result.json"
        if result.exists():
            for line in result.read_text().splitlines():
                rec = json.loads(line)
                if "top1" in rec:
                    final = rec
        row.update({k: final.get(k) for k in METRIC_COLUMNS})
        row["run_id"] = final.get("mlflow_run_id")
        row["node"] = final.get("node")
        row["status"] = "FINISHED" if final else "UNFINISHED"
        row["start_time"] = final.get("timestamp")
        rows.append(row)
    return _tidy(pd.DataFrame(rows))
