"""Checks a launch makes before it starts any server or Ray: a study dir it can write, a
tracking server that answers, and trial resources that a node of this machine can give. Each
failure is a ValueError naming the flag and the fix."""

from __future__ import annotations

import os
import tempfile
import time

from study.config import StudyConfig

#: Backend stores the launcher's server and the Optuna study may use.
DATABASES = ("sqlite:///", "postgresql://", "postgresql+psycopg://", "postgresql+psycopg2://")
#: MLflow's basic-auth app refuses shorter admin passwords.
MIN_PASSWORD = 12


def check_study_dir(study: StudyConfig) -> None:
    """The study dir (and its parent folders) can be created and written."""
    root = study.root
    for p in (root, *root.parents):
        if p.exists():
            if not p.is_dir():
                raise ValueError(
                    f"--study-dir: {p} is a file, not a folder; choose another --study-dir"
                )
            break
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".write-test-"):
            pass
    except OSError as e:
        raise ValueError(
            f"--study-dir: cannot write the study in {root} ({e.strerror or e}); choose a "
            "writable --study-dir"
        ) from e


def check_tracking(uri: str, timeout: float = 6.0) -> None:
    """An ``http(s)`` tracking server answers ``/health`` within ``timeout`` seconds."""
    if not uri.startswith(("http://", "https://")):
        raise ValueError(
            f"--tracking-uri {uri}: give an MLflow tracking server, http://HOST:PORT (leave it "
            "empty and the launcher starts one)"
        )
    from study.tracking.server import health

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        last = health(uri)
        if not last:
            return
        time.sleep(0.5)
    raise ValueError(
        f"--tracking-uri {uri}: no MLflow server answered within {timeout:.0f} s ({last}); "
        "start it, or leave --tracking-uri empty and the launcher starts one"
    )


def check_local_resources(study: StudyConfig) -> None:
    """Without ``--address`` the cluster is this machine: a trial cannot reserve more CPUs or
    GPUs than it has."""
    if study.address:
        return  # a remote cluster: checked against its nodes once Ray is up
    cpus = os.cpu_count() or 1
    if study.cpus_per_trial > cpus:
        raise ValueError(
            f"--cpus-per-trial {study.cpus_per_trial:g}: this machine has {cpus} CPUs, so no "
            f"trial could start; use --cpus-per-trial {cpus} or less"
        )
    if study.gpus_per_trial > 0:
        import torch

        gpus = torch.cuda.device_count()
        if study.gpus_per_trial > gpus:
            raise ValueError(
                f"--gpus-per-trial {study.gpus_per_trial:g}: this machine has {gpus} GPU(s); "
                + ("use --gpus-per-trial 0" if gpus == 0 else f"use at most {gpus}")
            )


def check_cluster_resources(study: StudyConfig, nodes: list[dict]) -> None:
    """``nodes`` (``ray.nodes()``): some live node must offer a trial's CPUs and GPUs."""
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive")]
    cpus = max((r.get("CPU", 0.0) for r in alive), default=0.0)
    gpus = max((r.get("GPU", 0.0) for r in alive), default=0.0)
    if study.cpus_per_trial > cpus:
        raise ValueError(
            f"--cpus-per-trial {study.cpus_per_trial:g}: the largest node of the cluster has "
            f"{cpus:g} CPUs, so no trial could start"
        )
    if study.gpus_per_trial > gpus:
        raise ValueError(
            f"--gpus-per-trial {study.gpus_per_trial:g}: the largest node of the cluster has "
            f"{gpus:g} GPU(s), so no trial could start"
        )


def check_database(flag: str, uri: str, timeout: int = 5) -> None:
    """``uri`` names a database the launcher can use: SQLite, or PostgreSQL that answers within
    ``timeout`` seconds, with no password written in the URI."""
    if not uri.startswith(DATABASES):
        raise ValueError(
            f"{flag} {uri}: give sqlite:///PATH or postgresql://USER@HOST:PORT/DB (or leave it "
            "empty for SQLite in the study dir)"
        )
    if not uri.startswith("postgresql"):
        return
    from urllib.parse import urlsplit

    if urlsplit(uri).password:
        raise ValueError(
            f"{flag}: take the password out of the URI (it would show in process lists and "
            "logs); put it in PGPASSWORD or ~/.pgpass"
        )
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": timeout})
        with engine.connect():
            pass
        engine.dispose()
    except ImportError as e:
        raise ValueError(
            f"{flag}: PostgreSQL needs its driver ({e}); pip install 'psycopg[binary]'"
        ) from None
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{flag} {uri}: cannot connect ({first})") from None


def check_tracking_options(study: StudyConfig, is_search: bool) -> None:
    """The options of the launcher's own server and of the Optuna storage fit together, and the
    credentials that ``--mlflow-auth`` needs are in the environment."""
    own = not study.tracking_uri
    for name in ("tracking_backend", "mlflow_auth"):
        if getattr(study, name) and not own:
            raise ValueError(
                f"--{name.replace('_', '-')} applies to the server the launcher starts; with "
                "--tracking-uri your server has its own store and authentication"
            )
    if study.optuna_storage and study.optuna_storage == study.tracking_backend:
        raise ValueError(
            "--optuna-storage: give Optuna a database of its own, not --tracking-backend's "
            "(MLflow and Optuna each keep their schema version in an alembic_version table)"
        )
    if study.tracking_backend:
        check_database("--tracking-backend", study.tracking_backend)
    if study.optuna_storage:
        if not is_search:
            raise ValueError(
                f"--optuna-storage applies to search spaces; --space {study.space} is a grid"
            )
        check_database("--optuna-storage", study.optuna_storage)
    if study.mlflow_auth:
        from study.tracking.server import AUTH_ENV

        missing = [k for k in AUTH_ENV if not os.environ.get(k)]
        if missing:
            raise ValueError(
                f"--mlflow-auth: set {' and '.join(missing)} in the environment of the launcher "
                "and of every Ray node (the server's admin account, and how trials log in)"
            )
        if len(os.environ[AUTH_ENV[1]]) < MIN_PASSWORD:
            raise ValueError(
                f"--mlflow-auth: {AUTH_ENV[1]} must have at least {MIN_PASSWORD} characters "
                "(MLflow's basic-auth app refuses shorter passwords)"
            )
