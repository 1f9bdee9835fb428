"""End-to-end studies: real Ray Tune, a real MLflow server on 127.0.0.1, real trials."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import torch
from mlflow.tracking import MlflowClient
from PIL import Image

from search_spaces import BINDING_LAM, BUILTIN_B_RANGE, BUILTIN_LAM_RANGE
from study.tracking.server import MlflowServer, free_port
from tests.study_helpers import launch_args, run_launch, runs

pytestmark = pytest.mark.slow


def _listening() -> set[tuple[str, int, int]]:
    out = set()
    for c in psutil.net_connections(kind="inet"):
        if c.status == psutil.CONN_LISTEN and c.laddr:
            out.add((c.laddr.ip, c.laddr.port, c.pid or 0))
    return out


@dataclass
class Launched:
    """A finished launcher run: its study dir, output and the sockets it listened on."""

    tmp: Path
    root: Path
    out: str
    returncode: int | None
    seen: set[tuple[str, int, int]]


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory) -> Launched:
    """The smoke study, run once for the tests of its records, its UI and its anonymizer. Its
    output goes to a file (a full pipe would stall it) and it is killed if it overruns."""
    tmp = tmp_path_factory.mktemp("smoke")
    before = {(ip, port) for ip, port, _ in _listening()}
    log = tmp / "launch.log"
    env = {**os.environ, "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "1"}
    seen: set[tuple[str, int, int]] = set()
    with log.open("w") as f:
        proc = subprocess.Popen(
            # A second fresh f_T' scores each f_A* too: cross-model evaluation, recorded.
            launch_args(tmp, "--set", "eval_action_models=x3d_tiny"),
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            deadline = time.time() + 600
            while proc.poll() is None and time.time() < deadline:
                seen |= {s for s in _listening() if (s[0], s[1]) not in before}
                time.sleep(1.0)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return Launched(tmp, tmp / "smoke", log.read_text(), proc.returncode, seen)


def test_smoke_study_records_everything_and_stays_on_loopback(smoke_study):
    out, seen, tmp_path = smoke_study.out, smoke_study.seen, smoke_study.tmp
    assert smoke_study.returncode == 0, out[-4000:]

    # Sockets: the launcher's Ray and MLflow listened, and only on loopback.
    assert seen, "no new listening socket was seen while the study ran"
    for ip, port, pid in seen:
        addr = ipaddress.ip_address(ip)
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        assert addr.is_loopback, f"{ip}:{port} (pid {pid}) is not loopback"

    root = smoke_study.root
    parents, children = runs(root)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert "raw/top1" in parents[0].data.metrics and "shared/seconds" in parents[0].data.metrics
    assert sorted(float(r.data.params["lam"]) for r in children) == [0.0, BINDING_LAM]
    server = MlflowServer(root).start()  # artifacts are served by the tracking server
    c = MlflowClient(tracking_uri=server.uri)
    for r in children:
        assert r.info.status == "FINISHED"
        assert r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert r.data.tags["seed"] == "0" and r.data.tags["node"]
        for k in ("top1", "cmap", "f1", "rms", "raw_top1", "raw_cmap", "raw_f1"):
            assert 0.0 <= r.data.metrics[k] <= 1.0
        # Each fresh f_T' scored the same f_A*; top1 stays the trial's own f_T''s.
        m = r.data.metrics
        assert m["top1/c3d_tiny"] == m["top1"] and 0.0 <= m["top1/x3d_tiny"] <= 1.0
        assert m["top1/worst"] == min(m["top1/c3d_tiny"], m["top1/x3d_tiny"])
        assert m["raw_top1/c3d_tiny"] == m["raw_top1"] and "raw_top1/x3d_tiny" in m
        assert r.data.params["B"] == "0.1" and r.data.params["scale"] == "smoke"
        # Where the trial's time went: its stages, and the rest (the platform's) as logging.
        stages = ("data", "game", "anonymize", "eval_action", "eval_privacy", "logging")
        assert all(m[f"seconds/{k}"] >= 0.0 for k in stages) and m["seconds/game"] > 0.0
        assert m["game_steps"] > 0 and m["seconds/epoch_callbacks"] <= m["seconds/game"]
        steps = c.get_metric_history(r.info.run_id, "train/L_A")
        assert [m.step for m in steps] == [1, 2]
        files = {a.path for a in c.list_artifacts(r.info.run_id)}
        assert {"anonymizer.pt", "frames.png", "config.json"} <= files
        png = c.download_artifacts(r.info.run_id, "frames.png", str(tmp_path))
        assert Image.open(png).size[0] > 100
        weights = c.download_artifacts(r.info.run_id, "anonymizer.pt", str(tmp_path))
        assert any(k.startswith("net.") for k in torch.load(weights, weights_only=True))
        # Provenance and the machine's load, on every run.
        assert re.fullmatch(r"[0-9a-f]{40}", r.data.tags["mlflow.source.git.commit"])
        assert r.data.tags["git.dirty"] in ("true", "false")
        assert (
            "study.launch" in r.data.tags["command"] and "--space smoke" in r.data.tags["command"]
        )
        assert r.data.tags["version.torch"] == metadata.version("torch")
        assert "system/cpu_utilization_percentage" in r.data.metrics
        assert "system/system_memory_usage_megabytes" in r.data.metrics
    assert (
        parents[0].data.tags["mlflow.source.git.commit"] == r.data.tags["mlflow.source.git.commit"]
    )
    # The experiment opens on the runs table in MLflow 3's UI; the launcher names that table.
    exp = c.get_experiment(parents[0].info.experiment_id)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    table = f"/#/experiments/{exp.experiment_id}/runs?workflowType=machine_learning"
    assert f"runs table: http://127.0.0.1:5000{table}" in out
    # The chosen anonymizer is an MLflow model that mlflow.pytorch.load_model loads.
    chosen = parents[0].data.tags["study.chosen_run"]
    assert chosen in {r.info.run_id for r in children}
    model_uri = parents[0].data.tags["study.chosen_model"]
    import mlflow.pytorch

    from trainables.anonymize import load_anonymizer

    mlflow.set_tracking_uri(server.uri)
    model = mlflow.pytorch.load_model(model_uri)
    d = tmp_path / "chosen"
    ref = load_anonymizer(
        Path(c.download_artifacts(chosen, "anonymizer.pt", str(d))),
        Path(c.download_artifacts(chosen, "config.json", str(d))),
    )
    x = torch.rand(3, 3, 64, 96)
    assert torch.allclose(model(x), ref(x), atol=1e-5)
    server.stop()
    assert "Browse the runs in the MLflow UI" in out and "mlflow ui" in out
    # The report: written at the end, printed, logged to the parent run, keyed on it.
    assert f"Report: {root / 'report' / 'report.html'}" in out
    trials = pd.read_csv(root / "report" / "trials.csv")
    assert sorted(trials["run_id"]) == sorted(r.info.run_id for r in children)
    summary = (root / "report" / "summary.md").read_text()
    assert parents[0].info.run_id in summary and f"`{chosen}`" in summary
    assert "## Across fresh target models" in summary and "| top1 | x3d_tiny |" in summary
    # The calibration of the data is on the parent run, for the report's B axes.
    assert (
        parents[0].data.metrics["calibration/flatten"]
        > parents[0].data.metrics["calibration/greyscale"]
    )
    # And in the feature-based penalty's space (the warm-started f_T's features).
    assert parents[0].data.metrics["calibration_features/flatten"] > 0
    assert 0 < parents[0].data.metrics["chance/top1"] < 1
    assert 0 < parents[0].data.metrics["chance/cmap"] < 1
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
    # What the dry run will estimate from next time.
    row = json.loads((tmp_path / "timings.jsonl").read_text().splitlines()[-1])
    assert row["scale"] == "smoke" and row["trials"] == 2 and row["trial_seconds"] > 0


def _last_checkpoint(trial_dir) -> int:
    """Index of the newest checkpoint Tune kept for a trial (-1: none yet)."""
    idx = [int(p.name.split("_")[1]) for p in trial_dir.glob("checkpoint_*")]
    return max(idx, default=-1)


@pytest.mark.heavy  # about 3 min: in `make test-heavy`, to keep `make test` under 20 min
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
    # Resuming with flags that change what the trials compute is refused, naming them.
    r = run_launch(tmp_path, *extra, "--resume", "--seeds", "2")
    assert r.returncode == 2
    assert "--seeds: 1 when started, 2 now" in r.stderr


def test_pareto_search_goes_through_optuna_with_persistent_storage(tmp_path):
    import optuna

    # One sampled configuration, replicated with seeds 0 and 1.
    r = run_launch(tmp_path, "--num-samples", "1", "--seeds", "2", space="pareto_search")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    root = tmp_path / "pareto_search"
    study = optuna.load_study(study_name="pareto_search", storage=f"sqlite:///{root / 'optuna.db'}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 1  # Optuna sees the configuration once ...
    assert study.directions == [
        optuna.study.StudyDirection.MAXIMIZE,
        optuna.study.StudyDirection.MINIMIZE,
    ]
    _, children = runs(root)
    assert sorted(c.data.params["seed"] for c in children) == ["0", "1"]
    for k in ("B", "lam", "lr_anon"):
        assert len({c.data.params[k] for c in children}) == 1, k
    # ... with each objective averaged over the seeds.
    for i, k in enumerate(("top1", "cmap")):
        mean = sum(c.data.metrics[k] for c in children) / 2
        assert done[0].values[i] == pytest.approx(mean)
    t = done[0]
    # The Optuna trial names its MLflow runs, one per seed (what optuna-dashboard shows).
    assert sorted(t.user_attrs["mlflow_run_ids"].split(",")) == sorted(
        c.info.run_id for c in children
    )
    assert BUILTIN_B_RANGE.low <= t.params["B"] <= BUILTIN_B_RANGE.high
    assert BUILTIN_LAM_RANGE.low <= t.params["lam"] <= BUILTIN_LAM_RANGE.high
    assert float(children[0].data.params["B"]) == pytest.approx(t.params["B"])
    _check_optuna_dashboard(root, children[0].info.run_id)


def _check_optuna_dashboard(root, run_id: str) -> None:
    """The README's optuna-dashboard command serves the study, its trial naming its runs."""
    from study.tracking.server import free_port

    port = free_port()
    cmd = [str(Path(sys.executable).parent / "optuna-dashboard"), f"sqlite:///{root / 'optuna.db'}"]
    proc = subprocess.Popen(
        [*cmd, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}/api"
        studies = None
        for _ in range(60):
            try:
                with urllib.request.urlopen(f"{base}/studies", timeout=2) as r:
                    studies = json.load(r)["study_summaries"]
                break
            except OSError:
                time.sleep(0.5)
        assert studies is not None, "optuna-dashboard did not answer"
        (study,) = [s for s in studies if s["study_name"] == "pareto_search"]
        with urllib.request.urlopen(f"{base}/studies/{study['study_id']}", timeout=10) as r:
            assert run_id in r.read().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_crashing_trial_ends_failed_with_its_reason(tmp_path):
    # An absurd learning rate of f_B (used by the game only, not by the shared stages) makes
    # every trial's losses NaN within its first steps: a real crash inside the Ray worker.
    r = run_launch(tmp_path, "--set", "lr_privacy=1e30", "--max-failures", "0")
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
    # Nothing shared (the sharing benchmark's "without"): both trials train, one after the
    # other in one reused Ray actor, each on shared stages it computed itself. The penalty is
    # inert, so the second must match the first exactly: a reused actor carries no state over.
    args = [*launch_args(tmp_path / "studies", "--space-module", "my_spaces", space="inert_pair")]
    args[args.index("--max-concurrent") + 1] = "1"
    args += ["--experiment", "inert_private", "--no-reuse", "--private-stages"]
    timings = tmp_path / "studies" / "timings.jsonl"
    rows_before = timings.read_text().count("\n")
    r = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    root = tmp_path / "studies" / "inert_private"
    _, children = runs(root)
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    assert not [c for c in children if "reused_from" in c.data.tags]
    raws = []
    for c in children:
        own = root / "private" / c.data.tags["study.trial_id"] / "shared"
        assert len(list(own.glob("init-*.pt"))) == 1, sorted(own.parent.rglob("*"))
        (raw,) = own.glob("raw-*.json")
        raws.append(json.loads(raw.read_text()))
        assert c.data.metrics["raw_top1"] == raws[-1]["top1"]
    assert raws[0]["top1"] == raws[1]["top1"] and raws[0]["cmap"] == raws[1]["cmap"]
    for k in ("top1", "cmap", "f1", "rms"):
        assert children[0].data.metrics[k] == children[1].data.metrics[k], k
    pids = {
        json.loads(p.read_text().splitlines()[-1])["pid"]
        for p in (root / "ray" / "tune").glob("*/result.json")
    }
    assert len(pids) == 1, pids  # the second trial ran in the first one's process
    # Its trials' seconds hold their shared stages: they would mislead later dry runs.
    assert timings.read_text().count("\n") == rows_before
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


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _browse(url: str, profile: Path, *extra: str) -> str:
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--virtual-time-budget=30000",
    ]  # fmt: skip
    exe = _chromium()
    if exe is None:
        pytest.fail("Debian's chromium is needed to render the report; `make test` installs it")
    r = subprocess.run([exe, *flags, *extra, url], capture_output=True, text=True, timeout=180)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", r.stdout))


