"""Planning a study, before anything starts: the space expanded into trial configs, each
checked, the distinct shared stages they need, and their inputs (real datasets, local weights)
read once per distinct setting. Pure but for reading those inputs."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from search_spaces import SearchSpace, get_space
from study.config import StudyConfig
from study.replicates import seeded
from trainables.catalog import validate
from trainables.config import SCALES, TrialConfig, from_dict, parse_assignments, parse_value
from trainables.data.datasets.layouts import DatasetError
from trainables.data.datasets.protocols import PROTOCOLS, check_protocol
from trainables.data.datasets.sources import ROOT_ENV
from trainables.game.keys import init_key, raw_key
from trainables.models.build import check_pretrained
from trainables.models.weights import WeightsError


@dataclass
class StudyPlan:
    """A checked study: the space, the base trial config and every trial config it will run
    (for searches: the corners of the ranges, to check them)."""

    study: StudyConfig
    space: SearchSpace
    base: dict[str, Any]
    trials: list[TrialConfig]

    @property
    def shared_configs(self) -> list[TrialConfig]:
        """One trial config per distinct pair of shared stages (identity/warm start, raw
        reference) the trials need."""
        seen: dict[tuple[str, str], TrialConfig] = {}
        for cfg in self.trials:
            seen.setdefault((init_key(cfg), raw_key(cfg)), cfg)
        return list(seen.values())

    @property
    def samples(self) -> int:
        """Configurations a search samples (1 for a grid)."""
        if not self.space.is_search:
            return 1
        return self.study.num_samples or self.space.num_samples

    @property
    def num_trials(self) -> int:
        """Trials the study runs: grid points (or sampled configurations) times seeds."""
        n = self.samples * self.study.seeds * max(1, len(self.space.points))
        for values in self.space.grid.values():
            n *= len(values)
        return n


#: ``--set`` keys that the study itself decides, and the flag that decides each.
STUDY_OWNED = {
    "seed": "--seeds N (replicates with model seeds 0..N-1; --set data_seed=D offsets their data "
    "seeds D..D+N-1)",
    "scale": "--scale",
    "dataset": "--dataset",
}


def _check_study(study: StudyConfig) -> None:
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


def _points(space: SearchSpace) -> list[dict[str, Any]]:
    """The grid's points (each with each explicit point); for a search, the corners of its
    ranges."""
    if space.is_search:
        return space.combinations({k: (r.low, r.high) for k, r in space.ranges.items()})
    return space.combinations()


def parse_grid(items: tuple[str, ...]) -> dict[str, list[Any]]:
    """``KEY=V1,V2,...`` items (``--grid``) as typed axes."""
    axes: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key or not values.strip():
            raise ValueError(f"--grid takes KEY=V1,V2,..., got {item!r}")
        axes[key] = [parse_value(TrialConfig, key, v) for v in values.split(",")]
    return axes


def with_grid(space: SearchSpace, axes: dict[str, list[Any]]) -> SearchSpace:
    """``space`` with ``axes`` replacing its axes and fixed values of the same keys."""
    if not axes:
        return space
    if space.is_search:
        raise ValueError(f"--grid: {space.name} is a search, not a grid; pick a grid space")
    clash = sorted({k for p in space.points for k in p} & set(axes))
    if clash:
        raise ValueError(
            f"--grid {', '.join(clash)}: the points of {space.name} set these themselves"
        )
    fixed = {k: v for k, v in space.fixed.items() if k not in axes}
    return dataclasses.replace(space, grid={**space.grid, **axes}, fixed=fixed)


def plan_study(study: StudyConfig) -> StudyPlan:
    """Check the study and expand its trials; raise ValueError naming what is wrong."""
    _check_study(study)
    space = with_grid(get_space(study.space), parse_grid(study.grid))
    assigned = parse_assignments(study.set)
    misplaced = [f"--set {k}: use {STUDY_OWNED[k]} instead" for k in assigned if k in STUDY_OWNED]
    if misplaced:
        raise ValueError("; ".join(misplaced))
    if study.num_samples and not space.is_search:
        raise ValueError(
            f"--num-samples: {space.name} is a grid of {space.num_trials()} points, each run "
            "once per seed; --num-samples applies to search spaces (use --seeds N for "
            "replicates)"
        )
    if study.sampler:
        if not space.is_search:
            raise ValueError(
                f"--sampler: {space.name} is a grid; --sampler applies to search spaces"
            )
        from study.search import SAMPLERS

        try:
            SAMPLERS.check(study.sampler)
        except ValueError as e:
            raise ValueError(f"--sampler: {e}") from None
    base = {"scale": study.scale, "dataset": study.dataset, **assigned}
    owned = set(space.grid) | set(space.ranges) | set(space.fixed)
    overlap = sorted(set(base) & (owned | {k for p in space.points for k in p}))
    if overlap:
        raise ValueError(f"--set {', '.join(overlap)}: the space {space.name} sets these itself")
    for k, env in ROOT_ENV.items():  # record the roots the environment gives as params
        if k not in base and os.environ.get(env):
            base[k] = os.environ[env]
    trials = []
    for seed in range(study.seeds):
        for p in _points(space):
            cfg = from_dict(seeded({**base, **p, "seed": seed}))
            validate(cfg)
            trials.append(cfg)
    _check_inputs(trials)
    return StudyPlan(study=study, space=space, base=base, trials=trials)


def _check_inputs(trials: list[TrialConfig]) -> None:
    """Read the split files of real datasets and load local weights once per distinct setting,
    so that a missing video or weights that do not fit fail before any server starts."""
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
