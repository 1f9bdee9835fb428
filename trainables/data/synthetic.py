"""The built-in synthetic benchmark: the pixels that carry the action carry identity too.

Every sample is rendered from a seed, with no downloads. A clip shows a person (a body and a
head) over a background from the data seed's bank, with pixel noise. The body is covered in
stripes that **drift** along their normal, one pixel a frame: the **action** (8 classes) is the
direction of the drift. One frame shows the stripes' orientation but not which way they move,
so an action model needs the motion.

The **private attributes** (5, binary, independent of the action):

- ``warm_palette``: the stripes are warm (red to yellow) rather than cool (cyan to blue);
- ``fine_texture``: the stripes are fine (a 3 px period at 32 px) rather than coarse (6 px);
- ``face``: the head carries two dark eyes;
- ``outdoor_scene``: the background is an outdoor scene (green to yellow blobs) rather than an
  indoor one (greyish);
- ``second_person``: a bystander, striped like the actor but standing still, is in the scene.

Why the trade-off is real: the scene and the face cost little to hide, but hiding the palette
and the texture scale means repainting or blurring the very stripes whose drift is the action
(a 3 px period drifting one pixel a frame does not survive a blur that hides it), and f_A works
frame by frame, so it cannot tell the drifting actor from the still bystander. The game's
privacy adversary is self-supervised (it tells samples apart, it knows no attribute), so it
attacks what makes samples distinct: the scene first. The scenes are high-contrast, so that
flattening a clip to its mean colour costs an RMS of about 0.3 (``python -m
trainables.calibrate`` prints the reference costs). docs/benchmark-design.md records the
variants measured on the way to this design.

Three sets, as in the paper: an action set (clips + action labels), a privacy set (single
frames, from seeds disjoint from the action set, + multi-label attributes), and attribute
labels on the action clips for same-dataset evaluation (like VP-HMDB). Person masks come with
every sample, for the blackening baseline.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
import torch

from trainables.data.sets import ClipSet, ImageSet

ACTIONS: tuple[str, ...] = (
    "drift_right",
    "drift_left",
    "drift_down",
    "drift_up",
    "drift_down_right",
    "drift_down_left",
    "drift_up_right",
    "drift_up_left",
)
# The class of each action once the clip is mirrored left-right (a flip mirrors the motion).
HFLIP_ACTIONS: tuple[int, ...] = (1, 0, 2, 3, 5, 4, 7, 6)
ATTRIBUTES: tuple[str, ...] = (
    "warm_palette",
    "fine_texture",
    "face",
    "outdoor_scene",
    "second_person",
)

# Seed streams: action and privacy samples never share a generator state.
_STREAM = {
    "action_train": 11,
    "action_test": 12,
    "privacy_train": 21,
    "privacy_test": 22,
    "backgrounds": 31,
}


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


#: Unit vector of each action's drift (x right, y down), in ACTIONS order.
_DRIFT = np.array(
    [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1)], dtype=np.float32
)
_DRIFT /= np.linalg.norm(_DRIFT, axis=1, keepdims=True)
#: Stripe periods in pixels at 32 px (scaled with the frame size): coarse and fine.
_PERIODS = (6.0, 3.0)
_BACKGROUNDS = 4


def backgrounds(size: int, seed: int, count: int = _BACKGROUNDS) -> np.ndarray:
    """The data seed's background bank (2K, H, W, 3): high-contrast blobs of two colours, K
    indoor scenes (greyish, cool) then K outdoor scenes (green to yellow), shared by every set
    of the benchmark."""
    rng = np.random.default_rng(seed)
    k = max(size // 8, 2)
    noise = rng.uniform(size=(2 * count, k, k))
    up = np.kron(noise, np.ones((size // k + 1, size // k + 1)))[:, :size, :size]
    blobs = (up > 0.5)[..., None]
    hue = np.concatenate([rng.uniform(0.55, 0.75, count), rng.uniform(0.15, 0.35, count)])
    sat = np.concatenate([rng.uniform(0.0, 0.15, count), rng.uniform(0.35, 0.5, count)])
    light = _hsv(hue, sat, rng.uniform(0.75, 0.9, 2 * count))
    dark = _hsv(hue, sat, rng.uniform(0.05, 0.2, 2 * count))
    return np.where(blobs, light[:, None, None, :], dark[:, None, None, :]).astype(np.float32)


def _person(
    xx: np.ndarray, yy: np.ndarray, cx: np.ndarray, cy: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Masks (N, 1, H, W) of a person's body (an ellipse) and head (a disc above it), the head's
    centre and radius."""
    a, b = 0.17 * size, 0.3 * size
    body = ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 < 1
    r = 0.11 * size
    hx, hy = cx, cy - b - 0.6 * r
    head = (xx - hx) ** 2 + (yy - hy) ** 2 < r**2
    return body, head, hx, hy


