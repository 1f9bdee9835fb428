"""Shared stages on disk: computed once per study, reused by every trial.

The identity-initialised f_A with the warm-started f_T and f_B live in
``STUDY/shared/init-KEY.pt``, the raw reference in ``STUDY/shared/raw-KEY.json``, the init point
(f_A before the game, evaluated; ``null`` when the game trains no f_A) in
``STUDY/shared/initpoint-KEY.json``. The study dir
is on storage every node sees; files are written atomically and loaded with weights_only=True.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import torch

from trainables.config import TrialConfig
from trainables.data.load import load_data
from trainables.evaluation.calibration import costs_on
from trainables.evaluation.evaluate import EvalResult
from trainables.game.keys import init_key, raw_key, shared_key, stage_key
from trainables.log import Log
from trainables.stages import (
    InitStages,
    SharedStages,
    compute_init,
    compute_init_point,
    compute_raw,
    feature_calibration,
)


def init_path(root: Path, cfg: TrialConfig) -> Path:
    return Path(root) / "shared" / f"init-{init_key(cfg)}.pt"


def raw_path(root: Path, cfg: TrialConfig) -> Path:
    return Path(root) / "shared" / f"raw-{raw_key(cfg)}.json"


def init_point_path(root: Path, cfg: TrialConfig) -> Path:
    return Path(root) / "shared" / f"initpoint-{shared_key(cfg)}.json"


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def calibration_path(root: Path, cfg: TrialConfig) -> Path:
    return Path(root) / "shared" / f"calibration-{stage_key(cfg, 'data')}.json"


def feature_calibration_path(root: Path, cfg: TrialConfig) -> Path:
    """The edits' feature distances: they depend on the warm-started f_T, so on the init key."""
    return Path(root) / "shared" / f"calibration-features-{init_key(cfg)}.json"


def ensure_shared(root: Path, cfg: TrialConfig, log: Log = print) -> dict[str, object]:
    """Compute whatever of ``cfg``'s shared stages (and the calibration of its data) is not on
    disk yet; return a summary."""
    done: dict[str, object] = {"init_key": init_key(cfg), "raw_key": raw_key(cfg)}
    need_init = not init_path(root, cfg).exists()
    need_raw = not raw_path(root, cfg).exists()
    need_calibration = not calibration_path(root, cfg).exists()
    need_point = not init_point_path(root, cfg).exists()
    need_features = not feature_calibration_path(root, cfg).exists()
    if not (need_init or need_raw or need_calibration or need_point or need_features):
        return done | {"computed": False}
    data = load_data(cfg, log)
    if need_calibration:
        costs = costs_on(data, cfg)
        _atomic(calibration_path(root, cfg), lambda p: p.write_text(json.dumps(costs)))
    if need_init:
        init = compute_init(cfg, data, log)
        _atomic(
            init_path(root, cfg),
            lambda p: torch.save(
                {
                    "anon": init.anon,
                    "action": init.action,
                    "privacy": init.privacy,
                    "history": init.history,
                    "seconds": init.seconds,
                    "stage_seconds": init.stage_seconds,
                },
                p,
            ),
        )
    if need_raw:
        raw = compute_raw(cfg, data, log)
        _atomic(raw_path(root, cfg), lambda p: p.write_text(json.dumps(asdict(raw))))
    if need_point:
        point = compute_init_point(cfg, data, load_init(root, cfg), log)
        text = json.dumps(asdict(point) if point is not None else None)
        _atomic(init_point_path(root, cfg), lambda p: p.write_text(text))
    if need_features:
        feats = json.dumps(feature_calibration(cfg, data, load_init(root, cfg)))
        _atomic(feature_calibration_path(root, cfg), lambda p: p.write_text(feats))
    return done | {"computed": True}


def load_init(root: Path, cfg: TrialConfig) -> InitStages:
    d = torch.load(init_path(root, cfg), weights_only=True)
    return InitStages(
        key=init_key(cfg),
        anon=d["anon"],
        action=d["action"],
        privacy=d["privacy"],
        history=d["history"],
        seconds=float(d["seconds"]),
        stage_seconds={k: float(v) for k, v in d.get("stage_seconds", {}).items()},
    )


def load_calibration(root: Path, cfg: TrialConfig) -> dict[str, dict[str, float]]:
    """Edit name -> {"mean", "max"} RMS cost on the action test clips of ``cfg``'s data."""
    return json.loads(calibration_path(root, cfg).read_text())


def load_feature_calibration(root: Path, cfg: TrialConfig) -> dict[str, dict[str, float]]:
    """Edit name -> {"mean", "max"} feature distance (empty for a fixed anonymizer's stage, and
    for a study dir from before the feature-based penalty that has not been resumed)."""
    path = feature_calibration_path(root, cfg)
    return json.loads(path.read_text()) if path.exists() else {}


def load_raw(root: Path, cfg: TrialConfig) -> EvalResult:
    return EvalResult(**json.loads(raw_path(root, cfg).read_text()))


def load_init_point(root: Path, cfg: TrialConfig) -> EvalResult | None:
    d = json.loads(init_point_path(root, cfg).read_text())
    return EvalResult(**d) if d is not None else None


def load_shared(root: Path, cfg: TrialConfig) -> SharedStages:
    """The shared stages of ``cfg``, from the study dir."""
    for p in (init_path(root, cfg), raw_path(root, cfg), init_point_path(root, cfg)):
        if not p.exists():
            raise FileNotFoundError(
                f"shared stage {p} is missing: is the study dir on storage that every node sees?"
            )
    return SharedStages(
        load_init(root, cfg), load_raw(root, cfg), raw_key(cfg), load_init_point(root, cfg)
    )
