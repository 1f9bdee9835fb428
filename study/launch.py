"""``python -m study.launch --space NAME``: run a named study on Ray Tune, recorded in MLflow.

Heavy imports (torch, Ray, MLflow) happen after the arguments are checked, so ``--help`` and
``--list-spaces`` answer at once and bad input fails before anything starts.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from study.config import StudyConfig, build_parser, from_args


@dataclass
class StudyPlan:
    """A checked study: the space, the base trial config and every trial config it will run
    (for searches: the corners of the ranges, to check them)."""

    study: StudyConfig
    space: Any
    base: dict[str, Any]
    trials: list[Any]

    @property
    def shared_configs(self) -> list[Any]:
        from trainables.trial import init_key, raw_key

        seen: dict[tuple[str, str], Any] = {}
        for cfg in self.trials:
            seen.setdefault((init_key(cfg), raw_key(cfg)), cfg)
        return list(seen.values())


def plan_study(study: StudyConfig) -> StudyPlan:
    """Check the study and expand its trials; raise ValueError naming what is wrong."""
    from search_spaces import get_space
    from trainables.config import SCALES, from_dict, validate

    if study.scale not in SCALES:
        raise ValueError(f"--scale: unknown scale {study.scale!r}; valid: {', '.join(SCALES)}")
    if study.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {study.seeds}")
    if study.num_samples < 0:
        raise ValueError(f"--num-samples must be >= 0, got {study.num_samples}")
    if study.max_concurrent < 0:
        raise ValueError(f"--max-concurrent must be >= 0, got {study.max_concurrent}")
    if study.cpus_per_trial <= 0 or study.gpus_per_trial < 0:
        raise ValueError("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0")
    space = get_space(study.space)
    base = {"scale": study.scale, "dataset": study.dataset, **study.trial_overrides()}
    overlap = sorted(set(base) & (set(space.grid) | set(space.ranges) | set(space.fixed)))
    if overlap:
        raise ValueError(f"--set {', '.join(overlap)}: the space {space.name} sets these itself")
    points: list[dict[str, Any]] = []
    if space.is_search:
        for corner in itertools.product(*[(r.low, r.high) for r in space.ranges.values()]):
            points.append(dict(zip(space.ranges, corner, strict=True)))
    else:
        keys = list(space.grid)
        for values in itertools.product(*space.grid.values()):
            points.append(dict(zip(keys, values, strict=True)))
    from trainables.datasets.sources import ROOT_ENV

    for k, env in ROOT_ENV.items():  # record the roots the environment gives as params
        if k not in base and os.environ.get(env):
            base[k] = os.environ[env]
    trials = []
    for seed in range(study.seeds):
        for p in points:
            cfg = from_dict({**base, **space.fixed, **p, "seed": seed})
            validate(cfg)
            trials.append(cfg)
    _check_inputs(trials)
    return StudyPlan(study=study, space=space, base=base, trials=trials)


def _check_inputs(trials: list[Any]) -> None:
    """Read the split files of real datasets and load local weights once per distinct setting,
    so that a missing video or weights that do not fit fail before any server starts."""
    from trainables.datasets.layouts import DatasetError
    from trainables.datasets.protocols import PROTOCOLS, check_protocol
    from trainables.trial import check_pretrained, init_key
    from trainables.weights import WeightsError

    seen: set[str] = set()
    for cfg in trials:
        key = init_key(cfg)
        if key in seen:
            continue
        seen.add(key)
        try:
            if cfg.dataset in PROTOCOLS:
                check_protocol(cfg.dataset, cfg)
            check_pretrained(cfg)
        except (DatasetError, WeightsError) as e:
            raise ValueError(str(e)) from e


def param_space(plan: StudyPlan) -> dict[str, Any]:
    """The Ray Tune param space: grid axes as grid_search, ranges as Optuna-searchable domains."""
    from ray import tune

    space, study = plan.space, plan.study
    ps: dict[str, Any] = {**plan.base, **space.fixed}
    for k, values in space.grid.items():
        ps[k] = tune.grid_search(values)
    for k, r in space.ranges.items():
        ps[k] = tune.loguniform(r.low, r.high) if r.log else tune.uniform(r.low, r.high)
    if space.is_search:
        ps["seed"] = 0
    else:
        ps["seed"] = tune.grid_search(list(range(study.seeds)))
    return ps


def _init_ray(study: StudyConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    if study.address:
        ray.init(address=study.address, log_to_driver=True, logging_level="WARNING")
    else:
        # _keep_local_ray_on_loopback made the node address 127.0.0.1.
        ray.init(
            num_cpus=os.cpu_count(),
            include_dashboard=False,
            log_to_driver=True,
            logging_level="WARNING",
        )


def _keep_local_ray_on_loopback() -> None:
    """On one machine Ray advertises, and its servers bind to, the host's network address.
    With cluster mode off (read when ray is first imported, so this runs before that) the
    node address is 127.0.0.1, and Ray binds its gRPC servers and agents to loopback only."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"


