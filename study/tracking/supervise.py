"""The launcher's watch over the MLflow server it started: a server that dies is restarted on
the same store and port, the launcher says so, and the writes that trials spooled meanwhile are
synced once it is back."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from study.tracking.server import MlflowServer
from trainables.log import Log

#: Restart attempts in a row before the supervisor gives up (the spool keeps the results).
MAX_ATTEMPTS = 5


class ServerSupervisor:
    """A daemon thread that polls the server process; use as a context manager."""

    def __init__(
        self,
        server: MlflowServer,
        root: Path,
        log: Log,
        *,
        on_restart: Callable[[MlflowServer], None] | None = None,
        interval: float = 1.0,
    ) -> None:
        self.server = server
        self.root = Path(root)
        self.log = log
        self.on_restart = on_restart
        self.interval = interval
        #: Seconds from noticing each death to /health answering again.
        self.restarts: list[float] = []
        self.gave_up = False
        self._stop = threading.Event()
        self._up = threading.Event()
        self._up.set()
        self._thread = threading.Thread(target=self._watch, name="mlflow-supervisor", daemon=True)

    def __enter__(self) -> ServerSupervisor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    def wait_up(self, timeout: float = 180.0) -> bool:
        """Block until the server is up, or the supervisor gave up; False on timeout. A death
        that the watch has not noticed yet counts as down."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.server.proc
            alive = proc is not None and proc.poll() is None
            if self.gave_up or (alive and self._up.is_set()):
                return True
            time.sleep(0.2)
        return False

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            proc = self.server.proc
            if proc is None or proc.poll() is None:
                continue
            self._up.clear()
            self.log(
                f"[study] the MLflow server died (exit code {proc.returncode}); restarting it on "
                f"the same store and port ({self.server.uri}); trials keep their results in "
                f"{self.root / 'spool'} meanwhile"
            )
            self._restart()
            self._up.set()
            if self.gave_up:
                return

    def _restart(self) -> None:
        from study.tracking import client as tracking
        from study.tracking import spool

        t0 = time.monotonic()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if self._stop.is_set():
                return
            try:
                self.server.start()
            except Exception as e:
                self.log(f"[study] restart {attempt} of the MLflow server failed: {e}")
                time.sleep(min(2.0**attempt, 30.0))
                continue
            seconds = time.monotonic() - t0
            self.restarts.append(seconds)
            self.log(
                f"[study] the MLflow server is back after {seconds:.1f} s "
                f"(restart {len(self.restarts)})"
            )
            if self.on_restart is not None:
                self.on_restart(self.server)
            try:
                spool.sync(self.root, tracking.client(self.server.uri), self.log)
            except Exception as e:
                self.log(f"[study] the spool could not be synced yet: {e}")
            return
        self.gave_up = True
        self.log(
            f"[study] the MLflow server could not be restarted ({MAX_ATTEMPTS} attempts; see "
            f"{self.server.log_path}); results stay in {self.root / 'spool'} and --resume "
            f"syncs them"
        )
