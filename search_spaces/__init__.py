"""Named search spaces: one small function each, in a registry.

A space is plain data (no Ray or Optuna import here): grid axes that Ray's basic variant
generator expands, fixed values, or, for searches, continuous ranges handed to Optuna. The
study launcher turns a :class:`SearchSpace` into Ray Tune objects.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trainables.config import PENALTY_SPACES
from trainables.registry import Registry


@dataclass(frozen=True)
class Range:
    """A continuous range for a search; ``log`` for learning rates."""

    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class SearchSpace:
    """What a study scans.

    ``grid``: every combination of these values is a trial (times the replicate seeds).
    ``points``: explicit configurations (each a dict of field values), for a space whose parts
    scan different fields (the anonymizer families); each grid combination runs with each point.
    ``fixed``: the same value in every trial. ``ranges``: searched by Optuna for ``num_samples``
    trials, towards ``objectives`` (metric -> "max" or "min").
    """

    name: str
    grid: dict[str, list[Any]] = field(default_factory=dict)
    points: list[dict[str, Any]] = field(default_factory=list)
    fixed: dict[str, Any] = field(default_factory=dict)
    ranges: dict[str, Range] = field(default_factory=dict)
    objectives: dict[str, str] = field(default_factory=dict)
    num_samples: int = 1
    #: The Optuna sampler of a search (``study.search.SAMPLERS``); ``--sampler`` overrides it.
    sampler: str = "tpe"

    @property
    def is_search(self) -> bool:
        return bool(self.ranges)

    def num_trials(self, seeds: int = 1) -> int:
        n = self.num_samples if self.is_search else max(1, len(self.points))
        for values in self.grid.values():
            n *= len(values)
        return n * seeds

    def combinations(self, axes: dict[str, Sequence[Any]] | None = None) -> list[dict[str, Any]]:
        """The one grid expander: every combination of the values of ``axes`` (the grid's by
        default), each with each point, over the fixed values (the seeds not included)."""
        chosen: Mapping[str, Sequence[Any]] = self.grid if axes is None else axes
        grid = [dict(zip(chosen, vs, strict=True)) for vs in itertools.product(*chosen.values())]
        return [{**self.fixed, **g, **p} for g in grid for p in (self.points or [{}])]


SPACES: Registry[SearchSpace] = Registry("search space")


def _values(xs: list[float]) -> str:
    """``[0.0, 0.1]`` as ``0,.1`` for a space's help."""
    return ",".join(f"{x:g}".replace("0.", ".", 1) if 0 < abs(x) < 1 else f"{x:g}" for x in xs)


#: The paper's bounds, for real data (its released penalty carried no gradient).
PAPER_BS = [0.0, 0.3, 0.5, 0.7, 0.9, 1.0]
PAPER_LAMS = [0.0, 0.1, 0.3, 0.5, 0.7, 1.0]
#: Bounds for the built-in benchmark: from 0 up to about the RMS of the unconstrained game
#: (lambda = 0, which erases the clips: about 0.6 at the default scale), so that the sweep's far
#: end meets lambda = 0 (docs/benchmark-design.md has the measurements).
BUILTIN_BS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
#: The lambda at which the built-in benchmark's penalty holds every B of the sweep.
BINDING_LAM = 100.0
#: The lambda values of the built-in grids: off, two that bend, and the binding one.
BUILTIN_LAMS = [0.0, 1.0, 10.0, BINDING_LAM]
#: Table 3's lambda ablation on the built-in benchmark.
LAMBDA_SWEEP = [0.0, 1.0, 3.0, 10.0, 30.0, BINDING_LAM]
#: The B range a search samples on the built-in benchmark: the sweep's.
BUILTIN_B_RANGE = Range(0.0, max(BUILTIN_BS))
#: The lambda range a search samples (log): from a penalty that bends to one that binds.
BUILTIN_LAM_RANGE = Range(1.0, BINDING_LAM, log=True)


def _space(
    name: str, help: str
) -> Callable[[Callable[[], SearchSpace]], Callable[[], SearchSpace]]:
    return SPACES.register(name, help)


