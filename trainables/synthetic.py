"""The built-in synthetic benchmark: action carried by motion, privacy carried by appearance.

Every sample is rendered from a seed, with no downloads. A clip shows one *actor* (a coloured
blob) moving over a textured background. The **action** (8 classes) is only the actor's
trajectory over the clip: a single frame shows where the actor is, never where it is going, so
an action model needs the motion. The **private attributes** (5, binary, independent of the
action) are only appearance, visible in any single frame:

- ``warm_colour``: the actor is warm (red/orange/yellow) rather than cool (blue/cyan/green);
- ``round_shape``: the actor is a disc rather than a tall, narrow block;
- ``face``: the actor carries a face-like texture (two dark eyes and a mouth);
- ``second_person``: a second, static, grey figure stands in the scene;
- ``landmark``: a bright tower stands in the background.

Why the trade-off is real: an anonymizer that keeps the actor visible as *something that
moves* keeps the action, and it can erase colour, face texture, the bystander and the landmark
to hide the attributes. But shape and colour also make the actor stand out from the background,
so erasing them too hard, or blurring the frame, also blurs the motion; every change costs RMS
budget, and the anonymizer works frame by frame, so it cannot tell the moving actor from the
static bystander by motion. Privacy images are single frames drawn from the same renderer as
the clips, so the anonymizer cannot treat them differently from action frames.

Three sets, as in the paper: an action set (clips + action labels), a privacy set (single
images + multi-label attributes, from seeds disjoint from the action set), and attribute labels
on the action clips for same-dataset evaluation (like VP-HMDB). Actor masks come with every
sample, for the blackening baseline.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
import torch

from trainables.sets import ClipSet, ImageSet

ACTIONS: tuple[str, ...] = (
    "move_right",
    "move_left",
    "move_down",
    "move_up",
    "circle_cw",
    "circle_ccw",
    "shake_horizontal",
    "bounce_vertical",
)
# The class of each action once the clip is mirrored left-right (a flip mirrors the motion).
HFLIP_ACTIONS: tuple[int, ...] = (1, 0, 2, 3, 5, 4, 6, 7)
ATTRIBUTES: tuple[str, ...] = ("warm_colour", "round_shape", "face", "second_person", "landmark")

# Seed streams: action and privacy samples never share a generator state.
_STREAM = {"action_train": 11, "action_test": 12, "privacy_train": 21, "privacy_test": 22}


@dataclass(frozen=True)
class SyntheticSpec:
    """Sizes of the synthetic benchmark."""

    size: int = 32
    frames: int = 8
    n_action_train: int = 512
    n_action_test: int = 256
    n_privacy_train: int = 512
    n_privacy_test: int = 256
    seed: int = 0

    def validate(self) -> None:
        if self.size < 16:
            raise ValueError(f"synthetic size must be >= 16 pixels, got {self.size}")
        if self.frames < 4:
            raise ValueError(f"synthetic clips need >= 4 frames to show motion, got {self.frames}")
        for name in ("n_action_train", "n_action_test", "n_privacy_train", "n_privacy_test"):
            if getattr(self, name) < 2:
                raise ValueError(f"synthetic {name} must be >= 2, got {getattr(self, name)}")


@dataclass
class SyntheticBenchmark:
    action_train: ClipSet
    action_test: ClipSet
    privacy_train: ImageSet
    privacy_test: ImageSet
    actions: tuple[str, ...] = ACTIONS
    attributes: tuple[str, ...] = ATTRIBUTES


def _hsv(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.array(
        [colorsys.hsv_to_rgb(a, b, c) for a, b, c in zip(h, s, v, strict=True)], dtype=np.float32
    )


def _trajectories(
    rng: np.random.Generator, actions: np.ndarray, frames: int, size: int, radius: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Actor centres (N, T) for each action class, kept inside the frame."""
    n = len(actions)
    t = np.linspace(0.0, 1.0, frames)[None, :]
    margin = radius[:, None] + 1.0
    span = size * rng.uniform(0.35, 0.5, size=(n, 1))  # distance travelled by linear moves
    amp = size * rng.uniform(0.15, 0.22, size=(n, 1))  # radius of circles / oscillations
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    cx0 = rng.uniform(0, 1, size=(n, 1))
    cy0 = rng.uniform(0, 1, size=(n, 1))
    cx = np.zeros((n, frames))
    cy = np.zeros((n, frames))
    a = actions[:, None]
    lin = t * span
    # Linear moves: start anywhere the whole path fits.
    for cls, (dx, dy) in enumerate([(1, 0), (-1, 0), (0, 1), (0, -1)]):
        sel = (a == cls)[:, 0]
        lo_x = margin[sel] + (span[sel] if dx < 0 else 0)
        hi_x = size - margin[sel] - (span[sel] if dx > 0 else 0)
        lo_y = margin[sel] + (span[sel] if dy < 0 else 0)
        hi_y = size - margin[sel] - (span[sel] if dy > 0 else 0)
        sx = lo_x + cx0[sel] * np.maximum(hi_x - lo_x, 0)
        sy = lo_y + cy0[sel] * np.maximum(hi_y - lo_y, 0)
        cx[sel] = sx + dx * lin[sel]
        cy[sel] = sy + dy * lin[sel]
    ang = 2 * np.pi * t * rng.uniform(0.8, 1.0, size=(n, 1))
    for cls, sign in ((4, 1.0), (5, -1.0)):
        sel = (a == cls)[:, 0]
        lo, hi = margin[sel] + amp[sel], size - margin[sel] - amp[sel]
        mx = lo + cx0[sel] * np.maximum(hi - lo, 0)
        my = lo + cy0[sel] * np.maximum(hi - lo, 0)
        cx[sel] = mx + amp[sel] * np.cos(phase[sel] + sign * ang[sel])
        cy[sel] = my + amp[sel] * np.sin(phase[sel] + sign * ang[sel])
    osc = np.sin(phase + 2 * np.pi * 1.5 * t)
    for cls, horizontal in ((6, True), (7, False)):
        sel = (a == cls)[:, 0]
        lo, hi = margin[sel] + amp[sel], size - margin[sel] - amp[sel]
        mx = lo + cx0[sel] * np.maximum(hi - lo, 0)
        my = lo + cy0[sel] * np.maximum(hi - lo, 0)
        if horizontal:
            cx[sel], cy[sel] = mx + amp[sel] * osc[sel], np.repeat(my, frames, axis=1)
        else:
            cx[sel], cy[sel] = np.repeat(mx, frames, axis=1), my + amp[sel] * osc[sel]
    return cx, cy


