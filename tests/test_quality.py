"""The quality bench: its acceptance checks on hand-made records, and the command end to end on
tiny inputs (rows recorded as they finish and reused by a rerun)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from analysis.quality import checks, largest_rise, point_name, summarise
from search_spaces import BINDING_LAM
from tests.conftest import TINY
from trainables.data.synthetic import ATTRIBUTES

BOUNDS = (0.0, 0.1, 0.2, 0.4)
LAM = 100.0


def _records(
    top1: dict[float, float], cmap: dict[float, float], lam0_top1: float, init_rms: float = 0.0002
) -> pd.DataFrame:
    rows = []
    for seed, jitter in enumerate((-0.01, 0.0, 0.01)):
        for point, rms in (("raw", 0.0), ("init", init_rms)):
            rows.append(dict(point=point, seed=seed, B=float("nan"), lam=float("nan"),
                             top1=0.95 + jitter, cmap=0.90, f1=0.8, rms=rms, seconds=100.0))  # fmt: skip
        for b in BOUNDS:
            rows.append(dict(point=point_name(b, LAM), seed=seed, B=b, lam=LAM,
                             top1=top1[b] + jitter, cmap=cmap[b], f1=0.5, rms=b * 0.8,
                             rms_first=b * 0.5, rms_last=b * 0.8, seconds=40.0))  # fmt: skip
        rows.append(dict(point=point_name(0.1, 0.0), seed=seed, B=0.1, lam=0.0,
                         top1=lam0_top1, cmap=0.4, f1=0.3, rms=0.6, seconds=40.0))  # fmt: skip
    return pd.DataFrame(rows)


def _by_name(found):
    return {c.name.split(":")[0].split(" (")[0]: c for c in found}


def test_a_benchmark_that_shows_the_trade_off_passes_every_check():
    top1 = {0.0: 0.95, 0.1: 0.95, 0.2: 0.94, 0.4: 0.80}
    cmap = {0.0: 0.90, 0.1: 0.86, 0.2: 0.80, 0.4: 0.70}
    summary = summarise(_records(top1, cmap, lam0_top1=0.60))
    assert list(summary.index[:2]) == ["raw", "init"] and summary.loc["raw", "seeds"] == 3
    assert summary.loc["raw", "top1_mean"] == pytest.approx(0.95)
    assert summary.loc["raw", "top1_std"] == pytest.approx(0.01)
    assert summary.loc[point_name(0.4, LAM), "rms_last_mean"] == pytest.approx(0.32)
    found = checks(summary, bounds=BOUNDS, lam=LAM)
    assert all(c.ok for c in found), [c for c in found if not c.ok]


def test_each_failure_is_reported_with_its_figure():
    # No trade-off: Top-1 rises with B, lambda changes nothing, no sweet spot, an init point
    # that is not the identity, a bound that does not hold, slow trials.
    top1 = {0.0: 0.90, 0.1: 0.95, 0.2: 0.95, 0.4: 0.95}
    cmap = {0.0: 0.90, 0.1: 0.88, 0.2: 0.88, 0.4: 0.88}
    rec = _records(top1, cmap, lam0_top1=0.95, init_rms=0.1)
    rec.loc[rec.point != "raw", "seconds"] = 120.0
    rec.loc[rec.point == point_name(0.1, LAM), "rms"] = 0.2
    found = _by_name(checks(summarise(rec), bounds=BOUNDS, lam=LAM))
    assert not found["init point RMS"].ok and found["init point RMS"].value == pytest.approx(0.1)
    gain = found["Top-1(lam=100) - Top-1(lam=0) at B=0.1"]
    assert not gain.ok and gain.value == pytest.approx(0.0)
    assert not found["that gain over twice the larger std"].ok
    over = found["largest mean RMS - B at lam=100"]
    assert not over.ok and over.value == pytest.approx(0.1)
    rise = found["largest rise of top1 as B grows"]
    assert not rise.ok and rise.value == pytest.approx(0.05)
    assert not found["cmap(B=0) - cmap(B=0.4)"].ok
    assert not found["sweet spot margin"].ok
    assert not found["mean trial seconds"].ok
    assert found["raw Top-1"].ok


def test_the_noise_check_needs_three_seeds():
    top1 = {0.0: 0.95, 0.1: 0.95, 0.2: 0.94, 0.4: 0.80}
    cmap = {0.0: 0.90, 0.1: 0.86, 0.2: 0.80, 0.4: 0.70}
    rec = _records(top1, cmap, lam0_top1=0.60)
    two = rec[rec.seed < 2]
    noise = _by_name(checks(summarise(two), bounds=BOUNDS, lam=LAM))["largest std over seeds"]
    assert noise.value <= 0.03 and not noise.ok


def test_largest_rise():
    assert largest_rise([0.9, 0.8, 0.7]) == 0.0
    assert largest_rise([0.9, 0.8, 0.85, 0.7]) == pytest.approx(0.05)
    assert largest_rise([0.5, 0.9, 0.1]) == pytest.approx(0.4)


def test_the_quality_bench_records_rows_and_reuses_them(tmp_path):
    records = tmp_path / "q.jsonl"
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    cmd = [sys.executable, "-m", "study.bench", "quality", "--scale", "smoke", "--seeds", "2",
           "--bounds", "0,0.3", "--records", str(records), "--device", "cpu", *sets]  # fmt: skip
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    out = json.loads(first.stdout.strip().splitlines()[-1])
    assert out["seeds"] == [0, 1] and out["total"] == len(out["checks"]) > 5
    # Per seed: the raw reference, the init point, B = 0 and 0.3 at the binding lambda, and
    # B = 0.1 at lambda = 0.
    lam = f"{BINDING_LAM:g}"
    assert set(out["points"]) == {
        "raw",
        "init",
        f"B=0 lam={lam}",
        f"B=0.3 lam={lam}",
        "B=0.1 lam=0",
    }
    assert all(p["seeds"] == 2 for p in out["points"].values())
    assert out["points"]["init"]["rms_mean"] <= 0.005  # the residual f_A starts as the identity
    assert set(out["ap"]["raw"]) == set(ATTRIBUTES)
    rows = [json.loads(line) for line in records.read_text().splitlines()]
    assert len(rows) == 10 and {r["seed"] for r in rows} == {0, 1}
    game = [r for r in rows if r["point"] == f"B=0.3 lam={lam}"]
    assert all(len(r["ap"]) == len(ATTRIBUTES) and r["rms_last"] is not None for r in game)
    # Seeds change the data and the models: the two raw references differ.
    raws = [r for r in rows if r["point"] == "raw"]
    assert (raws[0]["top1"], raws[0]["cmap"]) != (raws[1]["top1"], raws[1]["cmap"])
    assert "| check | value | target | ok |" in first.stdout
    assert "| point | " + " | ".join(ATTRIBUTES) + " |" in first.stdout

    # The rerun reuses every row, and --markdown writes the printed tables with what made them.
    md = tmp_path / "docs" / "quality.md"
    again = subprocess.run([*cmd, "--markdown", str(md)], capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert "[minimax]" not in again.stderr and "[identity]" not in again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1]) == out
    assert len(records.read_text().splitlines()) == 10
    text = md.read_text()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert text.startswith("# study.bench quality: Does the benchmark show the trade-off?")
    assert f"at commit `{commit.strip()[:12]}`" in text and f"{os.cpu_count()} CPU cores" in text
    assert "python -m study.bench quality --scale smoke --seeds 2" in text
    assert "| check | value | target | ok |" in text and '{"scale"' not in text


def test_the_quality_bench_refuses_fields_it_sets_itself():
    r = subprocess.run(
        [sys.executable, "-m", "study.bench", "quality", "--set", "seed=3", "--records", ""],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "--set seed" in r.stderr and "--seeds" in r.stderr


def test_the_sweep_hypervolume_of_means_and_per_seed():
    from analysis.pareto import FIXED_REFERENCE, hypervolume
    from analysis.quality import sweep_hypervolume

    rows = [
        # seed 0 and 1 at B = 0.1, 0.2 (lam 100); a lambda-0 point that must not count.
        dict(point="B=0.1 lam=100", seed=0, top1=1.0, cmap=0.8),
        dict(point="B=0.2 lam=100", seed=0, top1=0.8, cmap=0.4),
        dict(point="B=0.1 lam=100", seed=1, top1=0.9, cmap=0.9),
        dict(point="B=0.2 lam=100", seed=1, top1=0.6, cmap=0.5),
        dict(point="B=0.1 lam=0", seed=0, top1=0.1, cmap=0.0),
    ]
    hv = sweep_hypervolume(pd.DataFrame(rows), [0.1, 0.2], 100.0)
    seed0 = 1.0 * 0.2 + 0.8 * (0.8 - 0.4)  # the staircase of (1, .8) and (.8, .4)
    seed1 = 0.9 * 0.1 + 0.6 * (0.9 - 0.5)
    assert hv.seeds == 2 and hv.per_seed_mean == pytest.approx((seed0 + seed1) / 2)
    assert hv.per_seed_std == pytest.approx(abs(seed0 - seed1) / 2**0.5)
    means = pd.DataFrame({"top1": [0.95, 0.7], "cmap": [0.85, 0.45]})
    assert hv.of_means == pytest.approx(hypervolume(means, reference=FIXED_REFERENCE))
    assert sweep_hypervolume(pd.DataFrame(rows), [0.5], 100.0).seeds == 0
