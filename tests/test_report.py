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
        "hypervolume.html",
    } <= names
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