@pytest.mark.skipif(
    _chromium() is None, reason="Debian's chromium is not installed; `make test` installs it"
)
def test_the_mlflow_ui_opens_on_the_runs_table(smoke_study):
    """What the launcher prints: `mlflow ui ...`, then the runs-table link, in a real browser."""
    assert smoke_study.returncode == 0, smoke_study.out[-3000:]
    printed = next(ln for ln in smoke_study.out.splitlines() if "mlflow ui --backend" in ln)
    link = next(ln for ln in smoke_study.out.splitlines() if "then open the runs table" in ln)
    port = free_port()
    cmd = shlex.split(printed.strip().replace("--port 5000", f"--port {port}"))
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    ui = subprocess.Popen(
        [sys.executable, "-m", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=env, start_new_session=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2):
                    break
            except OSError:
                time.sleep(1)
        url = link.split("runs table: ")[1].strip().replace("http://127.0.0.1:5000", base)
        profile = smoke_study.tmp / "chromium"
        text = _browse(url, profile, "--dump-dom")
        parents, children = runs(smoke_study.root)
        assert "Runs - Experiment" in text and "Overview - Experiment" not in text
        assert f"{parents[0].info.run_name}" in text and "3 matching runs" in text
        # A trial's page, by its name.
        child = children[0]
        page = f"{base}/#/experiments/{child.info.experiment_id}/runs/{child.info.run_id}"
        assert child.info.run_name in _browse(page, profile, "--dump-dom")
        shots = Path(os.environ.get("TEST_ARTIFACTS", "test-artifacts"))
        shots.mkdir(parents=True, exist_ok=True)
        shot = (shots / "mlflow-runs-table.png").resolve()
        _browse(url, profile, f"--screenshot={shot}", "--window-size=1400,900")
        img = np.asarray(Image.open(shot).convert("L"), dtype=float)
        assert img.shape == (900, 1400) and img.std() > 10  # a rendered page, not a blank one
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)


