"""One trial from a typed config to a typed result: shared stages, minimax, evaluation.

The shared stages (identity-initialised f_A, warm-started f_T and f_B, and the raw-data
reference evaluation) depend only on the data and the backbones, never on B or lambda, so a
study computes them once and passes them to every trial.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

from trainables.action_models import build_action_model
from trainables.anonymizers import Anonymizer, build_anonymizer
from trainables.config import ConfigError, TrialConfig, validate
from trainables.data import TrialData, load_data
from trainables.evaluate import EvalResult, evaluate
from trainables.privacy_models import build_privacy_model
from trainables.train import (
    Log,
    Runtime,
    identity_init,
    make_minimax_optimizers,
    minimax,
    pretrain_action,
    pretrain_privacy,
    resolve_device,
    stage_data,
)

# Config fields that determine the raw-data reference evaluation.
RAW_FIELDS = (
    "dataset",
    "data_seed",
    "size",
    "frames",
    "skip",
    "n_action_train",
    "n_action_test",
    "n_privacy_train",
    "n_privacy_test",
    "action_model",
    "privacy_model",
    "eval_action_model",
    "eval_privacy_model",
    "eval_action_epochs",
    "eval_privacy_epochs",
    "eval_lr_action",
    "eval_lr_privacy",
    "eval_batch_size",
    "max_steps_per_epoch",
    "amp",
    "augment",
    "ucf101_root",
    "hmdb51_root",
    "pahmdb_root",
    "vispr_root",
    "vpucf_root",
    "vphmdb_root",
    "split",
    "crop",
    "test_clips",
    "clip_store",
    "action_weights",
)
# ... and those that determine the initial f_A, f_T and f_B. B, lambda, the seed and the
# game's learning rates appear in neither.
INIT_FIELDS = RAW_FIELDS + (
    "anonymizer",
    "anon_encoder",
    "batch_size",
    "privacy_batch_size",
    "identity_epochs",
    "identity_lr",
    "pretrain_action_epochs",
    "pretrain_privacy_epochs",
    "positives",
    "frame_gap",
    "temperature",
    "anon_weights",
    "privacy_weights",
)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return the CPU generator used for shuffling."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _key(cfg: TrialConfig, names: tuple[str, ...]) -> str:
    d = {k: getattr(cfg, k) for k in names}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def raw_key(cfg: TrialConfig) -> str:
    """A short hash of what the raw reference depends on."""
    return _key(cfg, RAW_FIELDS)


def init_key(cfg: TrialConfig) -> str:
    """A short hash of what the initial f_A, f_T and f_B depend on."""
    return _key(cfg, INIT_FIELDS)


def shared_key(cfg: TrialConfig) -> str:
    """A short hash of everything the shared stages depend on."""
    return init_key(cfg)


def penalty_is_inert(cfg: TrialConfig) -> bool:
    """True when the penalty term is exactly zero at every step, whatever the data: lambda = 0,
    or B >= 1, which an RMS of pixels in [0, 1] (the anonymizers end in a sigmoid or a clamp)
    can never exceed. Such trials compute exactly what the unpenalised game computes."""
    return cfg.lam == 0.0 or cfg.B >= 1.0


def result_key(cfg: TrialConfig) -> str:
    """A short hash of everything a trial's result depends on. Trials whose penalty is inert
    share one key (B and lambda drop out), so a study computes their common result once."""
    d = cfg.to_dict()
    for k in ("device", "workers"):  # where and how fast, not what
        d.pop(k)
    if penalty_is_inert(cfg):
        d["B"], d["lam"] = "inert", "inert"
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class TrialResult:
    """What a trial returns. Metrics are fractions in [0, 1]."""

    top1: float
    cmap: float
    f1: float
    rms: float
    raw_top1: float
    raw_cmap: float
    raw_f1: float
    seconds: float
    seed: int
    data_seed: int
    shared_seconds: float = 0.0
    ap: list[float] = field(default_factory=list)
    raw_ap: list[float] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    #: Files left out because they failed to decode, one message each.
    skipped_files: list[str] = field(default_factory=list)
    #: The trained anonymizer, on the CPU (not part of the dicts).
    anonymizer: torch.nn.Module | None = field(default=None, repr=False, compare=False)

    def summary(self) -> dict[str, Any]:
        """The flat metrics: the last line printed by ``trainables.run``."""
        keys = (
            "top1",
            "cmap",
            "f1",
            "rms",
            "raw_top1",
            "raw_cmap",
            "raw_f1",
            "seconds",
            "shared_seconds",
            "seed",
            "data_seed",
        )
        return {**{k: getattr(self, k) for k in keys}, "skipped_files": len(self.skipped_files)}

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "anonymizer"}


def _runtime(cfg: TrialConfig, seed: int) -> Runtime:
    gen = seed_everything(seed)
    return Runtime(device=resolve_device(cfg.device), amp=cfg.amp, gen=gen)


def _check_geometry(cfg: TrialConfig, anon: Anonymizer, models: list[Any]) -> None:
    for what, m in [("anonymizer " + cfg.anonymizer, anon)] + models:
        mult = getattr(m, "size_multiple", 1)
        if cfg.size % mult:
            raise ConfigError(
                f"--size {cfg.size} does not work with {what}: height and width "
                f"must be multiples of {mult}; try --size {mult * max(1, round(cfg.size / mult))}"
            )
        min_frames = getattr(m, "min_frames", 1)
        if cfg.frames < min_frames:
            raise ConfigError(
                f"--frames {cfg.frames} is too few for {what}: it needs >= {min_frames}"
            )


def build_models(
    cfg: TrialConfig, data: TrialData
) -> tuple[Anonymizer, torch.nn.Module, torch.nn.Module]:
    """f_A, f_T and f_B for the game, with their geometry checked against the config."""
    anon = build_anonymizer(cfg.anonymizer, cfg.anon_encoder)
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
    from trainables.weights import load_weights

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
    if not (cfg.anon_weights or cfg.action_weights or cfg.privacy_weights):
        return
    anon = build_anonymizer(cfg.anonymizer, cfg.anon_encoder)
    f_t = build_action_model(cfg.action_model, num_classes=2, frames=cfg.frames, size=cfg.size)
    f_b = build_privacy_model(cfg.privacy_model, head="simclr", num_outputs=128)
    load_pretrained(cfg, anon, f_t, f_b, log=lambda m: None)


@dataclass
class InitStages:
    """The initial f_A, f_T and f_B (None for a fixed anonymizer) and their training curves."""

    key: str
    anon: dict[str, torch.Tensor] | None = None
    action: dict[str, torch.Tensor] | None = None
    privacy: dict[str, torch.Tensor] | None = None
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class SharedStages:
    """Everything a trial reuses: the initial networks and the raw reference evaluation."""

    init: InitStages
    raw: EvalResult

    @property
    def key(self) -> str:
        return self.init.key

    @property
    def seconds(self) -> float:
        return self.init.seconds + self.raw.seconds


def compute_init(cfg: TrialConfig, data: TrialData, log: Log = print) -> InitStages:
    """Identity initialisation of f_A and warm starts of f_T and f_B, seeded by ``data_seed``."""
    t0 = time.time()
    rt = _runtime(cfg, cfg.data_seed)
    anon, f_t, f_b = build_models(cfg, data)
    if not anon.trainable:
        return InitStages(key=init_key(cfg))
    load_pretrained(cfg, anon, f_t, f_b, log)
    rt.place(anon, image_net=True)
    rt.place(f_t)
    rt.place(f_b, image_net=True)
    data = stage_data(data, rt.device)
    if cfg.anon_weights:
        log(f"[identity] skipped: f_A starts from {cfg.anon_weights}")
        identity: list[float] = []
    else:
        identity = identity_init(anon, data, cfg, rt, log)
    history = {
        "identity_l1": identity,
        "warm_action_ce": pretrain_action(f_t, data, cfg, rt, log),
        "warm_privacy_ntxent": pretrain_privacy(f_b, data, cfg, rt, log),
    }
    return InitStages(
        key=init_key(cfg),
        anon=_cpu_state(anon),
        action=_cpu_state(f_t),
        privacy=_cpu_state(f_b),
        history=history,
        seconds=time.time() - t0,
    )


def compute_raw(cfg: TrialConfig, data: TrialData, log: Log = print) -> EvalResult:
    """The raw-data reference: the evaluation of the identity anonymizer."""
    rt = _runtime(cfg, cfg.data_seed + 1)
    log("[raw] evaluating the raw-data reference (identity anonymizer)")
    data = stage_data(data, rt.device)
    return evaluate(build_anonymizer("identity").to(rt.device), data, cfg, rt, log, label=" raw")


def compute_shared(cfg: TrialConfig, data: TrialData, log: Log = print) -> SharedStages:
    """Both shared stages for ``cfg``."""
    init = compute_init(cfg, data, log)
    raw = compute_raw(cfg, data, log)
    return SharedStages(init, raw)


def _cpu_state(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}


Snapshot = Callable[[], dict[str, Any]]
TrialEpochCallback = Callable[[int, dict[str, float], Snapshot], None]


def run_trial(
    cfg: TrialConfig,
    *,
    data: TrialData | None = None,
    shared: SharedStages | None = None,
    on_epoch: TrialEpochCallback | None = None,
    resume: dict[str, Any] | None = None,
    log: Log = print,
) -> TrialResult:
    """Run one full trial: (shared stages,) minimax, then evaluation with fresh target models.

    ``shared`` comes from :func:`compute_shared` with a config of the same :func:`shared_key`;
    when omitted it is computed here. ``on_epoch(epoch, metrics, snapshot)`` is called after
    each minimax epoch; ``snapshot()`` returns the whole training state (weights, optimizers,
    RNG, history), which ``resume`` takes back to continue after that epoch.
    """
    t0 = time.time()
    validate(cfg)
    if shared is None:
        check_pretrained(cfg)
    if data is None:
        log(f"[data] building {cfg.dataset} ({cfg.size}px, {cfg.frames} frames)")
        data = load_data(cfg, log)
    if shared is None:
        shared = compute_shared(cfg, data, log)
    elif shared.key != shared_key(cfg):
        raise ValueError("the shared stages were computed for another data/backbone config")

    rt = _runtime(cfg, cfg.seed)
    data = stage_data(data, rt.device)
    anon, f_t, f_b = build_models(cfg, data)
    history: list[dict[str, float]] = []
    if anon.trainable:
        start = resume or {}
        anon.load_state_dict(copy.deepcopy(start.get("anon", shared.init.anon)))
        f_t.load_state_dict(copy.deepcopy(start.get("action", shared.init.action)))
        f_b.load_state_dict(copy.deepcopy(start.get("privacy", shared.init.privacy)))
        rt.place(anon, image_net=True)
        rt.place(f_t)
        rt.place(f_b, image_net=True)
        opts = make_minimax_optimizers(anon, f_t, f_b, cfg)
        if resume:
            for k, opt in opts.items():
                opt.load_state_dict(resume["optim"][k])
            rt.gen.set_state(resume["gen"])
            torch.set_rng_state(resume["torch_rng"])
            history = list(resume["history"])
            log(f"[minimax] resuming after epoch {resume['epoch']}")

        def snapshot(epoch: int) -> dict[str, Any]:
            return {
                "epoch": epoch,
                "anon": _cpu_state(anon),
                "action": _cpu_state(f_t),
                "privacy": _cpu_state(f_b),
                "optim": {k: o.state_dict() for k, o in opts.items()},
                "history": list(history),
                "gen": rt.gen.get_state(),
                "torch_rng": torch.get_rng_state(),
            }

        def epoch_done(epoch: int, row: dict[str, float]) -> None:
            history.append(row)
            if on_epoch is not None:
                on_epoch(epoch, row, lambda: snapshot(epoch))

        log(f"[minimax] B={cfg.B} lam={cfg.lam} seed={cfg.seed}")
        minimax(
            anon,
            f_t,
            f_b,
            data,
            cfg,
            rt,
            log,
            on_epoch=epoch_done,
            start_epoch=int(start.get("epoch", 0)) + 1,
            optimizers=opts,
        )
    else:
        rt.place(anon, image_net=True)
        log(f"[minimax] skipped: {cfg.anonymizer} is a fixed anonymizer")
    res = evaluate(anon, data, cfg, rt, log)
    skipped = data.skipped_files()
    if skipped:
        log(f"[data] {len(skipped)} files failed to decode and were left out")
    return TrialResult(
        top1=res.top1,
        cmap=res.cmap,
        f1=res.f1,
        rms=res.rms,
        raw_top1=shared.raw.top1,
        raw_cmap=shared.raw.cmap,
        raw_f1=shared.raw.f1,
        seconds=time.time() - t0,
        seed=cfg.seed,
        data_seed=cfg.data_seed,
        shared_seconds=shared.seconds,
        ap=res.ap,
        raw_ap=shared.raw.ap,
        history=history,
        config=cfg.to_dict(),
        skipped_files=skipped,
        anonymizer=anon.cpu(),
    )
