"""Files a trial leaves in MLflow: the anonymizer weights, a PNG grid of raw vs anonymized
frames, and the trial config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from trainables.data.sets import TrialData, to_float
from trainables.game.pixels import take


def frame_grid(raw: torch.Tensor, anonymized: torch.Tensor, scale: int = 4) -> np.ndarray:
    """An RGB uint8 grid: for each clip (B, C, T, H, W) in [0, 1], a row of its first, middle
    and last raw frames followed by the same frames anonymized."""
    t = raw.shape[2]
    picks = sorted({0, t // 2, t - 1})
    rows = []
    for i in range(raw.shape[0]):
        cells = [raw[i, :, k] for k in picks] + [anonymized[i, :, k] for k in picks]
        rows.append(torch.cat(cells, dim=2))
    grid = torch.cat(rows, dim=1).clamp(0, 1).mul(255).round().byte()
    img = grid.permute(1, 2, 0).cpu().numpy()
    return np.kron(img, np.ones((scale, scale, 1), dtype=np.uint8)) if scale > 1 else img


@torch.no_grad()
def write_trial_files(
    out: Path,
    anonymizer: torch.nn.Module,
    data: TrialData,
    config: dict[str, Any],
    n_clips: int = 4,
) -> list[Path]:
    """Write anonymizer.pt (state dict), frames.png and config.json into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    anonymizer.eval()
    video = data.action_test.video  # several clips per test video: show one of each
    if video is None:
        rows = torch.arange(min(n_clips, len(data.action_test.clips)))
    else:
        rows = torch.nonzero(torch.diff(video, prepend=video[:1] - 1)).flatten()[:n_clips]
    clips = to_float(take(data.action_test.clips, rows), torch.device("cpu"))
    masks = data.action_test.masks[rows] if data.action_test.masks is not None else None
    anon = anonymizer(clips, masks).float()
    png = out / "frames.png"
    Image.fromarray(frame_grid(clips, anon)).save(png)
    weights = out / "anonymizer.pt"
    torch.save(anonymizer.state_dict(), weights)
    cfg = out / "config.json"
    cfg.write_text(json.dumps(config, indent=2, sort_keys=True))
    return [weights, png, cfg]
