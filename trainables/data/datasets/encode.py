"""Writing small videos with PyAV: test fixtures and the loading benchmark use them."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_video(path: Path, frames: int = 12, h: int = 40, w: int = 48, seed: int = 0) -> None:
    """An MPEG-4 AVI of a bright square moving over a coloured background."""
    import av

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    bg = rng.integers(0, 200, size=3)
    side = max(2, min(h, w) // 4)
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for t in range(frames):
            img = np.empty((h, w, 3), dtype=np.uint8)
            img[:] = bg
            x = (t * 3) % max(1, w - side)
            img[side : 2 * side, x : x + side] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
