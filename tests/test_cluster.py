"""A two-host Ray cluster on this machine: two network namespaces joined by a veth pair.

The head host (10.231.0.1) runs the Ray head and the MLflow server; the worker host
(10.231.0.2) runs a Ray worker node. A study launched from the head host must run trials on
both nodes and record on which. Ray runs with token authentication on every node and client.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from study.tracking import spool
from study.tracking.server import MlflowServer
from tests.study_helpers import figure, launch_args, runs

pytestmark = pytest.mark.slow

HEAD_IP, WORKER_IP = "10.231.0.1", "10.231.0.2"
RAY_ADDRESS, MLFLOW_URI = f"{HEAD_IP}:6379", f"http://{HEAD_IP}:5000"
SUFFIX = f"{os.getpid() % 100000}"
HEAD_NS, WORKER_NS = f"pa_head{SUFFIX}", f"pa_work{SUFFIX}"
# Ray's session dirs, one per host (short: they hold unix sockets).
HEAD_TMP, WORKER_TMP = f"/tmp/rh{SUFFIX}", f"/tmp/rw{SUFFIX}"
VENV_BIN = Path(sys.executable).parent


def _sh(*cmd: str, check: bool = True, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=check, timeout=timeout)


def _in(ns: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


def _make_hosts() -> None:
    _sh("ip", "netns", "add", HEAD_NS)
    _sh("ip", "netns", "add", WORKER_NS)
    veth_h, veth_w = f"vh{SUFFIX}", f"vw{SUFFIX}"
    _sh("ip", "link", "add", veth_h, "type", "veth", "peer", "name", veth_w)
    _sh("ip", "link", "set", veth_h, "netns", HEAD_NS)
    _sh("ip", "link", "set", veth_w, "netns", WORKER_NS)
    for ns, dev, ip in ((HEAD_NS, veth_h, HEAD_IP), (WORKER_NS, veth_w, WORKER_IP)):
        _sh(*_in(ns, "ip", "addr", "add", f"{ip}/24", "dev", dev))
        _sh(*_in(ns, "ip", "link", "set", dev, "up"))
        _sh(*_in(ns, "ip", "link", "set", "lo", "up"))


def _kill_namespace_processes(
    ns: str, signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGKILL)
) -> None:
    for sig in signals:
        r = _sh("ip", "netns", "pids", ns, check=False)
        pids = [int(p) for p in r.stdout.split()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        if not pids:
            return
        time.sleep(2)


@pytest.fixture
def two_hosts():
    if shutil.which("ip") is None:
        pytest.skip("iproute2's `ip` is not installed: cannot build test hosts")
    probe = _sh("ip", "netns", "add", f"pa_probe{SUFFIX}", check=False)
    if probe.returncode != 0:
        pytest.skip(f"network namespaces cannot be created here: {probe.stderr.strip()}")
    _sh("ip", "netns", "del", f"pa_probe{SUFFIX}", check=False)
    try:
        _make_hosts()
        yield
    finally:
        for ns in (HEAD_NS, WORKER_NS):
            _kill_namespace_processes(ns)
            _sh("ip", "netns", "del", ns, check=False)
        for d in (HEAD_TMP, WORKER_TMP):
            shutil.rmtree(d, ignore_errors=True)


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(1.0)
    raise TimeoutError(f"timed out waiting for {what}")


def _start_ray_nodes(env: dict[str, str], worker_sh: str = "") -> None:
    """A head node (1 CPU) on the head host and a worker node (1 CPU) on the worker host.
    ``worker_sh``: a shell command run first in the worker's own mount namespace (``ip netns
    exec`` gives each command one), which the raylet and its workers inherit."""
    ray = str(VENV_BIN / "ray")
    head = ("--head", f"--node-ip-address={HEAD_IP}", "--port=6379", "--include-dashboard=false")
    subprocess.run(
        _in(HEAD_NS, ray, "start", *head, "--num-cpus=1", f"--temp-dir={HEAD_TMP}",
            "--disable-usage-stats"),
        check=True, env=env, capture_output=True, timeout=120,
    )  # fmt: skip
    worker = [ray, "start", f"--address={HEAD_IP}:6379", f"--node-ip-address={WORKER_IP}",
              "--num-cpus=1", f"--temp-dir={WORKER_TMP}", "--disable-usage-stats"]  # fmt: skip
    if worker_sh:
        worker = ["sh", "-c", f"{worker_sh} && exec {shlex.join(worker)}"]
    subprocess.run(_in(WORKER_NS, *worker), check=True, env=env, capture_output=True, timeout=120)

    def two_nodes() -> bool:
        r = subprocess.run(
            _in(HEAD_NS, ray, "status", f"--address={HEAD_IP}:6379"),
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        return r.stdout.count("node_") >= 2

    _wait_for(two_nodes, 90, "the worker node to join the head")


def _ray_env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "RAY_USAGE_STATS_ENABLED": "0",
        **extra,
    }
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    return env


def _start_mlflow(tmp_path: Path, study_root: Path, env: dict[str, str]) -> None:
    """An MLflow server on the head host (SQLite in the study dir), reachable from the worker."""
    study_root.mkdir(parents=True, exist_ok=True)
    mlflow_log = open(tmp_path / "mlflow.log", "wb")  # noqa: SIM115
    subprocess.Popen(
        _in(HEAD_NS, sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{study_root / 'mlflow.db'}",
            "--artifacts-destination", str(study_root / "mlflow-artifacts"),
            "--host", HEAD_IP, "--port", "5000", "--workers", "1"),
        stdout=mlflow_log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip

    def mlflow_up() -> bool:
        probe = f"import urllib.request;urllib.request.urlopen('{MLFLOW_URI}/health', timeout=2)"
        r = subprocess.run(_in(HEAD_NS, sys.executable, "-c", probe), capture_output=True,
                           env=env, timeout=30)  # fmt: skip
        return r.returncode == 0

    _wait_for(mlflow_up, 90, "the MLflow server on the head host")


def test_study_runs_trials_on_both_nodes(two_hosts, tmp_path):
    env = _ray_env()
    study_root = tmp_path / "smoke"
    _start_mlflow(tmp_path, study_root, env)
    _start_ray_nodes(env)

    args = launch_args(tmp_path, "--address", RAY_ADDRESS, "--tracking-uri", MLFLOW_URI)
    r = subprocess.run(
        _in(HEAD_NS, *args),
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # Both namespaces see one filesystem, so the study dir is "shared storage" here.
    assert "the study dir is visible on all 2 nodes" in r.stderr, r.stderr[-3000:]

    parents, children = runs(study_root)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    nodes = {c.data.tags["node"].split("/")[-1] for c in children}
    assert nodes == {HEAD_IP, WORKER_IP}, nodes


_PROBE = """
import base64, sys, urllib.error, urllib.request
url, auth = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url + "/api/2.0/mlflow/experiments/search?max_results=5")
if auth:
    req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
