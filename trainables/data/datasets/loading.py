"""Turning sample lists into the uint8 tensors a trial trains on, decoded in DataLoader workers.

Each sample draws its random clip and crop from its own seeded generator, so the result does not
depend on the number of workers. A sample that fails to decode is skipped: it is counted, named
in the log and left out of the set; a run never dies on one broken video.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from trainables.data.datasets.decode import (
    DecodeError,
    crop_resize,
    decode_image,
    decode_video,
    sample_clips,
)
from trainables.data.datasets.layouts import Sample
from trainables.log import Log


@dataclass(frozen=True)
class ClipSpec:
    """How clips are cut from videos."""

    frames: int
    skip: int
    size: int
    crop: float = 0.8
    test_clips: int = 5


class _Clips(Dataset):
    def __init__(self, samples: Sequence[Sample], spec: ClipSpec, train: bool, seed: int) -> None:
        self.samples, self.spec, self.train, self.seed = samples, spec, train, seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str]:
        s = self.samples[i]
        try:
            video = decode_video(s.path)
        except DecodeError as e:
            return i, None, str(e)
        sp = self.spec
        clips = sample_clips(
            video,
            frames=sp.frames,
            skip=sp.skip,
            size=sp.size,
            crop=sp.crop,
            train=self.train,
            clips=sp.test_clips,
            rng=np.random.default_rng((self.seed, i)),
        )
        return i, clips, ""


class _Images(Dataset):
    def __init__(self, samples: Sequence[Sample], size: int) -> None:
        self.samples, self.size = samples, size

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str]:
        try:
            img = decode_image(self.samples[i].path)
        except DecodeError as e:
            return i, None, str(e)
        return i, crop_resize(img, self.size, 1.0, None), ""


@dataclass
class Loaded:
    """Decoded pixels of the samples that decoded, and those that did not."""

    pixels: torch.Tensor  # (M, ...) uint8; for clips M = kept videos x clips per video
    kept: list[int]  # indices into the sample list
    video: torch.Tensor  # (M,) index of each row's video among the kept ones
    skipped: list[str] = field(default_factory=list)


def _collect(ds: Dataset, workers: int, what: str, log: Log) -> Loaded:
    loader = DataLoader(
        ds,
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
    )
    rows: list[torch.Tensor] = []
    kept: list[int] = []
    video: list[torch.Tensor] = []
    skipped: list[str] = []
    n = len(ds)  # type: ignore[arg-type]
    step = max(1, n // 10)
    for done, (i, x, err) in enumerate(loader, start=1):
        if x is None:
            skipped.append(err)
            log(f"[data] skipped {err}")
        else:
            k = x.shape[0] if x.dim() == 5 else 1
            rows.append(x if x.dim() == 5 else x.unsqueeze(0))
            video.append(torch.full((k,), len(kept), dtype=torch.long))
            kept.append(int(i))
        if done % step == 0 or done == n:
            log(f"[data] {what}: decoded {done}/{n} ({len(skipped)} skipped)")
    if not rows:
        raise DecodeError(f"{what}: none of the {n} files could be decoded")
    return Loaded(torch.cat(rows), kept, torch.cat(video), skipped)


def load_clips(
    samples: Sequence[Sample],
    spec: ClipSpec,
    *,
    train: bool,
    seed: int,
    workers: int,
    what: str,
    log: Log = print,
) -> Loaded:
    """Decode one random clip of each training video, or ``spec.test_clips`` evenly spaced
    clips of each test video."""
    return _collect(_Clips(samples, spec, train, seed), workers, what, log)


def load_images(
    samples: Sequence[Sample], size: int, *, workers: int, what: str, log: Log = print
) -> Loaded:
    """Decode images resized to ``size`` x ``size``."""
    return _collect(_Images(samples, size), workers, what, log)


def clip_bytes(n_train: int, n_test: int, spec: ClipSpec) -> int:
    """Memory the decoded clips of a split take."""
    per_clip = 3 * spec.frames * spec.size * spec.size
    return (n_train + n_test * spec.test_clips) * per_clip
