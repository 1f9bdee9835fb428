"""Batches of pixels on the device, whatever holds them.

A set's pixels are a uint8 tensor in memory (the synthetic benchmark, images, clips decoded up
front), a :class:`~trainables.data.datasets.stream.ClipStream` decoding real videos in DataLoader
workers, or an :class:`Anonymized` stream that runs a frozen f_A on each batch as it arrives
(the evaluation of streamed sets, which are never anonymized into memory). The training loops
read all of them through :func:`fetch`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from trainables.data.datasets.stream import ClipStream
from trainables.data.sets import to_float
from trainables.game import losses


@dataclass
class Anonymized:
    """``source`` seen through a frozen anonymizer, batch by batch. Outputs are rounded to
    uint8 levels, as when a set is anonymized into memory. Each row's RMS(x - f_A(x)) is
    recorded as it is computed (:meth:`mean_rms`)."""

    source: ClipStream
    anon: nn.Module
    autocast: Callable[[], AbstractContextManager[Any]]
    rms: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.rms = torch.full((len(self.source),), float("nan"))

    def __len__(self) -> int:
        return len(self.source)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.source.shape)

    def dim(self) -> int:
        return 5

    def mean_rms(self) -> float:
        seen = self.rms[~torch.isnan(self.rms)]
        return float(seen.mean()) if len(seen) else float("nan")


Pixels = torch.Tensor | ClipStream | Anonymized


def _pick_frames(x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    """One random frame of each clip (N, C, T, H, W) -> (N, C, H, W); images pass through."""
    if gen is None or x.dim() != 5:
        return x
    t = torch.randint(0, x.shape[2], (len(x),), generator=gen)
    return x[torch.arange(len(x), device=x.device), :, t.to(x.device)]


def fetch(
    px: Pixels,
    index_batches: Iterable[torch.Tensor],
    device: torch.device,
    *,
    epoch: int = 0,
    frame_gen: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """For each batch of row indices: (the rows, their pixels in [0, 1] on ``device``).

    A stream leaves out rows whose file failed to decode, so use the returned rows to pick
    labels. ``epoch`` picks the random clips of a streamed training set. With ``frame_gen``,
    each clip becomes one random frame of it (before anonymizing, which works frame by frame).
    """
    if isinstance(px, Anonymized):
        px.anon.eval()
        for idx, x in fetch(px.source, index_batches, device, epoch=epoch, frame_gen=frame_gen):
            with torch.no_grad(), px.autocast():
                y = px.anon(x).float().clamp(0, 1)
            if frame_gen is None:
                px.rms[idx] = losses.rms_per_sample(x, y).cpu()
            yield idx, y.mul(255).round().div(255)
    elif isinstance(px, ClipStream):
        pin = device.type == "cuda"
        for idx, x in px.batches(index_batches, epoch=epoch, pin=pin):
            yield idx, to_float(_pick_frames(x, frame_gen), device)
    else:
        for idx in index_batches:
            yield idx, to_float(_pick_frames(px[idx], frame_gen), device)


def take(px: torch.Tensor | ClipStream, idx: torch.Tensor) -> torch.Tensor:
    """The uint8 pixels of rows ``idx``, decoded in this process for a stream (for a few rows
    at a time: use :func:`fetch` in training loops)."""
    if isinstance(px, ClipStream):
        return px.rows(idx)
    return px[idx]
