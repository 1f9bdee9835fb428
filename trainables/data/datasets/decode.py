"""Decoding videos with PyAV and images with Pillow, and the paper's clip sampling.

A clip is T frames ``skip`` apart from a start frame (random when training, evenly spaced
starts at test time), cropped to ``crop`` of the frame (a random window when training, the
centre at test time) and resized to ``size`` x ``size``. Outputs are uint8 tensors
(C, T, H, W) for clips and (C, H, W) for images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


class DecodeError(RuntimeError):
    """A video or image that cannot be decoded."""


def decode_video(path: Path, upto: int | None = None) -> np.ndarray:
    """The frames of a video as (N, H, W, 3) uint8 RGB: all of them, or the first ``upto + 1``
    (decoding stops there)."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DecodeError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames = []
            for f in container.decode(stream):
                frames.append(f.to_ndarray(format="rgb24"))
                if upto is not None and len(frames) > upto:
                    break
    except DecodeError:
        raise
    except Exception as e:
        raise DecodeError(f"{path}: {type(e).__name__}: {e}") from e
    if not frames:
        raise DecodeError(f"{path}: no frames decoded")
    return np.stack(frames)


def probe_video(path: Path) -> int:
    """Decode the first frame and return the stream's frame count (0 when the container does
    not say); raise DecodeError when the file is not a readable video."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DecodeError(f"{path}: no video stream")
            stream = container.streams.video[0]
            next(iter(container.decode(stream)))
            return int(stream.frames or 0)
    except DecodeError:
        raise
    except Exception as e:
        raise DecodeError(f"{path}: {type(e).__name__}: {e}") from e


def decode_image(path: Path) -> np.ndarray:
    """An image as (H, W, 3) uint8 RGB."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as e:
        raise DecodeError(f"{path}: {type(e).__name__}: {e}") from e


def clip_indices(n_frames: int, frames: int, skip: int, start: int) -> list[int]:
    """Frame indices of a clip; a video shorter than the clip wraps around (loops)."""
    return [(start + k * skip) % n_frames for k in range(frames)]


def random_start(n_frames: int, frames: int, skip: int, rng: np.random.Generator) -> int:
    span = (frames - 1) * skip + 1
    return int(rng.integers(0, max(n_frames - span, 0) + 1))


def evenly_spaced_starts(n_frames: int, frames: int, skip: int, clips: int) -> list[int]:
    """``clips`` evenly spaced starts over the video (the same start repeated when short)."""
    span = (frames - 1) * skip + 1
    last = max(n_frames - span, 0)
    if clips == 1:
        return [last // 2]
    return [round(i * last / (clips - 1)) for i in range(clips)]


def crop_resize(
    x: np.ndarray, size: int, crop: float, offset: tuple[float, float] | None
) -> torch.Tensor:
    """Crop a square of side ``crop`` x the shorter side from frames (..., H, W, 3) at
    ``offset`` (fractions of the free room; None = centre), then resize to ``size``.
    Returns uint8 (3, ..., size, size)."""
    h, w = x.shape[-3], x.shape[-2]
    side = max(1, int(round(min(h, w) * crop)))
    fy, fx = offset if offset is not None else (0.5, 0.5)
    y0 = int(round((h - side) * fy))
    x0 = int(round((w - side) * fx))
    patch = torch.from_numpy(np.ascontiguousarray(x[..., y0 : y0 + side, x0 : x0 + side, :]))
    flat = patch.reshape(-1, side, side, 3).permute(0, 3, 1, 2).float()
    out = F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=False)
    out = out.round().clamp(0, 255).to(torch.uint8)  # (N, 3, size, size)
    if x.ndim == 3:
        return out[0]
    return out.permute(1, 0, 2, 3).contiguous()  # (3, T, size, size)


def sample_clips(
    video: np.ndarray,
    *,
    frames: int,
    skip: int,
    size: int,
    crop: float,
    train: bool,
    clips: int,
    rng: np.random.Generator,
) -> torch.Tensor:
    """(K, 3, T, size, size) uint8 clips from decoded frames: one random clip when training,
    ``clips`` evenly spaced centre-cropped clips otherwise."""
    n = len(video)
    if train:
        starts = [random_start(n, frames, skip, rng)]
        offset: tuple[float, float] | None = (float(rng.random()), float(rng.random()))
    else:
        starts = evenly_spaced_starts(n, frames, skip, clips)
        offset = None
    out = [crop_resize(video[clip_indices(n, frames, skip, s)], size, crop, offset) for s in starts]
    return torch.stack(out)
