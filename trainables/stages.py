"""The shared stages of a trial and their computation.

The identity-initialised f_A, the warm-started f_T and f_B, and the raw-data reference
evaluation depend only on the data and the backbones, never on B, lambda or the seed
(:mod:`trainables.game.keys` says exactly on what), so a study computes them once and passes them
to every trial.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from trainables.config import TrialConfig
from trainables.data.sets import TrialData
from trainables.evaluation.calibration import feature_costs_on
from trainables.evaluation.evaluate import EvalResult, evaluate
from trainables.game.device import resolve_device, runtime, stage_data
from trainables.game.keys import init_key, raw_key
from trainables.game.train import (
    calibrate_batch_norm,
    identity_init,
    pretrain_action,
    pretrain_privacy,
)
from trainables.log import Log
from trainables.models.action_models import VideoClassifier
from trainables.models.anon_base import fits
from trainables.models.anonymizers import anonymizer_family, build_anonymizer
from trainables.models.build import build_models, load_pretrained


@dataclass
class InitStages:
    """The initial f_A, f_T and f_B (None for a fixed anonymizer; only f_A, its trained
    scorer, for tubelet_prune) and their training curves."""

    key: str
    anon: dict[str, torch.Tensor] | None = None
    action: dict[str, torch.Tensor] | None = None
    privacy: dict[str, torch.Tensor] | None = None
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    #: Seconds of ``identity`` (f_A's identity initialisation), ``warm_action`` (f_T) and
    #: ``warm_privacy`` (f_B).
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def state(self, model: str) -> dict[str, torch.Tensor]:
        """The initial state of ``model`` (``anon``, ``action`` or ``privacy``); a trial that
        needs one its stage did not compute is a bug, named here."""
        state: dict[str, torch.Tensor] | None = getattr(self, model)
        if state is None:
            raise RuntimeError(f"the init stage {self.key} holds no {model} state")
        return state


@dataclass
class SharedStages:
    """Everything a trial reuses: the initial networks, the raw reference evaluation and, for
    an anonymizer the game trains, the evaluation of f_A before the game (the init point)."""

    init: InitStages
    raw: EvalResult
    raw_key: str
    init_point: EvalResult | None = None

    @property
    def key(self) -> str:
        """Equal to :func:`trainables.game.keys.shared_key` of the configs these stages serve."""
        return f"{self.init.key}-{self.raw_key}"

    @property
    def seconds(self) -> float:
        point = self.init_point.seconds if self.init_point is not None else 0.0
        return self.init.seconds + self.raw.seconds + point


def cpu_state(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}


def compute_init(cfg: TrialConfig, data: TrialData, log: Log = print) -> InitStages:
    """Identity initialisation of f_A and warm starts of f_T and f_B, seeded by ``data_seed``."""
    t0 = time.time()
    rt = runtime(cfg.device, cfg.amp, cfg.data_seed)
    anon, f_t, f_b = build_models(cfg, data)
    if fits(anon):  # tubelet_prune: its scorer trains here, once for every keep_ratio
        rt.place(anon)
        t1 = time.time()
        history = anon.fit(stage_data(data, rt.device), cfg, rt, log)  # type: ignore[operator]
        return InitStages(
            key=init_key(cfg),
            anon=cpu_state(anon),
            history=history,
            seconds=time.time() - t0,
            stage_seconds={"scorer": time.time() - t1},
        )
    if not anon.trainable:
        return InitStages(key=init_key(cfg))
    load_pretrained(cfg, anon, f_t, f_b, log)
    rt.place(anon, channels_last=True)
    rt.place(f_t)
    rt.place(f_b, channels_last=True)
    data = stage_data(data, rt.device)
    stages: dict[str, float] = {}
    t1 = time.time()
    identity: list[float] = []
    if cfg.anon_weights:
        log(f"[identity] skipped: f_A starts from {cfg.anon_weights}")
    elif cfg.anon_init == "residual":
        log("[identity] skipped: f_A is the identity by construction (anon_init=residual)")
    else:
        identity = identity_init(anon, data, cfg, rt, log)
    if cfg.anon_batch_norm == "frozen":
        frames = calibrate_batch_norm(anon, data, cfg, rt)
        log(f"[identity] f_A's batch-norm statistics estimated on {frames} raw frames, then frozen")
    stages["identity"], t1 = time.time() - t1, time.time()
    history = {"identity_l1": identity, "warm_action_ce": pretrain_action(f_t, data, cfg, rt, log)}
    stages["warm_action"], t1 = time.time() - t1, time.time()
    history["warm_privacy_ntxent"] = pretrain_privacy(f_b, data, cfg, rt, log)
    stages["warm_privacy"] = time.time() - t1
    return InitStages(
        key=init_key(cfg),
        anon=cpu_state(anon),
        action=cpu_state(f_t),
        privacy=cpu_state(f_b),
        history=history,
        seconds=time.time() - t0,
        stage_seconds=stages,
    )


def compute_raw(cfg: TrialConfig, data: TrialData, log: Log = print) -> EvalResult:
    """The raw-data reference: the evaluation of the identity anonymizer."""
    rt = runtime(cfg.device, cfg.amp, cfg.data_seed + 1)
    log("[raw] evaluating the raw-data reference (identity anonymizer)")
    data = stage_data(data, rt.device)
    return evaluate(build_anonymizer("identity").to(rt.device), data, cfg, rt, log, label=" raw")


def compute_init_point(
    cfg: TrialConfig, data: TrialData, init: InitStages, log: Log = print
) -> EvalResult | None:
    """The evaluation of f_A as the game receives it (None when the game trains no f_A): with
    an exact identity it scores as the raw reference does; an f_A that is not the identity
    has degraded the data before any B or λ acts."""
    if init.anon is None or init.action is None:
        return None
    rt = runtime(cfg.device, cfg.amp, cfg.data_seed + 2)
    anon = build_anonymizer(cfg.anonymizer, cfg.anon_encoder, cfg, data.num_classes)
    anon.load_state_dict(init.anon)
    rt.place(anon, channels_last=True)
    log("[init] evaluating f_A before the game (the init point)")
    return evaluate(anon, stage_data(data, rt.device), cfg, rt, log, label=" init")


def compute_shared(cfg: TrialConfig, data: TrialData, log: Log = print) -> SharedStages:
    """The shared stages for ``cfg``: the initial networks, the raw reference, the init
    point."""
    init = compute_init(cfg, data, log)
    raw = compute_raw(cfg, data, log)
    return SharedStages(init, raw, raw_key(cfg), compute_init_point(cfg, data, init, log))


def warm_action_model(cfg: TrialConfig, data: TrialData, init: InitStages) -> VideoClassifier:
    """The warm-started f_T of ``init``, frozen, in eval mode, on ``cfg.device``: the space of
    the feature-based penalty (its phi) and of the calibration's feature distances."""
    _, f_t, _ = build_models(cfg, data)
    f_t.load_state_dict(init.state("action"))
    f_t.eval().requires_grad_(False)
    return f_t.to(resolve_device(cfg.device))


def feature_calibration(
    cfg: TrialConfig, data: TrialData, init: InitStages
) -> dict[str, dict[str, float]]:
    """What the reference edits cost in the feature-based penalty's space, for an anonymizer
    the game trains (empty for another: it has no warm-started f_T)."""
    if not anonymizer_family(cfg.anonymizer).plays_game:
        return {}
    return feature_costs_on(data, cfg, warm_action_model(cfg, data, init))
