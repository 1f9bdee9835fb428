"""Faults a long study meets: a bad study dir, an unreachable tracking server, resources no
node has, a second launcher, and a launcher stopped by SIGTERM or killed by SIGKILL."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from study.lock import StudyLock, record, stop_leftovers
from study.tracking import spool
from study.tracking.server import MlflowServer
from tests.study_helpers import figure as _figure
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


def test_a_study_dir_on_a_read_only_filesystem_is_refused(tmp_path):
    """A read-only tmpfs mounted in a mount namespace of the launcher's own: read-only for root
    too (permission bits are not, which is why the suite, running as root, tests this case)."""
    import shutil

    if shutil.which("unshare") is None:
        pytest.fail("util-linux's unshare is needed for this test")
    mnt = tmp_path / "ro"
    mnt.mkdir()
    script = (
        f"mount -t tmpfs -o ro,size=1m tmpfs {mnt} && exec {shlex.join(LAUNCH)} "
        f"--study-dir {mnt / 'studies'}"
    )
    r = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert "cannot write the study in" in r.stderr and "Read-only file system" in r.stderr
    assert "Traceback" not in r.stderr


def test_an_unreachable_tracking_server_is_refused_within_seconds(tmp_path):
    r, seconds = _launch("--study-dir", str(tmp_path), "--tracking-uri", "http://127.0.0.1:9")
    assert r.returncode == 2, r.stderr
    assert "--tracking-uri http://127.0.0.1:9: no MLflow server answered" in r.stderr
    assert seconds < 20, seconds  # 6 s of tries, then the error; no Ray was started (a
    # figure, not a timing goal: loaded CI machines start Python slowly)
    _figure("seconds until a dead --tracking-uri is refused", round(seconds, 1))
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
@pytest.mark.heavy  # about 2 min: in `make test-heavy`, to keep `make test` under 20 min
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


def _kill_cycle(args: list[str], root: Path, log: Path, start) -> None:

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


def _trial_worker(launcher: subprocess.Popen) -> psutil.Process | None:
    """The Ray actor process that runs this launcher's trial (its title names the Tune
    trainable). Only the launcher's descendants: another study's Ray on this machine is not it."""
    for p in psutil.Process(launcher.pid).children(recursive=True):
        try:
            cmd = " ".join(p.cmdline())
        except psutil.Error:
            continue
        if cmd.startswith("ray::") and ("ImplicitFunc" in cmd or "run_tune_trial" in cmd):
            return p
    return None


def _registered_epochs(root: Path) -> int:
    """The newest epoch whose checkpoint Tune's driver has taken: its result.json rows name
    their checkpoint. A checkpoint on disk may not be taken yet (the worker writes it first)."""
    import json

    newest = 0
    for f in (root / "ray" / "tune").glob("run_tune_trial_*/result.json"):
        for line in f.read_text().splitlines():
            try:
                name = json.loads(line).get("checkpoint_dir_name")
            except json.JSONDecodeError:  # a row being written
                continue
            if name:
                newest = max(newest, int(name.split("_")[1]) + 1)
    return newest


@pytest.mark.slow
def test_a_killed_trial_worker_resumes_from_its_checkpoint(tmp_path):
    epochs = 6
    args = launch_args(tmp_path, "--set", f"minimax_epochs={epochs}", "--grid", "lam=1.0")
    root = tmp_path / "smoke"
    log = tmp_path / "launch.log"
    with log.open("w") as f:
        proc = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT)
    try:
        _wait_until(lambda: _registered_epochs(root) >= 1, proc, 400, "a checkpoint", log)
        worker = _trial_worker(proc)
        assert worker is not None, "no trial worker found"
        taken = _registered_epochs(root)
        worker.kill()
        # Tune keeps the newest checkpoint only: checkpoint_00000K holds epoch K + 1.
        done_at_kill = max(int(c.name.split("_")[1]) for c in _checkpoints(root)) + 1
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
    # The newest checkpoint Tune had taken at the kill, or one it took (or the worker wrote)
    # while the kill landed.
    assert taken <= resumed <= done_at_kill, (taken, resumed, done_at_kill)
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


def test_spooled_writes_arrive_once_when_the_server_is_back(tmp_path, monkeypatch):
    """A trial's writes while the server is down wait in the study dir; a sync sends each once,
    even when a replay is repeated (as after a sync cut short by a kill)."""
    from mlflow.entities import Param

    from study.tracking import client as tracking

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    root = tmp_path / "study"
    server = MlflowServer(root).start()
    try:
        c = MlflowClient(server.uri)
        run = c.create_run(c.create_experiment("x")).info.run_id
        sc = spool.SpoolingClient(c, root, run, log=print)
        tracking.log_metrics(sc, run, {"train/L_A": 1.0}, step=1)  # the server is up: sent
        os.killpg(server.pgid, signal.SIGKILL)
        assert server.proc is not None
        server.proc.wait(timeout=30)
        for step in (2, 3):
            tracking.log_metrics(sc, run, {"train/L_A": 1.0 / step, "top1": 0.5}, step=step)
        sc.set_tag(run, "status", "done")
        sc.log_text(run, "a\nb\n", "skipped_files.txt")
        (tmp_path / "anon.pt").write_bytes(b"weights")
        sc.log_artifact(run, str(tmp_path / "anon.pt"))
        sc.set_terminated(run, "FINISHED")
        assert sc.spooled == 6
        files = spool.pending(root)
        assert [f.name for f in files] == [f"{run}.jsonl"]
        rows = files[0].read_text().splitlines()
        files[0].write_text("\n".join(rows + rows) + "\n")  # every write twice
        server.start()  # the same store and port
        assert spool.sync(root, c, print) == 12
        assert spool.sync(root, c, print) == 0 and not spool.pending(root)
        got = sorted((m.step, m.value) for m in c.get_metric_history(run, "train/L_A"))
        assert got == [(1, 1.0), (2, 0.5), (3, 1.0 / 3)]
        assert len(c.get_metric_history(run, "top1")) == 2
        r = c.get_run(run)
        assert r.info.status == "FINISHED" and r.data.tags["status"] == "done"
        assert sorted(a.path for a in c.list_artifacts(run)) == ["anon.pt", "skipped_files.txt"]
        # A spooled write that the server refuses is set aside, and does not block the rest.
        bad = spool.spool_dir(root) / f"{run}.jsonl"
        bad_rows = [
            {"op": "log_batch", "run_id": run, "params": [["p0", "a"]]},
            {"op": "log_batch", "run_id": run, "params": [["p0", "b"]]},  # p0 changed: refused
            {"op": "set_tag", "run_id": run, "key": "after", "value": "yes"},
        ]
        bad.write_text("".join(json.dumps(r) + "\n" for r in bad_rows))
        assert spool.sync(root, c, print) == 2 and not spool.pending(root)
        assert c.get_run(run).data.tags["after"] == "yes"
        assert "p0" in bad.with_suffix(".rejected").read_text()
        # A write the server refuses (not an outage) is an error, never spooled.
        sc = spool.SpoolingClient(c, root, run, log=print)
        sc.log_batch(run, params=[Param("p", "1")])
        with pytest.raises(MlflowException, match="(?i)param"):
            sc.log_batch(run, params=[Param("p", "2")])
        assert not spool.pending(root)
    finally:
        server.stop()


def _train_rows(root: Path) -> int:
    import sqlite3

    if not (root / "mlflow.db").exists():
        return 0
    with sqlite3.connect(root / "mlflow.db", timeout=30) as db:
        try:
            row = db.execute("select count(*) from metrics where key like 'train/%'").fetchone()
        except sqlite3.OperationalError as e:  # the server is still creating its tables
            if "no such table" not in str(e):
                raise
            return 0
        return int(row[0])


def _server_pgid(root: Path) -> int:
    import json

    return int(json.loads((root / "processes.json").read_text())["MLflow server"])


def _wait_until(predicate, proc: subprocess.Popen, timeout: float, what: str, log: Path) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(
                f"the launcher exited ({proc.returncode}) before {what}:\n{log.read_text()[-4000:]}"
            )
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-4000:]}")


@pytest.mark.slow
def test_a_study_whose_server_died_twice_records_every_metric(tmp_path):
    """The launcher's MLflow server is SIGKILLed twice while trials train: the launcher restarts
    it on the same store and port and says so, the trials spool what it could not take, and the
    study ends FINISHED with every epoch and final metric of every trial recorded once."""
    import re

    # Enough epochs (about 0.6 s each here) that training outlasts the first restart (about
    # 5 s): with 10, a trial could finish before the second kill, and the test saw no training.
    epochs = 40
    args = launch_args(tmp_path, "--set", f"minimax_epochs={epochs}")
    root = tmp_path / "smoke"
    log = tmp_path / "launch.log"
    # Workers give up on a dead server at once, so that their writes go through the spool.
    env = {**os.environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"}
    with log.open("w") as f:
        proc = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=env)
    try:
        for n in (1, 2):
            seen = _train_rows(root) if n == 2 else 0
            _wait_until(lambda s=seen: _train_rows(root) > s, proc, 400, f"training ({n})", log)
            os.killpg(_server_pgid(root), signal.SIGKILL)
            _wait_until(
                lambda n=n: len(re.findall("MLflow server is back", log.read_text())) >= n,
                proc,
                120,
                f"restart {n}",
                log,
            )
        assert proc.wait(timeout=600) == 0, log.read_text()[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
    text = log.read_text()
    assert text.count("the MLflow server died") == 2, text[-4000:]
    restarts = [float(s) for s in re.findall(r"MLflow server is back after ([\d.]+) s", text)]
    assert len(restarts) == 2
    assert not spool.pending(root)
    parents, children = runs(root)
    assert parents[0].info.status == "FINISHED"
    assert parents[0].data.metrics["study/server_restarts"] == 2
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    server = MlflowServer(root).start()
    try:
        mc = MlflowClient(server.uri)
        for ch in children:
            for key in ("train/L_A", "train/L_T", "train/L_B"):
                steps = sorted(m.step for m in mc.get_metric_history(ch.info.run_id, key))
                assert steps == list(range(1, epochs + 1)), (key, steps)
            for key in ("top1", "cmap", "f1", "seconds"):
                assert len(mc.get_metric_history(ch.info.run_id, key)) == 1, key
            assert mc.list_artifacts(ch.info.run_id)
    finally:
        server.stop()
    spooled = len(re.findall(r"keeping this run's writes", text))
    _figure("seconds to restart the MLflow server (max of 2 kills)", max(restarts))
    _figure("trial runs that spooled writes during 2 server deaths", spooled)


def test_uri_passwords_never_reach_params_or_tags():
    from study.tracking.client import provenance, safe_params

    params = safe_params(
        {"study.tracking_backend": "postgresql://bob:hunter2@db:5432/x", "api_token": "t0k"}
    )
    assert params == {"study.tracking_backend": "postgresql://bob:***@db:5432/x"}
    argv = ["python", "-m", "study.launch", "--optuna-storage", "postgresql://bob:hunter2@db/o"]
    command = provenance(argv)["command"]
    assert "hunter2" not in command and "postgresql://bob:***@db/o" in command


def test_a_port_taken_before_the_server_binds_it_is_replaced(tmp_path):
    """The launcher picks a free port, then starts Ray (whose services take random ports), then
    the server: a port taken meanwhile, here by a program that answers in another protocol, is
    replaced by another free port instead of failing the study."""
    import socket
    import threading

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    stop = threading.Event()

    def answer_junk() -> None:  # like a gRPC server: binary frames, not HTTP
        squatter.settimeout(0.5)
        while not stop.is_set():
            try:
                conn, _ = squatter.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"\x00\x00\x18\x04\x00\x00\x00\x00\x00")

    threading.Thread(target=answer_junk, daemon=True).start()
    server = MlflowServer(tmp_path / "study")
    taken = squatter.getsockname()[1]
    server.port = taken  # what the race leaves: the chosen port has another owner
    try:
        server.start()
        assert server.port != taken
        with urllib.request.urlopen(f"{server.uri}/health", timeout=5) as r:
            assert r.status == 200
    finally:
        server.stop()
        stop.set()
        squatter.close()
