"""Attention-driven tubelet pruning: the ``tubelet_prune`` anonymizer family.

A clip (B, C, T, H, W) is cut into tubelets of t frames x p x p pixels. A small video ViT
carries two classification tokens:

- the **action token**, trained with the action cross-entropy on the action clips;
- the **privacy token**, trained with NT-Xent on two views of the privacy data, exactly the
  self-supervised objective of the game's f_B. Attribute labels are not used, even where a
  protocol has them: the penalty method never sees them while it trains, and a family that did
  would not be compared on equal terms.

Each tubelet's score is the action token's attention to it minus the privacy token's (last
block, mean over heads): high where the action looks and privacy does not. The anonymizer
keeps the top ``keep_ratio`` of the tubelets by score and sets the others to the clip's mean
colour (a fixed fill: a learned one would need an objective of its own, and the mean keeps the
clip's average brightness, so f_T' sees no artificial edges). ``keep_ratio`` is the family's
knob, as B is the penalty method's; at 1 the input comes back unchanged.

The scorer trains once per shared identity stage (its fields are in that stage); every
``keep_ratio`` of a study reuses it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainables.config import TrialConfig
from trainables.data.sets import TrialData, batches
from trainables.game import losses
from trainables.game.device import Runtime
from trainables.game.train import n_privacy, privacy_views, shuffled
from trainables.log import Log
from trainables.models.anon_base import Anonymizer


class _Block(nn.Module):
    """A pre-norm transformer block that also returns its attention weights."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"vit_dim {dim} must be a multiple of vit_heads {heads}")
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, d = x.shape
        h = self.heads
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * (d // h) ** -0.5).softmax(dim=-1)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x)), attn


class TubeletViT(nn.Module):
    """Tubelet embedding, [action CLS, privacy CLS, tubelets...] with learned positions, and a
    head on each token: action logits, a privacy projection for NT-Xent."""

    def __init__(
        self,
        frames: int,
        size: int,
        t: int,
        p: int,
        dim: int,
        depth: int,
        heads: int,
        num_classes: int,
        proj_dim: int = 64,
    ) -> None:
        super().__init__()
        if frames % t or size % p:
            raise ValueError(
                f"tubelets of {t} frames x {p} px must tile clips of {frames} frames x {size} px"
            )
        self.grid = (frames // t, size // p, size // p)
        self.embed = nn.Conv3d(3, dim, kernel_size=(t, p, p), stride=(t, p, p))
        self.tokens = nn.Parameter(torch.zeros(1, 2, dim))
        self.pos = nn.Parameter(torch.randn(1, 2 + math.prod(self.grid), dim) * 0.02)
        self.blocks = nn.ModuleList(_Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.action_head = nn.Linear(dim, num_classes)
        self.privacy_head = nn.Sequential(
            nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, proj_dim)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Clips in [0, 1] -> (action logits, privacy embedding, last block's attention
        (B, heads, 2 + N, 2 + N))."""
        z = self.embed(x * 2 - 1).flatten(2).transpose(1, 2)
        z = torch.cat([self.tokens.expand(len(z), -1, -1), z], dim=1) + self.pos
        attn = z.new_zeros(0)
        for block in self.blocks:
            z, attn = block(z)
        z = self.norm(z)
        return self.action_head(z[:, 0]), self.privacy_head(z[:, 1]), attn


def tubelet_scores(attn: torch.Tensor) -> torch.Tensor:
    """Per tubelet (B, N): the action token's attention to it minus the privacy token's,
    averaged over heads. ``attn`` is (B, heads, 2 + N, 2 + N), tokens 0 and 1 the CLS tokens."""
    return (attn[:, :, 0, 2:] - attn[:, :, 1, 2:]).mean(dim=1)


def keep_top(scores: torch.Tensor, keep_ratio: float) -> torch.Tensor:
    """A (B, N) bool mask of the ceil(keep_ratio * N) best-scored tubelets of each row (at
    least one); ties go to the lower index."""
    n = scores.shape[1]
    k = min(n, max(1, math.ceil(keep_ratio * n - 1e-9)))
    top = scores.topk(k, dim=1, sorted=False).indices
    return torch.zeros_like(scores, dtype=torch.bool).scatter_(1, top, True)


def expand_mask(keep: torch.Tensor, grid: tuple[int, ...], cell: tuple[int, ...]) -> torch.Tensor:
    """A (B, N) tubelet mask over ``grid`` as a pixel mask: each cell repeated ``cell`` times
    along its axis."""
    m = keep.view(len(keep), *grid)
    for axis, n in enumerate(cell, start=1):
        m = m.repeat_interleave(n, dim=axis)
    return m


def prune(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``x`` (B, C, ...) where ``keep`` (B, ...) holds, the sample's mean colour elsewhere."""
    fill = x.mean(dim=tuple(range(2, x.dim())), keepdim=True)
    return torch.where(keep.unsqueeze(1), x, fill.expand_as(x))


class TubeletPrune(Anonymizer):
    """Keeps the top ``keep_ratio`` of a clip's tubelets by :func:`tubelet_scores`. Single
    frames (images) are scored as a still clip; their spatial cells keep the top
    ``keep_ratio`` of the cells by score averaged over time."""

    def __init__(self, vit: TubeletViT, t: int, p: int, frames: int, keep_ratio: float) -> None:
        super().__init__()
        self.vit = vit
        self.t, self.p, self.frames = t, p, frames
        self.keep_ratio = keep_ratio
        self.size_multiple = p
        self.frame_multiple = t

    @classmethod
    def from_config(cls, cfg: TrialConfig, num_classes: int) -> TubeletPrune:
        vit = TubeletViT(
            cfg.frames,
            cfg.size,
            cfg.tubelet_frames,
            cfg.tubelet_size,
            cfg.vit_dim,
            cfg.vit_depth,
            cfg.vit_heads,
            num_classes,
        )
        return cls(vit, cfg.tubelet_frames, cfg.tubelet_size, cfg.frames, cfg.keep_ratio)

    def _still(self, frames: torch.Tensor) -> torch.Tensor:
        return frames.unsqueeze(2).expand(-1, -1, self.frames, -1, -1)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Tubelet scores (B, N) of clips, or of frames as still clips."""
        return tubelet_scores(self.vit(x if x.dim() == 5 else self._still(x))[2])

    def keep_mask(self, x: torch.Tensor) -> torch.Tensor:
        """The pixels kept: (B, T, H, W) for clips, (B, H, W) for frames."""
        s = self.scores(x)
        g = self.vit.grid
        if x.dim() == 5:
            return expand_mask(keep_top(s, self.keep_ratio), g, (self.t, self.p, self.p))
        spatial = s.view(len(s), g[0], g[1] * g[2]).mean(dim=1)
        return expand_mask(keep_top(spatial, self.keep_ratio), g[1:], (self.p, self.p))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() not in (4, 5):
            raise ValueError(f"anonymizers take (B,C,H,W) or (B,C,T,H,W), got {tuple(x.shape)}")
        if self.keep_ratio >= 1.0:
            return x
        return prune(x, self.keep_mask(x))

    def anonymize_frames(self, frames: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.forward(frames, mask)

    def fit(self, data: TrialData, cfg: TrialConfig, rt: Runtime, log: Log) -> dict[str, Any]:
        """Train the scorer: action CE on the action token, plus ``tubelet_privacy_weight`` x
        NT-Xent on the privacy token (two views of the privacy data, as the game's f_B).
        Returns the per-epoch losses.

        The action clips are not augmented, and the NT-Xent is weighted down: a ViT trained
        from scratch sits at chance for many epochs before its action token takes off, and
        both delay it (measured on the default benchmark: train accuracy after 12 epochs 0.18
        with augmentation and weight 1, 0.37 without augmentation, 0.59 with weight 0.25 too;
        chance 0.125). The privacy views keep their augmentation: NT-Xent needs it."""
        opt = torch.optim.AdamW(self.vit.parameters(), lr=cfg.tubelet_lr, weight_decay=0.05)
        n_priv = n_privacy(data, cfg)
        history: dict[str, list[float]] = {
            "tubelet_ce": [],
            "tubelet_ntxent": [],
            "tubelet_acc": [],
        }
        self.vit.train()
        for epoch in range(1, cfg.tubelet_epochs + 1):
            ce_sum, nt_sum, correct, seen, steps = 0.0, 0.0, 0, 0, 0
            pb = batches(n_priv, cfg.privacy_batch_size, rt.gen, drop_last=True)
            for idx, x in shuffled(data.action_train.clips, cfg.batch_size, cfg, rt, epoch):
                pidx = next(pb, None)
                if pidx is None:
                    pb = batches(n_priv, cfg.privacy_batch_size, rt.gen, drop_last=True)
                    pidx = next(pb)
                y = data.action_train.labels[idx].to(rt.device)
                v1, v2 = privacy_views(data, pidx, cfg, rt)
                with rt.autocast():
                    logits, _, _ = self.vit(x)
                    _, z, _ = self.vit(torch.cat([self._still(v1), self._still(v2)]))
                ce = F.cross_entropy(logits.float(), y)
                z1, z2 = z.float().chunk(2)
                nt = losses.nt_xent(z1, z2, cfg.temperature)
                opt.zero_grad(set_to_none=True)
                (ce + cfg.tubelet_privacy_weight * nt).backward()
                opt.step()
                ce_sum, nt_sum, steps = ce_sum + ce.item(), nt_sum + nt.item(), steps + 1
                correct += int((logits.argmax(1) == y).sum())
                seen += len(y)
            row = (ce_sum / max(steps, 1), nt_sum / max(steps, 1), correct / max(seen, 1))
            for k, v in zip(history, row, strict=True):
                history[k].append(v)
            log(
                f"[tubelet] epoch {epoch}/{cfg.tubelet_epochs} CE={row[0]:.3f} "
                f"NT-Xent={row[1]:.3f} action acc={row[2]:.2f}"
            )
        self.vit.eval()
        return history
