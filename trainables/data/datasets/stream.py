"""Clips streamed from video files: decoded batch by batch in persistent DataLoader workers.

A :class:`ClipStream` stands where a set's uint8 clip tensor would (``len``, ``shape``,
``dtype``), but holds only file paths and frame counts, so a trial's memory does not grow with
the dataset. A training row is a video; each epoch draws a fresh random clip and crop from a
generator seeded by (seed, epoch, video), so results depend neither on the worker count nor on
the batch order. A test row is one of ``test_clips`` evenly spaced, centre-cropped clips of a
video. Decoding stops at the last frame a clip needs.

Videos that cannot be opened are found by a probe pass when the stream is built and left out
(counted and named, like in-memory loading). A file that fails later, mid-training, is left out
of its batch, logged once and kept in :attr:`ClipStream.failed`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from trainables.data.datasets.decode import (
    DecodeError,
    clip_indices,
    crop_resize,
    decode_video,
    evenly_spaced_starts,
    probe_video,
    random_start,
)
from trainables.data.datasets.loading import ClipSpec
from trainables.log import Log

Key = tuple[int, int]  # (epoch, row)


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)  # workers resize frames; one thread each avoids oversubscription


def cut_clip(
    path: Path,
    n_frames: int,
    spec: ClipSpec,
    *,
    train: bool,
    clip: int,
    rng: np.random.Generator,
) -> torch.Tensor:
    """One clip (3, T, size, size) uint8 of the video at ``path``: a random one when training,
    else the ``clip``-th of ``spec.test_clips`` evenly spaced ones. ``n_frames`` is the
    container's frame count (0 when unknown: the whole video is decoded first)."""
    video = decode_video(path) if n_frames <= 0 else None
    n = len(video) if video is not None else n_frames
    if train:
        start = random_start(n, spec.frames, spec.skip, rng)
        offset: tuple[float, float] | None = (float(rng.random()), float(rng.random()))
    else:
        start = evenly_spaced_starts(n, spec.frames, spec.skip, spec.test_clips)[clip]
        offset = None
    idx = clip_indices(n, spec.frames, spec.skip, start)
    if video is None:
        video = decode_video(path, upto=max(idx))
        if len(video) <= max(idx):  # the container over-counted its frames
            n = len(video)
            idx = clip_indices(n, spec.frames, spec.skip, start % n)
    return crop_resize(video[idx], spec.size, spec.crop, offset)


class _Rows(Dataset):
    def __init__(
        self,
        paths: Sequence[Path],
        n_frames: Sequence[int],
        spec: ClipSpec,
        train: bool,
        seed: int,
    ) -> None:
        self.paths, self.n_frames, self.spec = list(paths), list(n_frames), spec
        self.train, self.seed = train, seed
        self.per_video = 1 if train else spec.test_clips

    def __len__(self) -> int:
        return len(self.paths) * self.per_video

    def __getitem__(self, key: Key) -> tuple[int, torch.Tensor | None, str]:
        epoch, row = key
        v, clip = divmod(row, self.per_video)
        try:
            x = cut_clip(
                self.paths[v],
                self.n_frames[v],
                self.spec,
                train=self.train,
                clip=clip,
                rng=np.random.default_rng((self.seed, epoch, v)),
            )
        except DecodeError as e:
            return row, None, str(e)
        return row, x, ""


def _collate(
    items: list[tuple[int, torch.Tensor | None, str]],
) -> tuple[torch.Tensor, torch.Tensor | None, list[str]]:
    ok = [(i, x) for i, x, _ in items if x is not None]
    errors = [e for _, x, e in items if x is None]
    idx = torch.tensor([i for i, _ in ok], dtype=torch.long)
    return idx, (torch.stack([x for _, x in ok]) if ok else None), errors