@_space(
    "penalty_grid",
    f"B in {{{_values(BUILTIN_BS)}}} x lambda in {{{_values(BUILTIN_LAMS)}}}: "
    f"{len(BUILTIN_BS) * len(BUILTIN_LAMS)} trials (those at lambda = 0 share one result)",
)
def penalty_grid() -> SearchSpace:
    return SearchSpace("penalty_grid", grid={"B": BUILTIN_BS, "lam": BUILTIN_LAMS})


@_space("paper_grid", "the paper's B in {0,.3,.5,.7,.9,1} x lambda in {0,.1,.3,.5,.7,1}: 36")
def paper_grid() -> SearchSpace:
    return SearchSpace("paper_grid", grid={"B": PAPER_BS, "lam": PAPER_LAMS})


@_space(
    "b_sweep", f"Figure 3: B in {{{_values(BUILTIN_BS)}}} at the binding lambda = {BINDING_LAM:g}"
)
def b_sweep() -> SearchSpace:
    return SearchSpace("b_sweep", grid={"B": BUILTIN_BS}, fixed={"lam": BINDING_LAM})


@_space("lambda_sweep", f"Table 3: lambda in {{{_values(LAMBDA_SWEEP)}}} at B = 0.1")
def lambda_sweep() -> SearchSpace:
    return SearchSpace("lambda_sweep", grid={"lam": LAMBDA_SWEEP}, fixed={"B": 0.1})


@_space(
    "backbones",
    f"anonymizer encoders x action models x privacy models at B = 0.3, lambda = {BINDING_LAM:g}",
)
def backbones() -> SearchSpace:
    return SearchSpace(
        "backbones",
        grid={
            "anon_encoder": ["mobilenet_v2", "resnet18"],
            "action_model": ["c3d_tiny", "i3d_r50_tiny"],
            "privacy_model": ["resnet8_full", "resnet10_tiny"],
        },
        fixed={"B": 0.3, "lam": BINDING_LAM},
    )


def _robustness(name: str, bs: list[float], action: str, privacy: str) -> SearchSpace:
    """f_A trained once per B at the binding lambda, scored by the listed fresh f_T' and f_B'
    too."""
    return SearchSpace(
        name,
        grid={"B": bs},
        fixed={"lam": BINDING_LAM, "eval_action_models": action, "eval_privacy_models": privacy},
    )


@_space(
    "robustness",
    "Tables 5/7/8 on CPU models: f_A trained once per B in {.2,.4,.6} at the binding lambda, "
    "evaluated by 3 fresh f_T' and 3 fresh f_B'",
)
def robustness() -> SearchSpace:
    return _robustness(
        "robustness", [0.2, 0.4, 0.6], "x3d_tiny,i3d_r50_tiny", "resnet10_tiny,resnet18"
    )


@_space(
    "robustness_paper",
    "Tables 5/7/8 with the paper's models: f_T' R3D-18, R(2+1)D-18, MC3-18 besides f_T; f_B' "
    "ResNet-18/34/50/101/152 besides f_B; B in {.3,.5,.7} at the binding lambda",
)
def robustness_paper() -> SearchSpace:
    return _robustness(
        "robustness_paper",
        [0.3, 0.5, 0.7],
        "r3d_18,r2plus1d_18,mc3_18",
        "resnet18,resnet34,resnet50,resnet101,resnet152",
    )


@_space("baselines", "the fixed anonymizers: raw, downsampling, blur, blackening")
def baselines() -> SearchSpace:
    from trainables.models.anonymizers import (
        paper_baselines,  # torch: only when this space is built
    )

    return SearchSpace("baselines", grid={"anonymizer": paper_baselines()})


