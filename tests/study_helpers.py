"""Helpers for the study tests: tiny trial overrides and reading a study's MLflow records."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TINY_SET = [
    "n_action_train=16",
    "n_action_test=16",
    "n_privacy_train=16",
    "n_privacy_test=16",
    "frames=4",
    "batch_size=4",
    "privacy_batch_size=4",
    "eval_batch_size=8",
    "identity_epochs=1",
    "pretrain_action_epochs=1",
    "pretrain_privacy_epochs=1",
    "minimax_epochs=2",
    "eval_action_epochs=1",
    "eval_privacy_epochs=1",
    "max_steps_per_epoch=2",
]


def launch_args(study_dir: Path, *extra: str, space: str = "smoke") -> list[str]:
    args = [
        sys.executable,
        "-m",
        "study.launch",
        "--space",
        space,
        "--scale",
        "smoke",
        "--study-dir",
        str(study_dir),
        "--cpus-per-trial",
        "1",
        "--max-concurrent",
        "2",
    ]
    for s in TINY_SET:
        args += ["--set", s]
    return args + list(extra)


def run_launch(
    study_dir: Path, *extra: str, space: str = "smoke", timeout: int = 600
) -> subprocess.CompletedProcess:
    return subprocess.run(
        launch_args(study_dir, *extra, space=space), capture_output=True, text=True, timeout=timeout
    )


def runs(study_root: Path) -> tuple[list, list]:
    """(parent runs, child runs) of the study, read straight from its SQLite store."""
    from mlflow.tracking import MlflowClient

    c = MlflowClient(tracking_uri=f"sqlite:///{study_root / 'mlflow.db'}")
    exps = [e.experiment_id for e in c.search_experiments()]
    all_runs = c.search_runs(exps, max_results=1000)
    parents = [r for r in all_runs if r.data.tags.get("study.role") == "parent"]
    children = [r for r in all_runs if r.data.tags.get("study.role") == "trial"]
    return parents, children


def figure(name: str, value: float) -> None:
    """Record a figure a fault or load test measured (TEST_ARTIFACTS/reliability.jsonl)."""
    import json
    import os
    import time

    out = Path(os.environ.get("TEST_ARTIFACTS", "test-artifacts"))
    out.mkdir(parents=True, exist_ok=True)
    with (out / "reliability.jsonl").open("a") as f:
        test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
        row = {"figure": name, "value": value, "test": test, "time": time.time()}
        f.write(json.dumps(row) + "\n")


def write_figures_page(path: Path, rows: list[dict], exitstatus: int) -> None:
    """``make reliability``'s page: the figures of this session's fault, cluster and load
    tests, under the date, commit, machine and command that measured them."""
    from analysis import markdown
    from study.bench.markdown import header

    outcome = "every test passed" if exitstatus == 0 else f"pytest's exit status {exitstatus}"
    lines = [
        "# The fault, cluster and load tests' figures",
        "",
        header(["make", "reliability"]),
        "",
        "What [reliability.md](../reliability.md)'s tests measured, as they printed it "
        f'("figures measured by the tests"); {outcome}.',
        "",
        *markdown.table(
            ["figure", "value", "test"],
            ([r["figure"], r["value"], f"`{r.get('test', '')}`"] for r in rows),
        ),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
