"""End-to-end studies: real Ray Tune, a real MLflow server on 127.0.0.1, real trials."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import psutil
import pytest
import torch
from mlflow.tracking import MlflowClient
from PIL import Image

from study.mlflow_server import MlflowServer
from tests.study_helpers import launch_args, run_launch, runs

pytestmark = pytest.mark.slow


def _listening() -> set[tuple[str, int, int]]:
    out = set()
    for c in psutil.net_connections(kind="inet"):
        if c.status == psutil.CONN_LISTEN and c.laddr:
            out.add((c.laddr.ip, c.laddr.port, c.pid or 0))
    return out


def test_smoke_study_records_everything_and_stays_on_loopback(tmp_path):
    before = {(ip, port) for ip, port, _ in _listening()}
    proc = subprocess.Popen(
        launch_args(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    seen: set[tuple[str, int, int]] = set()
    deadline = time.time() + 600
    while proc.poll() is None and time.time() < deadline:
        seen |= {s for s in _listening() if (s[0], s[1]) not in before}
        time.sleep(1.0)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-4000:]

    # Sockets: the launcher's Ray and MLflow listened, and only on loopback.
    assert seen, "no new listening socket was seen while the study ran"
    for ip, port, pid in seen:
        addr = ipaddress.ip_address(ip)
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        assert addr.is_loopback, f"{ip}:{port} (pid {pid}) is not loopback"

    root = tmp_path / "smoke"
    parents, children = runs(root)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert "raw/top1" in parents[0].data.metrics and "shared/seconds" in parents[0].data.metrics
    assert sorted(r.data.params["lam"] for r in children) == ["0.0", "1.0"]
    server = MlflowServer(root).start()  # artifacts are served by the tracking server
    c = MlflowClient(tracking_uri=server.uri)
    for r in children:
        assert r.info.status == "FINISHED"
        assert r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert r.data.tags["seed"] == "0" and r.data.tags["node"]
        for k in ("top1", "cmap", "f1", "rms", "raw_top1", "raw_cmap", "raw_f1"):
            assert 0.0 <= r.data.metrics[k] <= 1.0
        assert r.data.params["B"] == "0.1" and r.data.params["scale"] == "smoke"
        steps = c.get_metric_history(r.info.run_id, "train/L_A")
        assert [m.step for m in steps] == [1, 2]
        files = {a.path for a in c.list_artifacts(r.info.run_id)}
        assert {"anonymizer.pt", "frames.png", "config.json"} <= files
        png = c.download_artifacts(r.info.run_id, "frames.png", str(tmp_path))
        assert Image.open(png).size[0] > 100
        weights = c.download_artifacts(r.info.run_id, "anonymizer.pt", str(tmp_path))
        assert any(k.startswith("net.") for k in torch.load(weights, weights_only=True))
    server.stop()
    assert "Browse the runs in the MLflow UI" in out and "mlflow ui" in out
    # The report: written at the end, printed, and logged to the parent run.
    assert f"Report: {root / 'report' / 'report.html'}" in out
    trials = pd.read_csv(root / "report" / "trials.csv")
    assert sorted(trials["run_id"]) == sorted(r.info.run_id for r in children)
    # The calibration of the data is on the parent run, for the report's B axes.
    assert (
        parents[0].data.metrics["calibration/flatten"]
        > parents[0].data.metrics["calibration/greyscale"]
    )
    # Each trial records whether its anonymizer is a fixed baseline; the report reads that.
    assert all(r.data.tags["anonymizer.kind"] == "learned" for r in children)
    assert not trials["fixed_anonymizer"].any()
    server = MlflowServer(root).start()
    names = {
        a.path for a in MlflowClient(server.uri).list_artifacts(parents[0].info.run_id, "report")
    }
    server.stop()
    assert {"report/report.html", "report/trials.csv", "report/summary.md"} <= names
    assert (root / "shared").is_dir() and any((root / "shared").glob("init-*.pt"))


def _last_checkpoint(trial_dir) -> int:
    """Index of the newest checkpoint Tune kept for a trial (-1: none yet)."""
    idx = [int(p.name.split("_")[1]) for p in trial_dir.glob("checkpoint_*")]
    return max(idx, default=-1)


def test_resume_after_sigint_finishes_each_trial_once(tmp_path):
    extra = ("--set", "minimax_epochs=12", "--max-concurrent", "1", "--space", "lambda_sweep")
    args = launch_args(tmp_path, *extra)
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    root = tmp_path / "lambda_sweep"
    # Interrupt once one trial has finished and another has checkpointed two epochs.
    deadline = time.time() + 600
    interrupted = False
    while proc.poll() is None and time.time() < deadline:
        epochs = [_last_checkpoint(d) for d in (root / "ray" / "tune").glob("run_tune_trial_*")]
        done = [e for e in epochs if e == 11]
        midway = [e for e in epochs if 1 <= e < 11]
        if done and midway:
            os.killpg(proc.pid, signal.SIGINT)
            interrupted = True
            break
        time.sleep(0.2)
    out, _ = proc.communicate(timeout=300)
    assert interrupted, "the study ended before it could be interrupted:\n" + out[-3000:]
    _, children = runs(root)
    done_before = {
        r.data.tags["study.trial_id"]: r.info.end_time
        for r in children
        if r.info.status == "FINISHED"
    }
    assert all(r.info.status in ("FINISHED", "KILLED") for r in children), [
        (r.info.status) for r in children
    ]

    r = run_launch(tmp_path, *extra, "--resume")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    parents, children = runs(root)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    by_trial: dict[str, list] = {}
    for c in children:
        by_trial.setdefault(c.data.tags["study.trial_id"], []).append(c)
    assert len(by_trial) == 6  # one run per trial of lambda_sweep
    for trial, rs in by_trial.items():
        assert [x.info.status for x in rs] == ["FINISHED"], trial
    # Finished trials were not rerun; unfinished ones continued from their checkpoints.
    for trial, end in done_before.items():
        assert by_trial[trial][0].info.end_time == end
    resumed = [rs[0] for rs in by_trial.values() if "resumed_from_epoch" in rs[0].data.tags]
    assert resumed, "no trial continued from a checkpoint"


def test_pareto_search_goes_through_optuna_with_persistent_storage(tmp_path):
    import optuna

    r = run_launch(tmp_path, "--num-samples", "2", space="pareto_search")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    root = tmp_path / "pareto_search"
    study = optuna.load_study(study_name="pareto_search", storage=f"sqlite:///{root / 'optuna.db'}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 2
    assert study.directions == [
        optuna.study.StudyDirection.MAXIMIZE,
        optuna.study.StudyDirection.MINIMIZE,
    ]
    _, children = runs(root)
    recorded = sorted((c.data.metrics["top1"], c.data.metrics["cmap"]) for c in children)
    got = sorted(tuple(t.values) for t in done)
    for (a1, b1), (a2, b2) in zip(got, recorded, strict=True):
        assert a1 == pytest.approx(a2) and b1 == pytest.approx(b2)
    for t in done:
        assert 0 <= t.params["B"] <= 1 and 0 <= t.params["lam"] <= 2


def test_a_crashing_trial_ends_failed_with_its_reason(tmp_path):
    # An absurd learning rate of f_A (used by the game only, not by the shared stages) makes
    # every trial's losses NaN at its first step: a real crash inside the Ray worker.
    r = run_launch(tmp_path, "--set", "lr_anon=1e30", "--max-failures", "0")
    assert r.returncode == 1
    parents, children = runs(tmp_path / "smoke")
    assert parents[0].info.status == "FAILED"
    assert "2 trial(s) failed" in parents[0].data.tags["failure_reason"]
    assert len(children) == 2
    for c in children:
        assert c.info.status == "FAILED"
        assert "NonFiniteLossError" in c.data.tags["failure_reason"]
        assert "became nan" in c.data.tags["failure_reason"]


INERT_SPACE = """
from search_spaces import SPACES, SearchSpace


