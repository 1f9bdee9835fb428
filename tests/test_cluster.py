"""A two-host Ray cluster on this machine: two network namespaces joined by a veth pair.

The head host (10.231.0.1) runs the Ray head and the MLflow server; the worker host
(10.231.0.2) runs a Ray worker node. A study launched from the head host must run trials on
both nodes and record on which. Ray runs with token authentication on every node and client.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.study_helpers import launch_args, runs

pytestmark = pytest.mark.slow

HEAD_IP, WORKER_IP = "10.231.0.1", "10.231.0.2"
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


def _kill_namespace_processes(ns: str) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
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


def _start_ray_nodes(env: dict[str, str]) -> None:
    ray = str(VENV_BIN / "ray")
    head = ("--head", f"--node-ip-address={HEAD_IP}", "--port=6379", "--include-dashboard=false")
    subprocess.run(
        _in(HEAD_NS, ray, "start", *head, "--num-cpus=1", f"--temp-dir={HEAD_TMP}",
            "--disable-usage-stats"),
        check=True, env=env, capture_output=True, timeout=120,
    )  # fmt: skip
    subprocess.run(
        _in(WORKER_NS, ray, "start", f"--address={HEAD_IP}:6379", f"--node-ip-address={WORKER_IP}",
            "--num-cpus=1", f"--temp-dir={WORKER_TMP}", "--disable-usage-stats"),
        check=True, env=env, capture_output=True, timeout=120,
    )  # fmt: skip

    def two_nodes() -> bool:
        r = subprocess.run(
            _in(HEAD_NS, ray, "status", f"--address={HEAD_IP}:6379"),
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        return r.stdout.count("node_") >= 2

    _wait_for(two_nodes, 90, "the worker node to join the head")


def test_study_runs_trials_on_both_nodes(two_hosts, tmp_path):
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    # The MLflow server on the head host, reachable from the worker host.
    study_root = tmp_path / "smoke"
    study_root.mkdir(parents=True)
    mlflow_log = open(tmp_path / "mlflow.log", "wb")  # noqa: SIM115
    subprocess.Popen(
        _in(
            HEAD_NS,
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{study_root / 'mlflow.db'}",
            "--artifacts-destination",
            str(study_root / "mlflow-artifacts"),
            "--host",
            HEAD_IP,
            "--port",
            "5000",
            "--workers",
            "1",
        ),
        stdout=mlflow_log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    _start_ray_nodes(env)

    def mlflow_up() -> bool:
        r = subprocess.run(
            _in(
                HEAD_NS,
                sys.executable,
                "-c",
                f"import urllib.request;urllib.request.urlopen("
                f"'http://{HEAD_IP}:5000/health', timeout=2)",
            ),
            capture_output=True,
            env=env,
            timeout=30,
        )
        return r.returncode == 0

    _wait_for(mlflow_up, 90, "the MLflow server on the head host")

    args = launch_args(
        tmp_path, "--address", f"{HEAD_IP}:6379", "--tracking-uri", f"http://{HEAD_IP}:5000"
    )
    r = subprocess.run(
        _in(HEAD_NS, *args),
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

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

    password, token = secrets.token_urlsafe(18), secrets.token_hex(16)
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        "RAY_USAGE_STATS_ENABLED": "0",
        "MLFLOW_TRACKING_USERNAME": "study-admin",
        "MLFLOW_TRACKING_PASSWORD": password,
    }
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    _start_ray_nodes(env)
    args = launch_args(
        tmp_path, "--address", f"{HEAD_IP}:6379", "--mlflow-auth", "--mlflow-host", HEAD_IP
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
