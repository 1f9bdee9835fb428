"""The anonymizer interface every family implements (its own module, so that a family's module
can subclass it without importing the registry of all of them)."""

from __future__ import annotations

import torch
from torch import nn


class Anonymizer(nn.Module):
    """Base class: ``trainable`` says whether minimax updates it; ``needs_mask`` whether it
    needs the actor mask (blackening). An anonymizer that trains by its own objective instead
    (tubelet_prune's scorer) has ``fit`` (see :func:`fits`), which the identity stage runs."""

    trainable: bool = False
    needs_mask: bool = False
    #: Height and width must be multiples of this.
    size_multiple: int = 1
    #: The frame count must be a multiple of this.
    frame_multiple: int = 1

    def anonymize_frames(self, frames: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() == 4:
            return self.anonymize_frames(x, mask)
        if x.dim() != 5:
            raise ValueError(f"anonymizers take (B,C,H,W) or (B,C,T,H,W), got {tuple(x.shape)}")
        b, c, t, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        fmask = None if mask is None else mask.reshape(b * t, h, w)
        out = self.anonymize_frames(frames, fmask)
        return out.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)


def fits(anon: nn.Module) -> bool:
    """Whether ``anon`` trains by its own objective in the identity stage (it has ``fit``)."""
    return callable(getattr(anon, "fit", None))