def render(n: int, frames: int, size: int, seed: int) -> tuple[np.ndarray, ...]:
    """Render ``n`` clips. Returns (clips (N,T,H,W,3) float32 in [0,1], actions, attributes, masks)."""
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, len(ACTIONS), size=n)
    attrs = (rng.uniform(size=(n, len(ATTRIBUTES))) < 0.5).astype(np.float32)
    warm, rnd, face, second, land = (attrs[:, i] > 0.5 for i in range(len(ATTRIBUTES)))

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    xx, yy = xx[None, None], yy[None, None]  # (1, 1, H, W)

    # Background: a desaturated colour, a smooth gradient and pixel noise.
    bg_rgb = _hsv(rng.uniform(0, 1, n), rng.uniform(0.0, 0.25, n), rng.uniform(0.3, 0.6, n))
    grad_dir = rng.uniform(0, 2 * np.pi, n)
    g = (
        np.cos(grad_dir)[:, None, None] * (xx[0, 0] / size - 0.5)
        + np.sin(grad_dir)[:, None, None] * (yy[0, 0] / size - 0.5)
    ) * 0.25
    img = bg_rgb[:, None, None, None, :] + g[:, None, :, :, None]
    img = np.repeat(img, frames, axis=1)

    # Landmark: a bright tower with dark windows, fixed in the scene.
    lx = rng.uniform(0.1, 0.9, n)[:, None, None, None] * size
    lw = size * 0.07
    top = size * rng.uniform(0.3, 0.5, n)[:, None, None, None]
    tower = (np.abs(xx - lx) < lw) & (yy > top) & land[:, None, None, None]
    windows = (
        tower & (np.mod(np.floor(yy / max(size / 16, 1)), 2) == 0) & (np.abs(xx - lx) < lw / 2)
    )
    img = np.where(tower[..., None], np.array([0.95, 0.9, 0.7], np.float32), img)
    img = np.where(windows[..., None], np.array([0.15, 0.15, 0.2], np.float32), img)

    radius = size * rng.uniform(0.12, 0.16, n)
    r = radius[:, None, None, None]

    # Second person: a grey, static figure of either shape.
    sx = rng.uniform(0.15, 0.85, n)[:, None, None, None] * size
    sy = rng.uniform(0.15, 0.85, n)[:, None, None, None] * size
    s_round = rng.uniform(size=n) < 0.5
    sdx, sdy = xx - sx, yy - sy
    s_shape = np.where(
        s_round[:, None, None, None],
        sdx**2 + sdy**2 < (0.9 * r) ** 2,
        np.maximum(np.abs(sdx), np.abs(sdy)) < 0.8 * r,
    )
    s_mask = s_shape & second[:, None, None, None]
    grey = rng.uniform(0.55, 0.8, n).astype(np.float32)[:, None, None, None, None]
    img = np.where(s_mask[..., None], grey, img)

    # The actor.
    hue = np.where(warm, rng.uniform(0.0, 0.14, n), rng.uniform(0.33, 0.66, n))
    actor_rgb = _hsv(hue, rng.uniform(0.75, 1.0, n), rng.uniform(0.75, 1.0, n))
    cx, cy = _trajectories(rng, actions, frames, size, radius)
    dx, dy = xx - cx[:, :, None, None], yy - cy[:, :, None, None]
    disc = dx**2 + dy**2 < r**2
    tall = (np.abs(dx) < 0.55 * r) & (np.abs(dy) < 1.15 * r)
    a_mask = np.where(rnd[:, None, None, None], disc, tall)
    img = np.where(a_mask[..., None], actor_rgb[:, None, None, None, :], img)
    eye = r * 0.22
    eyes = ((dx - 0.4 * r) ** 2 + (dy + 0.3 * r) ** 2 < eye**2) | (
        (dx + 0.4 * r) ** 2 + (dy + 0.3 * r) ** 2 < eye**2
    )
    mouth = (np.abs(dy - 0.4 * r) < 0.14 * r + 0.35) & (np.abs(dx) < 0.45 * r)
    f_mask = (eyes | mouth) & a_mask & face[:, None, None, None]
    img = np.where(f_mask[..., None], np.float32(0.05), img)

    img = img + rng.normal(0, 0.03, size=img.shape).astype(np.float32)
    img = np.clip(img, 0.0, 1.0).astype(np.float32)
    return img, actions, attrs, (a_mask | s_mask)


