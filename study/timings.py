"""Per-stage seconds of finished studies on this machine (STUDY_DIR/timings.jsonl), and the
wall-time estimate that ``--dry-run`` makes from them or, without them, from the scale."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainables.config import FAMILY_FIELDS, TrialConfig
from trainables.families import FAMILIES
from trainables.game.keys import stage_key
from trainables.models.anonymizers import family

FILE = "timings.jsonl"
#: Seconds of the shared stages (on 2 CPU cores) and of one trial (1 CPU, 2 trials at once on 2
#: cores) on the built-in benchmark: the fallback when no study ran here at that scale. The
#: paper scale has none: it depends on the GPU and the dataset.
SCALE_SECONDS: dict[str, tuple[float, float]] = {"smoke": (20.0, 40.0), "default": (110.0, 140.0)}
#: The same per anonymizer family (penalty: the figures above): (its own shared stage, the
#: raw reference excluded; one trial). Fixed anonymizers have no stage of their own and their
#: trials only evaluate; tubelet_prune's stage trains its scorer. Measured by ``--space
#: families`` at the default scale on this 2-core machine (README, "Anonymizer families"); the
#: smoke scorer's figure is scaled from its 6-epoch time to the 20 epochs it now trains.
FAMILY_SECONDS: dict[str, dict[str, tuple[float, float]]] = {
    "smoke": {"tubelet": (30.0, 25.0), "minimize": (0.0, 20.0), "baseline": (0.0, 20.0)},
    "default": {"tubelet": (75.0, 50.0), "minimize": (0.0, 48.0), "baseline": (0.0, 46.0)},
}
#: Seconds of the raw reference alone (part of SCALE_SECONDS' shared figure).
RAW_SECONDS = {"smoke": 8.0, "default": 25.0}
#: What a row names besides its key, for people reading the file.
NAMED = ("scale", "dataset", "anonymizer", "anon_encoder", "action_model", "privacy_model")


def cost_key(cfg: TrialConfig) -> str:
    """What a trial's cost depends on: every field that changes what it computes, except B,
    lambda, the seed and the knobs of the fixed families (none changes the work)."""
    knobs: dict[str, Any] = {
        f.name: f.default
        for f in dataclasses.fields(TrialConfig)
        if f.name in FAMILY_FIELDS and not FAMILIES[FAMILY_FIELDS[f.name]].plays_game
    }
    return stage_key(
        dataclasses.replace(cfg, B=0.0, lam=0.0, seed=0, **knobs), "game", "evaluation"
    )


def _setting(cfg: TrialConfig) -> dict[str, Any]:
    return {"key": cost_key(cfg), **{k: getattr(cfg, k) for k in NAMED}}


def record(
    study_dir: Path,
    cfg: TrialConfig,
    *,
    shared_seconds: float | None,
    trial_seconds: list[float],
    cpus_per_trial: float,
    concurrent: int,
) -> None:
    """Append one row: this setting's shared-stage seconds (None: not computed by this run)
    and its trained (not reused) trials' seconds."""
    if shared_seconds is None and not trial_seconds:
        return
    row = {
        "host": socket.gethostname(),
        "time": time.time(),
        **_setting(cfg),
        "shared_seconds": shared_seconds,
        "trial_seconds": sorted(trial_seconds)[len(trial_seconds) // 2] if trial_seconds else None,
        "trials": len(trial_seconds),
        "cpus_per_trial": cpus_per_trial,
        "concurrent": concurrent,
    }
    path = Path(study_dir) / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def _rows(study_dir: Path) -> list[dict[str, Any]]:
    path = Path(study_dir) / FILE
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a kill
    return out


@dataclass(frozen=True)
class StageSeconds:
    shared: float | None
    trial: float | None
    source: str


def stage_seconds(study_dir: Path, cfg: TrialConfig) -> StageSeconds:
    """Seconds of ``cfg``'s shared stages and of one of its trials: the newest figures that
    earlier studies on this host recorded for the same config (B, lambda and seed aside), else
    the scale's reference figures, else unknown."""
    host, key = socket.gethostname(), cost_key(cfg)
    match = [r for r in _rows(study_dir) if r.get("host") == host and r.get("key") == key]
    shared = next((r["shared_seconds"] for r in reversed(match) if r.get("shared_seconds")), None)
    trial = next((r["trial_seconds"] for r in reversed(match) if r.get("trial_seconds")), None)
    if shared is not None or trial is not None:
        fb = SCALE_SECONDS.get(cfg.scale, (None, None))
        return StageSeconds(
            shared if shared is not None else fb[0],
            trial if trial is not None else fb[1],
            f"studies recorded on this machine ({Path(study_dir) / FILE})",
        )
    fam = family(cfg.anonymizer)
    if fam in FAMILY_SECONDS.get(cfg.scale, {}):
        s, t = FAMILY_SECONDS[cfg.scale][fam]
        return StageSeconds(
            s + RAW_SECONDS[cfg.scale],
            t,
            f"the {cfg.scale} scale's reference figures (2 CPU cores, 2 trials at once)",
        )
    if cfg.scale in SCALE_SECONDS:
        s, t = SCALE_SECONDS[cfg.scale]
        return StageSeconds(
            s, t, f"the {cfg.scale} scale's reference figures (2 CPU cores, 2 trials at once)"
        )
    return StageSeconds(None, None, "no study at this scale has run on this machine")


def raw_seconds(cfg: TrialConfig) -> float:
    """Seconds of the raw reference alone, at the scale (0 when unknown)."""
    return RAW_SECONDS.get(cfg.scale, 0.0)


def concurrency(max_concurrent: int, cpus_per_trial: float, gpus_per_trial: float) -> int:
    """Trials that run at once on this machine."""
    by_cpu = int((os.cpu_count() or 1) // cpus_per_trial) if cpus_per_trial > 0 else 1
    n = max(1, by_cpu)
    if gpus_per_trial > 0:
        import torch

        n = min(n, max(1, int(torch.cuda.device_count() // gpus_per_trial)))
    return min(n, max_concurrent) if max_concurrent else n


def estimate(shared: list[float | None], trials: list[float | None], at_once: int) -> float | None:
    """Wall seconds: the shared stages one after another (each takes the whole node), then the
    trained trials in waves of ``at_once``; None if a figure is unknown."""
    if any(s is None for s in shared) or any(t is None for t in trials):
        return None
    total = sum(s for s in shared if s is not None)
    ts = sorted((t for t in trials if t is not None), reverse=True)
    for i in range(0, len(ts), at_once):
        total += ts[i]
    return total if ts or shared else 0.0