# A checkpoint per epoch makes Tune snapshot its state often on tiny scales; that is intended.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
# Per-epoch reports carry the training losses; the objectives (top1, cmap) come with the final
# report only, which is the one the Optuna searcher records.
os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")


def _compute_shared(plan: StudyPlan, log: Any) -> list[dict[str, Any]]:
    """Compute the missing shared stages as Ray tasks with the trials' resources."""
    import ray

    from study.shared import ensure_shared

    study = plan.study

    def job(cfg_dict: dict[str, Any], root: str) -> dict[str, Any]:
        from trainables.config import from_dict

        return ensure_shared(
            Path(root),
            from_dict(cfg_dict),
            log=lambda m: print(f"[shared] {m}", file=sys.stderr, flush=True),
        )

    # Nothing else runs while the shared stages are computed, so each takes a whole node's
    # CPUs (and threads), not one trial's share.
    node_cpus = max(
        (n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n["Alive"]),
        default=study.cpus_per_trial,
    )
    cpus = max(study.cpus_per_trial, node_cpus)
    remote = ray.remote(num_cpus=cpus, num_gpus=study.gpus_per_trial)(job)
    refs = [remote.remote(cfg.to_dict(), str(study.root)) for cfg in plan.shared_configs]
    log(f"[study] shared stages: {len(refs)} distinct data/backbone settings, {cpus:g} CPUs each")
    return list(ray.get(refs))


def _log_shared_on_parent(c: Any, parent: str, plan: StudyPlan) -> None:
    from study import tracking
    from study.shared import load_init, load_raw

    for cfg in plan.shared_configs:
        init, raw = load_init(plan.study.root, cfg), load_raw(plan.study.root, cfg)
        tag = f"{cfg.anonymizer}-{cfg.action_model}-{cfg.privacy_model}"
        metrics = {
            f"raw/top1/{tag}": raw.top1,
            f"raw/cmap/{tag}": raw.cmap,
            f"raw/f1/{tag}": raw.f1,
        }
        if len(plan.shared_configs) == 1:
            metrics |= {
                "raw/top1": raw.top1,
                "raw/cmap": raw.cmap,
                "raw/f1": raw.f1,
                "shared/seconds": init.seconds + raw.seconds,
            }
        tracking.log_metrics(c, parent, metrics)
        for name, curve in init.history.items():
            for step, v in enumerate(curve, start=1):
                tracking.log_metrics(c, parent, {f"shared/{name}/{tag}": v}, step=step)


def results_table(grid: Any) -> Any:
    import pandas as pd

    from trainables.config import from_dict

    rows = []
    for r in grid:
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


