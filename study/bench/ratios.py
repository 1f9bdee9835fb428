"""``python -m study.bench ratios``: where a trial's time goes, and what the platform costs.

1. **A real study** (``python -m study.launch``, Ray and a real MLflow server): ``trials``
   trials of the scale (B spread over the built-in range at b_sweep's lambda), ``concurrent`` at a time
   with 1 CPU each. Its wall time runs from the first trial's start to the last one's end in
   MLflow; each trial records its per-stage seconds (``seconds/*``, ``game_steps``).
2. **The same trials one after another in this process**, with 2 torch threads, on the
   study's shared stages and one copy of the data.
3. **A bare game loop**: ``minimax_step`` of the same three models on one fixed batch, in
   ``concurrent`` processes at once with 1 thread each, as the study's trials ran; right after
   (1), since this machine's speed drifts over an hour.
4. **``penalty_grid`` twice** at ``--sharing-scale`` (smoke unless given), ``concurrent`` at a
   time with 1 CPU each: as studies run it, and with nothing shared (``--no-reuse
   --private-stages``: every trial computes its own shared stages and its own result).

From these:

- ``overhead`` = the game's steps/s inside the study's trials (their ``game`` seconds: data
  batches, augmentation, checkpoints and logging between epochs) / the bare loop's;
- ``concurrency`` = wall of (2) / wall of (1);
- ``sharing`` = wall of (4) with sharing / without: timed. The bench also prints an estimate
  of it at the scale of (1) (``penalty_grid``: 30 trials, 26 distinct results) from the
  measured stage seconds, since the grid at the default scale takes about an hour with
  sharing and two without here.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis import markdown
from study.bench.speed import timed_steps
from trainables.config import SCALES, help_field, parse_assignments
from trainables.log import Log, usage_error


@dataclass(frozen=True)
class RatiosPlan:
    """Where a trial's time goes and what the platform costs: a real study, the same trials in
    this process, a bare game loop, and penalty_grid with and without shared stages."""

    scale: str = help_field("default", "trial scale of every trial: the timed study's",
                            tuple(SCALES))  # fmt: skip
    trials: int = help_field(4, "trials of the timed study")
    concurrency: int = help_field(2, "trials in flight at once: the study runs this many, 1 CPU "
                                  "each")  # fmt: skip
    bare_steps: int = help_field(60, "timed steps of the bare game loop")
    sharing_scale: str = help_field("smoke", "time penalty_grid at this scale with and without "
                                    "shared stages and reuse ('' or none: only estimate the "
                                    "saving at --scale)")  # fmt: skip
    study_dir: str = help_field("", "keep the timed study here (default: a temporary folder)")
    set: tuple[str, ...] = help_field((), "trial config override KEY=VALUE, e.g. --set size=32")

    def check(self) -> None:
        """Refuse a bad plan (ValueError naming the flag) before any work."""
        if self.trials < 2 or self.concurrency < 2:
            raise ValueError(
                f"--trials and --concurrency must be >= 2 (got {self.trials}, {self.concurrency})"
            )
        fixed = sorted({"B", "lam", "seed", "scale"} & set(parse_assignments(self.set)))
        if fixed:
            raise ValueError(f"--set {', '.join(fixed)}: the ratios bench sets these itself")


def main(plan: RatiosPlan, log: Log) -> int:
    """Run the ratios bench; print its table and one JSON line."""
    try:
        plan.check()
        out = run_ratios(
            plan.scale,
            parse_assignments(plan.set),
            plan.trials,
            plan.concurrency,
            Path(plan.study_dir) if plan.study_dir else None,
            plan.bare_steps,
            log,
            sharing_scale="" if plan.sharing_scale in ("", "none") else plan.sharing_scale,
        )
    except (ValueError, RuntimeError) as e:
        return usage_error(e)
    print(report(out))
    print(json.dumps(out))
    return 0


#: Goals of issue 14: (ratio, comparison, bound).
GOALS = {"overhead": (">=", 0.90), "concurrency": (">=", 1.5), "sharing": ("<=", 0.6)}


def bare_steps_per_s(scale: str, overrides: dict[str, Any], steps: int, threads: int) -> float:
    """Steps/s of a bare game loop: the game's three models, built and placed as a trial does,
    stepped ``steps`` times on one fixed batch (after one untimed step)."""
    import torch

    from trainables.config import config_for
    from trainables.data.load import load_data
    from trainables.data.sets import batches
    from trainables.game.device import runtime, stage_data
    from trainables.game.train import (
        make_minimax_optimizers,
        minimax_step,
        n_privacy,
        privacy_samples,
        shuffled,
    )
    from trainables.models.build import build_models

    torch.set_num_threads(threads)
    cfg = config_for(scale, **overrides)
    rt = runtime(cfg.device, cfg.amp, cfg.seed)
    data = stage_data(load_data(cfg, lambda m: None), rt.device)
    anon, f_t, f_b = build_models(cfg, data)
    rt.place(anon, channels_last=True)
    rt.place(f_t)
    rt.place(f_b, channels_last=True)
    opts = make_minimax_optimizers(anon, f_t, f_b, cfg)
    # One batch as the game's first step sees it, then fixed (each step draws its augmentation).
    idx, x = next(iter(shuffled(data.action_train.clips, cfg.batch_size, cfg, rt, 1)))
    y = data.action_train.labels[idx].to(rt.device)
    pidx = next(batches(n_privacy(data, cfg), cfg.privacy_batch_size, rt.gen, drop_last=True))
    p1, p2 = privacy_samples(data, pidx, cfg, rt)
    flips = data.flip_labels()
    sec = timed_steps(
        lambda: minimax_step(anon, f_t, f_b, x, y, p1, p2, cfg, rt, opts, flip_labels=flips),
        steps, 1, rt.device,
    )  # fmt: skip
    return 1.0 / sec


def _bare_worker(args: tuple[str, dict[str, Any], int, int]) -> float:
    return bare_steps_per_s(*args)


def bare_concurrent(
    scale: str, overrides: dict[str, Any], steps: int, processes: int
) -> list[float]:
    """The bare loop in ``processes`` processes at once, 1 thread each: steps/s of each."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes) as pool:
        return pool.map(_bare_worker, [(scale, overrides, steps, 1)] * processes)


