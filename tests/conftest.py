"""Shared test fixtures: one tiny CPU config that every trial test builds on."""

from __future__ import annotations

import contextlib
import os
import time

import psutil
import pytest
import torch

# Tests share the machine's two cores; more threads than cores makes OpenMP spin.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

TINY = dict(
    size=32,
    frames=4,
    n_action_train=16,
    n_action_test=16,
    n_privacy_train=16,
    n_privacy_test=16,
    batch_size=4,
    privacy_batch_size=4,
    eval_batch_size=8,
    identity_epochs=1,
    pretrain_action_epochs=1,
    pretrain_privacy_epochs=1,
    minimax_epochs=1,
    eval_action_epochs=1,
    eval_privacy_epochs=1,
    max_steps_per_epoch=2,
    frame_gap=2,
)


@pytest.fixture
def tiny_cfg():
    from trainables.config import config_for

    return config_for("smoke", **TINY)


@pytest.fixture(autouse=True)
def _stop_mlflow_servers(monkeypatch):
    """Every MlflowServer a test starts is stopped when the test ends, passed or failed."""
    from study.tracking.server import MlflowServer

    started: list[MlflowServer] = []
    real_start = MlflowServer.start

    def start(self, *args, **kwargs):
        started.append(self)
        return real_start(self, *args, **kwargs)

    monkeypatch.setattr(MlflowServer, "start", start)
    yield
    for server in started:
        server.stop()


_SESSION_START = time.time()
#: Processes a test may start that must not outlive it: Ray's head, MLflow servers, launchers.
_WATCHED = ("gcs_server", "raylet")
#: Every process this session starts inherits this mark, even one reparented when its parent
#: died; only those count as left behind (a study another user runs on this machine is not
#: this session's, though its raylet started while the tests ran).
_MARK = "ANON_TEST_SESSION"
os.environ[_MARK] = f"{os.getpid()}-{_SESSION_START}"


def _ours(p: psutil.Process) -> bool:
    try:
        return p.environ().get(_MARK) == os.environ[_MARK]
    except psutil.Error:
        return False


def _leftovers(base: str) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["name", "cmdline", "create_time"]):
        try:
            if p.pid == os.getpid() or p.info["create_time"] < _SESSION_START - 1:
                continue
            cmd = " ".join(p.info["cmdline"] or [])
            if (p.info["name"] in _WATCHED or base in cmd) and _ours(p):
                out.append(p)
        except psutil.Error:
            continue
    return out


def pytest_sessionfinish(session, exitstatus):
    """Every test stops what it started: at the end no process of this session's Ray or of
    its temporary study dirs may be left (a few seconds of grace for exits under way)."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None:
        return
    base = str(factory.getbasetemp())
    deadline = time.time() + 30
    left = _leftovers(base)
    while left and time.time() < deadline:
        time.sleep(1)
        left = _leftovers(base)
    if left:
        names = [f"{p.pid} {' '.join(p.cmdline())[:120]}" for p in left if p.is_running()]
        print("\nprocesses left behind by the tests:\n  " + "\n  ".join(names))
        for p in left:
            with contextlib.suppress(psutil.Error):
                p.kill()
        session.exitstatus = 1


_SESSION_START = time.time()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The figures the fault, cluster and load tests measured in this session
    (tests/study_helpers.figure), printed at the end of the run."""
    import json
    from pathlib import Path

    path = Path(os.environ.get("TEST_ARTIFACTS", "test-artifacts")) / "reliability.jsonl"
    if not path.exists():
        return
    rows = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            row = json.loads(line)
            if row.get("time", 0) >= _SESSION_START:
                rows.append(row)
    if rows:
        terminalreporter.section("figures measured by the tests")
        for row in rows:
            terminalreporter.write_line(f"{row['figure']}: {row['value']}")
    page = os.environ.get("RELIABILITY_MARKDOWN")
    if page:
        from tests.study_helpers import write_figures_page

        write_figures_page(Path(page), rows, int(exitstatus))
        terminalreporter.write_line(f"figures written to {page}")
