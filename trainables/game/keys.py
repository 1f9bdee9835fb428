"""Keys of what a trial computes, derived from the stages its config fields declare.

A stage's key hashes every field whose stages include it or a stage upstream of it
(:data:`trainables.config.UPSTREAM`), so changing a field changes the keys of its own stages and
of the stages after them, and no other. The shared stages of a study are cached under
:func:`init_key` (f_A after the identity stage, f_T and f_B after the warm start) and
:func:`raw_key` (the raw reference); equivalent trials share :func:`result_key`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields

from trainables.config import STAGES, UPSTREAM, TrialConfig, is_read, neutral_fields
from trainables.families import family_of


def upstream(*stages: str) -> frozenset[str]:
    """``stages`` and every stage they start from."""
    seen: set[str] = set()
    todo = list(stages)
    while todo:
        s = todo.pop()
        if s not in seen:
            seen.add(s)
            todo += UPSTREAM[s]
    return frozenset(seen)


def key_fields(*stages: str) -> tuple[str, ...]:
    """The fields that determine the output of ``stages``."""
    covered = upstream(*stages)
    return tuple(f.name for f in fields(TrialConfig) if covered & set(f.metadata["stages"]))


def _hash(d: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _values(cfg: TrialConfig, names: tuple[str, ...]) -> dict[str, object]:
    """The values of ``names``, less the fields at their neutral value (added after keys were
    in use: at that value they compute what trials computed before them) and the fields this
    trial never reads (``read_when``: another anonymizer's knobs, the L1 stage's epochs of a
    residual f_A)."""
    neutral = neutral_fields()
    return {
        k: getattr(cfg, k)
        for k in names
        if not (k in neutral and getattr(cfg, k) == neutral[k]) and is_read(cfg, k)
    }


def stage_key(cfg: TrialConfig, *stages: str) -> str:
    """A short hash of what the output of ``stages`` depends on."""
    return _hash(_values(cfg, key_fields(*stages)))


#: The init key of every trial whose family neither plays the game nor fits a part of its own:
#: it has no initial networks, so all such trials share one (empty) init stage.
NO_INIT = "none"


def init_key(cfg: TrialConfig) -> str:
    """What the initial f_A, f_T and f_B depend on (the warm start comes after the identity
    stage); :data:`NO_INIT` for an anonymizer that has none."""
    fam = family_of(cfg.anonymizer)
    if fam is not None and not (fam.plays_game or fam.fits):
        return NO_INIT
    return stage_key(cfg, "warm")


def raw_key(cfg: TrialConfig) -> str:
    """What the raw reference (the evaluation of the identity anonymizer) depends on."""
    return stage_key(cfg, "evaluation")


def shared_key(cfg: TrialConfig) -> str:
    """What both shared stages depend on."""
    return f"{init_key(cfg)}-{raw_key(cfg)}"


def penalty_is_inert(cfg: TrialConfig) -> bool:
    """True when the penalty term is exactly zero at every step, whatever the data: lambda = 0,
    or B >= 1, which an RMS of pixels in [0, 1] (the anonymizers end in a sigmoid or a clamp)
    can never exceed. Such trials compute exactly what the unpenalised game computes."""
    return cfg.lam == 0.0 or cfg.B >= 1.0


#: Every stage a trial's result depends on: all but the runtime.
RESULT_STAGES = tuple(s for s in STAGES if s != "runtime")


def result_key(cfg: TrialConfig) -> str:
    """A short hash of everything a trial's result depends on. Trials whose penalty is inert
    share one key (B and lambda drop out), so a study computes their common result once."""
    d = _values(cfg, key_fields(*RESULT_STAGES))
    if penalty_is_inert(cfg):
        d["B"], d["lam"] = "inert", "inert"
    return _hash(d)
