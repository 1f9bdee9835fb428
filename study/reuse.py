"""Results of equivalent trials, computed once per study.

A trial whose penalty is inert (lambda = 0, or B >= 1: see ``trainables.game.keys.penalty_is_inert``)
computes exactly what every other such trial with the same remaining config computes; in the
36-trial ``paper_grid`` that is 11 trials, in the 30-trial ``penalty_grid`` the 5 at lambda = 0. The first one to finish stores its result in
``STUDY/shared/results/KEY.pt``; a later trial with the same ``result_key`` takes it from there
instead of training again, and its MLflow run says so (tag ``reused_from``). Two equivalent
trials that run at the same time both compute; the file is written atomically either way.
Ray expands a grid in sorted key order, B fastest, so in ``penalty_grid`` the first two trials
(lambda = 0, B = 0 and 0.05) both compute and the other three take the stored result.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainables.config import TrialConfig
from trainables.game.keys import result_key
from trainables.trial import TrialResult


@dataclass
class StoredResult:
    """A finished trial's result, as a later equivalent trial needs it."""

    summary: dict[str, float]
    ap: list[float]
    history: list[dict[str, float]]
    anon_state: dict[str, torch.Tensor]
    source_trial: str
    source_run: str
    #: The source trial's B: ``L_penalty`` in its curves is measured against this bound.
    source_B: float


def result_path(root: Path, cfg: TrialConfig) -> Path:
    return Path(root) / "shared" / "results" / f"{result_key(cfg)}.pt"


def save_result(
    root: Path, cfg: TrialConfig, result: TrialResult, source_trial: str, source_run: str
) -> Path:
    """Store ``result`` for the trials equivalent to ``cfg`` (atomic write)."""
    path = result_path(root, cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    anon = result.anonymizer
    payload: dict[str, Any] = {
        "summary": {k: float(v) for k, v in result.summary().items()},
        "ap": [float(a) for a in result.ap],
        "history": [{k: float(v) for k, v in row.items()} for row in result.history],
        "anon_state": {} if anon is None else {k: v.cpu() for k, v in anon.state_dict().items()},
        "source_trial": source_trial,
        "source_run": source_run,
        "source_B": float(cfg.B),
    }
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_result(root: Path, cfg: TrialConfig) -> StoredResult | None:
    """The stored result of a trial equivalent to ``cfg``, or None."""
    path = result_path(root, cfg)
    if not path.exists():
        return None
    d = torch.load(path, weights_only=True)
    return StoredResult(**d)