def trial_values(trials: int) -> list[float]:
    """B of each timed trial: spread over the built-in range, from its first positive bound to
    its last."""
    from search_spaces import BUILTIN_BS

    lo, hi = min(b for b in BUILTIN_BS if b > 0), max(BUILTIN_BS)
    return [round(lo + (hi - lo) * i / max(1, trials - 1), 3) for i in range(trials)]


def sweep_lambda() -> float:
    """The lambda of the timed study's trials: b_sweep's, which the launcher runs."""
    from search_spaces import get_space

    return float(get_space("b_sweep").fixed["lam"])


def _launch(root: Path, experiment: str, args: Sequence[str], log: Log) -> float:
    """Run ``python -m study.launch`` with ``args`` in ``root``; its wall seconds."""
    cmd = [
        sys.executable, "-m", "study.launch", *args, "--cpus-per-trial", "1",
        "--study-dir", str(root), "--experiment", experiment,
    ]  # fmt: skip
    log("[ratios] " + " ".join(cmd[1:]))
    t0 = time.time()
    # The launcher's progress goes to stderr with ours; stdout stays the bench's table and JSON.
    rc = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr).returncode
    if rc != 0:
        raise RuntimeError(
            f"the timed study {experiment!r} failed (exit {rc}); its output is above"
        )
    return time.time() - t0


def _trial_runs(root: Path, experiment: str) -> list[Any]:
    """The trial (child) runs of the study ``experiment`` in ``root``."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / experiment / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise RuntimeError(f"the timed study left no experiment {experiment!r} in {root}")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if r.data.tags.get("mlflow.parentRunId")]


def _span(runs: Sequence[Any]) -> float:
    """Seconds from the first run's start to the last one's end."""
    return max(r.info.end_time for r in runs) / 1000 - min(r.info.start_time for r in runs) / 1000


def run_study(
    root: Path, scale: str, sets: Sequence[str], bs: Sequence[float], concurrent: int, log: Log
) -> dict[str, Any]:
    """Run the real study; return its trials' start/end times and ``seconds/*`` metrics."""
    args = [
        "--space", "b_sweep", "--scale", scale, "--grid", "B=" + ",".join(str(b) for b in bs),
        "--max-concurrent", str(concurrent), *[a for s in sets for a in ("--set", s)],
    ]  # fmt: skip
    launcher = _launch(root, "ratios", args, log)
    children = _trial_runs(root, "ratios")
    if len(children) != len(bs):
        raise RuntimeError(f"expected {len(bs)} trial runs, found {len(children)}")
    return {
        "launcher_seconds": launcher,
        "trials_wall": _span(children),
        "trial_seconds": [float(r.data.metrics["seconds"]) for r in children],
        "stages": [
            {k: float(v) for k, v in r.data.metrics.items() if k.startswith("seconds/")}
            | {"game_steps": float(r.data.metrics.get("game_steps", 0.0))}
            for r in children
        ],
    }