try:
    print(urllib.request.urlopen(req, timeout=10).status)
except urllib.error.HTTPError as e:
    print(e.code)
"""


@pytest.mark.heavy
def test_an_authenticated_server_refuses_strangers_and_lets_the_study_in(two_hosts, tmp_path):
    """The launcher's own server on the head's address behind MLflow's basic-auth app: a client
    on the other host without credentials (or with a wrong password) is refused, the study's
    trials on both hosts get through, and neither the password nor Ray's token lands in any
    file of the study, any param or any tag."""
    import re

    password = secrets.token_urlsafe(18)
    env = _ray_env(MLFLOW_TRACKING_USERNAME="study-admin", MLFLOW_TRACKING_PASSWORD=password)
    token = env["RAY_AUTH_TOKEN"]
    _start_ray_nodes(env)
    args = launch_args(
        tmp_path, "--address", RAY_ADDRESS, "--mlflow-auth", "--mlflow-host", HEAD_IP
    )
    log = tmp_path / "launch.log"
    with log.open("w") as f:
        proc = subprocess.Popen(
            _in(HEAD_NS, *args),
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=Path(__file__).resolve().parents[1],
        )
    try:
        pattern = re.compile(r"MLflow tracking server: (http://\S+)")
        _wait_for(lambda: pattern.search(log.read_text()) or proc.poll() is not None, 300,
                  "the launcher's MLflow server")  # fmt: skip
        match = pattern.search(log.read_text())
        assert match, log.read_text()[-3000:]
        uri = match.group(1)
        assert uri.startswith(f"http://{HEAD_IP}:")

        def probe(auth: str) -> str:
            r = subprocess.run(
                _in(WORKER_NS, sys.executable, "-c", _PROBE, uri, auth),
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            return r.stdout.strip() or r.stderr[-500:]

        assert probe("") == "401"
        assert probe("study-admin:wrong-password") == "401"
        assert probe(f"study-admin:{password}") == "200"
        assert proc.wait(timeout=900) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
    root = tmp_path / "smoke"
    parents, children = runs(root)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    assert {c.data.tags["node"].split("/")[-1] for c in children} == {HEAD_IP, WORKER_IP}
    for run in [*parents, *children]:
        for k, v in {**run.data.params, **run.data.tags}.items():
            assert password not in v and token not in v, k
    text = log.read_text()
    assert password not in text and token not in text
    for secret in (password, token):
        r = subprocess.run(["grep", "-rlaF", "--", secret, str(root)], capture_output=True,
                           text=True, timeout=120)  # fmt: skip
        assert r.stdout == "", r.stdout


# Node faults. Both hosts see one filesystem (network namespaces share the mount table unless
# told otherwise), which stands in for the shared storage a real cluster mounts on every node:
# the study dir's checkpoints written on the worker are there for the head to resume from.

FAULT_EPOCHS = 4


@contextlib.contextmanager
def _launch_in_head(
    tmp_path: Path, env: dict[str, str], *extra: str
) -> Iterator[tuple[subprocess.Popen, Path]]:
    """A launcher on the head host, for the body to act on while it runs; then it must exit 0
    (killed if the body failed first)."""
    log = tmp_path / "launch.log"
    with log.open("w") as f:
        proc = subprocess.Popen(
            _in(HEAD_NS, *launch_args(tmp_path, "--address", RAY_ADDRESS, *extra)),
            stdout=f, stderr=subprocess.STDOUT, env=env, cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
    try:
        yield proc, log
        assert proc.wait(timeout=900) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)


def _rows(root: Path) -> dict[Path, list[dict]]:
    """Each Tune trial dir's result.json rows (each names its node and, after a checkpoint was
    taken, the checkpoint)."""
    out: dict[Path, list[dict]] = {}
    for f in (root / "ray" / "tune").glob("run_tune_trial_*/result.json"):
        rows = []
        for line in f.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a row being written
                continue
        out[f.parent] = rows
    return out


def _worker_trial_at(root: Path, epoch: int) -> Path | None:
    """The trial dir of a trial whose epoch ``epoch`` (or later) ran on the worker and whose
    checkpoint Tune has taken."""
    for trial, rows in _rows(root).items():
        for r in rows:
            on_worker = r.get("node_ip") == WORKER_IP and r.get("checkpoint_dir_name")
            if on_worker and r.get("epoch", 0) >= epoch:
                return trial
    return None


def _newest_epoch(trial: Path) -> int:
    """The newest epoch on disk: checkpoint_00000K holds epoch K + 1 (Tune keeps only it)."""
    return max((int(c.name.split("_")[1]) + 1 for c in trial.glob("checkpoint_*")), default=0)


def _wait_for_worker_epoch(root: Path, proc: subprocess.Popen, log: Path, epoch: int) -> Path:
    found: list[Path] = []

    def ready() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        trial = _worker_trial_at(root, epoch)
        if trial is not None:
            found.append(trial)
        return trial is not None

    _wait_for(ready, 600, f"epoch {epoch} of a trial on the worker node, checkpointed")
    return found[0]


def _first_report_after(trial: Path, t: float) -> float:
    """Seconds from ``t`` to the trial's first report (an epoch) after it."""
    after = [
        r["timestamp"] for r in _rows(trial.parent.parent.parent)[trial] if r["timestamp"] >= t
    ]
    return min(after) - t


