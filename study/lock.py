"""One study dir, one launcher, and nothing left running after one dies.

The launcher holds an exclusive lock (``flock``) on ``STUDY/launcher.lock``, which holds its PID;
the kernel drops the lock when the process dies, however it dies, so a lock whose PID is gone is
simply taken over. The process groups the launcher starts (its MLflow server) are recorded in
``STUDY/processes.json``; the next launcher on the study dir stops any that a killed launcher
left running."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import psutil

LOCK = "launcher.lock"
PROCESSES = "processes.json"


class StudyLock:
    """The study dir's lock, held from :meth:`acquire` to :meth:`release`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.fd: int | None = None

    def acquire(self, log: Callable[[str], None]) -> None:
        """Take the lock, or raise ValueError naming the launcher PID that holds it."""
        path = self.root / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ValueError(
                f"{self.root} is in use by the launcher with PID {holder}: wait for it to end, "
                f"stop it (kill {holder}), or choose another --experiment or --study-dir"
            ) from None
        previous = os.pread(fd, 64, 0).decode(errors="replace").strip()
        if previous and previous != str(os.getpid()):
            log(f"[study] took over the lock of launcher PID {previous}, which is gone")
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _records(root: Path) -> dict[str, int]:
    try:
        return {k: int(v) for k, v in json.loads((root / PROCESSES).read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def _write(root: Path, recs: dict[str, int]) -> None:
    """Replace the records atomically (no file when there are none)."""
    path = root / PROCESSES
    if not recs:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    tmp = root / f"{PROCESSES}.tmp{os.getpid()}"
    tmp.write_text(json.dumps(recs))
    os.replace(tmp, path)


def record(root: Path, name: str, pgid: int) -> None:
    """Remember process group ``pgid`` (started by this launcher) under ``name``."""
    _write(root, {**_records(root), name: pgid})


def forget(root: Path, name: str) -> None:
    _write(root, {k: v for k, v in _records(root).items() if k != name})


def _members(pgid: int, root: Path) -> list[psutil.Process]:
    """The live processes of group ``pgid``, if one of them names the study dir on its command
    line (the MLflow server does): a recycled PID or group is never touched."""
    members = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if os.getpgid(p.pid) == pgid:
                members.append(p)
        except (ProcessLookupError, PermissionError):
            continue
    ours = any(str(root) in " ".join(p.info["cmdline"] or []) for p in members)
    return members if ours else []


def stop_leftovers(root: Path, log: Callable[[str], None], grace: float = 10.0) -> int:
    """Stop the recorded process groups of a launcher that died; return how many processes."""
    recs = _records(root)
    stopped = 0
    for name, pgid in recs.items():
        procs = _members(pgid, root)
        if not procs:
            continue
        log(
            f"[study] a previous launcher left its {name} running ({len(procs)} processes, "
            f"group {pgid}): stopping it"
        )
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        _, alive = psutil.wait_procs(procs, timeout=grace)
        if alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            psutil.wait_procs(alive, timeout=grace)
        stopped += len(procs)
    _write(root, {})
    return stopped
