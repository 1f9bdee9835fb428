"""Data minimisation ("Only What's Necessary"): expose less of the video, by breadth or by depth.

Pure operators on pixels in [0, 1]; each returns pixels in [0, 1] of the input's shape, so the
models downstream see the usual geometry. Clips are (B, C, T, H, W), frames (N, C, H, W).

Breadth (how much of the scene): :func:`resolution` (fewer pixels), :func:`frame_step` (a lower
frame rate), :func:`motion_crop` (only a window around what moves). Depth (how much detail per
pixel): :func:`bit_depth`, :func:`greyscale`, :func:`blur`.

:class:`MinimizeOps` composes them, breadth first; its fields are the ``min_*`` config fields,
and the fixed baselines ``downsample2x``/``downsample4x``/``blur_weak``/``blur_strong`` are
presets of it (``trainables.models.anonymizers``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: ITU-R BT.601 luma weights.
LUMA = (0.299, 0.587, 0.114)


def resolution(frames: torch.Tensor, fraction: float) -> torch.Tensor:
    """Area-downsample each frame to ``fraction`` of its side (at least 1 pixel), then upsample
    back bilinearly. At 1/n of a side divisible by n this is an n x n average pool."""
    if fraction >= 1.0:
        return frames
    h, w = frames.shape[-2:]
    small = F.interpolate(
        frames, size=(max(1, round(h * fraction)), max(1, round(w * fraction))), mode="area"
    )
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


def frame_step(clips: torch.Tensor, step: int) -> torch.Tensor:
    """Keep frames 0, step, 2*step, ... and hold each until the next (the frame rate / step)."""
    if step <= 1:
        return clips
    t = clips.shape[2]
    held = (torch.arange(t, device=clips.device) // step) * step
    return clips[:, :, held]


def _energy(x: torch.Tensor) -> torch.Tensor:
    """Where something happens, (B, H, W): the summed absolute change between consecutive
    frames for clips; for single frames (no motion to see), the distance from the frame's
    mean colour."""
    if x.dim() == 5 and x.shape[2] > 1:
        return (x[:, :, 1:] - x[:, :, :-1]).abs().sum(dim=(1, 2))
    frames = x[:, :, 0] if x.dim() == 5 else x
    return (frames - frames.mean(dim=(2, 3), keepdim=True)).abs().sum(dim=1)


def crop_window(x: torch.Tensor, fraction: float) -> torch.Tensor:
    """The kept window of each sample as a (B, H, W) bool mask: the ``fraction`` x ``fraction``
    window (of the side) holding the most :func:`_energy`."""
    h, w = x.shape[-2:]
    kh, kw = max(1, round(h * fraction)), max(1, round(w * fraction))
    e = _energy(x).unsqueeze(1)
    sums = F.avg_pool2d(e, (kh, kw), stride=1)  # (B, 1, H - kh + 1, W - kw + 1)
    best = sums.flatten(1).argmax(dim=1)
    cols = sums.shape[-1]
    top, left = best // cols, best % cols
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cs = torch.arange(w, device=x.device).view(1, 1, w)
    top, left = top.view(-1, 1, 1), left.view(-1, 1, 1)
    return (rows >= top) & (rows < top + kh) & (cs >= left) & (cs < left + kw)


def motion_crop(x: torch.Tensor, fraction: float) -> torch.Tensor:
    """Keep the window of :func:`crop_window`; everything outside takes the sample's mean
    colour (over all its frames), so no pixel outside the window survives."""
    if fraction >= 1.0:
        return x
    keep = crop_window(x, fraction)
    dims = tuple(range(2, x.dim()))
    fill = x.mean(dim=dims, keepdim=True)
    mask = keep.unsqueeze(1) if x.dim() == 4 else keep.unsqueeze(1).unsqueeze(2)
    return torch.where(mask, x, fill.expand_as(x))


def bit_depth(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Quantise each channel to ``bits`` bits (2**bits levels spanning [0, 1])."""
    if bits >= 8:
        return x
    levels = 2**bits - 1
    return torch.round(x.clamp(0, 1) * levels) / levels


def greyscale(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma, repeated over the 3 channels."""
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, *([1] * (x.dim() - 2)))
    return (x * w).sum(dim=1, keepdim=True).expand_as(x).contiguous()


def blur(frames: torch.Tensor, sigma_fraction: float) -> torch.Tensor:
    """Separable Gaussian blur whose sigma is a fraction of the frame width (so it means the
    same at any resolution), with replicated borders."""
    if sigma_fraction <= 0:
        return frames
    sigma = max(sigma_fraction * frames.shape[-1], 1e-3)
    radius = max(1, math.ceil(3 * sigma))
    k = torch.arange(-radius, radius + 1, dtype=frames.dtype, device=frames.device)
    k = torch.exp(-0.5 * (k / sigma) ** 2)
    k = k / k.sum()
    c = frames.shape[1]
    x = F.pad(frames, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def per_frame(x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Apply a frame operator to clips (B, C, T, H, W) or frames (N, C, H, W)."""
    if x.dim() == 4:
        return fn(x)
    b, c, t, h, w = x.shape
    y = fn(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w))
    return y.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)


@dataclass(frozen=True)
class MinimizeOps:
    """A composition of the operators; the defaults change nothing."""

    resolution: float = 1.0
    frame_step: int = 1
    crop: float = 1.0
    bits: int = 8
    grey: bool = False
    blur: float = 0.0

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 < self.resolution <= 1.0:
            problems.append(f"resolution must lie in (0, 1], got {self.resolution}")
        if self.frame_step < 1:
            problems.append(f"frame_step must be >= 1, got {self.frame_step}")
        if not 0.0 < self.crop <= 1.0:
            problems.append(f"crop must lie in (0, 1], got {self.crop}")
        if not 1 <= self.bits <= 8:
            problems.append(f"bits must lie in [1, 8], got {self.bits}")
        if self.blur < 0:
            problems.append(f"blur must be >= 0, got {self.blur}")
        if problems:
            raise ValueError("; ".join(problems))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Breadth first (frame rate, crop, resolution), then depth (blur, grey, bits)."""
        if x.dim() == 5:
            x = frame_step(x, self.frame_step)
        x = motion_crop(x, self.crop)
        x = per_frame(x, lambda f: blur(resolution(f, self.resolution), self.blur))
        if self.grey:
            x = greyscale(x)
        return bit_depth(x, self.bits)

    def describe(self) -> str:
        """The operators that act, e.g. ``resolution 0.5, grey``; ``none`` for none."""
        parts = [
            f"resolution {self.resolution:g}" if self.resolution < 1 else "",
            f"frame step {self.frame_step}" if self.frame_step > 1 else "",
            f"crop {self.crop:g}" if self.crop < 1 else "",
            f"{self.bits} bits" if self.bits < 8 else "",
            "grey" if self.grey else "",
            f"blur {self.blur:g}" if self.blur > 0 else "",
        ]
        return ", ".join(p for p in parts if p) or "none"
