"""Pretrained weights from local files (Kinetics-400 for f_T, SimCLR for f_B, an
identity-trained f_A), loaded with ``weights_only=True``.

Checkpoints come in many wrappings: a bare state dict, or one under ``state_dict``/``model``/
``model_state``; keys may carry ``module.`` (DataParallel) and may lack our wrapper's prefix
(``backbone.`` for action and privacy models, ``net.`` for anonymizers). The key mapping that
matches most of the model is used. The model's final classifier is replaced when its shape
differs (a Kinetics head on a 101-class model); any other missing layer or shape mismatch is a
:class:`WeightsError` that names the layers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn


class WeightsError(ValueError):
    """Weights that do not fit the model; the message names the layers."""


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "model_state", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: not a state dict of tensors")
    return {str(k).removeprefix("module."): v for k, v in obj.items()}


def _head_params(model: nn.Module) -> set[str]:
    """Parameter names of the model's last Linear layer (its classifier or projection)."""
    last = ""
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            last = name
    return {f"{last}.weight", f"{last}.bias"} if last else set()


def load_weights(
    model: nn.Module, path: str | Path, what: str, log: Callable[[str], None] = print
) -> None:
    """Load the local checkpoint ``path`` into ``model`` (see the module doc)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{what} weights {path} do not exist")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"{what} weights {path} cannot be loaded safely: {e}") from e
    ckpt = _unwrap(raw, path)
    own = model.state_dict()
    best: dict[str, torch.Tensor] = {}
    for prefix in ("", "backbone.", "net."):
        mapped = {prefix + k: v for k, v in ckpt.items()}
        if len(set(mapped) & set(own)) > len(set(best) & set(own)):
            best = mapped
    if not set(best) & set(own):
        raise WeightsError(
            f"{what} weights {path}: no layer name matches the model "
            f"(checkpoint has e.g. {sorted(ckpt)[:3]}, model has e.g. {sorted(own)[:3]})"
        )
    head = _head_params(model)
    mismatched = [
        f"{k}: checkpoint {tuple(best[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in best and best[k].shape != own[k].shape and k not in head
    ]
    missing = [k for k in own if k not in best and k not in head]
    if mismatched or missing:
        lines = mismatched + [f"{k}: not in the checkpoint" for k in missing]
        more = f"\n  ... and {len(lines) - 10} more" if len(lines) > 10 else ""
        raise WeightsError(
            f"{what} weights {path} do not fit the model:\n  "
            + "\n  ".join(lines[:10])
            + more
            + "\n  (is the architecture flag the one these weights were trained with?)"
        )
    keep = {k: v for k, v in best.items() if k in own and v.shape == own[k].shape}
    replaced = sorted(k for k in head if k in own and k not in keep)
    model.load_state_dict({**own, **keep})
    unused = sorted(set(best) - set(own))
    log(
        f"[weights] {what}: loaded {len(keep)} tensors from {path}"
        + (f"; new head {replaced}" if replaced else "")
        + (f"; ignored {len(unused)} checkpoint tensors" if unused else "")
    )
