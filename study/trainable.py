"""The Ray Tune adapter around one trial: config dict in, per-epoch reports and checkpoints out,
one MLflow child run kept in step. The trial's work is ``trainables.trial.run_trial``; this
module holds what Tune and MLflow add to it (reports, checkpoints, resuming, the run's records)."""

from __future__ import annotations

import contextlib
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainables.config import FAMILY_FIELDS
from trainables.trial import FINAL_METRICS, INIT_METRICS

if TYPE_CHECKING:
    from study.reuse import StoredResult
    from trainables.config import TrialConfig
    from trainables.data.sets import TrialData
    from trainables.log import Log
    from trainables.models.anonymizers import Anonymizer


@dataclass(frozen=True)
class StudyContext:
    """What every trial of a study needs besides its config."""

    root: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    #: Take the result of an equivalent finished trial instead of training again (study.reuse).
    reuse: bool = True
    #: Provenance tags (git commit, command, package versions) every trial run carries.
    tags: dict[str, str] = field(default_factory=dict)
    #: Seconds between samples of the per-trial system metrics (CPU, memory, GPU if present).
    system_metrics_interval: float = 5.0
    #: Compute the shared stages inside the trial, in STUDY/private/TRIAL_ID (a benchmark of
    #: what sharing saves), instead of loading the study's.
    private_stages: bool = False


def _node() -> str:
    try:
        import ray

        return f"{socket.gethostname()}/{ray.util.get_node_ip_address()}"
    except Exception:
        return socket.gethostname()


def trial_name(config: dict[str, Any]) -> str:
    keys = [
        k
        for k in (
            "anonymizer",
            "anon_encoder",
            "action_model",
            "privacy_model",
            *FAMILY_FIELDS,
            "seed",
        )  # fmt: skip
        if k in config
    ]
    return " ".join(f"{k}={config[k]}" for k in keys)


def run_tune_trial(config: dict[str, Any], ctx: StudyContext) -> None:
    """Ray Tune function trainable. Reports ``train/*`` metrics with a checkpoint after each
    minimax epoch, then the final metrics; resumes from the last checkpoint when retried."""
    import torch
    from ray import tune

    from study.replicates import seeded
    from study.reuse import load_result
    from study.tracking import client as tracking
    from study.tracking.spool import SpoolingClient
    from trainables.config import from_dict
    from trainables.data.load import load_data

    t0 = time.time()
    tracking.bound_retries()
    config = seeded(config)
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
            **ctx.tags,
            "seed": str(cfg.seed),
            "data_seed": str(cfg.data_seed),
            "node": _node(),
            "status": "running",
        },
    )

    def log(msg: str) -> None:
        print(f"[{trial_id}] {msg}", file=sys.stderr, flush=True)

    # From here on a write the server cannot take waits in the study dir's spool.
    c = SpoolingClient(c, Path(ctx.root), run_id, log)
    monitor = _system_metrics(run_id, ctx)

    try:
        resume = None
        ckpt = tune.get_checkpoint()
        if ckpt is not None:
            with ckpt.as_directory() as d:
                resume = torch.load(Path(d) / "state.pt", weights_only=True)
            c.set_tag(run_id, "resumed_from_epoch", str(resume["epoch"]))
            # `seconds` adds the attempts before, up to their last checkpoint.
            c.set_tag(run_id, "seconds_before_resume", f"{resume.get('seconds', 0.0):.3f}")
        t_data = time.time()
        data = load_data(cfg, log)
        timing = {"start": t0, "data": time.time() - t_data}
        stored = load_result(Path(ctx.root), cfg) if ctx.reuse and resume is None else None
        if stored is not None:
            log(f"reusing the result of equivalent trial {stored.source_trial} (inert penalty)")
            final = _log_stored(c, run_id, cfg, data, stored, time.time() - t0)
        else:
            final = _train(c, run_id, cfg, data, ctx, resume, trial_id, log, timing)
        tracking.end_run(c, run_id, "FINISHED")
        tune.report(
            {
                **final,
                "epoch": cfg.minimax_epochs,
                "mlflow_run_id": run_id,
                "reused_from": stored.source_trial if stored is not None else "",
                "node": _node(),
                "finished_at": time.time(),
            }
        )
    except BaseException as e:
        killed = isinstance(e, (KeyboardInterrupt, SystemExit))
        tracking.end_run(c, run_id, "KILLED" if killed else "FAILED", f"{type(e).__name__}: {e}")
        raise
    finally:
        if monitor is not None:
            monitor.finish()
        # What is still spooled waits for the launcher's sync (or --resume).
        with contextlib.suppress(Exception):
            c.flush()


