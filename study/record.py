"""What defines a study, written to STUDY/study.json when it starts, so that ``--resume`` with
other flags is refused instead of half-applied (trials restored with the old config while the
shared stages would be computed for the new one)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from study.plan import StudyPlan
from trainables.config import flag

#: Study flags that change what the trials compute. The others (concurrency, resources, ports,
#: retries, reuse) may differ on --resume.
DEFINING = (
    "space",
    "space_module",
    "scale",
    "dataset",
    "seeds",
    "num_samples",
    "sampler",
    "set",
    "grid",
)
FILE = "study.json"


def defining(plan: StudyPlan) -> dict[str, Any]:
    """The flags that define the study, and the base trial config they give (which also holds
    the dataset roots read from the environment)."""
    study = plan.study
    out: dict[str, Any] = {k: getattr(study, k) for k in DEFINING}
    out["set"] = sorted(out["set"])
    out["grid"] = sorted(out["grid"])
    out["base"] = {k: plan.base[k] for k in sorted(plan.base)}
    return json.loads(json.dumps(out, default=str))


def write(plan: StudyPlan) -> Path:
    path = plan.study.root / FILE
    path.write_text(json.dumps(defining(plan), indent=2) + "\n")
    return path


def differences(stored: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """One line per defining flag whose value differs, as ``--flag: stored -> now``."""
    lines = []
    for k in sorted(set(stored) | set(now)):
        if k == "base" or k not in stored:  # a flag newer than the record: not set then
            continue
        if stored.get(k) != now.get(k):
            lines.append(f"{flag(k)}: {stored.get(k)!r} when started, {now.get(k)!r} now")
    if lines:
        return lines
    sb, nb = stored.get("base", {}), now.get("base", {})
    for k in sorted(set(sb) | set(nb)):  # same flags: a dataset root from the environment
        if sb.get(k) != nb.get(k):
            lines.append(f"{k} (environment): {sb.get(k)!r} when started, {nb.get(k)!r} now")
    return lines


def resume_problem(plan: StudyPlan) -> str:
    """Why ``--resume`` cannot continue the stored study with these flags, or ''."""
    path = plan.study.root / FILE
    if not path.is_file():
        return ""  # a study from before study.json: nothing to compare with
    diffs = differences(json.loads(path.read_text()), defining(plan))
    if not diffs:
        return ""
    return (
        f"--resume: the flags differ from those that started the study in {plan.study.root}:\n  "
        + "\n  ".join(diffs)
        + "\nResume with the original flags, or start another study (--experiment or "
        "--study-dir)."
    )
