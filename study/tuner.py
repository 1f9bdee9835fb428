"""The Ray Tune side of a plan: its param space (grid axes, or ranges for Optuna), the search
set-up, and the Tuner, new or restored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from study.plan import StudyPlan
from study.replicates import POINT


def param_space(plan: StudyPlan) -> dict[str, Any]:
    """The Ray Tune param space: grid axes as grid_search, ranges as Optuna-searchable domains."""
    from ray import tune

    space, study = plan.space, plan.study
    ps: dict[str, Any] = {**plan.base, **space.fixed}
    for k, values in space.grid.items():
        ps[k] = tune.grid_search(values)
    if space.points:  # merged into the trial's config by study.replicates.seeded
        ps[POINT] = tune.grid_search(space.points)
    for k, r in space.ranges.items():
        ps[k] = tune.loguniform(r.low, r.high) if r.log else tune.uniform(r.low, r.high)
    if not space.is_search:  # a search's seeds come from the repeater (study.replicates)
        ps["seed"] = tune.grid_search(list(range(study.seeds)))
    return ps


def tune_config(plan: StudyPlan) -> Any:
    """Concurrency, and for a search space the Optuna searcher (its study in STUDY/optuna.db,
    or in ``--optuna-storage``)."""
    from ray.tune import TuneConfig

    study, space = plan.study, plan.space
    # A trial runs in the process its slot's previous trial ran in: it skips starting Python
    # and importing torch, MLflow and the models (about 5 s a trial here). Each trial builds
    # its own models, data and seeds, so nothing carries over but the imports.
    slots: dict[str, Any] = {"max_concurrent_trials": study.max_concurrent, "reuse_actors": True}
    if not space.is_search:
        return TuneConfig(**slots)
    import optuna

    from study.search import build_sampler, searcher

    url = study.optuna_storage or f"sqlite:///{study.root / 'optuna.db'}"
    storage = optuna.storages.RDBStorage(url)
    search = searcher(
        metric=list(space.objectives),
        mode=list(space.objectives.values()),
        storage=storage,
        study_name=study.experiment_name,
        sampler=build_sampler(study.sampler or space.sampler, plan.samples, seed=0),
    )
    from study.replicates import repeater

    return TuneConfig(
        search_alg=repeater(search, study.seeds),
        num_samples=plan.num_trials,
        **slots,
    )


def make_tuner(plan: StudyPlan, trainable: Any, log: Callable[[str], None]) -> Any:
    """A new Tuner for the plan, or on --resume the interrupted one restored."""
    from ray.tune import CheckpointConfig, FailureConfig, RunConfig, Tuner

    study = plan.study
    tune_path = study.root / "ray" / "tune"
    if study.resume:
        log(f"[study] resuming {tune_path}")
        return Tuner.restore(
            str(tune_path), trainable=trainable, resume_unfinished=True, resume_errored=True
        )
    return Tuner(
        trainable,
        param_space=param_space(plan),
        tune_config=tune_config(plan),
        run_config=RunConfig(
            name="tune",
            storage_path=str(study.root / "ray"),
            failure_config=FailureConfig(max_failures=study.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=1),
            verbose=1,
        ),
    )
