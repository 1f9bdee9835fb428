"""One trial from a typed config to a typed result: minimax from the shared stages, then the
evaluation with fresh target models (:func:`run_trial`)."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from trainables.catalog import validate
from trainables.config import TrialConfig
from trainables.data.load import load_data
from trainables.data.sets import TrialData
from trainables.evaluation.evaluate import evaluate, feature_distance_on
from trainables.game.device import runtime, stage_data
from trainables.game.keys import shared_key
from trainables.game.train import make_minimax_optimizers, minimax, penalty_reference
from trainables.log import Log
from trainables.models.action_models import VideoClassifier
from trainables.models.anon_base import Anonymizer, fits
from trainables.models.build import build_models, check_pretrained
from trainables.stages import SharedStages, compute_shared, cpu_state

#: A trial's final metrics, in the order ``trainables.run`` prints them.
FINAL_METRICS = ("top1", "cmap", "f1", "rms", "raw_top1", "raw_cmap", "raw_f1", "seconds")
#: The init point's metrics (f_A before the game), for trials whose game trains f_A.
INIT_METRICS = ("init_top1", "init_cmap", "init_rms")
#: What the feature-based penalty bounds, measured on the test clips (NaN for the pixel one).
PENALTY_METRICS = ("feature_distance",)


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
    eval_seed: int
    shared_seconds: float = 0.0
    #: The init point (f_A before the game; NaN when the game trains no f_A).
    init_top1: float = float("nan")
    init_cmap: float = float("nan")
    init_rms: float = float("nan")
    feature_distance: float = float("nan")
    ap: list[float] = field(default_factory=list)
    raw_ap: list[float] = field(default_factory=list)
    init_ap: list[float] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    #: Files left out because they failed to decode, one message each.
    skipped_files: list[str] = field(default_factory=list)
    #: Per-model scores when the evaluation has several fresh models (``EvalResult.models``),
    #: and the raw reference's (the same keys).
    models: dict[str, float] = field(default_factory=dict)
    raw_models: dict[str, float] = field(default_factory=dict)
    #: Seconds of this trial's parts: ``data`` (when loaded here), ``game`` (the minimax epochs,
    #: ``epoch_callbacks`` included: the checkpoints and logging between epochs),
    #: ``epoch_callbacks``, ``anonymize``, ``eval_action``, ``eval_privacy``; and ``game_steps``.
    stage_seconds: dict[str, float] = field(default_factory=dict)
    #: The trained anonymizer, on the CPU (not part of the dicts).
    anonymizer: Anonymizer | None = field(default=None, repr=False, compare=False)

    def summary(self) -> dict[str, Any]:
        """The flat metrics: the last line printed by ``trainables.run``."""
        keys = (*FINAL_METRICS, "shared_seconds", "seed", "data_seed", "eval_seed")
        return {
            **{k: getattr(self, k) for k in keys},
            **self.init_metrics(),
            **self.penalty_metrics(),
            "skipped_files": len(self.skipped_files),
            **self.model_metrics(),
        }

    def init_metrics(self) -> dict[str, float]:
        """The init point's metrics, when the game trained f_A (else none)."""
        return {k: getattr(self, k) for k in INIT_METRICS if getattr(self, k) == getattr(self, k)}

    def penalty_metrics(self) -> dict[str, float]:
        """The feature distance on the test clips, when the penalty bounded it (else none)."""
        return {
            k: getattr(self, k) for k in PENALTY_METRICS if getattr(self, k) == getattr(self, k)
        }

    def model_metrics(self) -> dict[str, float]:
        """The per-model scores and the raw reference's (``raw_top1/<model>``, ...)."""
        return {**self.models, **{f"raw_{k}": v for k, v in self.raw_models.items()}}


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
    stages: dict[str, float] = {}
    if data is None:
        log(f"[data] building {cfg.dataset} ({cfg.size}px, {cfg.frames} frames)")
        data = load_data(cfg, log)
        stages["data"] = time.time() - t0
    if shared is None:
        shared = compute_shared(cfg, data, log)
    elif shared.key != shared_key(cfg):
        raise ValueError("the shared stages were computed for another data/backbone config")

    #: Seconds of the attempts before this one, up to their last checkpoint.
    earlier = float((resume or {}).get("seconds", 0.0))
    rt = runtime(cfg.device, cfg.amp, cfg.seed)
    data = stage_data(data, rt.device)
    anon, f_t, f_b = build_models(cfg, data)
    history: list[dict[str, float]] = []
    phi: VideoClassifier | None = None
    if anon.trainable:
        start = resume or {}
        anon.load_state_dict(copy.deepcopy(start.get("anon") or shared.init.state("anon")))
        f_t.load_state_dict(copy.deepcopy(start.get("action") or shared.init.state("action")))
        f_b.load_state_dict(copy.deepcopy(start.get("privacy") or shared.init.state("privacy")))
        rt.place(anon, channels_last=True)
        rt.place(f_t)
        rt.place(f_b, channels_last=True)
        # The feature-based penalty's phi: the warm-started f_T, whatever a resume restored.
        phi = penalty_reference(f_t, cfg)
        if phi is not None:
            phi.load_state_dict(shared.init.state("action"))
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
                "seconds": earlier + time.time() - t0,
                "anon": cpu_state(anon),
                "action": cpu_state(f_t),
                "privacy": cpu_state(f_b),
                "optim": {k: o.state_dict() for k, o in opts.items()},
                "history": list(history),
                "gen": rt.gen.get_state(),
                "torch_rng": torch.get_rng_state(),
            }

        callbacks, steps = [0.0], [0.0]  # this attempt's (a resumed history holds earlier ones)

        def epoch_done(epoch: int, row: dict[str, float]) -> None:
            history.append(row)
            steps[0] += row.get("steps", 0.0)
            if on_epoch is not None:
                t1 = time.time()
                on_epoch(epoch, row, lambda: snapshot(epoch))
                callbacks[0] += time.time() - t1

        on = "" if cfg.penalty_on == "pixels" else f" on {cfg.penalty_on}"
        log(f"[minimax] B={cfg.B}{on} lam={cfg.lam} seed={cfg.seed}")
        t_game = time.time()
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
            features=phi,
        )
        stages["game"] = time.time() - t_game
        stages["epoch_callbacks"] = callbacks[0]
        stages["game_steps"] = steps[0]
    elif fits(anon):
        anon.load_state_dict(shared.init.state("anon"))
        rt.place(anon)
        log(
            f"[minimax] skipped: {cfg.anonymizer} uses its trained scorer, keep_ratio={cfg.keep_ratio}"
        )
    else:
        rt.place(anon, channels_last=True)
        log(f"[minimax] skipped: {cfg.anonymizer} is a fixed anonymizer")
    distance = float("nan")
    if phi is not None:
        distance = feature_distance_on(anon, phi, data.action_test.clips, cfg, rt)
        log(f"[eval] feature distance on the test clips = {distance:.4f} (B = {cfg.B})")
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
        seconds=earlier + time.time() - t0,
        seed=cfg.seed,
        data_seed=cfg.data_seed,
        eval_seed=cfg.eval_seed,
        shared_seconds=shared.seconds,
        **_init_point(shared),
        feature_distance=distance,
        ap=res.ap,
        raw_ap=shared.raw.ap,
        history=history,
        config=cfg.to_dict(),
        skipped_files=skipped,
        models=res.models,
        raw_models=shared.raw.models,
        stage_seconds={**stages, **res.stage_seconds},
        anonymizer=anon.cpu(),
    )


def _init_point(shared: SharedStages) -> dict[str, Any]:
    point = shared.init_point
    if point is None:
        return {}
    return {
        "init_top1": point.top1,
        "init_cmap": point.cmap,
        "init_rms": point.rms,
        "init_ap": point.ap,
    }
