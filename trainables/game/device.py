"""Where and how a trial computes: seeding, the device, placing models and staging pixels on
it, mixed precision, and the check that stops a run whose loss stopped being finite."""

from __future__ import annotations

import dataclasses
import random
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from trainables.data.sets import ClipSet, ImageSet, TrialData


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; the message names the loss and the step."""


def check_finite(name: str, value: torch.Tensor, stage: str, epoch: int, step: int) -> None:
    if not torch.isfinite(value.detach()).all():
        raise NonFiniteLossError(
            f"loss {name} became {value.detach().float().item()} in {stage} at epoch {epoch} "
            f"step {step}; lower the learning rates or turn off --amp"
        )


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return the CPU generator used for shuffling."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@dataclass
class Runtime:
    """Where and how a trial computes."""

    device: torch.device
    amp: bool
    gen: torch.Generator  # CPU generator: shuffling and augmentation

    def place(self, module: nn.Module, channels_last: bool = False) -> nn.Module:
        """Move ``module`` to the device; on CUDA, with ``channels_last`` (2-D conv nets: f_A on
        frames, f_B), in the channels_last memory format, which bf16 convolutions run faster
        in."""
        module.to(self.device)
        if channels_last and self.device.type == "cuda":
            module.to(memory_format=torch.channels_last)
        return module

    def autocast(self) -> AbstractContextManager[Any]:
        if self.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()


def resolve_device(name: str) -> torch.device:
    """The torch device for ``name`` ('auto' = the GPU Ray gave this trial, else the CPU); on
    CUDA, cuDNN autotuning and TF32 matmuls are turned on."""
    if name == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"--device {name} asked for CUDA, but torch sees no GPU; use --device cpu"
            )
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return dev


def runtime(device: str, amp: bool, seed: int) -> Runtime:
    """A runtime on ``device`` whose random streams are all seeded by ``seed``."""
    gen = seed_everything(seed)
    return Runtime(device=resolve_device(device), amp=amp, gen=gen)


def stage_data(data: TrialData, device: torch.device, share: float = 0.3) -> TrialData:
    """On CUDA, the uint8 pixels of in-memory sets move to the GPU when they take under
    ``share`` of its free memory (no host-device copy per batch), else into pinned host memory
    (asynchronous copies). On the CPU ``data`` is returned as is."""
    if device.type != "cuda":
        return data
    total = sum(t.numel() * t.element_size() for t in _pixel_tensors(data))
    free, _ = torch.cuda.mem_get_info(device)
    return place_pixels(data, device if total < share * free else None)


#: The fields of ClipSet/ImageSet that hold pixels; labels, attributes and video ids stay on
#: the host, where the metrics read them.
PIXEL_FIELDS = ("clips", "images", "masks")


def _pixel_tensors(data: TrialData) -> list[torch.Tensor]:
    return [
        t
        for s in data.sets()
        for f in PIXEL_FIELDS
        if isinstance(t := getattr(s, f, None), torch.Tensor)
    ]


def place_pixels(data: TrialData, device: torch.device | None) -> TrialData:
    """A copy of ``data`` whose pixel tensors are on ``device`` (None: pinned host memory).
    Streams are left as they are; a set shared by several roles stays one object."""

    def put(t: object) -> object:
        if not isinstance(t, torch.Tensor):
            return t
        if device is None:
            return t if t.is_pinned() else t.pin_memory()
        return t.to(device)

    def placed_set(s: ClipSet | ImageSet) -> ClipSet | ImageSet:
        tensors: dict[str, Any] = {f: put(getattr(s, f)) for f in PIXEL_FIELDS if hasattr(s, f)}
        return dataclasses.replace(s, **tensors)

    placed = {id(s): placed_set(s) for s in data.sets()}

    def get(s: Any) -> Any:
        return placed[id(s)]

    return dataclasses.replace(
        data,
        action_train=get(data.action_train),
        action_test=get(data.action_test),
        privacy_train=get(data.privacy_train),
        privacy_test=get(data.privacy_test),
        eval_action=None if data.eval_action is None else tuple(map(get, data.eval_action)),
        eval_privacy=None if data.eval_privacy is None else tuple(map(get, data.eval_privacy)),
    )
