"""The Optuna side of a search space: the samplers a user can name (``--sampler``), and the Ray
Tune searcher that records each Optuna trial's MLflow runs as a user attribute."""

from __future__ import annotations

from typing import Any

from trainables.registry import Registry

#: Optuna samplers by name; each builder takes the trial budget and the search seed.
SAMPLERS: Registry[Any] = Registry("sampler")

#: The Optuna trial's user attribute that names its MLflow child runs (one per seed).
RUN_IDS_ATTR = "mlflow_run_ids"


def startup_trials(budget: int) -> int:
    """Random trials before a model-based sampler takes over: a quarter of the budget, at least
    2 and at most 10 (Optuna's own default, meant for budgets of hundreds)."""
    return max(2, min(10, budget // 4))


@SAMPLERS.register(
    "tpe",
    "multi-objective TPE (multivariate), random for the first quarter of the budget, a constant "
    "liar for trials running at once",
)
def _tpe(budget: int, seed: int) -> Any:
    import optuna

    return optuna.samplers.TPESampler(
        n_startup_trials=startup_trials(budget),
        multivariate=True,
        constant_liar=True,
        seed=seed,
    )


@SAMPLERS.register("gp", "Gaussian-process sampler (Optuna's GPSampler)")
def _gp(budget: int, seed: int) -> Any:
    import optuna

    return optuna.samplers.GPSampler(n_startup_trials=startup_trials(budget), seed=seed)


@SAMPLERS.register("nsga2", "NSGA-II, a population of a quarter of the budget (at least 4)")
def _nsga2(budget: int, seed: int) -> Any:
    import optuna

    return optuna.samplers.NSGAIISampler(population_size=max(4, budget // 4), seed=seed)


@SAMPLERS.register("random", "uniform random sampling (a baseline)")
def _random(budget: int, seed: int) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def build_sampler(name: str, budget: int, seed: int = 0) -> Any:
    return SAMPLERS.build(name, budget=budget, seed=seed)


def searcher(**kwargs: Any) -> Any:
    """Ray Tune's OptunaSearch (``kwargs`` as its own), which also stores each completed
    trial's MLflow run ids (``mlflow_run_ids``) on the Optuna trial, so that a trial seen in
    optuna-dashboard leads to its runs."""
    from ray.tune.search.optuna import OptunaSearch

    class _RecordingOptunaSearch(OptunaSearch):
        def on_trial_complete(
            self, trial_id: str, result: dict | None = None, error: bool = False
        ) -> None:
            ot_trial = self._ot_trials.get(trial_id)
            run_ids = (result or {}).get("mlflow_run_id")
            if ot_trial is not None and run_ids and trial_id not in self._completed_trials:
                ot_trial.set_user_attr(RUN_IDS_ATTR, str(run_ids))
            super().on_trial_complete(trial_id, result=result, error=error)

    return _RecordingOptunaSearch(**kwargs)