def _system_metrics(run_id: str, ctx: StudyContext) -> Any:
    """MLflow's sampler of CPU, memory, disk, network and (with NVML) GPU use, logging
    ``system/*`` metrics to the trial's run while it trains; None if it cannot start."""
    try:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(
            run_id,
            sampling_interval=ctx.system_metrics_interval,
            tracking_uri=ctx.tracking_uri,
        )
        monitor.start()
        return monitor
    except Exception as e:
        print(f"[trial] system metrics are off: {type(e).__name__}: {e}", file=sys.stderr)
        return None


def _train(
    c: Any,
    run_id: str,
    cfg: TrialConfig,
    data: TrialData,
    ctx: StudyContext,
    resume: dict[str, Any] | None,
    trial_id: str,
    log: Log,
    timing: dict[str, float],
) -> dict[str, float]:
    """Run the trial, logging each epoch and the final metrics and artifacts to ``run_id``,
    then where its time went (:func:`stage_metrics`). ``timing``: the trial's ``start`` and its
    ``data`` seconds."""
    import torch
    from ray import tune

    from study.reuse import save_result
    from study.shared import ensure_shared, load_shared
    from study.tracking import client as tracking
    from trainables.trial import run_trial

    root = Path(ctx.root)
    if ctx.private_stages:
        root = root / "private" / trial_id
        ensure_shared(root, cfg, log)
    shared = load_shared(root, cfg)

    if resume is not None:  # epochs the checkpoint holds but MLflow never got (server down)
        n = _log_missing_epochs(c, run_id, resume["history"])
        if n:
            log(f"logged {n} epoch(s) of train/* that an earlier attempt could not")

    def on_epoch(epoch: int, metrics: dict[str, float], snapshot: Any) -> None:
        named = {f"train/{k}": v for k, v in metrics.items()}
        # The checkpoint first: it holds the epoch's metrics too, so an MLflow call that blocks
        # or fails loses nothing (the retry logs what MLflow lacks, _log_missing_epochs).
        with tempfile.TemporaryDirectory() as d:
            torch.save(snapshot(), Path(d) / "state.pt")
            tune.report({"epoch": epoch, **named}, checkpoint=tune.Checkpoint.from_directory(d))
        tracking.log_metrics(c, run_id, named, step=epoch)

    result = run_trial(cfg, data=data, shared=shared, on_epoch=on_epoch, resume=resume, log=log)
    final = {k: float(getattr(result, k)) for k in FINAL_METRICS} | result.init_metrics()
    final |= result.penalty_metrics()
    if result.anonymizer is None:
        raise RuntimeError("run_trial returned no anonymizer to record")
    _log_outcome(
        c, run_id, cfg, data, {**final, **result.model_metrics()}, result.ap, result.anonymizer
    )
    if ctx.reuse:
        save_result(Path(ctx.root), cfg, result, trial_id, run_id)
    stages = stage_metrics(result.stage_seconds, timing["data"], time.time() - timing["start"])
    tracking.log_metrics(c, run_id, stages)
    return final


#: The compute stages of a trial; the rest of its wall time is the platform's (``logging``).
COMPUTE_STAGES = ("anonymize", "eval_action", "eval_privacy")


def stage_metrics(stages: dict[str, float], data: float, total: float) -> dict[str, float]:
    """The ``seconds/*`` metrics of a trial: its data, game, evaluation parts, and
    ``seconds/logging``: all of its ``total`` wall time that is not compute (the MLflow run,
    the checkpoints and logging between epochs, the final metrics and artifacts). Plus
    ``game_steps``, so that the game's steps/s can be read."""
    game_compute = stages.get("game", 0.0) - stages.get("epoch_callbacks", 0.0)
    compute = data + game_compute + sum(stages.get(k, 0.0) for k in COMPUTE_STAGES)
    out = {f"seconds/{k}": float(v) for k, v in stages.items() if k != "game_steps"}
    out["seconds/data"] = float(data)
    out["seconds/logging"] = max(0.0, total - compute)
    out["game_steps"] = float(stages.get("game_steps", 0.0))
    return out


