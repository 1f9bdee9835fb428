"""``python -m study.launch --space NAME``: run a named study on Ray Tune, recorded in MLflow.

Heavy imports (torch, Ray, MLflow) happen after the arguments are checked, so ``--help`` and
``--list-spaces`` answer at once and bad input fails before anything starts.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from study.config import build_parser, from_args
from trainables.log import usage_error

if TYPE_CHECKING:
    from study.plan import StudyPlan
    from trainables.config import TrialConfig


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _check_study_dir(plan: StudyPlan) -> str:
    """Why the study dir cannot take this study, or ''."""
    from ray.tune import Tuner

    from study.record import resume_problem

    study = plan.study
    tune_path = study.root / "ray" / "tune"
    if study.resume and not Tuner.can_restore(str(tune_path)):
        return f"--resume: no study to resume in {study.root}"
    if study.resume:
        return resume_problem(plan)
    if not study.resume and tune_path.exists():
        return (
            f"{study.root} already holds a study: pass --resume to continue it, or choose "
            f"another --experiment or --study-dir"
        )
    return ""


def _parent_params(plan: StudyPlan) -> dict[str, Any]:
    study = plan.study
    return {
        **{f"study.{k}": v for k, v in study.__dict__.items() if k not in ("set", "grid")},
        "study.set": " ".join(study.set),
        "study.grid": " ".join(study.grid),
        "study.trials": len(plan.trials),
    }


def _status(table: Any) -> tuple[str, str]:
    unfinished = int((table["status"] != "done").sum()) if len(table) else 0
    errors = int((table["status"] == "error").sum()) if len(table) else 0
    if unfinished == 0:
        return "FINISHED", ""
    if errors:
        return "FAILED", f"{errors} trial(s) failed"
    return "KILLED", "interrupted; continue with --resume"


def _record_timings(plan: StudyPlan, table: Any, fresh: set[str]) -> None:
    """Append this study's per-stage seconds to STUDY_DIR/timings.jsonl, for later dry runs."""
    from study import timings
    from study.shared import load_shared
    from trainables.game.keys import init_key

    study = plan.study
    trained = table[(table["status"] == "done") & ~table["reused"]] if len(table) else table
    # One row per cost setting (the trials of one family and backbones cost the same).
    settings: dict[str, TrialConfig] = {}
    for cfg in [*plan.shared_configs, *plan.trials]:
        settings.setdefault(timings.cost_key(cfg), cfg)
    shared_by_key = {timings.cost_key(c): c for c in plan.shared_configs}
    for key, cfg in settings.items():
        shared = None
        if key in shared_by_key and init_key(cfg) in fresh:
            shared = load_shared(study.root, cfg).seconds
        mine = trained[trained["cost_key"] == key] if "cost_key" in trained else trained.iloc[:0]
        timings.record(
            Path(study.study_dir).resolve(),
            cfg,
            shared_seconds=shared,
            trial_seconds=[float(v) for v in mine["seconds"]],
            cpus_per_trial=study.cpus_per_trial,
            concurrent=study.max_concurrent,
        )


