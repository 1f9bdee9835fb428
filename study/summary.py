"""What the launcher prints when a study ends: one row per trial, where the study and its runs
are, and how to continue an interrupted one."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from study.plan import StudyPlan
from trainables.config import from_dict


def results_table(results: Iterable[Any]) -> pd.DataFrame:
    """One row per Ray Tune result: its config (the scale filling what the study left unset),
    final metrics and status."""
    rows = []
    for r in results:
        cfg = from_dict(r.config).to_dict() if r.config else {}
        m = r.metrics or {}
        rows.append(
            {
                "trial": (m.get("trial_id") or getattr(r, "path", "") or "").split("/")[-1][:28],
                "anonymizer": cfg.get("anonymizer", ""),
                "B": cfg.get("B"),
                "lam": cfg.get("lam"),
                "seed": cfg.get("seed"),
                "top1": m.get("top1"),
                "cmap": m.get("cmap"),
                "f1": m.get("f1"),
                "rms": m.get("rms"),
                "seconds": m.get("seconds"),
                "status": "error" if r.error else ("done" if "top1" in m else "unfinished"),
            }
        )
    return pd.DataFrame(rows)


def print_summary(
    plan: StudyPlan,
    table: pd.DataFrame | None,
    uri: str,
    own_server: bool,
    status: str,
    seconds: float,
) -> None:
    study = plan.study
    root = study.root
    print()
    print(f"Study {study.experiment_name} ({plan.space.name}): {status} in {seconds / 60:.1f} min")
    if table is not None and len(table):
        with pd.option_context("display.width", 160, "display.max_rows", 500):
            print(
                table.sort_values(["B", "lam", "seed"], na_position="last").to_string(
                    index=False, float_format=lambda v: f"{v:.3f}"
                )
            )
    print(f"\nStudy dir: {root}")
    if own_server:
        print(
            "Browse the runs in the MLflow UI:\n"
            f"  mlflow ui --backend-store-uri sqlite:///{root / 'mlflow.db'} "
            f"--artifacts-destination {root / 'mlflow-artifacts'} --host 127.0.0.1 --port 5000\n"
            "  then open http://127.0.0.1:5000"
        )
    else:
        print(f"Browse the runs in the MLflow UI at {uri}")
    if status == "KILLED":
        print(
            f"Continue with: python -m study.launch --space {study.space} --experiment "
            f"{study.experiment_name} --study-dir {study.study_dir} --resume"
        )