def _video(path: Path, frames: int, rate: int, size: tuple[int, int]) -> None:
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), mode="w") as out:
        s = out.add_stream("libx264", rate=rate)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        for _ in range(frames):
            img = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            out.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(s.encode(None))


def test_anonymize_applies_the_chosen_run_to_videos(smoke_study):
    """The README's last step: the run the report chose, applied to a folder of real files."""
    import av

    assert smoke_study.returncode == 0, smoke_study.out[-3000:]
    parents, _ = runs(smoke_study.root)
    chosen = parents[0].data.tags["study.chosen_run"]
    model_uri = parents[0].data.tags["study.chosen_model"]
    src = smoke_study.tmp / "videos"
    (src / "sub").mkdir(parents=True)
    _video(src / "clip.mp4", frames=30, rate=12, size=(64, 48))
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(
        src / "photo.png"
    )
    (src / "sub" / "broken.avi").write_bytes(b"not a video" * 100)
    server = MlflowServer(smoke_study.root).start()
    try:

        def anonymize(weights: str, inp: Path, out: Path) -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, "-m", "trainables.anonymize", "--weights", weights,
                 "--tracking-uri", server.uri, "--input", str(inp), "--output", str(out)],
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip

        out = smoke_study.tmp / "anonymized"
        r = anonymize(chosen, src, out)
        assert r.returncode == 1, r.stdout + r.stderr  # one file failed, the others went through
        assert "broken.avi: cannot be read as a video" in r.stderr
        assert "anonymized 2 of 3 file(s); 1 failed" in r.stdout
        assert "30/30" in r.stderr  # the progress bar
        with av.open(str(out / "clip.mp4")) as v:
            s = v.streams.video[0]
            assert s.average_rate == 12 and (s.width, s.height) == (64, 48)
            assert sum(1 for _ in v.decode(s)) == 30
        rms = {m[0]: float(m[1]) for m in re.findall(r"(\w+\.\w+) -> .*RMS (\d\.\d+)", r.stdout)}
        raw = np.asarray(Image.open(src / "photo.png"), dtype=float) / 255
        done = np.asarray(Image.open(out / "photo.png"), dtype=float) / 255
        assert rms["photo.png"] == pytest.approx(np.sqrt(((raw - done) ** 2).mean()), abs=1e-4)
        assert 0 < rms["clip.mp4"] < 1
        # The same anonymizer from the logged model's URI, and from a local anonymizer.pt.
        r = anonymize(model_uri, src / "photo.png", smoke_study.tmp / "by_model")
        assert r.returncode == 0, r.stderr
        assert np.array_equal(
            np.asarray(Image.open(smoke_study.tmp / "by_model" / "photo.png")), done * 255
        )
        local = smoke_study.tmp / "local"
        c = MlflowClient(server.uri)
        for name in ("anonymizer.pt", "config.json"):
            c.download_artifacts(chosen, name, str(local))
    finally:
        server.stop()
    r = subprocess.run(
        [sys.executable, "-m", "trainables.anonymize", "--weights", str(local / "anonymizer.pt"),
         "--input", str(src / "photo.png"), "--output", str(smoke_study.tmp / "by_file")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"RMS {rms['photo.png']:.4f}" in r.stdout
    # One input file and an --output that names a file: that file is written, not a folder.
    one = smoke_study.tmp / "one" / "anon.mp4"
    r = subprocess.run(
        [sys.executable, "-m", "trainables.anonymize", "--weights", str(local / "anonymizer.pt"),
         "--input", str(src / "clip.mp4"), "--output", str(one), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert one.is_file() and f"-> {one}:" in r.stdout
    with av.open(str(one)) as v:
        assert sum(1 for _ in v.decode(v.streams.video[0])) == 30
    r = subprocess.run(
        [sys.executable, "-m", "trainables.anonymize", "--weights", "0" * 32,
         "--input", str(src), "--output", str(out)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "MLFLOW_TRACKING_URI": ""},
    )  # fmt: skip
    assert r.returncode == 2 and "give the study's MLflow server with --tracking-uri" in r.stderr


@pytest.mark.skipif(
    _chromium() is None, reason="Debian's chromium is not installed; `make test` installs it"
)
def test_the_docs_pictures_and_results_page_are_made_from_a_finished_study(smoke_study):
    """`python -m study.docs`: the report and the runs table in Chromium, a strip of frames
    through the study's own anonymizers, and the study's page with what made it."""
    assert smoke_study.returncode == 0, smoke_study.out[-3000:]
    out, page = smoke_study.tmp / "img", smoke_study.tmp / "results" / "smoke.md"
    r = subprocess.run(
        [sys.executable, "-m", "study.docs", "--experiment", "smoke", "--study-dir",
         str(smoke_study.tmp), "--out", str(out), "--results", str(page), "--bounds", "0.1,0.1",
         "--clips", "4"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("report.png", "mlflow-runs.png", "frames.png"):
        img = np.asarray(Image.open(out / name).convert("L"), dtype=float)
        assert img.std() > 10, name  # a rendered picture, not a blank one
    strip = np.asarray(Image.open(out / "frames.png").convert("RGB"))
    assert strip.shape[0] > 2 * 32 * 4  # raw and two rows of f_A, frames scaled 4 times
    text = page.read_text()
    assert text.startswith("# The study `smoke`") and "min** (the launcher's wall time" in text
    assert "the dry run's estimate at launch was" in text  # recorded by the launcher
    assert "python -m study.launch" in text and "## Recommendation" in text
    bad = subprocess.run(
        [sys.executable, "-m", "study.docs", "--experiment", "smoke", "--study-dir",
         str(smoke_study.tmp), "--out", str(out), "--bounds", "0.33,0.1", "--results", "none"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert bad.returncode == 2 and "--bounds 0.33 at --lam 100: no such trial" in bad.stderr
