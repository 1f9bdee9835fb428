"""``study.launch --dry-run``: what a study would run, without starting anything. The expanded
trials, which of them share shared stages (and whether those are on disk already), which take
an equivalent trial's stored result, and an estimated wall time."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from study.plan import StudyPlan
from study.shared import init_path, raw_path
from study.timings import StageSeconds, concurrency, estimate, raw_seconds, stage_seconds
from trainables.config import FAMILY_FIELDS, TrialConfig
from trainables.game.keys import NO_INIT, init_key, raw_key, result_key
from trainables.models.anonymizers import shown_knobs


def _varying(trials: list[TrialConfig]) -> list[str]:
    keys = [
        f.name
        for f in fields(TrialConfig)
        if f.name != "seed" and len({getattr(t, f.name) for t in trials}) > 1
    ]
    return [*keys, *(k for k in ("B", "lam") if k not in keys), "seed"]


def _cell(cfg: TrialConfig, name: str) -> str:
    if name in FAMILY_FIELDS and name not in shown_knobs(cfg):
        return ""
    v = getattr(cfg, name)
    return f"{v:.4g}" if isinstance(v, float) else f"{v}"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _trial_cost(sec: StageSeconds, private: bool) -> float | None:
    """A trained trial's seconds; with --private-stages its own shared stages too."""
    if not private:
        return sec.trial
    return None if sec.trial is None or sec.shared is None else sec.trial + sec.shared


def _shared_stages(
    plan: StudyPlan, groups: dict[tuple[str, str], str], lines: list[str]
) -> list[float | None]:
    """The shared stages' lines (appended to ``lines``) and the seconds of those to compute."""
    study, trials, root = plan.study, plan.trials, plan.study.root
    shared_s: list[float | None] = []
    raws_to_compute: set[str] = set()
    for (ik, rk), label in groups.items():
        cfg = next(c for c in trials if (init_key(c), raw_key(c)) == (ik, rk))
        on_disk = init_path(root, cfg).exists() and raw_path(root, cfg).exists()
        sec = stage_seconds(Path(study.study_dir).resolve(), cfg)
        if not init_path(root, cfg).exists():  # the raw reference counts once per raw key
            own = None if sec.shared is None else max(0.0, sec.shared - raw_seconds(cfg))
            shared_s.append(own)
        if not raw_path(root, cfg).exists() and rk not in raws_to_compute:
            raws_to_compute.add(rk)
            shared_s.append(raw_seconds(cfg))
        state = "on disk, reused" if on_disk else "to compute"
        what = (
            "the raw reference only (fixed anonymizers: no initial networks)"
            if ik == NO_INIT
            else f"{cfg.anonymizer}/{cfg.anon_encoder}, f_T {cfg.action_model}, "
            f"f_B {cfg.privacy_model}"
        )
        lines.append(f"  {label}: {what} ({ik[:8]}-{rk[:8]}): {state}")
    return shared_s


@dataclass(frozen=True)
class DryRun:
    """What the dry run says: its text, and the estimated wall time (None: no figures)."""

    text: str
    seconds: float | None
    source: str


def describe(plan: StudyPlan) -> str:
    """The dry run's text."""
    return dry_run(plan).text


def dry_run(plan: StudyPlan) -> DryRun:
    """The dry run: its text and its estimate (the launcher records the estimate too, so that
    a finished study shows it beside its measured wall time)."""
    study, trials = plan.study, plan.trials
    root = study.root
    lines = [
        f"Dry run of {plan.space.name}: scale {study.scale}, dataset {study.dataset}, "
        f"{study.seeds} seed(s), study dir {root}",
    ]
    if plan.space.is_search:
        lines.append(
            f"A search: Optuna samples {plan.samples} configuration(s), each run with "
            f"{study.seeds} seed(s). Below: the {len(trials)} corners of its ranges, which "
            "were checked; the sampled trials share the same shared stages."
        )
    groups: dict[tuple[str, str], str] = {}
    for cfg in trials:
        groups.setdefault((init_key(cfg), raw_key(cfg)), f"S{len(groups) + 1}")
    first: dict[str, int] = {}
    cols = _varying(trials)
    rows = [["#", *cols, "shared", "result"]]
    reused = 0
    trained: list[TrialConfig] = []
    for i, cfg in enumerate(trials, start=1):
        key = result_key(cfg) if not study.no_reuse and not plan.space.is_search else None
        if key is not None and key in first:
            note = f"reuses #{first[key]}"
            reused += 1
        else:
            note = "trains"
            trained.append(cfg)
            if key is not None:
                first[key] = i
        shared = "own" if study.private_stages else groups[(init_key(cfg), raw_key(cfg))]
        rows.append([str(i), *(_cell(cfg, c) for c in cols), shared, note])
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    lines += ["", *("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows)]

    shared_s: list[float | None] = []
    if study.private_stages:
        lines += [
            "",
            "Shared stages: none shared (--private-stages). Each trial computes its own identity/"
            f"warm start and raw reference in {root / 'private'}/TRIAL_ID.",
        ]
    else:
        lines += ["", "Shared stages (identity/warm start and raw reference, computed once each):"]
        shared_s = _shared_stages(plan, groups, lines)
    n_train = plan.num_trials - reused
    at_once = concurrency(study.max_concurrent, study.cpus_per_trial, study.gpus_per_trial)
    sec = stage_seconds(Path(study.study_dir).resolve(), trials[0])
    if plan.space.is_search:  # the corners stand for the sampled trials
        costs = [sec] * n_train
    else:
        costs = [stage_seconds(Path(study.study_dir).resolve(), c) for c in trained]
    per_trial = [_trial_cost(c, study.private_stages) for c in costs]
    total = estimate(shared_s, per_trial, at_once)
    lines += [
        "",
        f"{plan.num_trials} trials: {n_train} train, {reused} take an equivalent trial's stored "
        f"result (inert penalty); {at_once} at once.",
    ]
    if total is None:
        lines.append(f"Estimated wall time: unknown ({sec.source}).")
    else:
        spread = {round(t or 0) for t in per_trial}
        each = (
            f"a trial {per_trial[0] or 0:.0f} s"
            if len(spread) == 1
            else f"a trial {min(spread)}-{max(spread)} s by family"
        )
        lines.append(
            f"Estimated wall time: {_minutes(total)} (shared stages "
            f"{sum(s or 0 for s in shared_s):.0f} s in all, {each}; from {sec.source})."
        )
    if study.resume:
        from study.record import resume_problem

        problem = resume_problem(plan)
        lines.append(f"error: {problem}" if problem else "--resume: the flags match the study.")
    lines.append("Nothing was started. Run it without --dry-run.")
    return DryRun("\n".join(lines), total, sec.source)
