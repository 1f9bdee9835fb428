"""The quality bench: its acceptance checks on hand-made records, and the command end to end on
tiny inputs (rows recorded as they finish and reused by a rerun)."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from analysis.quality import checks, largest_rise, point_name, summarise
from tests.conftest import TINY

BOUNDS = (0.0, 0.05, 0.1, 0.2, 0.3)


def _records(top1: dict[float, float], cmap: dict[float, float], lam0_top1: float) -> pd.DataFrame:
    rows = []
    for seed, jitter in enumerate((-0.01, 0.0, 0.01)):
        rows.append(dict(point="raw", seed=seed, B=float("nan"), lam=float("nan"),
                         top1=0.95 + jitter, cmap=0.90, f1=0.8, rms=0.0, seconds=100.0))  # fmt: skip
        for b in BOUNDS:
            rows.append(dict(point=point_name(b, 1.0), seed=seed, B=b, lam=1.0,
                             top1=top1[b] + jitter, cmap=cmap[b], f1=0.5, rms=b, seconds=40.0))  # fmt: skip
        rows.append(dict(point=point_name(0.1, 0.0), seed=seed, B=0.1, lam=0.0,
                         top1=lam0_top1, cmap=0.4, f1=0.3, rms=0.3, seconds=40.0))  # fmt: skip
    return pd.DataFrame(rows)


def _by_name(found):
    return {c.name.split(":")[0]: c for c in found}


def test_a_benchmark_that_shows_the_trade_off_passes_every_check():
    top1 = {0.0: 0.95, 0.05: 0.93, 0.1: 0.92, 0.2: 0.85, 0.3: 0.70}
    cmap = {0.0: 0.90, 0.05: 0.74, 0.1: 0.70, 0.2: 0.60, 0.3: 0.50}
    summary = summarise(_records(top1, cmap, lam0_top1=0.60))
    assert list(summary.index[:1]) == ["raw"] and summary.loc["raw", "seeds"] == 3
    assert summary.loc["raw", "top1_mean"] == pytest.approx(0.95)
    assert summary.loc["raw", "top1_std"] == pytest.approx(0.01)
    found = checks(summary, bounds=BOUNDS)
    assert all(c.ok for c in found), [c for c in found if not c.ok]


def test_each_failure_is_reported_with_its_figure():
    # No trade-off: Top-1 rises with B, lambda changes nothing, no sweet spot, slow trials.
    top1 = {0.0: 0.90, 0.05: 0.95, 0.1: 0.95, 0.2: 0.95, 0.3: 0.95}
    cmap = {0.0: 0.90, 0.05: 0.88, 0.1: 0.88, 0.2: 0.88, 0.3: 0.88}
    rec = _records(top1, cmap, lam0_top1=0.95)
    rec.loc[rec.point != "raw", "seconds"] = 120.0
    found = _by_name(checks(summarise(rec), bounds=BOUNDS))
    assert not found["Top-1(lam=1) - Top-1(lam=0) at B=0.1"].ok
    assert found["Top-1(lam=1) - Top-1(lam=0) at B=0.1"].value == pytest.approx(0.0)
    rise = found["largest rise of top1 as B grows (lam=1)"]
    assert not rise.ok and rise.value == pytest.approx(0.05)
    assert not found["cmap(B=0) - cmap(B=0.3)"].ok
    assert not found["sweet spot margin"].ok
    assert not found["mean trial seconds (shared stages excluded)"].ok
    assert found["raw Top-1"].ok


def test_largest_rise():
    assert largest_rise([0.9, 0.8, 0.7]) == 0.0
    assert largest_rise([0.9, 0.8, 0.85, 0.7]) == pytest.approx(0.05)
    assert largest_rise([0.5, 0.9, 0.1]) == pytest.approx(0.4)


def test_the_quality_bench_records_rows_and_reuses_them(tmp_path):
    records = tmp_path / "q.jsonl"
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    cmd = [sys.executable, "-m", "study.bench", "--quality", "--scale", "smoke", "--seeds", "2",
           "--bounds", "0,0.3", "--records", str(records), "--device", "cpu", *sets]  # fmt: skip
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    out = json.loads(first.stdout.strip().splitlines()[-1])
    assert out["seeds"] == [0, 1] and out["total"] == len(out["checks"]) > 5
    # Per seed: the raw reference, B = 0 and 0.3 at lambda = 1, and B = 0.1 at lambda = 0.
    assert set(out["points"]) == {"raw", "B=0 lam=1", "B=0.3 lam=1", "B=0.1 lam=0"}
    assert all(p["seeds"] == 2 for p in out["points"].values())
    rows = [json.loads(line) for line in records.read_text().splitlines()]
    assert len(rows) == 8 and {r["seed"] for r in rows} == {0, 1}
    # Seeds change the data and the models: the two raw references differ.
    raws = [r for r in rows if r["point"] == "raw"]
    assert (raws[0]["top1"], raws[0]["cmap"]) != (raws[1]["top1"], raws[1]["cmap"])
    assert "| check | value | target | ok |" in first.stdout

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "[minimax]" not in again.stderr and "[identity]" not in again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1]) == out
    assert len(records.read_text().splitlines()) == 8


def test_the_quality_bench_refuses_fields_it_sets_itself():
    r = subprocess.run(
        [sys.executable, "-m", "study.bench", "--quality", "--set", "seed=3", "--records", ""],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "--set seed" in r.stderr and "--seeds" in r.stderr