def _assert_recorded_once(root: Path) -> list:
    """The study FINISHED, each trial one FINISHED run, none RUNNING, and every train/* step
    1..FAULT_EPOCHS exactly once in MLflow. The runs."""
    parents, children = runs(root)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children), [
        c.info.status for c in children
    ]
    server = MlflowServer(root).start()
    try:
        c = MlflowClient(server.uri)
        for run in children:
            for key in ("train/L_A", "train/L_T"):
                steps = sorted(m.step for m in c.get_metric_history(run.info.run_id, key))
                assert steps == list(range(1, FAULT_EPOCHS + 1)), (key, steps)
    finally:
        server.stop()
    return children


@pytest.mark.heavy
def test_a_worker_that_cannot_see_the_study_dir_is_refused_before_the_study_starts(
    two_hosts, tmp_path
):
    """The worker host mounts an empty tmpfs over the study dir's parent, as a node without the
    shared filesystem would see it: the launcher names that node and the flag, exits 2, and
    no MLflow server or trial started."""
    env = _ray_env()
    _start_ray_nodes(env, worker_sh=f"mount -t tmpfs tmpfs {shlex.quote(str(tmp_path))}")
    log = tmp_path / "launch.log"
    with log.open("w") as f:
        r = subprocess.run(
            _in(HEAD_NS, *launch_args(tmp_path, "--address", RAY_ADDRESS)), stdout=f,
            stderr=subprocess.STDOUT, env=env, timeout=300, cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
    assert r.returncode == 2, log.read_text()[-3000:]
    text = log.read_text()
    assert f"not visible on node(s) {WORKER_IP}" in text and "--study-dir" in text, text[-3000:]
    assert "MLflow tracking server" not in text
    assert not (tmp_path / "smoke" / "ray" / "tune").exists()


@pytest.mark.heavy
def test_a_dead_worker_node_s_trial_resumes_on_the_head_from_its_checkpoint(two_hosts, tmp_path):
    """Every process of the worker host is SIGKILLed (raylet, workers, agents: a preempted
    node) while it runs a trial that has a checkpoint. Tune restarts that trial on the head from
    its newest checkpoint, and the study records each epoch once."""
    env = _ray_env()
    root = tmp_path / "smoke"
    _start_mlflow(tmp_path, root, env)
    _start_ray_nodes(env)
    with _launch_in_head(tmp_path, env, "--tracking-uri", MLFLOW_URI,
                         "--set", f"minimax_epochs={FAULT_EPOCHS}") as (proc, log):  # fmt: skip
        trial = _wait_for_worker_epoch(root, proc, log, 1)
        killed_at = time.time()
        _kill_namespace_processes(WORKER_NS, signals=(signal.SIGKILL,))
        done_at_kill = _newest_epoch(trial)
    children = _assert_recorded_once(root)
    resumed = [c for c in children if "resumed_from_epoch" in c.data.tags]
    assert len(resumed) == 1, [c.data.tags for c in children]
    run = resumed[0]
    assert run.data.tags["node"].split("/")[-1] == HEAD_IP  # the attempt that finished
    epoch = int(run.data.tags["resumed_from_epoch"])
    assert 1 <= epoch <= done_at_kill, (epoch, done_at_kill)
    figure("node death: whole epochs redone", max(0, done_at_kill - epoch))
    figure("node death: seconds from the kill to the trial's next epoch",
           round(_first_report_after(trial, killed_at), 1))  # fmt: skip


#: Ray's node health check, made shorter than its default for the partition test (the GCS
#: declares a node dead after 3 failed checks, one every 2 s, each given 5 s: about 20 s; the
#: default of 5 checks every 3 s, each given 10 s, took 63 s here). A user tunes it the same
#: way: these variables in the environment of `ray start --head`.
FAST_HEALTH_CHECK = {
    "RAY_health_check_period_ms": "2000",
    "RAY_health_check_timeout_ms": "5000",
    "RAY_health_check_failure_threshold": "3",
}
#: The MLflow client's bound on one request in this test: a 5 s timeout, 2 retries (backoff
#: 1 s doubling), at most about 20 s with MLflow's jitter. The launcher's own bound
#: (study.tracking.client.RETRY_ENV: 30 s, 5 retries) can take over a minute when the cut
#: catches a request on an open connection; these variables are the user's knob too.
FAST_MLFLOW_CLIENT = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "5", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2"}
#: The shortest cut: longer than one MLflow request's bound above and than the health check.
PARTITION_S = 45
#: The longest: the cut lasts until the cut-off attempt has spooled a write, at most this.
PARTITION_MAX_S = 240
#: The worker's raylet and trial process give the GCS up after this long without it (Ray's
#: default, 60 s, is shorter than the longest cut): raised, so the cut-off attempt lives on.
SLOW_GCS_GIVE_UP = {"RAY_gcs_rpc_server_reconnect_timeout_s": str(PARTITION_MAX_S + 60)}
#: Evaluation epochs long enough (about 8 s on 2 cores) that the cut, made within a second or
#: two of the last epoch's report, lands before the trial's outcome writes: at the smoke
#: scale's own (1 and 1) the whole evaluation takes under a second, and on a fast machine the
#: outcome reached MLflow before the link went down.
SLOW_EVALUATION = ("--set", "eval_action_epochs=20", "--set", "eval_privacy_epochs=10")


def _spooled_rows(root: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in spool.pending(root))


def _worker_spool_lines() -> list[str]:
    """What the trial attempts on the worker host said about the spool, from that node's Ray
    worker logs (kept on its disk through the cut): a write that found the server unreachable
    says so once, then goes to the spool. Durable, unlike the spool file, which the attempt
    restarted on the head empties at its next write, possibly between two looks at it."""
    lines: list[str] = []
    for f in sorted(Path(WORKER_TMP).glob("session_latest/logs/worker-*")):
        text = f.read_text(errors="replace")
        lines += [line for line in text.splitlines() if "[spool]" in line]
    return lines


@pytest.mark.heavy
def test_a_partition_that_heals_loses_no_write_and_records_each_epoch_once(two_hosts, tmp_path):
    """The worker's veth goes down for PARTITION_S once its trial has reported its last epoch
    (it is evaluating, then writes its outcome to MLflow), then comes back. The writes it makes
    while cut off wait in the study dir's spool and arrive once; Ray gives the node up after
    its health check and restarts the trial on the head from its newest checkpoint; the
    worker's raylet, told on reconnecting that it was declared dead, exits."""
    env = _ray_env(**FAST_HEALTH_CHECK, **FAST_MLFLOW_CLIENT, **SLOW_GCS_GIVE_UP)
    root = tmp_path / "smoke"
    _start_mlflow(tmp_path, root, env)
    _start_ray_nodes(env)
    link = ("ip", "-n", WORKER_NS, "link", "set", f"vw{SUFFIX}")
    spooled, said = 0, False
    epochs = ("--set", f"minimax_epochs={FAULT_EPOCHS}", *SLOW_EVALUATION)
    with _launch_in_head(tmp_path, env, "--tracking-uri", MLFLOW_URI, *epochs) as (proc, log):
        trial = _wait_for_worker_epoch(root, proc, log, FAULT_EPOCHS)
        down_at = time.time()
        _sh(*link, "down")
        try:
            while time.time() < down_at + PARTITION_MAX_S:
                spooled = max(spooled, _spooled_rows(root))
                said = said or any(spool.KEEPING in line for line in _worker_spool_lines())
                if said and time.time() >= down_at + PARTITION_S:
                    break
                time.sleep(0.2)
        finally:
            _sh(*link, "up")
        cut_s = time.time() - down_at
    children = _assert_recorded_once(root)
    assert said, (
        f"in a {cut_s:.0f} s cut the cut-off attempt never said that it kept a write in the "
        f"spool; its [spool] lines: {_worker_spool_lines()}"
    )
    assert spool.pending(root) == [] and not list((root / "spool").glob("*.rejected"))
    restarted = [c for c in children if "resumed_from_epoch" in c.data.tags]
    assert len(restarted) <= 1
    figure("partition: seconds the link was down", round(cut_s, 1))
    figure("partition: MLflow writes seen waiting in the spool (most at once)", spooled)
    figure("partition: the worker's trial restarted elsewhere (1) or kept (0)", len(restarted))
    figure("partition: seconds from the cut to the trial's end",
           round(_finished_at(trial) - down_at, 1))  # fmt: skip


def _finished_at(trial: Path) -> float:
    """When the trial's final report (the one without a checkpoint) was taken."""
    rows = _rows(trial.parent.parent.parent)[trial]
    return max(r["timestamp"] for r in rows if not r.get("checkpoint_dir_name"))
