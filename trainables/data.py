"""Trial data: the registry of datasets/protocols and the sets one trial uses.

A dataset builder turns a TrialConfig into :class:`TrialData`: action clips with labels, privacy
samples with multi-label attributes, and which privacy set the evaluation scores. Pixels are
uint8 tensors in memory, or for real videos streams decoded on demand (see
:mod:`trainables.pixels`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
    #: The sets f_T' trains and is scored on, when not the game's action sets (cross-dataset
    #: protocols, e.g. HMDB51 train / PA-HMDB test).
    eval_action: tuple[ClipSet, ClipSet] | None = None
    #: The sets f_B' trains and is scored on (images or clips with attributes), when not the
    #: ones ``privacy_eval`` names.
    eval_privacy: tuple[ClipSet | ImageSet, ClipSet | ImageSet] | None = None
    #: f_T''s classes, when its dataset is not the game's (e.g. UCF101 -> HMDB51).
    eval_actions: tuple[str, ...] | None = None
    #: Files that failed to decode and were left out, one message each.
    skipped: list[str] = field(default_factory=list)

    def skipped_files(self) -> list[str]:
        """Every file left out, one message each: those that failed when the sets were built,
        then those that failed while a streamed set was read."""
        from trainables.datasets.stream import ClipStream

        out = list(self.skipped)
        for s in self.sets():
            if isinstance(s, ClipSet) and isinstance(s.clips, ClipStream):
                out += list(s.clips.failed.values())
        return out

    def sets(self) -> list[ClipSet | ImageSet]:
        """Every set of the trial once, whatever roles it plays."""
        sets = [self.action_train, self.action_test, self.privacy_train, self.privacy_test]
        sets += list(self.eval_action or ()) + list(self.eval_privacy or ())
        return list({id(s): s for s in sets}.values())

    def action_eval_sets(self) -> tuple[ClipSet, ClipSet]:
        return self.eval_action or (self.action_train, self.action_test)

    def privacy_eval_sets(self) -> tuple[ClipSet | ImageSet, ClipSet | ImageSet]:
        if self.eval_privacy is not None:
            return self.eval_privacy
        if self.privacy_eval == "clips":
            return self.action_train, self.action_test
        return self.privacy_train, self.privacy_test

    @property
    def num_classes(self) -> int:
        return len(self.actions)

    @property
    def eval_num_classes(self) -> int:
        return len(self.eval_actions or self.actions)

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
def synthetic(cfg: TrialConfig, log: Callable[[str], None] = print) -> TrialData:
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
def synthetic_vp(cfg: TrialConfig, log: Callable[[str], None] = print) -> TrialData:
    data = synthetic(cfg, log)
    data.privacy_eval = "clips"
    return data


def _register_protocols() -> None:
    from trainables.datasets.protocols import PROTOCOLS, build_protocol

    def builder(name: str):  # type: ignore[no-untyped-def]
        return lambda cfg, log=print: build_protocol(name, cfg, log)

    for name, proto in PROTOCOLS.items():
        DATASETS.register(name, f"paper protocol ({proto.description})")(builder(name))


_register_protocols()


def load_data(cfg: TrialConfig, log: Callable[[str], None] | None = None) -> TrialData:
    """Load the dataset or protocol named by ``cfg.dataset``."""
    return DATASETS.build(cfg.dataset, cfg=cfg, log=log or print)


def main(argv: list[str] | None = None) -> int:
    from trainables.datasets.check import main as check_main

    return check_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())


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
