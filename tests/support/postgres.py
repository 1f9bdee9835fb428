"""A throwaway PostgreSQL server in a folder, on 127.0.0.1, with a password (SCRAM): what the
load test and the tests of ``--tracking-backend`` run against. Debian's ``postgresql`` package
provides the binaries; as root the server runs as the ``postgres`` user (it refuses root)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from study.tracking.server import free_port


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if not found:
        raise RuntimeError(
            f"PostgreSQL's {name} is not installed: apt-get install postgresql (Debian's package)"
        )
    return found


class LocalPostgres:
    """``initdb`` + ``pg_ctl start`` in a fresh temporary folder (under /tmp, which the
    ``postgres`` user can reach); :meth:`stop` stops it and removes the folder. The database
    ``name`` exists, owned by user ``postgres``, whose password is ``password``."""

    def __init__(self, password: str, name: str = "study") -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="pa-pg-"))
        self.password = password
        self.name = name
        self.port = free_port()
        self.data = self.folder / "data"
        self._user = "postgres" if os.geteuid() == 0 else None

    @property
    def uri(self) -> str:
        """The database's URI, without the password (give it as PGPASSWORD)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.name}"

    def env(self) -> dict[str, str]:
        return {**os.environ, "PGPASSWORD": self.password}

    def _run(self, *cmd: str) -> None:
        r = subprocess.run(
            list(cmd), capture_output=True, text=True, user=self._user, timeout=120, env=self.env()
        )
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:2])} failed: {r.stderr.strip() or r.stdout}")

    def start(self) -> LocalPostgres:
        pwfile = self.folder / "pw"
        pwfile.write_text(self.password + "\n")
        if self._user:
            info = pwd.getpwnam(self._user)
            for p in (self.folder, pwfile):
                os.chown(p, info.pw_uid, info.pw_gid)
        try:
            self._run(
                _binary("initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
            )
        finally:
            pwfile.unlink()
        opts = f"-h 127.0.0.1 -p {self.port} -k {self.folder} -c max_connections=300"
        self._run(
            _binary("pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            opts,
            "-l",
            str(self.folder / "postgres.log"),
            "-w",
            "start",
        )
        self.create_database(self.name)
        return self

    def create_database(self, name: str) -> str:
        """Create database ``name``; return its URI (without the password)."""
        port = str(self.port)
        self._run(_binary("createdb"), "-h", "127.0.0.1", "-p", port, "-U", "postgres", name)
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(_binary("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
            deadline = time.time() + 30
            while (self.data / "postmaster.pid").exists() and time.time() < deadline:
                time.sleep(0.2)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
