"""What reference edits cost in RMS(X - edit(X)) on a dataset's action test clips, so that a
user sees which bounds B restrain f_A before spending a GPU-day: a B above the cost of
flattening every clip to its mean colour lets f_A erase every clip, and restrains only
recolourings that cost more (a learned f_A can reach them: it exceeds that cost on the built-in
benchmark when the penalty does not hold it back).

Each edit is a pure function of clips (N, C, T, H, W) in [0, 1] and, where the dataset has
them, actor masks (N, T, H, W); :func:`calibrate` returns the mean and largest cost of each.
The same edits cost :func:`feature_costs_on` in the space of the feature-based penalty: the
relative distance they move the warm-started f_T's penultimate features.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from trainables.config import TrialConfig
from trainables.data.sets import TrialData, batches
from trainables.game import losses
from trainables.game.device import resolve_device
from trainables.game.pixels import fetch
from trainables.game.train import Featurizer
from trainables.models.anonymizers import Blacken
from trainables.models.minimize import blur, greyscale, per_frame, resolution

Edit = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


def flatten(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Every pixel of a clip set to the clip's mean colour: nothing is left."""
    return x.mean(dim=(2, 3, 4), keepdim=True).expand_as(x)


def grey(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """ITU-R BT.601 luma in every channel."""
    return greyscale(x)


def _blur(sigma_px: float) -> Edit:
    def edit(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return per_frame(x, lambda f: blur(f, sigma_px / x.shape[-1]))

    return edit


def _downsample(factor: int) -> Edit:
    def edit(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return per_frame(x, lambda f: resolution(f, 1 / factor))

    return edit


def blacken(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The people blackened, where masks exist."""
    return Blacken()(x, mask)


#: The reference edits, cheapest first as a rule; ``blacken`` needs masks.
EDITS: dict[str, Edit] = {
    "blur_sigma1": _blur(1.0),
    "downsample2x": _downsample(2),
    "greyscale": grey,
    "blur_sigma2": _blur(2.0),
    "downsample4x": _downsample(4),
    "blacken": blacken,
    "flatten": flatten,
}
NEEDS_MASK = {"blacken"}


#: A per-sample cost of an edit: (clips, edited clips) -> (N,).
CostFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Cost:
    """An edit's cost over the action test clips (RMS(X - edit(X)) unless another cost is
    given): the mean and the largest."""

    mean: float
    max: float


def calibrate(
    batches: Iterable[tuple[torch.Tensor, torch.Tensor | None]],
    cost: CostFn = losses.rms_per_sample,
) -> dict[str, Cost]:
    """The ``cost`` of every edit over ``batches`` of (clips in [0, 1], masks or None). Edits
    that need masks are left out when any batch has none."""
    per: dict[str, list[torch.Tensor]] = {name: [] for name in EDITS}
    masked = True
    for x, m in batches:
        masked = masked and m is not None
        for name, edit in EDITS.items():
            if name in NEEDS_MASK and m is None:
                continue
            per[name].append(cost(x, edit(x, m).clamp(0, 1)).cpu())
    out = {}
    for name, rows in per.items():
        if not rows or (name in NEEDS_MASK and not masked):
            continue
        r = torch.cat(rows)
        out[name] = Cost(float(r.mean()), float(r.max()))
    return out


def costs_on(
    data: TrialData, cfg: TrialConfig, cost: CostFn = losses.rms_per_sample
) -> dict[str, dict[str, float]]:
    """The cost of each edit on the action test clips of ``data``, as plain numbers."""
    test = data.action_test
    device = resolve_device(cfg.device)

    def pairs():
        order = batches(len(test.clips), max(cfg.eval_batch_size, 8), None)
        for idx, x in fetch(test.clips, order, device):
            m = None if test.masks is None else test.masks[idx].to(device)
            yield x, m

    with torch.no_grad():
        costs = calibrate(pairs(), cost)
    return {k: {"mean": c.mean, "max": c.max} for k, c in costs.items()}


def feature_costs_on(
    data: TrialData, cfg: TrialConfig, phi: Featurizer
) -> dict[str, dict[str, float]]:
    """The cost of each edit in the feature-based penalty's space: ||phi(X) - phi(edit(X))|| /
    ||phi(X)|| on the action test clips, ``phi`` the warm-started f_T (on ``cfg.device``)."""

    def cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return losses.feature_distance(phi.features(x), phi.features(y))

    return costs_on(data, cfg, cost)


def table(
    costs: dict[str, dict[str, float]], features: dict[str, dict[str, float]] | None = None
) -> str:
    """The costs as markdown; with ``features``, their feature distances beside them."""
    head = "| edit | mean RMS | max RMS |"
    if features:
        head += " mean feature distance | max feature distance |"
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for k, v in costs.items():
        row = f"| {k} | {v['mean']:.4f} | {v['max']:.4f} |"
        if features:
            f = features.get(k)
            row += f" {f['mean']:.4f} | {f['max']:.4f} |" if f else " | |"
        lines.append(row)
    return "\n".join(lines)