def shared_stage_seconds(study_root: Path) -> float:
    """Seconds the shared stages on disk in ``study_root`` took to compute (each file records its
    own)."""
    import torch

    total = 0.0
    for p in sorted((study_root / "shared").glob("init-*.pt")):
        total += float(torch.load(p, weights_only=True)["seconds"])
    for p in sorted((study_root / "shared").glob("raw-*.json")):
        total += float(json.loads(p.read_text())["seconds"])
    return total


def run_sharing(
    root: Path, scale: str, sets: Sequence[str], concurrent: int, log: Log
) -> dict[str, Any]:
    """``penalty_grid`` at ``scale`` timed twice, ``concurrent`` trials at a time with 1 CPU each:
    as studies run it (the shared stages computed once, before the trials, and the inert-penalty
    results reused), and with nothing shared (``--no-reuse --private-stages``: every trial
    computes its own shared stages and result). With: the shared stages' seconds plus the
    trials' wall (first start to last end); without: the trials' wall."""
    out: dict[str, Any] = {"scale": scale, "space": "penalty_grid"}
    common = ["--space", "penalty_grid", "--scale", scale, "--max-concurrent", str(concurrent)]
    common += [a for s in sets for a in ("--set", s)]
    for name, extra in (("with", []), ("without", ["--no-reuse", "--private-stages"])):
        exp = f"sharing-{name}"
        launcher = _launch(root, exp, [*common, *extra], log)
        runs = _trial_runs(root, exp)
        shared = shared_stage_seconds(root / exp) if name == "with" else 0.0
        wall = _span(runs)
        out[name] = {
            "trials": len(runs),
            "reused": sum(1 for r in runs if r.data.tags.get("reused_from")),
            "shared_seconds": shared,
            "trials_wall": wall,
            "wall": shared + wall,
            "launcher_seconds": launcher,
        }
        log(f"[ratios] penalty_grid {name} sharing: {shared + wall:.0f}s ({len(runs)} trials)")
    out["ratio"] = out["with"]["wall"] / out["without"]["wall"]
    return out


def run_sequential(
    root: Path, scale: str, overrides: dict[str, Any], bs: Sequence[float], log: Log
) -> dict[str, Any]:
    """The same trials one after another in this process with 2 threads, on the study's shared
    stages; the wall time and each trial's stage seconds."""
    import torch

    from study.shared import load_shared
    from trainables.config import config_for
    from trainables.data.load import load_data
    from trainables.trial import run_trial

    torch.set_num_threads(2)
    cfgs = [config_for(scale, **{**overrides, "B": b, "lam": sweep_lambda()}) for b in bs]
    data = load_data(cfgs[0], lambda m: None)
    shared = load_shared(root / "ratios", cfgs[0])
    t0 = time.time()
    stages = []
    for i, cfg in enumerate(cfgs):
        res = run_trial(cfg, data=data, shared=shared, log=lambda m: None)
        stages.append(res.stage_seconds)
        log(f"[ratios] in-process trial {i + 1}/{len(cfgs)}: {res.seconds:.0f}s")
    return {"wall": time.time() - t0, "stages": stages, "init": shared.init.stage_seconds,
            "raw_seconds": shared.raw.seconds}  # fmt: skip


def sharing_estimate(
    shared: float,
    shared_in_trial: float,
    trial: float,
    reused: float,
    concurrent: int,
    trials: int = 30,
    distinct: int = 26,
) -> dict[str, float]:
    """Wall seconds of a grid of ``trials`` (``distinct`` results), ``concurrent`` at a time:
    with the shared stages computed once (``shared`` seconds, before the trials) and the
    inert-penalty results reused (``reused`` seconds each), and without either (each trial
    computes the stages itself: ``shared_in_trial`` seconds on its CPU); and the ratio."""
    with_ = (
        shared
        + math.ceil(distinct / concurrent) * trial
        + math.ceil((trials - distinct) / concurrent) * reused
    )
    without = math.ceil(trials / concurrent) * (shared_in_trial + trial)
    return {"with": with_, "without": without, "ratio": with_ / without}


