"""What the launcher prints when a study ends: one row per trial, where the study and its runs
are, and how to continue an interrupted one."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import pandas as pd

from analysis.report import UI_PORT, UI_URI
from study.plan import StudyPlan
from study.replicates import seeded
from study.timings import cost_key
from study.tracking.client import RUNS_VIEW, redact
from trainables.config import from_dict
from trainables.models.anonymizers import setting, shown_knobs, trial_family


def results_table(results: Iterable[Any]) -> pd.DataFrame:
    """One row per Ray Tune result: its config (the scale filling what the study left unset),
    final metrics and status."""
    rows = []
    for r in results:
        trial = from_dict(seeded(r.config)) if r.config else None
        cfg = trial.to_dict() if trial else {}
        fam = trial_family(trial) if trial else ""
        knobs = shown_knobs(trial) if trial else []
        m = r.metrics or {}
        rows.append(
            {
                "trial": (m.get("trial_id") or getattr(r, "path", "") or "").split("/")[-1][:28],
                "anonymizer": cfg.get("anonymizer", ""),
                "family": fam,
                "setting": setting(trial) if trial else "",
                "cost_key": cost_key(trial) if trial else "",
                # B and lambda mean something for the family whose knobs they are.
                "B": cfg.get("B") if "B" in knobs else None,
                "lam": cfg.get("lam") if "lam" in knobs else None,
                "seed": cfg.get("seed"),
                "top1": m.get("top1"),
                "cmap": m.get("cmap"),
                "f1": m.get("f1"),
                "rms": m.get("rms"),
                "seconds": m.get("seconds"),
                "reused": bool(m.get("reused_from")),
                "status": "error" if r.error else ("done" if "top1" in m else "unfinished"),
            }
        )
    return pd.DataFrame(rows)


def print_summary(
    plan: StudyPlan,
    table: pd.DataFrame | None,
    uri: str,
    exp_id: str | None,
    own_server: bool,
    status: str,
    seconds: float,
) -> None:
    study = plan.study
    root = study.root
    print()
    print(f"Study {study.experiment_name} ({plan.space.name}): {status} in {seconds / 60:.1f} min")
    if table is not None and len(table):
        shown = table.drop(columns=["cost_key"], errors="ignore")
        if shown["family"].nunique() < 2:  # one family: its columns say it all
            shown = shown.drop(columns=["family", "setting"])
        order = [c for c in ("family", "B", "lam", "seed") if c in shown]
        with pd.option_context("display.width", 160, "display.max_rows", 500):
            print(
                shown.sort_values(order, na_position="last").to_string(
                    index=False, float_format=lambda v: f"{v:.3f}", na_rep=""
                )
            )
    print(f"\nStudy dir: {root}")
    table_path = f"/#/experiments/{exp_id}/{RUNS_VIEW}" if exp_id is not None else ""
    if own_server:
        backend = redact(study.tracking_backend) or f"sqlite:///{root / 'mlflow.db'}"
        print(
            "Browse the runs in the MLflow UI:\n"
            f"  mlflow ui --backend-store-uri {backend} "
            f"--artifacts-destination {root / 'mlflow-artifacts'} --host 127.0.0.1 --port {UI_PORT}\n"
            f"  then open the runs table: {UI_URI}{table_path}"
        )
    else:
        print(f"Browse the runs in the MLflow UI: {uri.rstrip('/')}{table_path}")
    from ray.tune import Tuner

    if status == "KILLED" and Tuner.can_restore(str(root / "ray" / "tune")):
        print(f"Continue with: {resume_command()}")


def resume_command(argv: list[str] | None = None) -> str:
    """This launch's own command line with ``--resume``: the same defining flags, so that the
    resume check accepts it."""
    import shlex

    args = [a for a in (sys.orig_argv if argv is None else argv) if a != "--resume"]
    return shlex.join([*args, "--resume"])
