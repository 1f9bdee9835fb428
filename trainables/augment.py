"""Batched image augmentations on float tensors (torch only; torchvision-free so they run on any
device inside the training loop)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment_images(
    x: torch.Tensor,
    gen: torch.Generator,
    *,
    flip: bool = True,
    crop_pad: float = 0.125,
    brightness: float = 0.2,
) -> torch.Tensor:
    """Random horizontal flip, random translated crop (reflect-padded) and brightness jitter of
    images (B, C, H, W) in [0, 1]. Colour is left alone: it is a private attribute."""
    b, _, h, w = x.shape
    dev = x.device
    if flip:
        fl = torch.rand(b, generator=gen) < 0.5
        x = torch.where(fl.view(b, 1, 1, 1).to(dev), x.flip(-1), x)
    pad = int(round(crop_pad * h))
    if pad > 0:
        xp = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen).tolist()
        ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen).tolist()
        x = torch.stack([xp[i, :, oy[i] : oy[i] + h, ox[i] : ox[i] + w] for i in range(b)])
    if brightness > 0:
        s = 1 + (torch.rand(b, generator=gen) * 2 - 1) * brightness
        x = (x * s.view(b, 1, 1, 1).to(dev)).clamp(0, 1)
    return x


def augment_clips(
    x: torch.Tensor,
    labels: torch.Tensor,
    gen: torch.Generator,
    *,
    flip_labels: torch.Tensor | None = None,
    crop_pad: float = 0.125,
    brightness: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment clips (B, C, T, H, W) with one draw per clip, the same for all its frames.

    A horizontal flip mirrors the motion too, so ``flip_labels[k]`` gives the label of a flipped
    clip of class k (e.g. move_left <-> move_right); None means flips keep every label.
    """
    b, c, t, h, w = x.shape
    frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    fl = torch.rand(b, generator=gen) < 0.5
    dev = x.device
    flipped = torch.where(
        fl.repeat_interleave(t).view(-1, 1, 1, 1).to(dev), frames.flip(-1), frames
    )
    pad = int(round(crop_pad * h))
    if pad > 0:
        xp = F.pad(flipped, (pad, pad, pad, pad), mode="reflect")
        oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen).repeat_interleave(t).tolist()
        ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen).repeat_interleave(t).tolist()
        flipped = torch.stack(
            [xp[i, :, oy[i] : oy[i] + h, ox[i] : ox[i] + w] for i in range(b * t)]
        )
    if brightness > 0:
        s = 1 + (torch.rand(b, generator=gen) * 2 - 1) * brightness
        flipped = (flipped * s.repeat_interleave(t).view(-1, 1, 1, 1).to(dev)).clamp(0, 1)
    out = flipped.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)
    if flip_labels is not None:
        labels = torch.where(fl.to(labels.device), flip_labels.to(labels.device)[labels], labels)
    return out, labels