class _Plan:
    """A batch sampler whose batches are replaced before each pass, so that one DataLoader
    (and its persistent workers) serves every epoch of every stage."""

    def __init__(self) -> None:
        self.batches: list[list[Key]] = []

    def __iter__(self) -> Iterator[list[Key]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


@dataclass
class ClipStream:
    """Clips of ``paths`` decoded on demand; see the module docstring."""

    paths: list[Path]
    n_frames: list[int]
    spec: ClipSpec
    train: bool
    seed: int
    workers: int
    what: str
    log: Log = print
    #: Files that failed to decode while streaming, with the error.
    failed: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rows = _Rows(self.paths, self.n_frames, self.spec, self.train, self.seed)
        self._plan = _Plan()
        self._loader: DataLoader | None = None
        self._pin = False
        self._pass = 0

    dtype = torch.uint8

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        s = self.spec
        return (len(self), 3, s.frames, s.size, s.size)

    def dim(self) -> int:
        return 5

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_loader=None, _plan=_Plan())  # worker processes do not travel
        return state

    def _dataloader(self, pin: bool) -> DataLoader:
        if self._loader is None or self._pin != pin:
            self._loader = DataLoader(
                self._rows,
                batch_sampler=self._plan,
                collate_fn=_collate,
                num_workers=self.workers,
                persistent_workers=True,
                pin_memory=pin,
                prefetch_factor=4,
                worker_init_fn=_one_thread,
            )
            self._pin = pin
        return self._loader

    def _note(self, errors: list[str]) -> None:
        for e in errors:
            path = e.split(":", 1)[0]
            if path not in self.failed:
                self.failed[path] = e
                self.log(f"[data] {self.what}: skipped while streaming: {e}")

    def batches(
        self, index_batches: Iterable[torch.Tensor], *, epoch: int = 0, pin: bool = False
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Decode each batch of row indices; yields (rows that decoded, uint8 clips), one
        batch ahead in the workers. Starting a new pass ends the previous one."""
        plan = [[(epoch, int(i)) for i in idx] for idx in index_batches]
        self._pass += 1
        this = self._pass
        if self.workers == 0:
            source: Iterable[Any] = (_collate([self._rows[k] for k in b]) for b in plan)
        else:
            self._plan.batches = plan
            source = self._dataloader(pin)
        for idx, x, errors in source:
            if this != self._pass:
                raise RuntimeError(f"{self.what}: a pass over the stream was interleaved")
            self._note(errors)
            if x is not None:
                yield idx, x

    def rows(self, idx: torch.Tensor, epoch: int = 0) -> torch.Tensor:
        """The clips of ``idx``, decoded here (no workers); rows that fail are an error."""
        out = []
        for i in idx.tolist():
            _, x, err = self._rows[(epoch, i)]
            if x is None:
                raise DecodeError(err)
            out.append(x)
        return torch.stack(out)


def probe_videos(
    paths: Sequence[Path], *, workers: int, what: str, log: Log = print
) -> tuple[list[int], list[int], list[str]]:
    """Open each video and decode its first frame, in DataLoader workers. Returns the indices
    of the readable ones, their frame counts (0 = unknown), and an error per unreadable one."""
    loader = DataLoader(
        _Probe(paths),
        batch_size=None,
        num_workers=workers,
        prefetch_factor=8 if workers > 0 else None,
        worker_init_fn=_one_thread if workers > 0 else None,
    )
    kept: list[int] = []
    counts: list[int] = []
    skipped: list[str] = []
    n = len(paths)
    step = max(1, n // 10)
    for done, (i, count, err) in enumerate(loader, start=1):
        if err:
            skipped.append(err)
            log(f"[data] skipped {err}")
        else:
            kept.append(int(i))
            counts.append(int(count))
        if done % step == 0 or done == n:
            log(f"[data] {what}: probed {done}/{n} videos ({len(skipped)} skipped)")
    if not kept:
        raise DecodeError(f"{what}: none of the {n} videos could be decoded")
    return kept, counts, skipped


class _Probe(Dataset):
    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, int, str]:
        try:
            return i, probe_video(self.paths[i]), ""
        except DecodeError as e:
            return i, 0, str(e)