def render(n: int, frames: int, size: int, seed: int, bank: np.ndarray) -> tuple[np.ndarray, ...]:
    """Render ``n`` clips. Returns (clips (N,T,H,W,3) float32 in [0,1], actions, attributes, masks)."""
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, len(ACTIONS), size=n)
    attrs = (rng.uniform(size=(n, len(ATTRIBUTES))) < 0.5).astype(np.float32)
    warm, fine, face, outdoor, second = (attrs[:, i] > 0.5 for i in range(len(ATTRIBUTES)))
    col = lambda v: v[:, None, None, None]  # noqa: E731 - (N,) -> (N, 1, 1, 1)

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    xx, yy = xx[None, None], yy[None, None]  # (1, 1, H, W)
    t = np.arange(frames, dtype=np.float32)[None, :, None, None]
    half = len(bank) // 2
    img = bank[rng.integers(0, half, n) + half * outdoor][:, None].repeat(frames, axis=1)

    # The actor stands on one side, the bystander (when there is one) on the other.
    side = rng.uniform(size=n) < 0.5
    jitter = rng.uniform(-0.04, 0.04, size=(2, n)) * size
    ax = np.where(side, 0.3, 0.7) * size + jitter[0]
    bx = np.where(side, 0.7, 0.3) * size - jitter[0]
    cy = (0.6 * size + jitter[1]).astype(np.float32)
    scale = size / 32.0

    def person(
        cx: np.ndarray,
        hue: np.ndarray,
        period: np.ndarray,
        speed: float,
        drift: np.ndarray,
        has_face: np.ndarray,
        who: np.ndarray,
    ):
        nonlocal img
        body, head, hx, hy = _person(xx, yy, col(cx), col(cy), size)
        body, head = body & col(who), head & col(who)
        # Stripes across the body that drift along their normal by ``speed`` px a frame.
        u = drift[:, :, None, None, None]  # (2, N, 1, 1, 1)
        phase = rng.uniform(0, 2 * np.pi, n)
        along = (xx - col(cx)) * u[0] + (yy - col(cy)) * u[1] - speed * scale * t
        wave = np.clip(0.5 + 0.9 * np.sin(2 * np.pi * along / col(period) + col(phase)), 0, 1)
        bright = _hsv(hue, rng.uniform(0.8, 1.0, n), rng.uniform(0.9, 1.0, n))
        dark = bright * 0.15
        fill = (
            dark[:, None, None, None, :] + wave[..., None] * (bright - dark)[:, None, None, None, :]
        )
        img = np.where(body[..., None], fill, img)
        skin = _hsv(rng.uniform(0.05, 0.1, n), rng.uniform(0.3, 0.5, n), rng.uniform(0.85, 0.95, n))
        img = np.where(head[..., None], skin[:, None, None, None, :], img)
        r = 0.11 * size
        eyes = ((xx - hx - 0.4 * r) ** 2 + (yy - hy + 0.1 * r) ** 2 < (0.28 * r) ** 2) | (
            (xx - hx + 0.4 * r) ** 2 + (yy - hy + 0.1 * r) ** 2 < (0.28 * r) ** 2
        )
        img = np.where((eyes & head & col(has_face))[..., None], np.float32(0.05), img)
        return body | head

    hue = lambda w: np.where(w, rng.uniform(0.0, 0.12, n), rng.uniform(0.5, 0.7, n))  # noqa: E731
    period = lambda f: np.where(f, _PERIODS[1], _PERIODS[0]) * scale  # noqa: E731
    a_mask = person(ax, hue(warm), period(fine), 1.0, _DRIFT[actions].T, face, np.ones(n, bool))
    # The bystander: a person of random looks whose stripes stand still.
    rnd = rng.uniform(size=(3, n)) < 0.5
    b_mask = person(
        bx,
        hue(rnd[0]),
        period(rnd[1]),
        0.0,
        _DRIFT[rng.integers(0, 8, n)].T,
        rnd[2],
        second,
    )

    img = img + rng.normal(0, 0.04, size=img.shape).astype(np.float32)
    img = np.clip(img, 0.0, 1.0).astype(np.float32)
    masks = np.broadcast_to(a_mask | b_mask, (n, frames, size, size)).copy()
    return img, actions, attrs, masks


def _to_uint8(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.round(x * 255).astype(np.uint8))


def _bank(spec: SyntheticSpec) -> np.ndarray:
    return backgrounds(spec.size, seed=spec.seed * 1000 + _STREAM["backgrounds"])


def _clipset(n: int, spec: SyntheticSpec, stream: int) -> ClipSet:
    seed = spec.seed * 1000 + stream
    img, actions, attrs, masks = render(n, spec.frames, spec.size, seed, _bank(spec))
    clips = _to_uint8(img).permute(0, 4, 1, 2, 3).contiguous()  # N, C, T, H, W
    return ClipSet(
        clips, torch.from_numpy(actions).long(), torch.from_numpy(attrs), torch.from_numpy(masks)
    )


def _imageset(n: int, spec: SyntheticSpec, stream: int) -> ImageSet:
    # A privacy image is one frame, at a random time, of a clip from the same renderer.
    img, _, attrs, masks = render(n, spec.frames, spec.size, spec.seed * 1000 + stream, _bank(spec))
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
