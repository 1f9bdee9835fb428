"""The report: files, contents and what a browser renders."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.render import write_report
from analysis.summary import analyse


def _trials(n: int = 14, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    bs = [0.0, 0.3, 0.5, 0.7, 0.9, 1.0, 0.3, 0.3]
    lams = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.5]
    rows = []
    for i in range(n):
        b, lam = bs[i % len(bs)], lams[i % len(lams)]
        rows.append(
            {
                "run_id": f"run{i}",
                "B": b,
                "lam": lam,
                "seed": i // len(bs),
                "anonymizer": "unetpp_tiny",
                "fixed_anonymizer": False,
                "top1": 0.95 - 0.5 * b + rng.normal(0, 0.02),
                "cmap": 0.9 - 0.3 * b + rng.normal(0, 0.02),
                "f1": 0.6,
                "rms": b / 2,
                "raw_top1": 0.97,
                "raw_cmap": 0.93,
                "raw_f1": 0.88,
                "start_time": i,
            }
        )
    for j, name in enumerate(("blur_strong", "downsample4x")):
        rows.append(
            {
                "run_id": f"base{j}",
                "B": 0.3,
                "lam": 1.0,
                "seed": 0,
                "anonymizer": name,
                "fixed_anonymizer": True,
                "top1": 0.5,
                "cmap": 0.7,
                "f1": 0.5,
                "rms": 0.2,
                "raw_top1": 0.97,
                "raw_cmap": 0.93,
                "raw_f1": 0.88,
                "start_time": 100 + j,
            }
        )
    return pd.DataFrame(rows)


def test_report_files_and_contents(tmp_path):
    df = _trials()
    paths = write_report(df, tmp_path, "Study test", png=False)
    names = {p.name for p in paths}
    assert {
        "report.html",
        "trials.csv",
        "summary.md",
        "pareto.html",
        "metrics_vs_B.html",
        "lambda_ablation.html",
        "parallel.html",
    } <= names
    assert "hypervolume.html" not in names  # a grid: the order of its trials means nothing
    csv = pd.read_csv(tmp_path / "trials.csv")
    assert {"run_id", "B", "lam", "top1", "cmap", "f1", "on_front"} <= set(csv.columns)
    assert set(csv["on_front"].astype(str).str.lower()) <= {"true", "false"}
    assert len(csv) == len(df)
    data = analyse(df)
    md = (tmp_path / "summary.md").read_text()
    chosen = data.configs.loc[data.rec.chosen.index]
    assert f"B = {chosen['B']:.3g}, λ = {chosen['lam']:.3g}" in md.split("**Chosen**")[1]
    assert f"`{data.rec.run_id}`" in md and "python -m trainables.anonymize --weights" in md
    assert "Top-1 drop" in md and "±" in md  # replicates of B=0.3 give a std
    # One row per configuration (seeds pooled); the trials stay one row each in trials.csv.
    configs = pd.read_csv(tmp_path / "configurations.csv")
    assert len(configs) == len(df.drop_duplicates(["anonymizer", "B", "lam"]))
    assert configs["n"].sum() == len(df)
    page = (tmp_path / "report.html").read_text()
    # plotly.js is embedded (megabytes of it), not fetched from a CDN.
    assert re.search(r"<script[^>]*\bsrc=", page) is None
    assert len(page) > 3_000_000


def test_the_report_reads_well(tmp_path):
    """Drops with an arrow, constants once in a caption, the front's axes around the raw point,
    the hypervolume against trials for a search only."""
    from analysis.plots import axis_range, pareto_scatter
    from analysis.render import configurations_table
    from analysis.summary import drop_text

    assert drop_text(0.652) == "↓ 65.2%" and drop_text(-0.031) == "↑ 3.1%"
    assert drop_text(0.0) == "0.0%" and drop_text(float("nan")) == ""
    df = _trials()
    data = analyse(df)
    table = configurations_table(data)
    assert "seeds" in table.header and "anonymizer" in table.header  # they vary here
    one = df[~df["fixed_anonymizer"]].drop_duplicates(["B", "lam"])  # one seed, one anonymizer
    table = configurations_table(analyse(one))
    assert "anonymizer" not in table.header and "seeds" not in table.header
    assert "The same in every row: anonymizer = unetpp_tiny; seeds = 1." in table.caption
    assert all(len(r) == len(table.header) for r in table.rows)
    assert any("↓" in c for r in table.rows for c in r) and not any(
        c.startswith("+") for r in table.rows for c in r
    )
    # Axes span at least 0.1, stay in [0, 1] where they fit, and keep the raw point in view.
    lo, hi = axis_range([0.992, 0.996, 1.0])
    assert hi - lo >= 0.1 and lo < 0.9 + 1e-9 and 1.0 < hi < 1.01
    assert axis_range([0.2, 0.8]) == pytest.approx((0.2 - 0.024, 0.8 + 0.024))
    tight = one.assign(top1=0.995 + 0.001 * np.arange(len(one)))
    fig = pareto_scatter(tight, analyse(tight).configs, raw=(1.0, 0.95))
    x, y = fig.layout.xaxis.range, fig.layout.yaxis.range
    assert x[1] - x[0] >= 0.1 and x[0] <= 0.995 and x[1] >= 1.0 and y[1] >= 0.95
    # Parallel coordinates: the constants in the title, not an axis each.
    write_report(one, tmp_path / "grid", "grid", png=False)
    parallel = (tmp_path / "grid" / "parallel.html").read_text()
    assert "the same in every trial: anonymizer = unetpp_tiny" in parallel
    assert '"label":"anonymizer"' not in parallel.replace(" ", "")
    assert '"label":"B"' in parallel.replace(" ", "")
    page = (tmp_path / "grid" / "report.html").read_text()
    assert 'id="configurations"' in page and "The same in every row" in page
    assert not (tmp_path / "grid" / "hypervolume.html").exists()
    write_report(one, tmp_path / "search", "search", png=False, searched=True)
    assert (tmp_path / "search" / "hypervolume.html").is_file()


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    _chromium() is None, reason="Debian's chromium is not installed; `make test` installs it"
)
def test_browser_renders_one_marker_per_trial(tmp_path):
    df = _trials()
    write_report(df, tmp_path, "Study test", png=True)
    assert (tmp_path / "pareto.png").stat().st_size > 10_000
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=15000",
    ]
    url = (tmp_path / "report.html").as_uri()
    exe = _chromium()
    assert exe is not None  # the skipif above
    dom = subprocess.run(
        [exe, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=180
    ).stdout
    start = dom.index('id="fig-pareto"')
    end = dom.index('id="fig-', start + 10)
    pareto = dom[start:end]
    traces = re.split(r'<g class="trace scatter', pareto)[1:]
    points = [len(re.findall(r"class=\"point[\" ]", t)) for t in traces]
    # trials (learned), baselines, the front line (no markers), the raw reference
    assert points[0] + points[1] == len(df), points
    assert points[-1] == 1
    shot_dir = Path(os.environ.get("TEST_ARTIFACTS", "test-artifacts"))
    shot_dir.mkdir(parents=True, exist_ok=True)
    shot = shot_dir / "report.png"
    subprocess.run(
        [exe, *flags, f"--screenshot={shot.resolve()}", "--window-size=1200,1600", url],
        capture_output=True,
        timeout=180,
    )
    assert shot.exists() and shot.stat().st_size > 10_000


def test_the_study_report_command_needs_the_tracking_server(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "study.report", "--experiment", "x", "--study-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "give the study's MLflow server" in r.stderr
