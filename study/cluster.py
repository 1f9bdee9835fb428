"""Ray glue: the environment Ray Tune reads at import, starting or joining a cluster (kept on
loopback on one machine), and the shared stages computed as Ray tasks."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from study.config import StudyConfig
from study.plan import StudyPlan
from study.shared import ensure_shared
from trainables.config import from_dict
from trainables.log import Log


def configure_environment(study: StudyConfig) -> None:
    """Settings Ray reads when it is first imported; call this before importing it.

    On one machine Ray advertises, and its servers bind to, the host's network address. With
    cluster mode off the node address is 127.0.0.1, and Ray binds its gRPC servers and agents
    to loopback only. A checkpoint per epoch makes Tune snapshot its state often on tiny
    scales, which is intended; per-epoch reports carry the training losses and only the final
    report carries the objectives (top1, cmap), which is the one the Optuna searcher records.
    """
    if not study.address:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    from study.tracking.client import bound_retries

    bound_retries()


def init_ray(study: StudyConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    if study.address:
        ray.init(address=study.address, log_to_driver=True, logging_level=logging.WARNING)
    else:
        # configure_environment made the node address 127.0.0.1.
        ray.init(
            num_cpus=os.cpu_count(),
            include_dashboard=False,
            log_to_driver=True,
            logging_level=logging.WARNING,
        )


def shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def _shared_job(cfg_dict: dict[str, Any], root: str) -> dict[str, object]:
    return ensure_shared(
        Path(root),
        from_dict(cfg_dict),
        log=lambda m: print(f"[shared] {m}", file=sys.stderr, flush=True),
    )


def compute_shared(plan: StudyPlan, log: Log) -> list[dict[str, object]]:
    """Compute the missing shared stages as Ray tasks. Nothing else runs meanwhile, so each
    takes a whole node's CPUs (and threads), not one trial's share."""
    import ray

    study = plan.study
    node_cpus = max(
        (n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n["Alive"]),
        default=study.cpus_per_trial,
    )
    cpus = max(study.cpus_per_trial, node_cpus)
    remote = ray.remote(num_cpus=cpus, num_gpus=study.gpus_per_trial)(_shared_job)
    refs = [remote.remote(cfg.to_dict(), str(study.root)) for cfg in plan.shared_configs]
    log(f"[study] shared stages: {len(refs)} distinct data/backbone settings, {cpus:g} CPUs each")
    return list(ray.get(refs))