def _sync_spool(root: Path, c: Any) -> None:
    """Send the writes that trials spooled while the server was down (they stay on failure)."""
    from study.tracking.client import spool

    try:
        spool.sync(root, c, _log)
    except Exception as e:
        _log(f"[study] the spooled MLflow writes could not be synced: {e}; --resume syncs them")


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, a scheduler, a shutdown): handled like SIGINT, so that the study
    closes its runs and stops what it started."""


#: The signal that interrupted the study (Ray Tune may re-raise our exception as its own).
_RECEIVED: list[str] = []


def _on_sigterm(signum: int, frame: Any) -> None:
    _RECEIVED.append("SIGTERM")
    raise Terminated("SIGTERM")


def _interrupted(study: Any) -> str:
    """The reason an interrupted study records, with a hint that works."""
    from ray.tune import Tuner

    name = "SIGTERM" if _RECEIVED else "SIGINT"
    if Tuner.can_restore(str(study.root / "ray" / "tune")):
        return f"interrupted ({name}); continue with --resume"
    return f"interrupted ({name}) before any trial started; start it again (nothing to resume)"


def run_study(plan: StudyPlan) -> int:
    """Run the planned study: the checks that need no server, the study dir's lock, then the
    study itself; whatever happens, every run it opened is closed with a status and the servers
    it started are stopped."""
    from study import preflight
    from study.lock import StudyLock, stop_leftovers

    study = plan.study
    try:
        preflight.check_study_dir(study)
        preflight.check_local_resources(study)
        preflight.check_tracking_options(study, plan.space.is_search)
        if study.tracking_uri:
            preflight.check_tracking(study.tracking_uri)
    except ValueError as e:
        return usage_error(e)
    lock = StudyLock(study.root)
    try:
        lock.acquire(_log)
    except ValueError as e:
        return usage_error(e)
    try:
        stop_leftovers(study.root, _log)
        return _run_locked(plan)
    finally:
        lock.release()


def _run_locked(plan: StudyPlan) -> int:
    from study import cluster

    cluster.configure_environment(plan.study)
    from ray import tune

    from study import lock as study_lock
    from study import preflight, record, summary
    from study.report import write_and_log
    from study.summary import print_summary, results_table
    from study.tracking import client as tracking
    from study.tracking import parent as parent_run
    from study.tracking.server import MlflowServer
    from study.tracking.supervise import ServerSupervisor
    from study.trainable import StudyContext, run_tune_trial
    from study.tuner import make_tuner

    study = plan.study
    problem = _check_study_dir(plan)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if not study.resume:
        record.write(plan)
    t0 = time.time()
    server = None
    if not study.tracking_uri:
        server = MlflowServer(
            study.root,
            host=study.mlflow_host,
            port=study.mlflow_port,
            backend_uri=study.tracking_backend,
            auth=study.mlflow_auth,
        )
        if study.mlflow_host != "127.0.0.1" and not study.mlflow_auth:
            _log(
                f"[study] warning: the MLflow server listens on {study.mlflow_host} with no "
                "authentication; add --mlflow-auth"
            )
    status, reason, table, report = "FAILED", "", None, None
    c = parent = exp_id = None
    uri = study.tracking_uri
    interrupted = 0
    supervisor: ServerSupervisor | None = None
    try:
        cluster.init_ray(study)
        signal.signal(signal.SIGTERM, _on_sigterm)  # ray.init installs its own (sys.exit)
        import ray

        try:
            preflight.check_cluster_resources(study, ray.nodes())
        except ValueError as e:
            return usage_error(e)
        if server is not None:
            uri = server.start().uri
            study_lock.record(study.root, "MLflow server", server.pgid)
            supervisor = ServerSupervisor(
                server,
                study.root,
                _log,
                on_restart=lambda s: study_lock.record(study.root, "MLflow server", s.pgid),
            ).__enter__()
        _log(f"[study] MLflow tracking server: {uri}")
        c = tracking.client(uri)
        _sync_spool(study.root, c)  # writes an earlier attempt could not send
        exp_id = tracking.experiment_id(c, study.experiment_name)
        prov = tracking.provenance()
        parent = tracking.parent_run(
            c,
            exp_id,
            study.experiment_name,
            resume=study.resume,
            params=_parent_params(plan),
            tags=prov,
        )
        _log(f"[study] runs table: {tracking.runs_url(uri, exp_id)}")
        _log(f"[study] {plan.space.name}: {plan.num_trials} trials, parent run {parent}")
        computed = cluster.compute_shared(plan, _log)
        fresh = {str(s["init_key"]) for s in computed if s["computed"]}
        if any(s["computed"] for s in computed) or not study.resume:
            parent_run.log_shared(c, parent, plan)
        ctx = StudyContext(
            root=str(study.root),
            tracking_uri=uri,
            experiment_id=exp_id,
            parent_run_id=parent,
            reuse=not study.no_reuse,
            tags=prov,
            private_stages=study.private_stages,
        )
        trainable = tune.with_resources(
            tune.with_parameters(run_tune_trial, ctx=ctx),
            {"cpu": study.cpus_per_trial, "gpu": study.gpus_per_trial},
        )
        table = results_table(make_tuner(plan, trainable, _log).fit())
        if not study.private_stages:  # its trials' seconds hold their shared stages too
            _record_timings(plan, table, fresh)
        if supervisor is not None:
            supervisor.wait_up()
        _sync_spool(study.root, c)  # the report reads what the trials recorded
        if (table["status"] == "done").any():
            try:  # the trials are recorded either way: a failed report does not fail the study
                out = study.root / "report"
                # Our own server stops with the study: the text names the `mlflow ui` we print.
                served = summary.UI_URI if server is not None else uri
                report = write_and_log(
                    study.experiment_name, uri, out, parent=parent, log=_log, served_at=served
                )[0]
            except Exception as e:
                _log(f"[study] the report could not be written: {type(e).__name__}: {e}")
        status, reason = _status(table)
    except KeyboardInterrupt:  # SIGINT or SIGTERM: close up, then say how to go on
        status, reason = "KILLED", _interrupted(study)
        interrupted = 143 if "SIGTERM" in reason else 130
    except BaseException as e:
        status, reason = "FAILED", f"{type(e).__name__}: {e}"
        raise
    finally:
        if supervisor is not None:
            supervisor.wait_up()
        if c is not None:
            _sync_spool(study.root, c)
        if c is not None and parent is not None:
            if supervisor is not None and supervisor.restarts:
                tracking.log_metrics(
                    c,
                    parent,
                    {
                        "study/server_restarts": len(supervisor.restarts),
                        "study/server_restart_seconds_max": max(supervisor.restarts),
                    },
                )
            n = tracking.close_unfinished_children(
                c, exp_id, parent, reason or "the study ended first"
            )
            if n:
                _log(f"[study] marked {n} unfinished trial run(s) KILLED")
            tracking.log_metrics(c, parent, {"study/seconds": time.time() - t0})
            tracking.end_run(c, parent, status, reason)
        cluster.shutdown_ray()
        if supervisor is not None:
            supervisor.stop()
        if server is not None:
            server.stop()
            study_lock.forget(study.root, "MLflow server")

    print_summary(plan, table, uri, exp_id, server is not None, status, time.time() - t0)
    if report is not None:
        print(f"Report: {report}")
    if interrupted:
        return interrupted
    return 0 if status == "FINISHED" else 1


def _import_space_module(name: str) -> None:
    import importlib

    if not name:
        return
    try:
        importlib.import_module(name)
    except ImportError as e:
        raise ValueError(
            f"--space-module {name}: cannot import it ({e}); put its folder on PYTHONPATH"
        ) from e


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _import_space_module(args.space_module)
    except ValueError as e:
        return usage_error(e)
    if args.list_spaces:
        from search_spaces import list_spaces

        for name, help_ in list_spaces():
            print(f"{name:<14} {help_}")
        return 0
    from study.plan import plan_study

    try:
        plan = plan_study(from_args(args))
    except ValueError as e:
        return usage_error(e)
    if plan.study.dry_run:
        from study.dryrun import describe

        print(describe(plan))
        return 0
    signal.signal(signal.SIGTERM, _on_sigterm)
    return run_study(plan)


if __name__ == "__main__":
    sys.exit(main())