def run_ratios(
    scale: str, overrides: dict[str, Any], trials: int, concurrent: int, study_dir: Path | None,
    bare_steps: int, log: Log, sharing_scale: str = "",
) -> dict[str, Any]:  # fmt: skip
    """Measure everything; return the figures (and the goals each meets). ``sharing_scale``:
    time ``penalty_grid`` with and without sharing at that scale (:func:`run_sharing`); empty:
    only the estimate at ``scale``."""
    from trainables.catalog import validate
    from trainables.config import config_for

    bs = trial_values(trials)
    for b in bs:  # refuse a bad --set before any work
        validate(config_for(scale, **{**overrides, "B": b, "lam": sweep_lambda()}))
    if sharing_scale:
        validate(config_for(sharing_scale, **overrides))
    sets = [f"{k}={v}" for k, v in overrides.items()]
    with tempfile.TemporaryDirectory(prefix="pa-ratios-") as tmp:
        root = Path(study_dir or tmp)
        study = run_study(root, scale, sets, bs, concurrent, log)
        log(
            f"[ratios] study: {trials} trials, {concurrent} at a time, in {study['trials_wall']:.0f}s"
        )
        # Right after the study's trials: this machine's speed drifts over an hour (by up to a
        # quarter here), and the overhead compares the two.
        bare = bare_concurrent(scale, overrides, bare_steps, concurrent)
        log(
            f"[ratios] bare game loop, {concurrent} at once: " + ", ".join(f"{s:.3f}" for s in bare)
        )
        seq = run_sequential(root, scale, overrides, bs, log)
        log(f"[ratios] in this process, one after another: {seq['wall']:.0f}s")
        timed = run_sharing(root, sharing_scale, sets, concurrent, log) if sharing_scale else None
    game_sps = [s["game_steps"] / s["seconds/game"] for s in study["stages"]]
    median = statistics.median
    stage = {
        "identity": seq["init"].get("identity", float("nan")),
        "warm_start": seq["init"].get("warm_action", 0.0) + seq["init"].get("warm_privacy", 0.0),
        "raw_reference": seq["raw_seconds"],
        "data": median(s["seconds/data"] for s in study["stages"]),
        "game": median(s["seconds/game"] for s in study["stages"]),
        "f_T_eval": median(s["seconds/eval_action"] for s in study["stages"]),
        "f_B_eval": median(s["seconds/eval_privacy"] for s in study["stages"]),
        "anonymize": median(s["seconds/anonymize"] for s in study["stages"]),
        "logging": median(s["seconds/logging"] for s in study["stages"]),
        "trial": median(study["trial_seconds"]),
    }
    in_process = {
        k: median(s.get(k, 0.0) for s in seq["stages"])
        for k in ("game", "eval_action", "eval_privacy", "anonymize")
    }
    shared_seconds = stage["identity"] + stage["warm_start"] + stage["raw_reference"]
    # A study trial (1 CPU, sharing the machine) computes this much slower than this process.
    slowdown = stage["game"] / in_process["game"]
    reused = stage["data"] + stage["logging"]
    sharing = sharing_estimate(
        shared_seconds, shared_seconds * slowdown, stage["trial"], reused, concurrent
    )
    sharing["slowdown_in_study"] = slowdown
    ratios = {
        "overhead": median(game_sps) / median(bare),
        "concurrency": seq["wall"] / study["trials_wall"],
        "sharing": timed["ratio"] if timed else sharing["ratio"],
    }
    return {
        "scale": scale,
        "overrides": overrides,
        "trials": trials,
        "concurrent": concurrent,
        "cpus": os.cpu_count(),
        "ratios": ratios,
        "goals": {
            k: {"goal": f"{op} {v}", "met": (ratios[k] >= v if op == ">=" else ratios[k] <= v)}
            for k, (op, v) in GOALS.items()
        },
        "game_steps_per_s": {"study_trials": game_sps, "bare": bare},
        "walls": {
            "study_trials": study["trials_wall"],
            "sequential": seq["wall"],
            "launcher": study["launcher_seconds"],
        },  # fmt: skip
        "stage_seconds": stage,
        "stage_seconds_in_process_2_threads": in_process,
        "sharing_estimate": sharing,
        #: The two timed grids behind ``ratios.sharing`` (None: that ratio is the estimate).
        "sharing_timed": timed,
    }


def report(out: dict[str, Any]) -> str:
    rows: list[list[str]] = []
    timed = out.get("sharing_timed")
    for k, v in out["ratios"].items():
        g = out["goals"][k]
        name = k
        if k == "sharing":
            name += f" (timed, {timed['scale']} scale)" if timed else " (estimate)"
        rows.append([name, f"{v:.3f}", g["goal"], "yes" if g["met"] else "NO"])
    if timed:
        est = out["sharing_estimate"]
        rows.append([f"sharing (estimate, {out['scale']} scale)", f"{est['ratio']:.3f}", "", ""])
    lines = markdown.table(["ratio", "value", "goal", "met"], rows)
    lines += ["", *markdown.table(
        ["stage (one trial)", "seconds"], ([k, f"{v:.1f}"] for k, v in out["stage_seconds"].items())
    )]  # fmt: skip
    return "\n".join(lines)
