"""``python -m study.bench search --search-seeds 3``: does the search find the grid's front with
fewer trials?

It runs the grid space (``penalty_grid``) once, then the search space (``pareto_search``) with
each listed sampler and B scale under each search seed, ``budget`` trials each. Trials run in
this process, one after another, without Ray or MLflow, on one set of shared stages per
shared key (computed once for all the runs). A search proposes ``concurrency`` trials before it
hears back, as Ray Tune does with that many trials at once (the constant liar matters then).

Every trial has model seed 0, data seed 0 and the same evaluation seed: the runs differ only
in the configurations they choose. The hypervolume uses the fixed reference Top-1 = 0,
cMAP = 1. Every finished trial is appended to ``--records`` at once; a rerun reuses the rows of
the same configs, so a killed bench continues where it stopped.

The grid's rows also carry the game's first-epoch signals, for the multi-fidelity question:
does one of them rank the trials as their final Top-1 and cMAP do (Spearman)?
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from analysis import markdown
from analysis.fidelity import early_signal_table, predictive_signals
from analysis.pareto import FIXED_REFERENCE, hypervolume, hypervolume_curve
from search_spaces import Range, SearchSpace, get_space
from study.bench.plan import TrialPlan
from study.bench.quality import append_record, load_records
from study.search import SAMPLERS, build_sampler
from trainables.config import help_field, split_names
from trainables.log import Log, usage_error

#: A trial's configuration values (B, lam, learning rates) -> its row of results.
Evaluate = Callable[[dict[str, Any]], dict[str, Any]]

#: B scales the bench compares: the space's own range, or a log range over the same span
#: (a log range cannot reach 0, so it starts at 0.01).
B_SCALES = ("linear", "log")
#: The game's first-epoch signals that the multi-fidelity table correlates.
EARLY_SIGNALS = ("early_train_top1", "early_rms", "early_L_T", "early_L_B", "early_L_A")


@dataclasses.dataclass(frozen=True)
class SearchPlan(TrialPlan):
    """Does the search find the grid's front with fewer trials? The grid once, then the search
    under each sampler, B scale and search seed, and their hypervolume against the grid's."""

    search_seeds: int = help_field(3, "searches per sampler and B scale, with seeds 0..N-1")
    samplers: str = help_field("tpe", "comma list of samplers (tpe, gp, nsga2, random)")
    b_scales: str = help_field("linear", "comma list of B scales: linear, log")
    budget: int = help_field(12, "trials per search")
    concurrency: int = help_field(2, "trials in flight at once: a search proposes this many "
                                  "before it hears back, as Ray runs them")  # fmt: skip
    eval_seed: int = help_field(0, "evaluation seed of every trial and of the raw reference")
    records: str = help_field("bench-search.jsonl", "JSON-lines file of finished rows: "
                              "appended to, and reused on a rerun ('' to keep nothing)")  # fmt: skip
    grid_space: str = help_field("penalty_grid", "the grid whose front the searches chase")
    search_space: str = help_field("pareto_search", "the search space")

    @property
    def seed_list(self) -> tuple[int, ...]:
        return tuple(range(self.search_seeds))

    @property
    def sampler_list(self) -> tuple[str, ...]:
        return tuple(split_names(self.samplers))

    @property
    def b_scale_list(self) -> tuple[str, ...]:
        return tuple(split_names(self.b_scales))

    def check(self) -> None:
        """Refuse a bad plan before any trial runs."""
        if self.search_seeds < 1:
            raise ValueError(f"--search-seeds must be >= 1, got {self.search_seeds}")
        fixed = sorted({"seed", "data_seed", "eval_seed"} & set(self.overrides))
        if fixed:
            raise ValueError(
                f"--set {', '.join(fixed)}: the search bench sets these itself (--eval-seed)"
            )
        for s in self.sampler_list:
            SAMPLERS.check(s)
        bad = sorted(set(self.b_scale_list) - set(B_SCALES))
        if bad:
            raise ValueError(f"--b-scales: unknown {bad}; valid: {', '.join(B_SCALES)}")
        if self.budget < 2 or self.concurrency < 1:
            raise ValueError(
                f"--budget must be >= 2 and --concurrency >= 1 (got {self.budget}, "
                f"{self.concurrency})"
            )
        grid, search = get_space(self.grid_space), get_space(self.search_space)
        if grid.is_search or not search.is_search:
            raise ValueError(
                f"--grid-space must be a grid and --search-space a search (got "
                f"{self.grid_space!r}, {self.search_space!r})"
            )
        if "B" not in search.ranges and "log" in self.b_scale_list:
            raise ValueError(f"--b-scales log: {self.search_space} does not search B")


def b_range(space: SearchSpace, scale: str) -> Range:
    """The space's B range on the named scale."""
    r = space.ranges["B"]
    if scale == "log":
        return Range(max(r.low, 0.01), r.high, log=True)
    return Range(r.low, r.high, log=False)


