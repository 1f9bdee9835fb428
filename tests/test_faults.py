"""Faults a long study meets: a bad study dir, an unreachable tracking server, resources no
node has, a second launcher, and a launcher stopped by SIGTERM or killed by SIGKILL."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from mlflow.tracking import MlflowClient

from study.lock import StudyLock, record, stop_leftovers
from study.mlflow_server import MlflowServer
from tests.study_helpers import launch_args, runs

LAUNCH = [sys.executable, "-m", "study.launch", "--space", "smoke", "--scale", "smoke"]


def _launch(*extra: str, timeout: int = 120) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    r = subprocess.run([*LAUNCH, *extra], capture_output=True, text=True, timeout=timeout)
    return r, time.monotonic() - t0


def _ours(root: Path) -> list[psutil.Process]:
    """Live processes whose command line names the study dir (MLflow servers, launchers)."""
    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if str(root) in " ".join(p.info["cmdline"] or []) and p.pid != os.getpid():
                out.append(p)
        except psutil.Error:
            continue
    return out


def _pgid(p: psutil.Process) -> int:
    try:
        return os.getpgid(p.pid)
    except (ProcessLookupError, PermissionError):
        return -1


def test_a_study_dir_that_is_a_file_is_refused_before_anything_starts(tmp_path):
    (tmp_path / "taken").write_text("")
    r, _ = _launch("--study-dir", str(tmp_path / "taken"))
    assert r.returncode == 2 and "is a file, not a folder" in r.stderr
    assert "Traceback" not in r.stderr


def test_an_unreachable_tracking_server_is_refused_within_seconds(tmp_path):
    r, seconds = _launch("--study-dir", str(tmp_path), "--tracking-uri", "http://127.0.0.1:9")
    assert r.returncode == 2, r.stderr
    assert "--tracking-uri http://127.0.0.1:9: no MLflow server answered" in r.stderr
    assert seconds < 20, seconds  # 8 s of tries, then the error; no Ray was started
    assert "[study]" not in r.stderr and "Traceback" not in r.stderr


def test_resources_no_node_has_are_refused(tmp_path):
    r, _ = _launch("--study-dir", str(tmp_path), "--cpus-per-trial", "100")
    assert r.returncode == 2
    assert f"this machine has {os.cpu_count()} CPUs" in r.stderr
    assert not (tmp_path / "smoke" / "mlflow.db").exists()


def test_one_study_dir_takes_one_launcher(tmp_path, capsys):
    root = tmp_path / "smoke"
    root.mkdir()
    held = StudyLock(root)
    held.acquire(print)
    try:
        r, _ = _launch("--study-dir", str(tmp_path))
        assert r.returncode == 2
        assert f"is in use by the launcher with PID {os.getpid()}" in r.stderr
    finally:
        held.release()
    # A lock whose launcher died is taken over, with a message.
    (root / "launcher.lock").write_text("999999999")
    lock = StudyLock(root)
    lock.acquire(print)
    lock.release()
    assert "took over the lock of launcher PID 999999999, which is gone" in capsys.readouterr().out


def test_the_next_launcher_stops_what_a_dead_one_left(tmp_path, capsys):
    root = tmp_path / "study"
    server = MlflowServer(root).start()
    # An unrelated process group that happens to sit in the record is never touched.
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        record(root, "MLflow server", server.pgid)
        record(root, "something else", bystander.pid)
        members = [p for p in psutil.process_iter() if _pgid(p) == server.pgid]
        assert len(members) >= 2  # the server and its uvicorn
        assert stop_leftovers(root, print) == len(members)
        _, alive = psutil.wait_procs(members, timeout=20)
        assert not alive
        assert bystander.poll() is None
        assert "left its MLflow server running" in capsys.readouterr().out
        assert not (root / "processes.json").exists()
    finally:
        bystander.kill()
        server.stop()


def _ray_since(t0: float) -> list[psutil.Process]:
    """Ray's head processes (GCS, raylet) started since ``t0``."""
    out = []
    for p in psutil.process_iter(["name", "create_time"]):
        if p.info["name"] in ("gcs_server", "raylet") and p.info["create_time"] >= t0 - 1:
            out.append(p)
    return out


def _checkpoints(root: Path) -> set[Path]:
    return set((root / "ray" / "tune").glob("run_tune_trial_*/checkpoint_*"))


def _wait_for_checkpoint(root: Path, proc: subprocess.Popen, timeout: float = 400) -> None:
    """Until this launch has written a new checkpoint (its trials are running)."""
    before = _checkpoints(root)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if _checkpoints(root) - before:
            return
        time.sleep(0.3)
    raise AssertionError(f"no new checkpoint within {timeout} s (exit {proc.poll()})")


@pytest.mark.slow
def test_sigterm_then_sigkill_leave_nothing_running_and_resume_finishes(tmp_path):
    args = launch_args(tmp_path, "--set", "minimax_epochs=6")
    args[args.index("--max-concurrent") + 1] = "1"
    root = tmp_path / "smoke"
    log = tmp_path / "launch.log"

    launched: list[subprocess.Popen] = []

    def start(argv: list[str]) -> subprocess.Popen:
        with log.open("a") as f:
            launched.append(subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT))
        return launched[-1]

    try:
        _kill_cycle(args, root, log, start)
    finally:  # a failed assertion must not leave a launcher (and its servers) behind
        for p in launched:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=60)
        for p in _ours(root):
            p.kill()


