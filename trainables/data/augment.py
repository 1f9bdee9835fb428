"""Batched image augmentations on float tensors (torch only; torchvision-free so they run on any
device inside the training loop)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("light", "paper")


def colour_jitter(x: torch.Tensor, gen: torch.Generator, strength: float = 0.4) -> torch.Tensor:
    """Per-sample contrast and saturation jitter of images (B, C, H, W) in [0, 1]."""
    b = x.shape[0]
    dev = x.device
    c = (1 + (torch.rand(b, generator=gen) * 2 - 1) * strength).view(b, 1, 1, 1).to(dev)
    s = (1 + (torch.rand(b, generator=gen) * 2 - 1) * strength).view(b, 1, 1, 1).to(dev)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * c + mean
    grey = x.mean(dim=1, keepdim=True)
    return ((x - grey) * s + grey).clamp(0, 1)


def random_erase(
    x: torch.Tensor, gen: torch.Generator, p: float = 0.5, max_frac: float = 0.3
) -> torch.Tensor:
    """Erase one random rectangle (up to ``max_frac`` of each side) with noise in half of the
    images (B, C, H, W), as torchvision's RandomErasing does."""
    b, c, h, w = x.shape
    x = x.clone()
    hit = (torch.rand(b, generator=gen) < p).tolist()
    eh = torch.randint(1, max(2, int(h * max_frac) + 1), (b,), generator=gen).tolist()
    ew = torch.randint(1, max(2, int(w * max_frac) + 1), (b,), generator=gen).tolist()
    fy = torch.rand(b, generator=gen).tolist()
    fx = torch.rand(b, generator=gen).tolist()
    for i in range(b):
        if hit[i]:
            y0, x0 = int(fy[i] * (h - eh[i])), int(fx[i] * (w - ew[i]))
            noise = torch.rand(c, eh[i], ew[i], generator=gen).to(x.device)
            x[i, :, y0 : y0 + eh[i], x0 : x0 + ew[i]] = noise
    return x


def augment_images(
    x: torch.Tensor,
    gen: torch.Generator,
    *,
    flip: bool = True,
    crop_pad: float = 0.125,
    brightness: float = 0.2,
    policy: str = "light",
) -> torch.Tensor:
    """Random horizontal flip, random translated crop (reflect-padded) and brightness jitter of
    images (B, C, H, W) in [0, 1]. The ``light`` policy leaves colour alone (a private attribute
    of the synthetic benchmark); ``paper`` adds colour jitter and random erasing."""
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
    if policy == "paper":
        x = random_erase(colour_jitter(x, gen), gen)
    return x


def augment_clips(
    x: torch.Tensor,
    labels: torch.Tensor,
    gen: torch.Generator,
    *,
    flip_labels: torch.Tensor | None = None,
    crop_pad: float = 0.125,
    brightness: float = 0.2,
    policy: str = "light",
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
    if policy == "paper":
        # One jitter and one erased rectangle per clip, the same in all its frames.
        # (B, C, T*H, W): one image per clip for the jitter.
        tall = flipped.reshape(b, t, c, h, w).transpose(1, 2).reshape(b, c, t * h, w)
        tall = colour_jitter(tall, gen)
        flipped = tall.reshape(b, c, t, h, w).transpose(1, 2).reshape(b * t, c, h, w)
        # (B, T*C, H, W): the rectangle lands at the same place in every frame.
        erased = random_erase(flipped.reshape(b, t * c, h, w), gen)
        flipped = erased.reshape(b * t, c, h, w)
    out = flipped.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)
    if flip_labels is not None:
        labels = torch.where(fl.to(labels.device), flip_labels.to(labels.device)[labels], labels)
    return out, labels
