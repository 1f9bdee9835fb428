"""The shared stages of a trial and their computation.

The identity-initialised f_A, the warm-started f_T and f_B, and the raw-data reference
evaluation depend only on the data and the backbones, never on B, lambda or the seed
(:mod:`trainables.keys` says exactly on what), so a study computes them once and passes them
to every trial.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from trainables.anon_base import fits
from trainables.anonymizers import build_anonymizer
from trainables.build import build_models, load_pretrained
from trainables.config import TrialConfig
from trainables.device import runtime, stage_data
from trainables.evaluate import EvalResult, evaluate
from trainables.keys import init_key, raw_key
from trainables.sets import TrialData
from trainables.train import Log, identity_init, pretrain_action, pretrain_privacy


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


@dataclass
class SharedStages:
    """Everything a trial reuses: the initial networks and the raw reference evaluation."""

    init: InitStages
    raw: EvalResult
    raw_key: str

    @property
    def key(self) -> str:
        """Equal to :func:`trainables.keys.shared_key` of the configs these stages serve."""
        return f"{self.init.key}-{self.raw_key}"

    @property
    def seconds(self) -> float:
        return self.init.seconds + self.raw.seconds


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
    if cfg.anon_weights:
        log(f"[identity] skipped: f_A starts from {cfg.anon_weights}")
        identity: list[float] = []
    else:
        identity = identity_init(anon, data, cfg, rt, log)
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


def compute_shared(cfg: TrialConfig, data: TrialData, log: Log = print) -> SharedStages:
    """Both shared stages for ``cfg``."""
    init = compute_init(cfg, data, log)
    raw = compute_raw(cfg, data, log)
    return SharedStages(init, raw, raw_key(cfg))