def run_search(
    space: SearchSpace,
    sampler: str,
    seed: int,
    budget: int,
    concurrency: int,
    evaluate: Evaluate,
    log: Log,
) -> list[dict[str, Any]]:
    """One search of ``budget`` trials with a real Optuna study (in memory): ``concurrency``
    trials are asked for before any of them is told, as with that many trials running."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = list(space.objectives)
    study = optuna.create_study(
        directions=["maximize" if space.objectives[n] == "max" else "minimize" for n in names],
        sampler=build_sampler(sampler, budget, seed=seed),
    )
    dists: dict[str, optuna.distributions.BaseDistribution] = {
        k: optuna.distributions.FloatDistribution(r.low, r.high, log=r.log)
        for k, r in space.ranges.items()
    }
    rows: list[dict[str, Any]] = []
    while len(rows) < budget:
        batch = [study.ask(dists) for _ in range(min(concurrency, budget - len(rows)))]
        done = [(t, evaluate({**space.fixed, **t.params})) for t in batch]
        for t, row in done:
            study.tell(t, [float(row[n]) for n in names])
            rows.append({**row, "order": len(rows) + 1})
            log(
                f"[search] {sampler} seed {seed}: trial {len(rows)}/{budget} "
                + " ".join(f"{n}={row[n]:.3f}" for n in names)
            )
    return rows


def hv(rows: Sequence[dict[str, Any]], objectives: dict[str, str]) -> float:
    import pandas as pd

    return hypervolume(pd.DataFrame(list(rows)), objectives, FIXED_REFERENCE)


class TrialRunner:
    """Runs trials in this process, reusing the records file and one set of shared stages per
    shared key."""

    def __init__(self, plan: SearchPlan, records: Path | None, log: Log) -> None:
        self.plan, self.records, self.log = plan, records, log
        self.done = load_records(records)
        self._shared: dict[str, Any] = {}
        self._data: Any = None
        self.ran = 0

    def config(self, values: dict[str, Any]) -> Any:
        from trainables.config import config_for

        p = self.plan
        return config_for(
            p.scale,
            **{**p.overrides, **values, "seed": 0, "data_seed": 0, "eval_seed": p.eval_seed},
        )

    def __call__(self, values: dict[str, Any]) -> dict[str, Any]:
        from trainables.data.load import load_data
        from trainables.game.keys import result_key, shared_key
        from trainables.stages import compute_shared
        from trainables.trial import run_trial

        cfg = self.config(values)
        key = f"trial-{result_key(cfg)}"
        if key in self.done:
            return self.done[key]
        if self._data is None:
            self.log(f"[search-bench] building the {cfg.dataset} data ({cfg.scale} scale)")
            self._data = load_data(cfg, self.log)
        sk = shared_key(cfg)
        if sk not in self._shared:
            self.log("[search-bench] computing the shared stages")
            self._shared[sk] = compute_shared(cfg, self._data, lambda m: None)
        t0 = time.time()
        res = run_trial(cfg, data=self._data, shared=self._shared[sk], log=lambda m: None)
        first = res.history[0] if res.history else {}
        row = {
            "key": key,
            **{k: values[k] for k in sorted(values)},
            "top1": res.top1,
            "cmap": res.cmap,
            "f1": res.f1,
            "rms": res.rms,
            "raw_top1": res.raw_top1,
            "raw_cmap": res.raw_cmap,
            "seconds": time.time() - t0,
            **{f"early_{k}": first.get(k) for k in ("train_top1", "rms", "L_T", "L_B", "L_A")},
        }
        self.ran += 1
        append_record(self.records, row)
        self.done[key] = row
        return row


def run_bench(plan: SearchPlan, *, records: Path | None, log: Log) -> dict[str, Any]:
    """Run (or reuse) the grid and every search; return the figures."""
    import pandas as pd

    plan.check()
    grid_space, search_space = get_space(plan.grid_space), get_space(plan.search_space)
    objectives = search_space.objectives
    runner = TrialRunner(plan, records, log)
    from trainables.catalog import validate

    points = grid_space.combinations()
    for v in points:  # refuse a bad value before the first trial
        validate(runner.config(v))
    t0 = time.time()
    grid_rows = []
    for i, v in enumerate(points):
        grid_rows.append(runner(v))
        r = grid_rows[-1]
        log(
            f"[grid] {i + 1}/{len(points)} "
            + " ".join(f"{k}={v[k]}" for k in grid_space.grid)
            + f": top1={r['top1']:.3f} cmap={r['cmap']:.3f} ({r['seconds']:.0f}s)"
        )
    grid_hv = hv(grid_rows, objectives)
    distinct = len({r["key"] for r in grid_rows})
    log(f"[grid] {len(points)} trials ({distinct} distinct results): HV = {grid_hv:.4f}")
    runs = []
    for sampler in plan.sampler_list:
        for scale in plan.b_scale_list:
            space = search_space
            if "B" in space.ranges:
                space = dataclasses.replace(
                    space, ranges={**space.ranges, "B": b_range(space, scale)}
                )
            for seed in plan.seed_list:
                rows = run_search(space, sampler, seed, plan.budget, plan.concurrency, runner, log)
                h = hv(rows, objectives)
                runs.append(
                    {
                        "sampler": sampler,
                        "b_scale": scale,
                        "seed": seed,
                        "hv": h,
                        "ratio": h / grid_hv if grid_hv > 0 else float("nan"),
                        "curve": hypervolume_curve(pd.DataFrame(rows), objectives, FIXED_REFERENCE)
                        .round(5)
                        .tolist(),
                        "trials": [
                            {k: r[k] for k in (*space.ranges, "top1", "cmap")} for r in rows
                        ],
                    }
                )
                log(
                    f"[search] {sampler}/{scale} seed {seed}: HV = {h:.4f}, ratio {runs[-1]['ratio']:.3f}"
                )
    grid_df = pd.DataFrame(grid_rows).drop_duplicates("key")
    table = early_signal_table(grid_df, [s for s in EARLY_SIGNALS if grid_df[s].notna().all()])
    summary = []
    for sampler in plan.sampler_list:
        for scale in plan.b_scale_list:
            rs = [r["ratio"] for r in runs if r["sampler"] == sampler and r["b_scale"] == scale]
            mean = sum(rs) / len(rs)
            summary.append({"sampler": sampler, "b_scale": scale, "mean_ratio": mean,
                            "min_ratio": min(rs), "goal_met": mean >= 0.95})  # fmt: skip
    return {
        "scale": plan.scale,
        "overrides": plan.overrides,
        "eval_seed": plan.eval_seed,
        "grid": {
            "space": plan.grid_space,
            "trials": len(points),
            "distinct": distinct,
            "hv": grid_hv,
            "top1_range": [grid_df["top1"].min(), grid_df["top1"].max()],
            "cmap_range": [grid_df["cmap"].min(), grid_df["cmap"].max()],
            "raw": {"top1": grid_rows[0]["raw_top1"], "cmap": grid_rows[0]["raw_cmap"]},
        },
        "search": {
            "space": plan.search_space,
            "budget": plan.budget,
            "concurrency": plan.concurrency,
            "runs": runs,
        },  # fmt: skip
        "summary": summary,
        "fidelity": {
            "spearman": {
                s: {t: (None if v != v else round(v, 3)) for t, v in row.items()}
                for s, row in table.to_dict(orient="index").items()
            },
            "predictive_at_0.8": predictive_signals(table),
        },
        "trials_run": runner.ran,
        "seconds": time.time() - t0,
    }


def report(out: dict[str, Any]) -> str:
    """The printed tables of a finished search bench."""
    g = out["grid"]
    lines = [
        f"grid {g['space']}: {g['trials']} trials ({g['distinct']} distinct), HV = {g['hv']:.4f} "
        f"(raw Top-1 {g['raw']['top1']:.3f}, cMAP {g['raw']['cmap']:.3f}; trials' Top-1 "
        f"{g['top1_range'][0]:.3f}-{g['top1_range'][1]:.3f}, cMAP "
        f"{g['cmap_range'][0]:.3f}-{g['cmap_range'][1]:.3f})",
        "",
        *markdown.table(
            ["sampler", "B scale", "seed", "HV", "HV / HV(grid)"],
            (
                [r["sampler"], r["b_scale"], r["seed"], f"{r['hv']:.4f}", f"{r['ratio']:.3f}"]
                for r in out["search"]["runs"]
            ),
        ),
        "",
        *markdown.table(
            ["sampler", "B scale", "mean ratio", "worst", "goal >= 0.95"],
            (
                [
                    s["sampler"],
                    s["b_scale"],
                    f"{s['mean_ratio']:.3f}",
                    f"{s['min_ratio']:.3f}",
                    "yes" if s["goal_met"] else "NO",
                ]
                for s in out["summary"]
            ),
        ),
        "",
    ]
    sp = out["fidelity"]["spearman"]
    lines += markdown.table(
        ["first-epoch signal", "Spearman vs Top-1", "vs cMAP"],
        (
            [
                s,
                *(
                    "n/a (constant)" if row.get(t) is None else f"{row[t]:+.3f}"
                    for t in ("top1", "cmap")
                ),
            ]
            for s, row in sp.items()
        ),
    )
    pred = out["fidelity"]["predictive_at_0.8"]
    lines.append(
        "signals with |Spearman| >= 0.8 for both: " + (", ".join(pred) if pred else "none")
    )
    return "\n".join(lines)


def main(plan: SearchPlan, log: Log) -> int:
    """Run (or resume) the search bench; print its tables and one JSON line."""
    try:
        out = run_bench(plan, records=Path(plan.records) if plan.records else None, log=log)
    except ValueError as e:  # ConfigError and an unknown sampler included
        return usage_error(e)
    print(report(out))
    print(json.dumps(out))
    return 0