def _log_missing_epochs(c: Any, run_id: str, history: list[dict[str, float]]) -> int:
    """Log the ``train/*`` rows of ``history`` (epoch i + 1 at row i) whose step MLflow does not
    have yet; return how many epochs were logged."""
    from study.tracking import client as tracking

    if not history:
        return 0
    probe = f"train/{next(iter(history[0]))}"
    have = {m.step for m in c.get_metric_history(run_id, probe)}
    missing = [e for e in range(1, len(history) + 1) if e not in have]
    for epoch in missing:
        named = {f"train/{k}": v for k, v in history[epoch - 1].items()}
        tracking.log_metrics(c, run_id, named, step=epoch)
    return len(missing)


def _log_stored(
    c: Any, run_id: str, cfg: TrialConfig, data: TrialData, stored: StoredResult, seconds: float
) -> dict[str, float]:
    """Record an equivalent trial's stored result on this trial's run: its curves, final metrics
    (``seconds`` is this trial's own time) and artifacts, with the source named in tags.

    Every number is what this trial would have computed, except the ``L_penalty`` curve, a
    diagnostic that depends on B (the penalty is weighted by lambda = 0 when inert): it is left
    out when the source ran at another B."""
    from study.tracking import client as tracking
    from trainables.models.build import anonymizer_for

    for epoch, row in enumerate(stored.history, start=1):
        named = {f"train/{k}": v for k, v in row.items()}
        if stored.source_B != cfg.B:  # measured against another bound: not this trial's curve
            named.pop("train/L_penalty", None)
        tracking.log_metrics(c, run_id, named, step=epoch)
    final = {k: float(stored.summary[k]) for k in FINAL_METRICS if k != "seconds"}
    final |= {k: float(stored.summary[k]) for k in INIT_METRICS if k in stored.summary}
    final["seconds"] = seconds
    per_model = {k: float(v) for k, v in stored.summary.items() if "/" in k}
    anon = anonymizer_for(cfg, data.num_classes)
    anon.load_state_dict(stored.anon_state)
    _log_outcome(c, run_id, cfg, data, {**final, **per_model}, stored.ap, anon)
    c.set_tag(run_id, "reused_from", stored.source_trial)
    c.set_tag(run_id, "reused_from_run", stored.source_run)
    return final


def _log_outcome(
    c: Any,
    run_id: str,
    cfg: TrialConfig,
    data: TrialData,
    final: dict[str, float],
    ap: list[float],
    anonymizer: Anonymizer,
) -> None:
    """Log a trial's final metrics, per-attribute AP and artifacts to its run."""
    from study.tracking import client as tracking
    from study.tracking.artifacts import write_trial_files
    from trainables.models.anon_base import fits
    from trainables.models.anonymizers import setting, shown_knobs, trial_family

    aps = {f"ap/{a}": v for a, v in zip(data.attributes, ap, strict=True)}
    skipped = data.skipped_files()
    final = {**final, "skipped_files": float(len(skipped))}
    tracking.log_metrics(c, run_id, {**final, **aps}, step=cfg.minimax_epochs)
    if skipped:
        c.log_text(run_id, "\n".join(skipped) + "\n", "skipped_files.txt")
    # The report tells the fixed baselines from the learned anonymizers by this record.
    learned = anonymizer.trainable or fits(anonymizer)
    c.set_tag(run_id, tracking.ANONYMIZER_KIND_TAG, "learned" if learned else "fixed")
    c.set_tag(run_id, tracking.ANONYMIZER_FAMILY_TAG, trial_family(cfg))
    c.set_tag(run_id, tracking.ANONYMIZER_KNOBS_TAG, ",".join(shown_knobs(cfg)))
    c.set_tag(run_id, tracking.ANONYMIZER_SETTING_TAG, setting(cfg))
    with tempfile.TemporaryDirectory() as d:
        for path in write_trial_files(Path(d), anonymizer, data, cfg.to_dict()):
            c.log_artifact(run_id, str(path))
