"""What a study's parent run records besides its params: the shared stages (raw reference and
their training curves) and the analysis report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from study.plan import StudyPlan
from study.shared import load_calibration, load_feature_calibration, load_shared
from study.tracking import client as tracking
from trainables.evaluation.calibration import table


def log_shared(c: Any, parent: str, plan: StudyPlan) -> None:
    """The raw reference of each distinct shared setting (tagged by its backbones; untagged as
    well when there is one), the curves of the stages behind it, and the RMS cost of reference
    edits on its data (``calibration/``) and their feature distance (``calibration_features/``)."""
    for cfg in plan.shared_configs:
        shared = load_shared(plan.study.root, cfg)
        init, raw, point = shared.init, shared.raw, shared.init_point
        tag = f"{cfg.anonymizer}-{cfg.action_model}-{cfg.privacy_model}"
        metrics = {
            f"raw/top1/{tag}": raw.top1,
            f"raw/cmap/{tag}": raw.cmap,
            f"raw/f1/{tag}": raw.f1,
            f"chance/top1/{tag}": raw.chance_top1,
            f"chance/cmap/{tag}": raw.chance_cmap,
        }
        if point is not None:
            metrics |= {f"init/{k}/{tag}": getattr(point, k) for k in ("top1", "cmap", "rms")}
        if len(plan.shared_configs) == 1:
            metrics |= {
                "raw/top1": raw.top1,
                "raw/cmap": raw.cmap,
                "raw/f1": raw.f1,
                "chance/top1": raw.chance_top1,
                "chance/cmap": raw.chance_cmap,
                "shared/seconds": shared.seconds,
            }
            if point is not None:
                metrics |= {f"init/{k}": getattr(point, k) for k in ("top1", "cmap", "rms")}
        costs = load_calibration(plan.study.root, cfg)
        features = load_feature_calibration(plan.study.root, cfg)
        if len(plan.shared_configs) == 1:  # the report draws these on its B axes
            metrics |= {f"calibration/{k}": v["mean"] for k, v in costs.items()}
            metrics |= {f"calibration_features/{k}": v["mean"] for k, v in features.items()}
        c.log_text(parent, table(costs, features) + "\n", f"calibration/{tag}.md")
        tracking.log_metrics(c, parent, metrics)
        for name, curve in init.history.items():
            for step, v in enumerate(curve, start=1):
                tracking.log_metrics(c, parent, {f"shared/{name}/{tag}": v}, step=step)


def log_report(c: Any, parent: str, paths: list[Path], folder: str = "report") -> None:
    """The report's files, under ``folder`` (``report/``; one family's: ``report-FAMILY/``) of
    the parent run."""
    for p in paths:
        c.log_artifact(parent, str(p), artifact_path=folder)
