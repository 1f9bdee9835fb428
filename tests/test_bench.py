"""The search and ratios benches: their pure parts, the search loop with real Optuna samplers,
and the search bench end to end on tiny trials (no timing is asserted)."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import pandas as pd
import pytest

from analysis.fidelity import early_signal_table, predictive_signals, spearman
from search_spaces import BINDING_LAM, BUILTIN_B_RANGE, BUILTIN_BS, BUILTIN_LAM_RANGE, get_space
from study.bench.markdown import to_markdown
from study.bench.ratios import sharing_estimate, trial_values
from study.bench.search import SearchPlan, b_range, hv, run_bench, run_search
from study.trainable import stage_metrics
from tests.conftest import TINY


def test_pareto_search_samples_b_where_the_penalty_binds():
    space = get_space("pareto_search")
    assert space.ranges["B"] == BUILTIN_B_RANGE
    assert space.ranges["lam"] == BUILTIN_LAM_RANGE
    assert BUILTIN_B_RANGE.low == 0.0 and BUILTIN_B_RANGE.high == max(BUILTIN_BS)
    assert b_range(space, "log") == dataclasses.replace(BUILTIN_B_RANGE, low=0.01, log=True)
    assert b_range(space, "linear") == BUILTIN_B_RANGE


def test_the_grid_expander_combines_axes_points_and_fixed_values():
    pts = get_space("penalty_grid").combinations()
    assert len(pts) == 28 and len({(p["B"], p["lam"]) for p in pts}) == 28
    assert get_space("b_sweep").combinations() == [
        {"lam": BINDING_LAM, "B": b} for b in get_space("b_sweep").grid["B"]
    ]
    fam = get_space("families")
    assert len(fam.combinations()) == fam.num_trials() == len(fam.points)
    corners = get_space("pareto_search").combinations({"B": (0.0, 0.6), "lam": (1.0, 100.0)})
    assert len(corners) == 4 and {"B": 0.6, "lam": 1.0} in [
        {k: c[k] for k in ("B", "lam")} for c in corners
    ]


def _front(v):
    """A known trade-off: larger B keeps Top-1 and gives up privacy."""
    return {"top1": min(1.0, 2 * v["B"]), "cmap": 0.5 + v["B"], **v}


@pytest.mark.parametrize("sampler", ["tpe", "gp", "nsga2", "random"])
def test_a_search_asks_in_batches_and_replays_with_its_seed(sampler):
    space = get_space("pareto_search")
    seen: list[list[float]] = []

    def evaluate(v):
        seen.append([v["B"], v["lam"]])
        assert BUILTIN_B_RANGE.low <= v["B"] <= BUILTIN_B_RANGE.high
        assert BUILTIN_LAM_RANGE.low <= v["lam"] <= BUILTIN_LAM_RANGE.high
        return _front(v)

    rows = run_search(space, sampler, 0, 6, 2, evaluate, lambda m: None)
    assert [r["order"] for r in rows] == [1, 2, 3, 4, 5, 6]
    again = run_search(space, sampler, 0, 6, 2, _front, lambda m: None)
    other = run_search(space, sampler, 1, 6, 2, _front, lambda m: None)
    assert [r["B"] for r in again] == [r["B"] for r in rows]
    assert [r["B"] for r in other] != [r["B"] for r in rows]
    # Two trials asked at once are two points: the constant liar (or the sampler) moves on.
    assert seen[0] != seen[1]


def test_hypervolume_ratio_uses_the_fixed_reference():
    objectives = {"top1": "max", "cmap": "min"}
    # One point at Top-1 0.8, cMAP 0.3: the box to (0, 1) is 0.8 x 0.7.
    assert hv([{"top1": 0.8, "cmap": 0.3}], objectives) == pytest.approx(0.56)
    two = [{"top1": 0.8, "cmap": 0.3}, {"top1": 0.4, "cmap": 0.1}]
    assert hv(two, objectives) == pytest.approx(0.56 + 0.4 * 0.2)


def test_spearman_and_the_early_signal_table():
    df = pd.DataFrame(
        {"a": [1, 2, 3, 4], "b": [4, 3, 2, 1], "c": [2, 1, 4, 3], "top1": [1.0] * 4,
         "cmap": [0.1, 0.2, 0.3, 0.4]}
    )  # fmt: skip
    assert spearman(df["a"], df["cmap"]) == pytest.approx(1.0)
    assert spearman(df["b"], df["cmap"]) == pytest.approx(-1.0)
    assert spearman(df["c"], df["cmap"]) == pytest.approx(0.6)
    assert math.isnan(spearman(df["a"], df["top1"]))  # a constant target has no ranking
    table = early_signal_table(df, ["a", "b", "c"], targets=("cmap",))
    assert predictive_signals(table) == ["a", "b"]
    assert predictive_signals(early_signal_table(df, ["a"])) == []  # Top-1 is NaN


def test_stage_metrics_put_the_rest_of_the_wall_time_in_logging():
    stages = {"game": 10.0, "epoch_callbacks": 2.0, "anonymize": 1.0, "eval_action": 3.0,
              "eval_privacy": 4.0, "game_steps": 30.0}  # fmt: skip
    m = stage_metrics(stages, data=5.0, total=26.0)
    # compute: data 5 + game 8 (without its callbacks) + 1 + 3 + 4 = 21; 5 s is the platform's.
    assert m["seconds/logging"] == pytest.approx(5.0)
    assert m["game_steps"] == 30.0 and m["seconds/game"] == 10.0 and "seconds/game_steps" not in m


def test_sharing_estimate():
    est = sharing_estimate(shared=100, shared_in_trial=150, trial=50, reused=5, concurrent=2)
    assert est["with"] == pytest.approx(100 + 13 * 50 + 2 * 5)
    assert est["without"] == pytest.approx(15 * (150 + 50))
    assert est["ratio"] == pytest.approx(est["with"] / est["without"])
    assert trial_values(4) == [0.1, 0.267, 0.433, 0.6]


def test_search_bench_end_to_end_on_tiny_trials_reuses_its_records(tmp_path):
    """The whole bench on tiny trials: the smoke grid (lambda 0 and 1 at B = 0.1), random
    searches of 2 trials under 2 seeds; a rerun trains nothing."""
    plan = SearchPlan(
        scale="smoke",
        device="cpu",
        set=tuple(f"{k}={v}" for k, v in TINY.items()),
        search_seeds=2,
        samplers="random",
        budget=2,
        grid_space="smoke",
    )
    records = tmp_path / "search.jsonl"
    out = run_bench(plan, records=records, log=lambda m: None)
    assert out["grid"]["trials"] == 2 and out["grid"]["hv"] > 0
    runs = out["search"]["runs"]
    assert [(r["sampler"], r["seed"]) for r in runs] == [("random", 0), ("random", 1)]
    for r in runs:
        assert len(r["trials"]) == 2 and r["ratio"] == pytest.approx(r["hv"] / out["grid"]["hv"])
        assert all(BUILTIN_B_RANGE.low <= t["B"] <= BUILTIN_B_RANGE.high for t in r["trials"])
        assert r["curve"] == sorted(r["curve"])  # the front only grows
    assert out["trials_run"] == 2 + 4
    rows = [json.loads(line) for line in records.read_text().splitlines()]
    assert len(rows) == 6 and all(row["early_rms"] is not None for row in rows)
    again = run_bench(plan, records=records, log=lambda m: None)
    assert again["trials_run"] == 0 and again["search"]["runs"] == runs


def test_a_bench_page_keeps_its_tables_and_its_lines_apart():
    printed = 'a line\n| x |\n| --- |\n| 1 |\nunder the table\n{"json": 1}\n\n| y |\n'
    assert to_markdown(printed).splitlines() == [
        "- a line", "", "| x |", "| --- |", "| 1 |", "", "- under the table", "", "| y |",
    ]  # fmt: skip


def test_bench_flags_are_checked_before_any_work():
    def bench(*args):
        return subprocess.run(
            [sys.executable, "-m", "study.bench", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    r = bench("search", "--samplers", "tpe,cma")
    assert r.returncode == 2 and "unknown sampler 'cma'" in r.stderr
    r = bench("search", "--b-scales", "sqrt")
    assert r.returncode == 2 and "--b-scales: unknown ['sqrt']" in r.stderr
    r = bench("search", "--set", "seed=3")
    assert r.returncode == 2 and "--set seed" in r.stderr
    r = bench("search", "--seeds", "3")  # the quality bench's flag: not the search seeds
    assert r.returncode == 2 and "unrecognized arguments: --seeds" in r.stderr
    r = bench("ratios", "--trials", "1")
    assert r.returncode == 2 and "--trials and --concurrency must be >= 2" in r.stderr
    r = bench("ratios", "--sharing-scale", "huge")
    assert r.returncode == 2 and "unknown scale 'huge'" in r.stderr
    r = bench("load", "--backends", "sqlite,mysql")
    assert r.returncode == 2 and "--backends" in r.stderr and "mysql" in r.stderr
    r = bench("--ratios")  # the first CLI's form names the subcommand
    assert r.returncode == 2 and "python -m study.bench ratios" in r.stderr


def test_a_bench_flag_means_one_thing_in_every_bench():
    """A flag that several benches take has one type and one meaning (its help up to the first
    colon), and each bench's flags are its plan's fields: the first CLI had ``--seeds`` count
    model seeds in one bench and search seeds in another."""
    from dataclasses import fields

    from study.bench.__main__ import BENCHES, build_parser

    seen: dict[str, tuple[str, str, str]] = {}
    for name, bench in BENCHES.items():
        for f in fields(bench.plan):
            meaning = f.metadata["help"].split(":")[0]
            other = seen.setdefault(f.name, (name, str(f.type), meaning))
            assert other[1:] == (str(f.type), meaning), (f.name, name, other)
    assert seen["seeds"][0] == "quality" and seen["search_seeds"][0] == "search"
    sub = next(a for a in build_parser()._actions if a.dest == "bench")
    for name, parser in sub.choices.items():  # type: ignore[union-attr]
        flags = {a.dest for a in parser._actions} - {"help"}
        # --markdown is the entry's own: every bench takes it, and no plan has it.
        assert "markdown" in flags, name
        assert flags - {"markdown"} == {f.name for f in fields(BENCHES[name].plan)}, name
