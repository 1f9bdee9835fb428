"""A real MLflow tracking server for one study: SQLite (or a PostgreSQL database the user gives)
as the backend store and proxied artifacts in the study dir, bound to 127.0.0.1 unless asked
otherwise, optionally behind MLflow's basic-auth app; started and stopped by the launcher."""

from __future__ import annotations

import http.client
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM it when the process that started it dies, however it
    dies (Linux's PR_SET_PDEATHSIG). The server stops its uvicorn on SIGTERM, so a SIGKILLed
    launcher leaves no server behind."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def health(uri: str, timeout: float = 2.0, *, auth_counts: bool = True) -> str:
    """'' when the MLflow server at ``uri`` answers ``/health`` (with ``auth_counts``, a 401/403
    from a server that wants credentials counts), else why not: the error, or the status."""
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as r:
            return "" if r.status == 200 else f"HTTP {r.status}"
    except urllib.error.HTTPError as e:
        return "" if auth_counts and e.code in (401, 403) else f"HTTP {e.code}"
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        # not up yet, or another program on the port (then our server exits)
        return str(getattr(e, "reason", e)) or type(e).__name__


class ServerExited(RuntimeError):
    """The server process ended before it answered its health check."""


#: The credentials the basic-auth server's admin account takes, from the launcher's environment
#: (MLflow's clients read the same variables, so the launcher and its workers get through).
AUTH_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


#: The server's connection pool to its store. MLflow's default (5, overflow 10) runs dry at about
#: 30 concurrent writers, on SQLite as on PostgreSQL: requests fail with "QueuePool limit ...
#: reached" after 30 s (``python -m study.bench.load``: 16 writers held, 32 did not). 80
#: connections cover the server's 40 request threads twice; 64 writers then hold on both.
POOL_ENV = {"MLFLOW_SQLALCHEMYSTORE_POOL_SIZE": "20", "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW": "60"}


class MlflowServer:
    """``mlflow server`` as a child process, started with :meth:`start`, stopped with
    :meth:`stop`; :meth:`start` again restarts it on the same store and port."""

    def __init__(
        self,
        root: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        backend_uri: str = "",
        auth: bool = False,
    ) -> None:
        self.root = Path(root)
        self.host = host
        self._auto_port = not port
        self.port = port or free_port(host)
        #: Empty: SQLite in the study dir.
        self.backend_uri = backend_uri or f"sqlite:///{self.root / 'mlflow.db'}"
        self.auth = auth
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.root / "mlflow-server.log"

    @property
    def pgid(self) -> int:
        """The server's process group (it runs in a session of its own)."""
        if self.proc is None:
            raise RuntimeError("the MLflow server has not started")
        return self.proc.pid

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 90.0) -> MlflowServer:
        """Start the server and wait for its health check. On a first start with a port of
        our choosing, a port taken meanwhile (Ray's services start on random ports) is
        replaced by another; a restart keeps its port, which the trials know."""
        first, attempts = self.proc is None, 3
        for attempt in range(1, attempts + 1):
            self._spawn()
            try:
                self._wait_healthy(timeout)
                return self
            except ServerExited:
                if not (first and self._auto_port) or attempt == attempts:
                    raise
                self.port = free_port(self.host)
        return self

    def _spawn(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "mlflow-artifacts").mkdir(exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            self.backend_uri,
            "--artifacts-destination",
            str(self.root / "mlflow-artifacts"),
            "--serve-artifacts",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        # No GenAI job consumers (7 processes of ~240 MB each): a study records runs only.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        for k, v in POOL_ENV.items():  # the user's values win
            env.setdefault(k, v)
        if self.auth:
            cmd += ["--app-name", "basic-auth"]
            env.update(self._auth_env())
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            preexec_fn=_die_with_parent,
        )

    def _auth_env(self) -> dict[str, str]:
        """The basic-auth app's settings: its user store in the study dir (passwords hashed),
        no permission for any other user by default, and the admin account from the
        environment (passed to the server process only, never written down)."""
        user, password = (os.environ.get(k, "") for k in AUTH_ENV)
        if not user or not password:
            raise RuntimeError(f"--mlflow-auth needs {' and '.join(AUTH_ENV)} set")
        ini = self.root / "mlflow-auth.ini"
        ini.write_text(
            "[mlflow]\n"
            "default_permission = NO_PERMISSIONS\n"
            f"database_uri = sqlite:///{self.root / 'mlflow-auth.db'}\n"
        )
        return {
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            "MLFLOW_AUTH_ADMIN_USERNAME": user,
            "MLFLOW_AUTH_ADMIN_PASSWORD": password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32),
        }

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServerExited(
                    f"the MLflow server exited with {self.proc.returncode}; see {self.log_path}"
                )
            if not health(self.uri, auth_counts=False):  # our own /health is open: 200
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(
            f"the MLflow server did not answer /health within {timeout:.0f}s; see {self.log_path}"
        )

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass
