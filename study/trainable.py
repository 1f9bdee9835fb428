"""The Ray Tune adapter around one trial: config dict in, per-epoch reports and checkpoints out,
one MLflow child run kept in step. It stays thin: the work is ``trainables.trial.run_trial``."""

from __future__ import annotations

import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FINAL_METRICS = ("top1", "cmap", "f1", "rms", "raw_top1", "raw_cmap", "raw_f1", "seconds")


@dataclass(frozen=True)
class StudyContext:
    """What every trial of a study needs besides its config."""

    root: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str


def _node() -> str:
    try:
        import ray

        return f"{socket.gethostname()}/{ray.util.get_node_ip_address()}"
    except Exception:  # noqa: BLE001 - outside Ray the host name is enough
        return socket.gethostname()


def trial_name(config: dict[str, Any]) -> str:
    keys = [
        k
        for k in ("anonymizer", "anon_encoder", "action_model", "privacy_model", "B", "lam", "seed")
        if k in config
    ]
    return " ".join(f"{k}={config[k]}" for k in keys)


def run_tune_trial(config: dict[str, Any], ctx: StudyContext) -> None:
    """Ray Tune function trainable. Reports ``train/*`` metrics with a checkpoint after each
    minimax epoch, then the final metrics; resumes from the last checkpoint when retried."""
    import torch
    from ray import tune

    from study import tracking
    from study.artifacts import write_trial_files
    from study.shared import load_shared
    from trainables.config import from_dict
    from trainables.data import load_data
    from trainables.trial import run_trial

    cfg = from_dict(config)
    trial_id = tune.get_context().get_trial_id() or "local"
    c = tracking.client(ctx.tracking_uri)
    run_id = tracking.child_run(
        c,
        ctx.experiment_id,
        ctx.parent_run_id,
        trial_id,
        name=trial_name(config),
        params=cfg.to_dict(),
        tags={
            "seed": str(cfg.seed),
            "data_seed": str(cfg.data_seed),
            "node": _node(),
            "status": "running",
        },
    )

    def log(msg: str) -> None:
        print(f"[{trial_id}] {msg}", file=sys.stderr, flush=True)

    try:
        resume = None
        ckpt = tune.get_checkpoint()
        if ckpt is not None:
            with ckpt.as_directory() as d:
                resume = torch.load(Path(d) / "state.pt", weights_only=True)
            c.set_tag(run_id, "resumed_from_epoch", str(resume["epoch"]))
        shared = load_shared(Path(ctx.root), cfg)
        data = load_data(cfg)

        def on_epoch(epoch: int, metrics: dict[str, float], snapshot: Any) -> None:
            named = {f"train/{k}": v for k, v in metrics.items()}
            tracking.log_metrics(c, run_id, named, step=epoch)
            with tempfile.TemporaryDirectory() as d:
                torch.save(snapshot(), Path(d) / "state.pt")
                tune.report({"epoch": epoch, **named}, checkpoint=tune.Checkpoint.from_directory(d))

        result = run_trial(cfg, data=data, shared=shared, on_epoch=on_epoch, resume=resume, log=log)
        final = {k: getattr(result, k) for k in FINAL_METRICS}
        tracking.log_metrics(
            c,
            run_id,
            {**final, **{f"ap/{a}": v for a, v in zip(data.attributes, result.ap, strict=True)}},
            step=cfg.minimax_epochs,
        )
        if result.anonymizer is not None:
            with tempfile.TemporaryDirectory() as d:
                for path in write_trial_files(Path(d), result.anonymizer, data, cfg.to_dict()):
                    c.log_artifact(run_id, str(path))
        tracking.end_run(c, run_id, "FINISHED")
        tune.report(
            {
                **final,
                "epoch": cfg.minimax_epochs,
                "mlflow_run_id": run_id,
                "node": _node(),
                "finished_at": time.time(),
            }
        )
    except BaseException as e:
        killed = isinstance(e, (KeyboardInterrupt, SystemExit))
        tracking.end_run(c, run_id, "KILLED" if killed else "FAILED", f"{type(e).__name__}: {e}")
        raise