def _to_uint8(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.round(x * 255).astype(np.uint8))


def _clipset(n: int, spec: SyntheticSpec, stream: int) -> ClipSet:
    img, actions, attrs, masks = render(n, spec.frames, spec.size, seed=spec.seed * 1000 + stream)
    clips = _to_uint8(img).permute(0, 4, 1, 2, 3).contiguous()  # N, C, T, H, W
    return ClipSet(
        clips, torch.from_numpy(actions).long(), torch.from_numpy(attrs), torch.from_numpy(masks)
    )


def _imageset(n: int, spec: SyntheticSpec, stream: int) -> ImageSet:
    # A privacy image is one frame, at a random time, of a clip from the same renderer.
    img, _, attrs, masks = render(n, spec.frames, spec.size, seed=spec.seed * 1000 + stream)
    t = np.random.default_rng(spec.seed * 1000 + stream + 500).integers(0, spec.frames, size=n)
    idx = np.arange(n)
    frames = _to_uint8(img[idx, t]).permute(0, 3, 1, 2).contiguous()  # N, C, H, W
    return ImageSet(frames, torch.from_numpy(attrs), torch.from_numpy(masks[idx, t]))


def make_benchmark(spec: SyntheticSpec) -> SyntheticBenchmark:
    """Generate the whole benchmark deterministically from ``spec.seed``."""
    spec.validate()
    return SyntheticBenchmark(
        action_train=_clipset(spec.n_action_train, spec, _STREAM["action_train"]),
        action_test=_clipset(spec.n_action_test, spec, _STREAM["action_test"]),
        privacy_train=_imageset(spec.n_privacy_train, spec, _STREAM["privacy_train"]),
        privacy_test=_imageset(spec.n_privacy_test, spec, _STREAM["privacy_test"]),
    )
