"""The networks of a trial: f_A, f_T and f_B built from the registries, their geometry checked
against the config, and the local pretrained weights loaded into them."""

from __future__ import annotations

from typing import Any

import torch

from trainables.config import PRETRAINED, ConfigError, TrialConfig
from trainables.data.sets import TrialData
from trainables.log import Log
from trainables.models.action_models import VideoClassifier, build_action_model
from trainables.models.anonymizers import Anonymizer, build_anonymizer
from trainables.models.privacy_models import ImageModel, build_privacy_model
from trainables.models.weights import load_weights


def anonymizer_for(cfg: TrialConfig, num_classes: int) -> Anonymizer:
    """The trial's f_A, with the knobs of its family from ``cfg`` (``num_classes``: the action
    classes, which tubelet_prune's scorer predicts)."""
    return build_anonymizer(cfg.anonymizer, cfg.anon_encoder, cfg, num_classes)


def _check_geometry(cfg: TrialConfig, anon: Anonymizer, models: list[tuple[str, Any]]) -> None:
    for what, m in [("anonymizer " + cfg.anonymizer, anon), *models]:
        mult = getattr(m, "size_multiple", 1)
        if cfg.size % mult:
            raise ConfigError(
                f"--size {cfg.size} does not work with {what}: height and width "
                f"must be multiples of {mult}; try --size {mult * max(1, round(cfg.size / mult))}"
            )
        step = getattr(m, "frame_multiple", 1)
        if cfg.frames % step:
            raise ConfigError(
                f"--frames {cfg.frames} does not work with {what}: the frame count must be a "
                f"multiple of {step}; try --frames {step * max(1, round(cfg.frames / step))}"
            )
        min_frames = getattr(m, "min_frames", 1)
        if cfg.frames < min_frames:
            raise ConfigError(
                f"--frames {cfg.frames} is too few for {what}: it needs >= {min_frames}"
            )


def build_models(
    cfg: TrialConfig, data: TrialData
) -> tuple[Anonymizer, VideoClassifier, ImageModel]:
    """f_A, f_T and f_B for the game, with their geometry checked against the config."""
    anon = anonymizer_for(cfg, data.num_classes)
    f_t = build_action_model(
        cfg.action_model, num_classes=data.num_classes, frames=cfg.frames, size=cfg.size
    )
    f_b = build_privacy_model(cfg.privacy_model, head="simclr", num_outputs=128)
    f_t_eval = build_action_model(
        cfg.target_action_model, num_classes=data.eval_num_classes, frames=cfg.frames, size=cfg.size
    )
    _check_geometry(
        cfg,
        anon,
        [
            ("action model " + cfg.action_model, f_t),
            ("action model " + cfg.target_action_model, f_t_eval),
        ],
    )
    if anon.needs_mask and data.action_train.masks is None:
        raise ConfigError(
            f"anonymizer {cfg.anonymizer} needs actor masks, and dataset {cfg.dataset} has none"
        )
    return anon, f_t, f_b


def load_pretrained(
    cfg: TrialConfig,
    anon: Anonymizer,
    f_t: torch.nn.Module,
    f_b: torch.nn.Module,
    log: Log = print,
) -> None:
    """Load the configured local weights into f_A, f_T and f_B."""
    if cfg.anon_weights and anon.trainable:
        load_weights(anon, cfg.anon_weights, "f_A (" + cfg.anonymizer + ")", log)
    if cfg.action_weights:
        load_weights(f_t, cfg.action_weights, "f_T (" + cfg.action_model + ")", log)
    if cfg.privacy_weights:
        load_weights(f_b, cfg.privacy_weights, "f_B (" + cfg.privacy_model + ")", log)


def check_pretrained(cfg: TrialConfig) -> None:
    """Build the models with a placeholder class count and load the configured weights, so
    that weights which do not fit fail before any data is decoded (the heads are replaced
    anyway)."""
    for model, path in cfg.privacy_eval_weights.items():
        fresh = build_privacy_model(model, head="multilabel", num_outputs=2)
        load_weights(fresh, path, f"f_B' ({model}{PRETRAINED})", lambda m: None)
    if not (cfg.anon_weights or cfg.action_weights or cfg.privacy_weights):
        return
    anon = anonymizer_for(cfg, 2)
    f_t = build_action_model(cfg.action_model, num_classes=2, frames=cfg.frames, size=cfg.size)
    f_b = build_privacy_model(cfg.privacy_model, head="simclr", num_outputs=128)
    load_pretrained(cfg, anon, f_t, f_b, log=lambda m: None)
