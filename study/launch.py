"""``python -m study.launch --space NAME``: run a named study on Ray Tune, recorded in MLflow.

Heavy imports (torch, Ray, MLflow) happen after the arguments are checked, so ``--help`` and
``--list-spaces`` answer at once and bad input fails before anything starts.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
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


def _check_storage(root: Path) -> None:
    """On a cluster, every live node must see the study dir (``study.storage``)."""
    from study import storage

    _log(f"[study] checking that every node sees the study dir {root}")
    level, message = storage.judge(root, storage.probe(root))
    if level == "error":
        raise ValueError(message)
    _log(message)


def _parent_params(plan: StudyPlan) -> dict[str, Any]:
    study = plan.study
    return {
        **{f"study.{k}": v for k, v in study.__dict__.items() if k not in ("set", "grid")},
        "study.set": " ".join(study.set),
        "study.grid": " ".join(study.grid),
        "study.trials": len(plan.trials),
        "study.search": plan.space.is_search,
    }


def _record_estimate(plan: StudyPlan, c: Any, parent: str) -> None:
    """The dry run's estimate of this study, printed and kept on the parent run
    (``study/estimated_seconds``), so that the finished study shows it beside its wall time."""
    from study.dryrun import dry_run
    from study.tracking import client as tracking

    if plan.study.resume:
        return  # the estimate of a resumed study is not the whole study's
    est = dry_run(plan)
    if est.seconds is None:
        return
    _log(f"[study] estimated wall time: {est.seconds / 60:.1f} min ({est.source})")
    tracking.log_metrics(c, parent, {"study/estimated_seconds": est.seconds})
    c.set_tag(parent, "study.estimate_source", est.source)


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
    from study.tracking import spool

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


@dataclass
class _Outcome:
    """How the study ends, set by its story and read when its parent run closes."""

    status: str = "FAILED"
    reason: str = ""
    exit_code: int = 0


@contextmanager
def _own_server(study: Any) -> Iterator[Any]:
    """The MLflow server this launcher starts (None with --tracking-uri): recorded in the
    study dir's lock file while it runs, so that a later launcher can stop a leftover."""
    from study import lock as study_lock
    from study.tracking.server import MlflowServer

    if study.tracking_uri:
        yield None
        return
    if study.mlflow_host != "127.0.0.1" and not study.mlflow_auth:
        _log(
            f"[study] warning: the MLflow server listens on {study.mlflow_host} with no "
            "authentication; add --mlflow-auth"
        )
    server = MlflowServer(
        study.root,
        host=study.mlflow_host,
        port=study.mlflow_port,
        backend_uri=study.tracking_backend,
        auth=study.mlflow_auth,
    )
    try:
        server.start()
        study_lock.record(study.root, "MLflow server", server.pgid)
        yield server
    finally:
        server.stop()
        study_lock.forget(study.root, "MLflow server")


@contextmanager
def _supervised(server: Any, root: Path) -> Iterator[Any]:
    """The watch that restarts our server if it dies (None without our own server)."""
    from study import lock as study_lock
    from study.tracking.supervise import ServerSupervisor

    if server is None:
        yield None
        return
    on_restart = lambda s: study_lock.record(root, "MLflow server", s.pgid)  # noqa: E731
    with ServerSupervisor(server, root, _log, on_restart=on_restart) as supervisor:
        yield supervisor


@contextmanager
def _parent_run(
    plan: StudyPlan, uri: str, supervisor: Any, outcome: _Outcome, tags: dict[str, str], t0: float
) -> Iterator[Any]:
    """The study's parent run, opened (or reopened on --resume) with the spooled writes of an
    earlier attempt synced; closed with ``outcome``'s status, its unfinished trial runs marked
    KILLED, whatever happens. Yields (client, experiment id, parent run id)."""
    from study.tracking import client as tracking

    study = plan.study
    c = tracking.client(uri)
    _sync_spool(study.root, c)  # writes an earlier attempt could not send
    exp_id = tracking.experiment_id(c, study.experiment_name)
    parent = tracking.parent_run(
        c,
        exp_id,
        study.experiment_name,
        resume=study.resume,
        params=_parent_params(plan),
        tags=tags,
    )
    try:
        yield c, exp_id, parent
    finally:
        if supervisor is not None:
            supervisor.wait_up()
        _sync_spool(study.root, c)
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
            c, exp_id, parent, outcome.reason or "the study ended first"
        )
        if n:
            _log(f"[study] marked {n} unfinished trial run(s) KILLED")
        tracking.log_metrics(c, parent, {"study/seconds": time.time() - t0})
        tracking.end_run(c, parent, outcome.status, outcome.reason)


