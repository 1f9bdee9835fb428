"""``python -m study.bench quality --seeds 3``: does the benchmark show the trade-off?

For each seed s (model seed and data seed both s; one evaluation seed for all), it computes the
shared stages once (the raw reference and the init point, f_A before the game, among them),
then runs a trial at each B of the sweep at the binding lambda and one at the lambda-ablation
point (B = 0.1, lambda = 0). Each trial's f_T' and f_B' share the raw reference's evaluation
seed, so its drop from raw is a paired comparison. It prints a table of mean and std over seeds
per point (with the game's first and last epoch RMS), the mean per-attribute AP per point, the
acceptance checks of :mod:`analysis.quality`, then one JSON line.

Trials run in this process, one after another, without Ray or MLflow: the figures measure the
method and the benchmark, not the platform. Every finished row is appended to ``--records``
(JSON lines) at once, and rows already there for the same config are reused, so a killed
bench loses nothing and continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

from analysis import markdown
from analysis.quality import attribute_ap, checks, point_name, summarise, sweep_hypervolume
from search_spaces import BINDING_LAM, BUILTIN_BS
from study.bench.plan import TrialPlan
from trainables.config import help_field, split_names
from trainables.log import Log, usage_error


@dataclasses.dataclass(frozen=True)
class QualityPlan(TrialPlan):
    """Does the benchmark show the trade-off? The raw reference, a B sweep at the binding lambda
    and the lambda ablation, per seed, with the acceptance checks."""

    seeds: int = help_field(3, "seeds s = 0..N-1; seed s sets both the model and the data seed")
    bounds: str = help_field("", "comma list: the B sweep at --lam (default: the built-in "
                             "spaces' bounds)")  # fmt: skip
    lam: float = help_field(0.0, "the binding lambda of the B sweep (0: the built-in spaces'); "
                            "the ablation compares it with lambda=0 at B=0.1")  # fmt: skip
    eval_seed: int = help_field(0, "evaluation seed of every trial and of the raw reference")
    records: str = help_field("bench-quality.jsonl", "JSON-lines file of finished rows: "
                              "appended to, and reused on a rerun ('' to keep nothing)")  # fmt: skip

    #: The ablation point: lambda off at this B.
    lam_off: ClassVar[float] = 0.0
    lam_bound: ClassVar[float] = 0.1

    def check(self) -> None:
        """Refuse a bad plan (ValueError naming the flag) before any trial runs."""
        if self.seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {self.seeds}")
        if self.lam < 0:
            raise ValueError(f"--lam must be > 0 (the ablation runs lambda = 0), got {self.lam}")
        if len(self.bound_values) < 2:
            raise ValueError(f"--bounds needs at least two values, got {self.bounds!r}")
        fixed = sorted({"seed", "data_seed", "eval_seed", "B", "lam"} & set(self.overrides))
        if fixed:
            raise ValueError(
                f"--set {', '.join(fixed)}: the quality bench sets these itself "
                "(use --seeds, --eval-seed and --bounds)"
            )

    @property
    def seed_list(self) -> tuple[int, ...]:
        return tuple(range(self.seeds))

    @property
    def bound_values(self) -> tuple[float, ...]:
        if not self.bounds:
            return tuple(BUILTIN_BS)
        return tuple(float(b) for b in split_names(self.bounds))

    @property
    def binding_lam(self) -> float:
        return self.lam or BINDING_LAM

    def points(self) -> list[tuple[float, float]]:
        pts = [(b, self.binding_lam) for b in self.bound_values]
        if (self.lam_bound, self.lam_off) not in pts:
            pts.append((self.lam_bound, self.lam_off))
        return pts


def load_records(path: Path | None) -> dict[str, dict[str, Any]]:
    """A bench's finished rows by key (a line cut by a kill is left out)."""
    if path is None or not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            out[row["key"]] = row
    return out


def append_record(path: Path | None, row: dict[str, Any]) -> None:
    if path is not None:
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def run_quality(plan: QualityPlan, *, records: Path | None, log: Log) -> list[dict[str, Any]]:
    """Run (or reuse from ``records``) every point of every seed; return one row each."""
    from trainables.catalog import validate
    from trainables.config import config_for
    from trainables.data.load import load_data
    from trainables.game.keys import result_key, shared_key
    from trainables.stages import compute_shared
    from trainables.trial import run_trial

    done = load_records(records)
    rows: list[dict[str, Any]] = []
    cfgs = {
        s: [
            config_for(
                plan.scale,
                **{**plan.overrides, "seed": s, "data_seed": s, "eval_seed": plan.eval_seed},
                B=b,
                lam=lam,
            )
            for b, lam in plan.points()
        ]
        for s in plan.seed_list
    }
    for group in cfgs.values():
        for cfg in group:
            validate(cfg)
    total = sum(len(g) + 1 for g in cfgs.values())  # the trials and the shared stages
    n = 0
    for s, group in cfgs.items():
        raw_key = f"raw-{shared_key(group[0])}"
        init_key = f"init-{shared_key(group[0])}"
        todo = [c for c in group if f"trial-{result_key(c)}" not in done]
        shared = None
        if raw_key not in done or todo:
            log(f"[quality] seed {s}: building the data and the shared stages")
            data = load_data(group[0], log)
            t0 = time.time()
            shared = compute_shared(group[0], data, log)
            seconds = time.time() - t0
            if raw_key not in done:
                for point, ev in (("raw", shared.raw), ("init", shared.init_point)):
                    if ev is None:
                        continue
                    row: dict[str, Any] = {
                        "key": raw_key if point == "raw" else init_key,
                        "point": point,
                        "seed": s,
                        "B": None,
                        "lam": None,
                        "top1": ev.top1,
                        "cmap": ev.cmap,
                        "f1": ev.f1,
                        "rms": ev.rms,
                        "ap": ev.ap,
                        "attributes": list(data.attributes),
                        "seconds": seconds if point == "raw" else ev.seconds,
                    }
                    append_record(records, row)
                    done[row["key"]] = row
        for key in (raw_key, init_key):
            if key in done:
                rows.append(done[key])
                r = done[key]
                log(f"[quality] seed {s} {r['point']}: top1={r['top1']:.3f} cmap={r['cmap']:.3f} "
                    f"rms={r['rms']:.4f}")  # fmt: skip
        n += 1
        for cfg in group:
            key = f"trial-{result_key(cfg)}"
            if key not in done:
                res = run_trial(cfg, data=data, shared=shared, log=log)
                row = {
                    "key": key,
                    "point": point_name(cfg.B, cfg.lam),
                    "seed": s,
                    "B": cfg.B,
                    "lam": cfg.lam,
                    "top1": res.top1,
                    "cmap": res.cmap,
                    "f1": res.f1,
                    "rms": res.rms,
                    **res.penalty_metrics(),
                    "rms_first": res.history[0]["rms"] if res.history else None,
                    "rms_last": res.history[-1]["rms"] if res.history else None,
                    "ap": res.ap,
                    "seconds": res.seconds,
                }
                append_record(records, row)
                done[key] = row
            rows.append(done[key])
            n += 1
            r = done[key]
            log(f"[quality] {n}/{total} seed {s} {r['point']}: top1={r['top1']:.3f} "
                f"cmap={r['cmap']:.3f} rms={r['rms']:.3f} ({r['seconds']:.0f}s)")  # fmt: skip
    return rows


