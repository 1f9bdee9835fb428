"""``python -m study.loadtest``: how many trials can write to one tracking server at once.

N writers (threads spread over a few processes, each with its own ``MlflowClient``) each log a
trial's worth of records at the same time to one MLflow server, the kind the launcher starts:
a run, its params, per-step metrics, a small artifact and its end. Then every value is read
back: each writer's run must hold every param, every metric step exactly once with its value,
the artifact, and the FINISHED status. A number of writers "holds" when no writer raised and
nothing is missing or doubled. It runs against SQLite (the default store) and PostgreSQL
(Debian's server, started in a temporary folder), and prints one line per (backend, N) and a
JSON summary with the largest N that held.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import secrets
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Load:
    """One writer's trial: ``steps`` log_batch calls of ``metrics`` metrics each."""

    params: int = 30
    steps: int = 20
    metrics: int = 5


def _value(writer: int, step: int, k: int) -> float:
    return writer * 1000.0 + step + k / 10.0


def _write_one(uri: str, exp_id: str, writer: int, load: Load) -> str:
    """One writer: a trial's records; returns its run id (raises on any failed call)."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    run = c.create_run(exp_id, run_name=f"writer-{writer}", tags={"writer": str(writer)}).info
    c.log_batch(run.run_id, params=[Param(f"p{j}", f"{writer}-{j}") for j in range(load.params)])
    for step in range(load.steps):
        ts = int(time.time() * 1000)
        c.log_batch(
            run.run_id,
            metrics=[
                Metric(f"m{k}", _value(writer, step, k), ts, step) for k in range(load.metrics)
            ],
        )
    c.log_text(run.run_id, f"writer {writer}\n" * 40, "note.txt")
    c.set_terminated(run.run_id, "FINISHED")
    return run.run_id


def _process(uri: str, exp_id: str, writers: list[int], load: Load) -> list[tuple[int, str]]:
    """A process's share of the writers, as threads; (writer, run id or 'error: ...')."""
    from study.tracking import bound_retries

    bound_retries()  # the retries a trial's client has

    def one(w: int) -> tuple[int, str]:
        try:
            return w, _write_one(uri, exp_id, w, load)
        except Exception as e:
            return w, f"error: {type(e).__name__}: {str(e)[:200]}"

    with ThreadPoolExecutor(max_workers=len(writers)) as pool:
        return list(pool.map(one, writers))


def _check(c: Any, run_id: str, writer: int, load: Load) -> list[str]:
    """What is wrong with a writer's run, as lines (empty: all there, once)."""
    problems = []
    run = c.get_run(run_id)
    want = {f"p{j}": f"{writer}-{j}" for j in range(load.params)}
    if run.data.params != want:
        problems.append(f"writer {writer}: params differ")
    for k in range(load.metrics):
        got = sorted((m.step, m.value) for m in c.get_metric_history(run_id, f"m{k}"))
        if got != [(s, _value(writer, s, k)) for s in range(load.steps)]:
            problems.append(f"writer {writer}: m{k} has {len(got)} points, {load.steps} expected")
    if [a.path for a in c.list_artifacts(run_id)] != ["note.txt"]:
        problems.append(f"writer {writer}: artifact missing")
    if run.info.status != "FINISHED":
        problems.append(f"writer {writer}: status {run.info.status}")
    return problems


def run_load(uri: str, writers: int, load: Load, processes: int = 4) -> dict[str, Any]:
    """``writers`` concurrent writers against the server at ``uri``: seconds, errors, and the
    problems found when reading everything back."""
    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    exp_id = c.create_experiment(f"load-{writers}-{secrets.token_hex(4)}")
    n_proc = max(1, min(processes, writers))
    shares = [list(range(i, writers, n_proc)) for i in range(n_proc)]
    t0 = time.monotonic()
    with mp.get_context("spawn").Pool(n_proc) as pool:
        results = [
            r
            for part in pool.starmap(_process, [(uri, exp_id, s, load) for s in shares])
            for r in part
        ]
    seconds = time.monotonic() - t0
    errors = [f"writer {w}: {r}" for w, r in results if r.startswith("error")]
    problems = [p for w, r in results if not r.startswith("error") for p in _check(c, r, w, load)]
    runs = c.search_runs([exp_id], max_results=5000)
    if len(runs) != writers - len(errors):
        problems.append(f"{len(runs)} runs in the experiment, {writers - len(errors)} expected")
    return {
        "writers": writers,
        "seconds": round(seconds, 2),
        "errors": len(errors),
        "problems": len(problems),
        "held": not errors and not problems,
        "first_error": (errors or problems or [""])[0],
        "writes_per_s": round(writers * (load.steps + 4) / seconds, 1),
    }


def scan(backend: str, counts: list[int], load: Load, log: Any = print) -> list[dict[str, Any]]:
    """Start a server on ``backend`` (and PostgreSQL for it), run each count of writers until
    one does not hold, stop everything; one record per count run."""
    from study.mlflow_server import MlflowServer

    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pa-load-") as d:
        pg = None
        before = os.environ.get("PGPASSWORD")
        if backend == "postgresql":
            from study.postgres import LocalPostgres

            pg = LocalPostgres(secrets.token_urlsafe(16)).start()
            os.environ["PGPASSWORD"] = pg.password  # the server's and this process's clients
        try:
            server = MlflowServer(Path(d), backend_uri=pg.uri if pg else "").start()
            try:
                for n in counts:
                    rec = {"backend": backend, **run_load(server.uri, n, load)}
                    log(
                        f"{backend:<10} writers={n:<3} held={rec['held']!s:<5} "
                        f"errors={rec['errors']} problems={rec['problems']} "
                        f"{rec['seconds']:.1f} s  {rec['first_error'][:160]}"
                    )
                    out.append(rec)
                    if not rec["held"]:
                        break
            finally:
                server.stop()
        finally:
            if pg is not None:
                pg.stop()
                if before is None:
                    os.environ.pop("PGPASSWORD", None)
                else:
                    os.environ["PGPASSWORD"] = before
    return out


def largest_held(records: list[dict[str, Any]]) -> dict[str, int]:
    best: dict[str, int] = {}
    for r in records:
        if r["held"]:
            best[r["backend"]] = max(best.get(r["backend"], 0), r["writers"])
        else:
            best.setdefault(r["backend"], 0)
    return best


def _log(msg: str) -> None:
    print(msg, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m study.loadtest",
        description="Concurrent writers against the launcher's kind of MLflow server, on "
        "SQLite and PostgreSQL; prints the largest number of writers that held.",
    )
    p.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated backends")
    p.add_argument("--writers", default="1,8,16,32,64", help="comma-separated writer counts")
    p.add_argument("--steps", type=int, default=Load.steps, help="metric batches per writer")
    args = p.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b]
    bad = [b for b in backends if b not in BACKENDS]
    if bad:
        print(f"error: --backends: unknown {bad}; choose from {list(BACKENDS)}", file=sys.stderr)
        return 2
    try:
        counts = [int(n) for n in args.writers.split(",") if n]
    except ValueError:
        print(f"error: --writers takes numbers, e.g. 1,8,64; got {args.writers!r}", file=sys.stderr)
        return 2
    load = Load(steps=args.steps)
    records = [r for b in backends for r in scan(b, counts, load, _log)]
    print(json.dumps({"load": asdict(load), "largest_held": largest_held(records)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