def _run_locked(plan: StudyPlan) -> int:
    """The study's story: Ray, our MLflow server and its watch, the parent run, the shared
    stages, the trials, the report. One ``ExitStack`` entry per resource, released in reverse:
    the parent run is closed, Ray stops (no trial writes after that), the watch ends, the
    server stops."""
    from study import cluster

    cluster.configure_environment(plan.study)
    from study import preflight, record, summary
    from study.report import write_and_log
    from study.summary import print_summary
    from study.tracking import client as tracking

    study = plan.study
    problem = _check_study_dir(plan)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if not study.resume:
        record.write(plan)
    t0 = time.time()
    outcome = _Outcome()
    table = report = exp_id = None
    uri = study.tracking_uri
    with ExitStack() as stack:
        try:
            cluster.init_ray(study)
            stack.callback(cluster.shutdown_ray)  # last, in case nothing after it started
            signal.signal(signal.SIGTERM, _on_sigterm)  # ray.init installs its own (sys.exit)
            import ray

            try:
                preflight.check_cluster_resources(study, ray.nodes())
                if study.address:
                    _check_storage(study.root)
            except ValueError as e:
                return usage_error(e)
            server = stack.enter_context(_own_server(study))
            uri = server.uri if server is not None else uri
            supervisor = stack.enter_context(_supervised(server, study.root))
            _log(f"[study] MLflow tracking server: {uri}")
            stack.callback(cluster.shutdown_ray)  # before the watch and the server stop
            tags = tracking.provenance()
            c, exp_id, parent = stack.enter_context(
                _parent_run(plan, uri, supervisor, outcome, tags, t0)
            )
            _log(f"[study] runs table: {tracking.runs_url(uri, exp_id)}")
            _log(f"[study] {plan.space.name}: {plan.num_trials} trials, parent run {parent}")
            _record_estimate(plan, c, parent)
            table = _run_trials(plan, uri, c, exp_id, parent, tags)
            if supervisor is not None:
                supervisor.wait_up()
            _sync_spool(study.root, c)  # the report reads what the trials recorded
            if (table["status"] == "done").any():
                try:  # the trials are recorded either way: a failed report does not fail it
                    # Our own server stops with the study: the text names the `mlflow ui` we print.
                    served = summary.UI_URI if server is not None else uri
                    report = write_and_log(
                        study.experiment_name, uri, study.root / "report", parent=parent,
                        log=_log, served_at=served,
                    )[0]  # fmt: skip
                except Exception as e:
                    _log(f"[study] the report could not be written: {type(e).__name__}: {e}")
            outcome.status, outcome.reason = _status(table)
        except KeyboardInterrupt:  # SIGINT or SIGTERM: close up, then say how to go on
            outcome.status, outcome.reason = "KILLED", _interrupted(study)
            outcome.exit_code = 143 if "SIGTERM" in outcome.reason else 130
        except BaseException as e:
            outcome.status, outcome.reason = "FAILED", f"{type(e).__name__}: {e}"
            raise
    own = not study.tracking_uri
    print_summary(plan, table, uri, exp_id, own, outcome.status, time.time() - t0)
    if report is not None:
        print(f"Report: {report}")
    if outcome.exit_code:
        return outcome.exit_code
    return 0 if outcome.status == "FINISHED" else 1


def _run_trials(
    plan: StudyPlan, uri: str, c: Any, exp_id: str, parent: str, tags: dict[str, str]
) -> Any:
    """The shared stages (as Ray tasks), then every trial on Ray Tune; the results table."""
    from ray import tune

    from study import cluster
    from study.summary import results_table
    from study.tracking import parent as parent_run
    from study.trainable import StudyContext, run_tune_trial
    from study.tuner import make_tuner

    study = plan.study
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
        tags=tags,
        private_stages=study.private_stages,
    )
    trainable = tune.with_resources(
        tune.with_parameters(run_tune_trial, ctx=ctx),
        {"cpu": study.cpus_per_trial, "gpu": study.gpus_per_trial},
    )
    table = results_table(make_tuner(plan, trainable, _log).fit())
    if not study.private_stages:  # its trials' seconds hold their shared stages too
        _record_timings(plan, table, fresh)
    return table


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
