"""Replicate seeds of a search: each configuration the searcher samples runs once per seed.

Ray Tune's ``Repeater`` repeats each suggestion and marks the copies with an index in their
config; it averages a single metric for the searcher. :func:`repeater` averages every objective
of a multi-objective search, and :func:`seeded` turns the index into the trial's seeds.

A replicate changes both the model seed and the data seed (:func:`replicate`): on the synthetic
benchmark a new data seed renders new data, and everywhere it re-draws the shared stages (the
identity initialisation and the warm starts), so replicates are independent runs of the whole
pipeline. The evaluation seed stays the study's, so every replicate and its raw reference are
scored by identically seeded f_T' and f_B'.
"""

from __future__ import annotations

from typing import Any

from trainables.config import TrialConfig

#: The key in which Ray's Repeater numbers the copies of a suggestion (ray.tune.search.repeater).
TRIAL_INDEX = "__trial_index__"


#: The data seed of a config that does not set one (TrialConfig's default).
DEFAULT_DATA_SEED: int = TrialConfig().data_seed


#: The key of a space's explicit point (``SearchSpace.points``) in a Ray trial's config.
POINT = "point"


def replicate(index: int, data_seed: int = DEFAULT_DATA_SEED) -> dict[str, int]:
    """The seeds of replicate ``index`` (0, 1, ...) of a study whose data seed is ``data_seed``:
    model seed ``index``, data seed ``data_seed + index``. Replicate 0 is the config as given."""
    return {"seed": index, "data_seed": data_seed + index}


def seeded(config: dict[str, Any]) -> dict[str, Any]:
    """A Ray trial's config as trial config fields: an explicit point's values merged in, and
    its replicate index (the grid's ``seed`` axis, or the Repeater's copy index) as its seeds
    (:func:`replicate`). Apply it once, to the config Ray gives."""
    out = {k: v for k, v in config.items() if k not in (TRIAL_INDEX, POINT)}
    out.update(config.get(POINT) or {})
    if TRIAL_INDEX in config:
        out["seed"] = int(config[TRIAL_INDEX])
    if "seed" in out:
        out.update(replicate(int(out["seed"]), int(out.get("data_seed", DEFAULT_DATA_SEED))))
    return out


def repeater(searcher: Any, seeds: int) -> Any:
    """``searcher`` with each suggestion run ``seeds`` times (replicates 0..seeds-1); the searcher
    sees one trial per suggestion, with each objective averaged over the seeds."""
    import numpy as np
    from ray.tune.search import Repeater

    class _MultiObjectiveRepeater(Repeater):
        def on_trial_complete(
            self, trial_id: str, result: dict | None = None, error: bool = False, **kwargs: Any
        ) -> None:
            group = self._trial_id_to_group.get(trial_id)
            if group is None:
                return
            metrics = self.searcher.metric
            names = metrics if isinstance(metrics, list) else [metrics]
            row = tuple(float((result or {}).get(n, np.nan)) for n in names)
            group.report(trial_id, row)
            runs = self.__dict__.setdefault("_run_ids", {}).setdefault(group.primary_trial_id, [])
            if result and result.get("mlflow_run_id"):
                runs.append(str(result["mlflow_run_id"]))
            if group.finished_reporting():
                mean = np.nanmean(np.array(group.scores(), dtype=float), axis=0)
                averaged: dict[str, Any] = {n: float(v) for n, v in zip(names, mean, strict=True)}
                if runs:  # the runs of every seed, for the searcher's records
                    averaged["mlflow_run_id"] = ",".join(runs)
                self.searcher.on_trial_complete(
                    group.primary_trial_id, result=averaged, error=error, **kwargs
                )

    return _MultiObjectiveRepeater(searcher, repeat=seeds)