def run_study(plan: StudyPlan) -> int:
    if not plan.study.address:
        _keep_local_ray_on_loopback()
    from ray import tune
    from ray.tune import CheckpointConfig, FailureConfig, RunConfig, TuneConfig, Tuner

    from study import tracking
    from study.mlflow_server import MlflowServer
    from study.trainable import StudyContext, run_tune_trial

    study = plan.study
    root = study.root
    tune_path = root / "ray" / "tune"
    if study.resume and not Tuner.can_restore(str(tune_path)):
        print(f"error: --resume: no study to resume in {root}", file=sys.stderr)
        return 2
    if not study.resume and tune_path.exists():
        print(
            f"error: {root} already holds a study: pass --resume to continue it, or choose "
            f"another --experiment or --study-dir",
            file=sys.stderr,
        )
        return 2
    root.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t0 = time.time()
    server = None
    uri = study.tracking_uri
    if not uri:
        server = MlflowServer(root, port=study.mlflow_port).start()
        uri = server.uri
    log(f"[study] MLflow tracking server: {uri}")
    status, reason, table, report = "FAILED", "", None, None
    c = parent = exp_id = None
    try:
        _init_ray(study)
        c = tracking.client(uri)
        exp_id = tracking.experiment_id(c, study.experiment_name)
        parent = tracking.parent_run(
            c,
            exp_id,
            study.experiment_name,
            resume=study.resume,
            params={
                **{f"study.{k}": v for k, v in study.__dict__.items() if k != "set"},
                "study.set": " ".join(study.set),
                "study.trials": len(plan.trials),
            },
        )
        log(
            f"[study] {plan.space.name}: {plan.space.num_trials(study.seeds)} trials, parent run "
            f"{parent}"
        )
        computed = _compute_shared(plan, log)
        if any(s["computed"] for s in computed) or not study.resume:
            _log_shared_on_parent(c, parent, plan)

        ctx = StudyContext(
            root=str(root),
            tracking_uri=uri,
            experiment_id=exp_id,
            parent_run_id=parent,
            reuse=not study.no_reuse,
        )
        trainable = tune.with_resources(
            tune.with_parameters(run_tune_trial, ctx=ctx),
            {"cpu": study.cpus_per_trial, "gpu": study.gpus_per_trial},
        )
        if study.resume:
            log(f"[study] resuming {tune_path}")
            tuner = Tuner.restore(
                str(tune_path), trainable=trainable, resume_unfinished=True, resume_errored=True
            )
        else:
            tuner = Tuner(
                trainable,
                param_space=param_space(plan),
                tune_config=_tune_config(plan, TuneConfig),
                run_config=RunConfig(
                    name="tune",
                    storage_path=str(root / "ray"),
                    failure_config=FailureConfig(max_failures=study.max_failures),
                    checkpoint_config=CheckpointConfig(num_to_keep=1),
                    verbose=1,
                ),
            )
        grid = tuner.fit()
        table = results_table(grid)
        report = _write_report(study, uri, log) if (table["status"] == "done").any() else None
        unfinished = int((table["status"] != "done").sum()) if len(table) else 0
        errors = int((table["status"] == "error").sum()) if len(table) else 0
        if unfinished == 0:
            status = "FINISHED"
        elif errors:
            status, reason = "FAILED", f"{errors} trial(s) failed"
        else:
            status, reason = "KILLED", "interrupted; continue with --resume"
    except KeyboardInterrupt:
        status, reason = "KILLED", "interrupted (SIGINT); continue with --resume"
        raise
    except BaseException as e:
        status, reason = "FAILED", f"{type(e).__name__}: {e}"
        raise
    finally:
        if c is not None and parent is not None:
            n = tracking.close_unfinished_children(
                c, exp_id, parent, reason or "the study ended first"
            )
            if n:
                log(f"[study] marked {n} unfinished trial run(s) KILLED")
            tracking.log_metrics(c, parent, {"study/seconds": time.time() - t0})
            tracking.end_run(c, parent, status, reason)
        _shutdown_ray(study)
        if server is not None:
            server.stop()

    _print_summary(plan, table, uri, server is not None, status, time.time() - t0)
    if report is not None:
        print(f"Report: {report}")
    return 0 if status == "FINISHED" else 1


def _write_report(study: StudyConfig, uri: str, log: Any) -> Path | None:
    """The analysis report of the finished trials, logged to the parent run. A report that
    fails is reported and does not fail the study: the trials are recorded either way."""
    from analysis.load import trials_from_mlflow
    from analysis.report import log_to_parent, write_report

    try:
        df = trials_from_mlflow(study.experiment_name, uri)
        paths = write_report(df, study.root / "report", f"Study {study.experiment_name}")
        log_to_parent(paths, study.experiment_name, uri)
        return paths[0]
    except Exception as e:  # noqa: BLE001
        log(f"[study] the report could not be written: {type(e).__name__}: {e}")
        return None


def _tune_config(plan: StudyPlan, TuneConfig: Any) -> Any:  # noqa: N803
    study, space = plan.study, plan.space
    if not space.is_search:
        return TuneConfig(max_concurrent_trials=study.max_concurrent)
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    storage = optuna.storages.RDBStorage(f"sqlite:///{study.root / 'optuna.db'}")
    searcher = OptunaSearch(
        metric=list(space.objectives),
        mode=list(space.objectives.values()),
        storage=storage,
        study_name=study.experiment_name,
        seed=0,
    )
    return TuneConfig(
        search_alg=searcher,
        num_samples=(study.num_samples or space.num_samples) * study.seeds,
        max_concurrent_trials=study.max_concurrent,
    )


def _shutdown_ray(study: StudyConfig) -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def _print_summary(
    plan: StudyPlan, table: Any, uri: str, own_server: bool, status: str, seconds: float
) -> None:
    import pandas as pd

    root = plan.study.root
    print()
    print(
        f"Study {plan.study.experiment_name} ({plan.space.name}): {status} in {seconds / 60:.1f} min"
    )
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
            f"Continue with: python -m study.launch --space {plan.study.space} --experiment "
            f"{plan.study.experiment_name} --study-dir {plan.study.study_dir} --resume"
        )


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
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.list_spaces:
        from search_spaces import list_spaces

        for name, help_ in list_spaces():
            print(f"{name:<14} {help_}")
        return 0
    try:
        study = from_args(args)
        plan = plan_study(study)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return run_study(plan)


if __name__ == "__main__":
    sys.exit(main())