def _kill_cycle(args: list[str], root: Path, log: Path, start) -> None:  # noqa: ANN001

    # 1. SIGTERM, as `timeout` or a scheduler sends it to the launcher alone.
    started = time.time()
    proc = start(args)
    _wait_for_checkpoint(root, proc)
    ray_procs = _ray_since(started)
    assert ray_procs, "the launcher's Ray was not seen"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    _, alive = psutil.wait_procs([*_ours(root), *ray_procs], timeout=30)
    assert not alive, [p.cmdline() for p in alive]
    parents, children = runs(root)
    assert parents[0].info.status == "KILLED"
    assert "interrupted (SIGTERM); continue with --resume" in parents[0].data.tags["failure_reason"]
    assert all(c.info.status != "RUNNING" for c in children)
    hint = next(ln for ln in log.read_text().splitlines() if ln.startswith("Continue with: "))
    resume = shlex.split(hint.removeprefix("Continue with: "))
    assert "--resume" in resume and "--set" in resume  # the flags that define the study

    # 2. SIGKILL: the launcher cannot clean up; its server goes with it (parent-death signal),
    # and the next launcher stops anything recorded that is still there.
    started = time.time()
    proc = start(resume)
    _wait_for_checkpoint(root, proc)
    time.sleep(2)
    ray_procs = _ray_since(started)
    assert ray_procs, "the launcher's Ray was not seen"
    proc.kill()
    proc.wait(timeout=60)
    _, alive = psutil.wait_procs([*_ours(root), *ray_procs], timeout=60)
    assert not alive, [p.cmdline() for p in alive]

    # 3. The printed command resumes it to the end: one FINISHED run per trial, none RUNNING.
    r = subprocess.run(resume, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    parents, children = runs(root)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    by_trial: dict[str, list] = {}
    for c in children:
        by_trial.setdefault(c.data.tags["study.trial_id"], []).append(c)
    assert len(by_trial) == 2
    for trial, rs in by_trial.items():
        assert [x.info.status for x in rs] == ["FINISHED"], trial
    assert not _ours(root)


def _trial_worker() -> psutil.Process | None:
    """The Ray actor process that runs a trial (its title names the Tune trainable)."""
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if cmd.startswith("ray::") and ("ImplicitFunc" in cmd or "run_tune_trial" in cmd):
            return p
    return None


def _figure(name: str, value: float) -> None:
    """Record a figure a fault test measured (test-artifacts/reliability.jsonl)."""
    import json

    out = Path(os.environ.get("TEST_ARTIFACTS", "test-artifacts"))
    out.mkdir(parents=True, exist_ok=True)
    with (out / "reliability.jsonl").open("a") as f:
        f.write(json.dumps({"figure": name, "value": value, "time": time.time()}) + "\n")


@pytest.mark.slow
def test_a_killed_trial_worker_resumes_from_its_checkpoint(tmp_path):
    epochs = 6
    args = launch_args(tmp_path, "--set", f"minimax_epochs={epochs}", "--grid", "lam=1.0")
    root = tmp_path / "smoke"
    log = tmp_path / "launch.log"
    with log.open("w") as f:
        proc = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT)
    try:
        _wait_for_checkpoint(root, proc)
        worker = _trial_worker()
        assert worker is not None, "no trial worker found"
        # Tune keeps the newest checkpoint only: checkpoint_00000K holds epoch K + 1.
        done_at_kill = max(int(c.name.split("_")[1]) for c in _checkpoints(root)) + 1
        worker.kill()
        assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
    parents, children = runs(root)
    assert parents[0].info.status == "FINISHED"
    assert len(children) == 1 and children[0].info.status == "FINISHED"
    run = children[0]
    resumed = int(run.data.tags["resumed_from_epoch"])
    assert done_at_kill <= resumed <= done_at_kill + 1  # the newest checkpoint, or one after
    # Each train/* step once, 1..epochs, in MLflow.
    server = MlflowServer(root).start()
    try:
        steps = [m.step for m in MlflowClient(server.uri).get_metric_history(run.info.run_id,
                                                                             "train/L_A")]  # fmt: skip
    finally:
        server.stop()
    assert sorted(steps) == list(range(1, epochs + 1)), steps
    # Its seconds count the attempt before the kill (up to its checkpoint), not only the last.
    before = float(run.data.tags["seconds_before_resume"])
    assert before > 0 and run.data.metrics["seconds"] > before
    # Whole epochs trained twice: 0 when the retry starts from the newest checkpoint (only the
    # epoch in flight at the kill is lost).
    _figure("whole epochs redone after a worker kill", max(0, done_at_kill - resumed))


def test_a_retry_logs_the_epochs_mlflow_missed(tmp_path):
    """The checkpoint is written before MLflow is called; a retry logs from it what MLflow
    lacks (here epoch 2, as if the server had been down), and nothing twice."""
    from study.trainable import _log_missing_epochs

    c = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = c.create_run(c.create_experiment("x")).info.run_id
    history = [{"L_A": 1.0, "L_T": 2.0}, {"L_A": 0.5, "L_T": 1.5}, {"L_A": 0.25, "L_T": 1.0}]
    for epoch in (1, 3):
        for k, v in history[epoch - 1].items():
            c.log_metric(run, f"train/{k}", v, step=epoch)
    assert _log_missing_epochs(c, run, history) == 1
    assert _log_missing_epochs(c, run, history) == 0
    for k in ("L_A", "L_T"):
        got = sorted((m.step, m.value) for m in c.get_metric_history(run, f"train/{k}"))
        assert got == [(e, history[e - 1][k]) for e in (1, 2, 3)]
