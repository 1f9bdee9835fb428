"""Many writers on one tracking server, and a study on PostgreSQL: the tracking server on
``--tracking-backend``, the Optuna study on ``--optuna-storage``, the password only in
PGPASSWORD. PostgreSQL is Debian's server, started by each test in a temporary folder on
127.0.0.1 and stopped by it. ``make test-heavy`` runs these (CI runs them after ``make test``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from study.bench import load as load_bench
from tests.study_helpers import figure as _figure
from tests.study_helpers import launch_args

pytestmark = [pytest.mark.slow, pytest.mark.heavy]


def _need_postgres() -> None:
    from tests.support.postgres import _binary

    try:
        _binary("initdb")
    except RuntimeError as e:
        pytest.fail(str(e))  # CI installs it (make test-heavy); a skip would hide the backend


@pytest.fixture
def postgres():
    _need_postgres()
    from tests.support.postgres import LocalPostgres

    pg = LocalPostgres(secrets.token_urlsafe(18)).start()
    try:
        yield pg
    finally:
        pg.stop()


@pytest.mark.parametrize("backend", load_bench.BACKENDS)
def test_concurrent_writers_each_arrive_once(backend, request, monkeypatch):
    """8, 32 and 64 writers, each a trial's params, 20 steps of 5 metrics, an artifact and its
    end; every value is read back. 8 must hold; the largest count that held is the figure."""
    uri = "sqlite"
    if backend == "postgresql":
        pg = request.getfixturevalue("postgres")
        monkeypatch.setenv("PGPASSWORD", pg.password)  # the server's and this process's clients
        uri = pg.uri
    records = load_bench.scan(uri, [8, 32, 64], load_bench.Load(), log=print)
    assert {r["backend"] for r in records} == {backend}
    assert records[0]["writers"] == 8 and records[0]["held"], records[0]
    held = load_bench.largest_held(records)[backend]
    _figure(f"concurrent writers held on {backend} (of 8, 32, 64)", held)


def test_a_study_on_postgresql_keeps_its_password_out_of_every_record(tmp_path, postgres):
    """The launcher's server on ``--tracking-backend postgresql://…`` and a search's Optuna
    study on ``--optuna-storage postgresql://…``; the password comes from PGPASSWORD and
    appears in no file of the study, no param and no tag."""
    import optuna
    from mlflow.tracking import MlflowClient

    env = {**os.environ, "PGPASSWORD": postgres.password}
    optuna_db = postgres.create_database("optuna")
    args = launch_args(
        tmp_path,
        "--num-samples",
        "1",
        "--tracking-backend",
        postgres.uri,
        "--optuna-storage",
        optuna_db,
        space="pareto_search",
    )
    r = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    root = tmp_path / "pareto_search"
    assert not (root / "mlflow.db").exists() and not (root / "optuna.db").exists()
    os.environ["PGPASSWORD"] = postgres.password  # for this process's clients
    try:
        c = MlflowClient(postgres.uri)
        exp = c.get_experiment_by_name("pareto_search")
        assert exp is not None
        found = c.search_runs([exp.experiment_id])
        parents = [x for x in found if x.data.tags.get("study.role") == "parent"]
        children = [x for x in found if x.data.tags.get("study.role") == "trial"]
        assert len(parents) == 1 and parents[0].info.status == "FINISHED"
        assert len(children) == 1 and children[0].info.status == "FINISHED"
        study = optuna.load_study(study_name="pareto_search", storage=optuna_db)
        assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]
        for run in found:
            for k, v in {**run.data.params, **run.data.tags}.items():
                assert postgres.password not in v, k
    finally:
        os.environ.pop("PGPASSWORD", None)
    assert postgres.password not in r.stdout + r.stderr
    leaks = _files_containing(root, postgres.password)
    assert not leaks, leaks


def _files_containing(root: Path, secret: str) -> list[str]:
    """Files under ``root`` whose bytes contain ``secret`` (grep -r, binary files included)."""
    if shutil.which("grep") is None:
        pytest.fail("grep is needed to search the study dir")
    r = subprocess.run(
        ["grep", "-rlaF", "--", secret, str(root)], capture_output=True, text=True, timeout=120
    )
    return r.stdout.split()


def test_bad_backends_are_refused_before_anything_starts(tmp_path, postgres):
    base = launch_args(tmp_path)
    cases = {
        ("--tracking-backend", "mysql://x/y"): "give sqlite:///PATH or postgresql://",
        (
            "--tracking-backend",
            postgres.uri.replace("postgres@", "postgres:pw@"),
        ): "take the password out of the URI",
        ("--tracking-backend", postgres.uri): "cannot connect",  # no PGPASSWORD
        ("--optuna-storage", postgres.uri): "applies to search spaces",
        (
            "--tracking-backend",
            postgres.uri,
            "--optuna-storage",
            postgres.uri,
        ): "a database of its own",
        ("--tracking-uri", "http://127.0.0.1:9", "--mlflow-auth"): "--mlflow-auth applies to",
        ("--mlflow-auth",): "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD",
    }
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PGPASSWORD", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    }
    for extra, message in cases.items():
        r = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 2 and message in r.stderr, (extra, r.stderr[-2000:])
        assert "Traceback" not in r.stderr and "[study]" not in r.stderr
    short = {**env, "MLFLOW_TRACKING_USERNAME": "u", "MLFLOW_TRACKING_PASSWORD": "short"}
    r = subprocess.run(
        [*base, "--mlflow-auth"], capture_output=True, text=True, timeout=120, env=short
    )
    assert r.returncode == 2 and "at least 12 characters" in r.stderr
    assert not (tmp_path / "smoke" / "mlflow.db").exists()
