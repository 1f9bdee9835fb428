"""Results that the tracking server could not take, kept in the study dir until it can.

A trial records through a :class:`SpoolingClient`: each MLflow write that fails for want of a
server (connection refused, timeouts, 5xx after the bounded retries) is appended to
``STUDY/spool/RUN_ID.jsonl`` (artifacts copied beside it) and the trial goes on. The spool is
replayed in order by the trial at its next write once the server answers, by the launcher when
it has restarted its server, at the end of the study, and at ``--resume``.

Every replayed write is idempotent: metrics keep the timestamp they were taken with (MLflow
ignores an identical metric logged twice), params keep their value, tags and statuses are set
again, and an artifact overwrites itself. A value therefore arrives once however many times a
replay is cut short.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trainables.log import Log

#: How long a client that found the server down writes straight to the spool before trying it.
OFFLINE_SECONDS = 30.0
#: What a client says, once per outage, before its first write goes to the spool.
KEEPING = "keeping this run's writes"


def spool_dir(root: Path) -> Path:
    return Path(root) / "spool"


def _is_outage(e: BaseException) -> bool:
    """Whether ``e`` means that the server could not be reached or could not answer (worth
    keeping for later), as opposed to a write that the server refused (a bug to surface)."""
    from mlflow.exceptions import MlflowException

    if isinstance(e, MlflowException):
        return e.error_code in ("INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE")
    return isinstance(e, (ConnectionError, TimeoutError, OSError))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path``'s companion lock file (trial and launcher take turns)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a line cut short by a kill
            rows.append(json.loads(line))
    return rows


def _replay(c: Any, row: dict[str, Any]) -> None:
    from mlflow.entities import Metric, Param

    op, run_id = row["op"], row["run_id"]
    if op == "log_batch":
        c.log_batch(
            run_id,
            metrics=[Metric(k, v, ts, step) for k, v, ts, step in row.get("metrics", [])],
            params=[Param(k, v) for k, v in row.get("params", [])],
        )
    elif op == "set_tag":
        c.set_tag(run_id, row["key"], row["value"])
    elif op == "set_terminated":
        c.set_terminated(run_id, status=row["status"], end_time=row.get("end_time"))
    elif op == "log_artifact":
        c.log_artifact(run_id, row["path"], row.get("artifact_path"))
    else:
        raise ValueError(f"unknown spooled operation {op!r}")


def _flush_file(c: Any, path: Path) -> tuple[int, str]:
    """Replay one spool file in order, under its lock; keep what could not be sent.
    Returns (writes sent, why the rest could not be sent: '' when nothing is left)."""
    with _locked(path):
        rows = _read(path)
        sent, done, why = 0, 0, ""
        for row in rows:
            try:
                _replay(c, row)
            except Exception as e:
                if _is_outage(e):
                    why = f"{type(e).__name__}: {str(e)[:300]}"
                    break
                # Refused by the server (it will refuse it again): set aside, not blocking.
                with open(path.with_suffix(".rejected"), "a") as f:
                    f.write(json.dumps({**row, "error": f"{type(e).__name__}: {e}"[:1000]}) + "\n")
            else:
                sent += 1
            done += 1
        rest = rows[done:]
        if rest:
            tmp = path.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in rest))
            tmp.replace(path)
            return sent, why
        path.unlink(missing_ok=True)
        shutil.rmtree(path.with_suffix(".files"), ignore_errors=True)
        return sent, ""


def pending(root: Path) -> list[Path]:
    """The spool files of the study (one per run with writes not yet sent)."""
    d = spool_dir(root)
    return sorted(d.glob("*.jsonl")) if d.is_dir() else []


def sync(root: Path, c: Any, log: Log) -> int:
    """Send every spooled write of the study that the server now takes; returns how many were
    sent. Files that still cannot be sent stay (a later sync or ``--resume`` sends them)."""
    total = 0
    left: list[str] = []
    for path in pending(root):
        sent, why = _flush_file(c, path)
        total += sent
        if why:
            left.append(why)
    if total:
        log(f"[study] synced {total} spooled MLflow write(s) kept while the server was down")
    if left:
        log(
            f"[study] {len(left)} run(s) still have spooled writes in {spool_dir(root)} ({left[0]})"
        )
    return total


class SpoolingClient:
    """The MLflow writes of one trial's run, spooled to the study dir while the server is down;
    reads and run creation pass straight through to the wrapped ``MlflowClient``."""

    def __init__(self, c: Any, root: Path, run_id: str, log: Log | None = None) -> None:
        self._c = c
        self._path = spool_dir(root) / f"{run_id}.jsonl"
        self._files = self._path.with_suffix(".files")
        self._offline_until = 0.0
        self._down = False
        self._log = log or (lambda m: print(m, file=sys.stderr, flush=True))
        self.spooled = 0

    def __getattr__(self, name: str) -> Any:  # reads (get_metric_history, ...) pass through
        return getattr(self._c, name)

    # -- writes ----------------------------------------------------------------------------
    def log_batch(self, run_id: str, metrics: Any = (), params: Any = (), tags: Any = ()) -> None:
        row = {
            "op": "log_batch",
            "run_id": run_id,
            "metrics": [[m.key, m.value, m.timestamp, m.step] for m in metrics],
            "params": [[p.key, p.value] for p in params],
        }
        if tags:
            raise ValueError("SpoolingClient.log_batch: set tags with set_tag")
        self._write(row)

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        self._write({"op": "set_tag", "run_id": run_id, "key": key, "value": str(value)})

    def set_terminated(self, run_id: str, status: str = "FINISHED", end_time: Any = None) -> None:
        end = end_time if end_time is not None else int(time.time() * 1000)
        self._write({"op": "set_terminated", "run_id": run_id, "status": status, "end_time": end})

    def log_artifact(self, run_id: str, local_path: str, artifact_path: str | None = None) -> None:
        self._write(
            {
                "op": "log_artifact",
                "run_id": run_id,
                "path": str(local_path),
                "artifact_path": artifact_path,
            }
        )

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / Path(artifact_file).name
            path.write_text(text)
            parent = str(Path(artifact_file).parent)
            self.log_artifact(run_id, str(path), None if parent == "." else parent)

    # -- the spool -------------------------------------------------------------------------
    def flush(self) -> bool:
        """Send what is spooled; True when nothing is left."""
        if not self._path.exists():
            return True
        sent, why = _flush_file(self._c, self._path)
        if sent:
            self._log(f"[spool] sent {sent} MLflow write(s) kept while the server was down")
        return not why

    def _write(self, row: dict[str, Any]) -> None:
        now = time.time()
        if now >= self._offline_until:
            try:
                if self.flush():
                    _replay(self._c, row)
                    self._down = False
                    return
            except Exception as e:
                if not _is_outage(e):
                    raise
                if not self._down:
                    self._log(
                        f"[spool] the MLflow server does not answer ({type(e).__name__}); "
                        f"{KEEPING} in {self._path.parent} until it does"
                    )
            self._down = True
            self._offline_until = now + OFFLINE_SECONDS
        self._append(row)

    def _append(self, row: dict[str, Any]) -> None:
        if row["op"] == "log_artifact":  # the trial's temporary files go away: keep a copy
            src = Path(row["path"])
            dst = self._files / uuid.uuid4().hex / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
            row = {**row, "path": str(dst)}
        with _locked(self._path), open(self._path, "a") as f:
            f.write(json.dumps(row) + "\n")
        self.spooled += 1