@SPACES.register("inert_pair", "two trials whose penalty is inert")
def inert_pair():
    return SearchSpace("inert_pair", grid={"lam": [0.0, 1.0]}, fixed={"B": 1.0})
"""


def test_equivalent_trials_share_one_result_and_record_it(tmp_path):
    (tmp_path / "my_spaces.py").write_text(INERT_SPACE)
    args = launch_args(tmp_path / "studies", "--space-module", "my_spaces", space="inert_pair")
    args[args.index("--max-concurrent") + 1] = "1"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    r = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    parents, children = runs(tmp_path / "studies" / "inert_pair")
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    reused = [c for c in children if "reused_from" in c.data.tags]
    computed = [c for c in children if "reused_from" not in c.data.tags]
    assert len(reused) == 1 and len(computed) == 1
    src, dst = computed[0], reused[0]
    assert dst.data.tags["reused_from"] == src.data.tags["study.trial_id"]
    assert dst.data.tags["reused_from_run"] == src.info.run_id
    for k in ("top1", "cmap", "f1", "rms", "raw_top1"):
        assert dst.data.metrics[k] == src.data.metrics[k], k
    assert dst.data.metrics["seconds"] < src.data.metrics["seconds"]
    assert dst.data.params["lam"] != src.data.params["lam"]  # each run keeps its own config
    server = MlflowServer(tmp_path / "studies" / "inert_pair").start()
    try:
        c = MlflowClient(tracking_uri=server.uri)
        files = {a.path for a in c.list_artifacts(dst.info.run_id)}
        assert {"anonymizer.pt", "frames.png", "config.json"} <= files
        assert len(c.get_metric_history(dst.info.run_id, "train/L_A")) == 2
    finally:
        server.stop()
    # The space module is honoured by --list-spaces too, and a bad one is a clear error.
    r = subprocess.run(
        [sys.executable, "-m", "study.launch", "--space-module", "my_spaces", "--list-spaces"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert "inert_pair" in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "study.launch", "--space-module", "no_such_mod", "--list-spaces"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "--space-module no_such_mod" in r.stderr