#: The minimize family's sweep: each operator alone at growing strength, then compositions.
#: Resolution 1/2 and 1/4 and blur 1/56 and 1/16 of the width are the paper's downsampling and
#: blur baselines (``downsample2x`` ... ``blur_strong`` are presets of the same operators).
MINIMIZATION: list[dict[str, Any]] = [
    *({"min_resolution": r} for r in (0.5, 0.25, 0.125)),
    *({"min_frame_step": n} for n in (2, 4)),
    *({"min_crop": c} for c in (0.75, 0.5)),
    *({"min_bits": b} for b in (4, 2, 1)),
    {"min_grey": True},
    *({"min_blur": s} for s in (1 / 56, 1 / 16, 1 / 8)),
    {"min_grey": True, "min_bits": 2},
    {"min_resolution": 0.5, "min_grey": True},
    {"min_crop": 0.5, "min_resolution": 0.5},
]
#: The part of the sweep that the families space runs (9 of the 17).
FAMILIES_MINIMIZATION: list[dict[str, Any]] = [
    {"min_resolution": 0.5},
    {"min_resolution": 0.25},
    {"min_frame_step": 2},
    {"min_crop": 0.5},
    {"min_bits": 2},
    {"min_grey": True},
    {"min_blur": 1 / 56},
    {"min_blur": 1 / 16},
    {"min_grey": True, "min_bits": 2},
]
#: tubelet_prune's keep ratios (its knob) in the families space.
KEEP_RATIOS = [0.25, 0.5, 0.75, 0.9]
#: The penalty family's bounds in the families space (at the binding lambda).
FAMILIES_BS = [0.2, 0.4, 0.5, 0.6]


def _minimize_points(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"anonymizer": "minimize", **o} for o in ops]


@_space(
    "minimization",
    "the minimize family's sweep: resolution, frame step, motion crop, bits, grey and blur "
    "alone, then 3 compositions: 17 trials (includes the downsampling and blur baselines)",
)
def minimization() -> SearchSpace:
    return SearchSpace("minimization", points=_minimize_points(MINIMIZATION))


@_space(
    "families",
    f"every anonymizer family on one front: the penalty method (B in {{{_values(FAMILIES_BS)}}}, "
    f"lambda = {BINDING_LAM:g}), tubelet_prune (keep ratio in {0.25, 0.5, 0.75, 0.9}), 9 minimize points (the downsampling "
    "and blur baselines among them), raw and blackening: 19 trials",
)
def families() -> SearchSpace:
    return SearchSpace(
        "families",
        points=[
            *({"B": b, "lam": BINDING_LAM} for b in FAMILIES_BS),
            *({"anonymizer": "tubelet_prune", "keep_ratio": k} for k in KEEP_RATIOS),
            *_minimize_points(FAMILIES_MINIMIZATION),
            {"anonymizer": "identity"},
            {"anonymizer": "blacken"},
        ],
    )


#: The bounds each penalty sweeps in the penalty_spaces space (B = 0 is the identity in both).
PENALTY_SPACE_BS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]


@_space(
    "penalty_spaces",
    f"the pixel penalty and the feature-based one (penalty_on = action_features) on one front: "
    f"B in {{{_values(PENALTY_SPACE_BS)}}} at lambda = {BINDING_LAM:g} under each, and "
    f"lambda = 0 once: {2 * len(PENALTY_SPACE_BS) + 1} trials",
)
def penalty_spaces() -> SearchSpace:
    return SearchSpace(
        "penalty_spaces",
        points=[
            *(
                {"B": b, "lam": BINDING_LAM, "penalty_on": on}
                for on in PENALTY_SPACES
                for b in PENALTY_SPACE_BS
            ),
            {"B": 0.1, "lam": 0.0},
        ],
    )


@_space(
    "pareto_search",
    "Optuna multi-objective search (multivariate TPE with a constant liar; --sampler to "
    "change it): max Top-1, min cMAP over B in [0, .6] (the built-in sweep), lambda in "
    "[1, 100] (log) and the game's learning rates",
)
def pareto_search() -> SearchSpace:
    return SearchSpace(
        "pareto_search",
        ranges={
            "B": BUILTIN_B_RANGE,
            "lam": BUILTIN_LAM_RANGE,
            "lr_anon": Range(1e-4, 3e-3, log=True),
            "lr_action": Range(1e-4, 3e-3, log=True),
            "lr_privacy": Range(1e-4, 3e-3, log=True),
        },
        objectives={"top1": "max", "cmap": "min"},
        num_samples=12,
    )


@_space("smoke", f"two quick trials: B = 0.1 at lambda 0 and {BINDING_LAM:g}")
def smoke() -> SearchSpace:
    return SearchSpace("smoke", grid={"lam": [0.0, BINDING_LAM]}, fixed={"B": 0.1})


def get_space(name: str) -> SearchSpace:
    """The named space; an unknown name raises an error listing the valid ones."""
    return SPACES.build(name)


def list_spaces() -> list[tuple[str, str]]:
    return [(n, SPACES.describe(n)) for n in SPACES.names()]
