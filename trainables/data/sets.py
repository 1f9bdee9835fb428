"""The data types of one trial: clip and image sets, the trial's sets and their roles, and the
index batches every loop draws. A leaf: it imports nothing else from ``trainables``.

Pixels are uint8 tensors in memory, or for real videos a stream that decodes rows on demand
(:class:`~trainables.data.datasets.stream.ClipStream`, read through
:func:`trainables.game.pixels.fetch`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import torch

if TYPE_CHECKING:  # only a type: the leaf imports nothing of trainables at run time
    from trainables.data.datasets.stream import ClipStream


@dataclass
class ClipSet:
    """Clips (N, C, T, H, W) uint8, action labels (N,), attributes (N, A) float, masks (N, T, H, W) bool."""

    clips: torch.Tensor | ClipStream
    labels: torch.Tensor
    attributes: torch.Tensor
    masks: torch.Tensor | None = None
    #: Which video each clip was cut from, when a test video gives several clips (Top-1 then
    #: averages the softmax over a video's clips); None: one clip per video.
    video: torch.Tensor | None = None


@dataclass
class ImageSet:
    """Images (N, C, H, W) uint8, attributes (N, A) float, masks (N, H, W) bool."""

    images: torch.Tensor
    attributes: torch.Tensor
    masks: torch.Tensor | None = None


@dataclass
class TrialData:
    """Everything a trial trains and evaluates on. Pixels are uint8; masks may be None.

    ``privacy_scored_on`` is ``"images"`` when f_B' is trained and scored on the privacy set
    (cross-dataset protocols) and ``"clips"`` when it is trained and scored on the attribute
    labels of the action clips (same-dataset protocols, like VP-HMDB).
    """

    action_train: ClipSet
    action_test: ClipSet
    privacy_train: ImageSet
    privacy_test: ImageSet
    actions: tuple[str, ...]
    attributes: tuple[str, ...]
    privacy_scored_on: Literal["images", "clips"] = "images"
    #: Label of each action class after a horizontal flip; None when flips keep labels.
    hflip_labels: tuple[int, ...] | None = None
    #: The sets f_T' trains and is scored on, when not the game's action sets (cross-dataset
    #: protocols, e.g. HMDB51 train / PA-HMDB test).
    eval_action: tuple[ClipSet, ClipSet] | None = None
    #: The sets f_B' trains and is scored on (images or clips with attributes), when not the
    #: ones ``privacy_scored_on`` names.
    eval_privacy: tuple[ClipSet | ImageSet, ClipSet | ImageSet] | None = None
    #: f_T''s classes, when its dataset is not the game's (e.g. UCF101 -> HMDB51).
    eval_actions: tuple[str, ...] | None = None
    #: Files that failed to decode and were left out, one message each.
    skipped: list[str] = field(default_factory=list)

    def skipped_files(self) -> list[str]:
        """Every file left out, one message each: those that failed when the sets were built,
        then those that failed while a streamed set was read."""
        out = list(self.skipped)
        for s in self.sets():
            if isinstance(s, ClipSet) and not isinstance(s.clips, torch.Tensor):
                out += list(s.clips.failed.values())
        return out

    def sets(self) -> list[ClipSet | ImageSet]:
        """Every set of the trial once, whatever roles it plays."""
        sets: list[ClipSet | ImageSet] = [
            self.action_train,
            self.action_test,
            self.privacy_train,
            self.privacy_test,
        ]
        sets += list(self.eval_action or ()) + list(self.eval_privacy or ())
        unique: dict[int, ClipSet | ImageSet] = {id(s): s for s in sets}
        return list(unique.values())

    def action_eval_sets(self) -> tuple[ClipSet, ClipSet]:
        return self.eval_action or (self.action_train, self.action_test)

    def privacy_eval_sets(self) -> tuple[ClipSet | ImageSet, ClipSet | ImageSet]:
        if self.eval_privacy is not None:
            return self.eval_privacy
        if self.privacy_scored_on == "clips":
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

    def flip_labels(self) -> torch.Tensor | None:
        """``hflip_labels`` as a tensor, for the augmentation."""
        return None if self.hflip_labels is None else torch.tensor(self.hflip_labels)


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
