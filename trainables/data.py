"""Trial data: the registry of datasets/protocols and the in-memory tensors one trial uses.

A dataset builder turns a TrialConfig into :class:`TrialData`: action clips with labels, privacy
samples with multi-label attributes, and which privacy set the evaluation scores.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from trainables.registry import Registry
from trainables.synthetic import (
    HFLIP_ACTIONS,
    ClipSet,
    ImageSet,
    SyntheticSpec,
    make_benchmark,
)

if TYPE_CHECKING:
    from trainables.config import TrialConfig


@dataclass
class TrialData:
    """Everything a trial trains and evaluates on. Pixels are uint8; masks may be None.

    ``privacy_eval`` is ``"images"`` when f_B' is trained and scored on the privacy set
    (cross-dataset protocols) and ``"clips"`` when it is trained and scored on the attribute
    labels of the action clips (same-dataset protocols, like VP-HMDB).
    """

    action_train: ClipSet
    action_test: ClipSet
    privacy_train: ImageSet
    privacy_test: ImageSet
    actions: tuple[str, ...]
    attributes: tuple[str, ...]
    privacy_eval: str = "images"
    #: Label of each action class after a horizontal flip; None when flips keep labels.
    hflip_labels: tuple[int, ...] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.actions)

    @property
    def num_attributes(self) -> int:
        return len(self.attributes)


DATASETS: Registry[TrialData] = Registry("dataset")


def _synthetic_spec(cfg: TrialConfig) -> SyntheticSpec:
    return SyntheticSpec(
        size=cfg.size,
        frames=cfg.frames,
        n_action_train=cfg.n_action_train,
        n_action_test=cfg.n_action_test,
        n_privacy_train=cfg.n_privacy_train,
        n_privacy_test=cfg.n_privacy_test,
        seed=cfg.data_seed,
    )


@DATASETS.register("synthetic", "built-in benchmark; privacy scored on the privacy image set")
def synthetic(cfg: TrialConfig) -> TrialData:
    b = make_benchmark(_synthetic_spec(cfg))
    return TrialData(
        b.action_train,
        b.action_test,
        b.privacy_train,
        b.privacy_test,
        b.actions,
        b.attributes,
        privacy_eval="images",
        hflip_labels=HFLIP_ACTIONS,
    )


@DATASETS.register(
    "synthetic-vp",
    "built-in benchmark; privacy scored on the action clips' "
    "attribute labels (same-dataset, like VP-HMDB)",
)
def synthetic_vp(cfg: TrialConfig) -> TrialData:
    data = synthetic(cfg)
    data.privacy_eval = "clips"
    return data


def load_data(cfg: TrialConfig) -> TrialData:
    """Load the dataset named by ``cfg.dataset``."""
    return DATASETS.build(cfg.dataset, cfg=cfg)


def flip_label_tensor(data: TrialData) -> torch.Tensor | None:
    return None if data.hflip_labels is None else torch.tensor(data.hflip_labels)


def to_float(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 pixels -> float pixels in [0, 1] on ``device``."""
    return x.to(device, non_blocking=True).float().div_(255.0)


def batches(
    n: int,
    batch_size: int,
    gen: torch.Generator | None,
    *,
    drop_last: bool = False,
    max_batches: int = 0,
) -> Iterator[torch.Tensor]:
    """Index batches over ``n`` samples, shuffled when ``gen`` is given."""
    idx = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
    stop = n - (n % batch_size) if drop_last and n >= batch_size else n
    for count, start in enumerate(range(0, stop, batch_size)):
        if max_batches and count >= max_batches:
            return
        yield idx[start : start + batch_size]