def report(plan: QualityPlan, rows: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The printed tables and the JSON object of a finished quality bench."""
    import pandas as pd

    records = pd.DataFrame(rows)
    attributes: list[str] = next((r["attributes"] for r in rows if r.get("attributes")), [])
    summary = summarise(records)
    bounded = (
        "rms" if plan.overrides.get("penalty_on", "pixels") == "pixels" else "feature_distance"
    )
    found = checks(summary, bounds=plan.bound_values, lam=plan.binding_lam, lam_off=plan.lam_off,
                   lam_bound=plan.lam_bound, bounded=bounded)  # fmt: skip
    shown = ("top1", "cmap", "f1", "rms", *(("feature_distance",) if bounded != "rms" else ()))
    heads = {
        "top1": "Top-1",
        "cmap": "cMAP",
        "f1": "F1",
        "rms": "RMS",
        "feature_distance": "feature distance",
    }
    cells_of: list[list[str]] = []

    def pm(r: pd.Series, c: str) -> str:
        std = r[f"{c}_std"]
        return f"{r[f'{c}_mean']:.3f} ± {0.0 if std != std else std:.3f}"

    for point, r in summary.iterrows():
        cells = [pm(r, c) if pd.notna(r.get(f"{c}_mean")) else "" for c in shown]
        game = (
            f"{r['rms_first_mean']:.3f} / {r['rms_last_mean']:.3f}"
            if "rms_first_mean" in r and r["rms_first_mean"] == r["rms_first_mean"]
            else ""
        )
        cells_of.append(
            [str(point), str(int(r["seeds"])), *cells, game, f"{r['seconds_mean']:.0f}"]
        )
    header = ["point", "seeds", *(heads[c] for c in shown), "RMS first/last epoch", "seconds"]
    lines = markdown.table(header, cells_of)
    ap = pd.DataFrame()
    if "ap" in records and len(attributes):
        ap = attribute_ap(records, attributes).reindex(summary.index).dropna(how="all")
        lines += [
            "",
            *markdown.table(
                ["point", *attributes], ([p, *(f"{v:.3f}" for v in r)] for p, r in ap.iterrows())
            ),
        ]
    lines += [
        "",
        *markdown.table(
            ["check", "value", "target", "ok"],
            ([c.name, f"{c.value:.3f}", c.target, "yes" if c.ok else "NO"] for c in found),
        ),
    ]
    hv = sweep_hypervolume(records, plan.bound_values, plan.binding_lam)
    lines += [
        "",
        f"Hypervolume of the B sweep at lam={plan.binding_lam:g} (reference Top-1 = 0, cMAP = 1; "
        f"penalty on {plan.overrides.get('penalty_on', 'pixels')}): {hv.of_means:.4f} of the "
        f"seed means; per seed {hv.per_seed_mean:.4f} ± {hv.per_seed_std:.4f} ({hv.seeds} seeds)",
    ]
    out = {
        "scale": plan.scale,
        "overrides": plan.overrides,
        "seeds": list(plan.seed_list),
        "eval_seed": plan.eval_seed,
        "points": {
            str(p): {k: (None if v != v else v) for k, v in r.items()}
            for p, r in summary.to_dict(orient="index").items()
        },
        "ap": {str(p): dict(r) for p, r in ap.to_dict(orient="index").items()},
        "checks": [c.row() for c in found],
        "hypervolume": hv.row(),
        "passed": sum(c.ok for c in found),
        "total": len(found),
    }
    return "\n".join(lines), out


def log(msg: str) -> None:
    """Progress, on stderr: stdout is the bench's tables."""
    print(msg, file=sys.stderr, flush=True)


def main(plan: QualityPlan, log: Log = log) -> int:
    """Run (or resume) the quality bench; print its tables and one JSON line."""
    try:
        plan.check()
        rows = run_quality(plan, records=Path(plan.records) if plan.records else None, log=log)
    except ValueError as e:  # ConfigError included
        return usage_error(e)
    table, out = report(plan, rows)
    print(table)
    print(json.dumps(out))
    return 0
