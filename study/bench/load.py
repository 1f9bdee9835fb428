"""``python -m study.bench.load``: how many trials can write to one tracking server at once.

N writers (threads spread over a few processes, each with its own ``MlflowClient``) each log a
trial's worth of records at the same time to one MLflow server, the kind the launcher starts:
a run, its params, per-step metrics, a small artifact and its end. Then every value is read
back: each writer's run must hold every param, every metric step exactly once with its value,
the artifact, and the FINISHED status. A number of writers "holds" when no writer raised and
nothing is missing or doubled. It runs against SQLite (the default store) and any PostgreSQL
database given as ``postgresql://USER@HOST:PORT/DB`` (the password in ``PGPASSWORD``), and
prints one line per (backend, N) and a JSON summary with the largest N that held.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import secrets
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trainables.config import help_field
from trainables.log import Log, usage_error

#: The store kinds a backend of ``--backends`` may name: ``sqlite`` (a file in a temporary
#: folder), or a PostgreSQL database URI.
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
    from study.tracking.client import bound_retries

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


def backend_kind(backend: str) -> str:
    """``sqlite`` or ``postgresql``: what a record names (never the URI, which holds the user)."""
    return "sqlite" if backend == "sqlite" else backend.split(":", 1)[0].split("+", 1)[0]


def scan(backend: str, counts: list[int], load: Load, log: Log = print) -> list[dict[str, Any]]:
    """Start a server on ``backend`` (``sqlite``, or a PostgreSQL URI whose password is in
    PGPASSWORD), run each count of writers until one does not hold, stop it; one record per
    count run."""
    from study.tracking.server import MlflowServer

    kind = backend_kind(backend)
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pa-load-") as d:
        server = MlflowServer(Path(d), backend_uri="" if kind == "sqlite" else backend).start()
        try:
            for n in counts:
                rec = {"backend": kind, **run_load(server.uri, n, load)}
                log(
                    f"{kind:<10} writers={n:<3} held={rec['held']!s:<5} "
                    f"errors={rec['errors']} problems={rec['problems']} "
                    f"{rec['seconds']:.1f} s  {rec['first_error'][:160]}"
                )
                out.append(rec)
                if not rec["held"]:
                    break
        finally:
            server.stop()
    return out


def largest_held(records: list[dict[str, Any]]) -> dict[str, int]:
    best: dict[str, int] = {}
    for r in records:
        if r["held"]:
            best[r["backend"]] = max(best.get(r["backend"], 0), r["writers"])
        else:
            best.setdefault(r["backend"], 0)
    return best


@dataclass(frozen=True)
class LoadPlan:
    """How many trials can write to one tracking server at once: concurrent writers, each
    read back, against each backend."""

    backends: str = help_field("sqlite", "comma list: sqlite, or a postgresql://USER@HOST:PORT/DB "
                               "database (the password in PGPASSWORD)")  # fmt: skip
    writers: str = help_field("1,8,16,32,64", "comma list of writer counts, tried in order until "
                              "one does not hold")  # fmt: skip
    batches: int = help_field(Load.steps, "metric batches each writer logs")

    def backend_list(self) -> list[str]:
        """The backends, each checked (ValueError naming the flag)."""
        backends = [b.strip() for b in self.backends.split(",") if b.strip()]
        bad = [b for b in backends if backend_kind(b) not in BACKENDS or b == "postgresql"]
        if bad or not backends:
            raise ValueError(
                f"--backends: {bad or self.backends!r} is not sqlite or a "
                "postgresql://USER@HOST:PORT/DB URI"
            )
        return backends

    def counts(self) -> list[int]:
        try:
            counts = [int(n) for n in self.writers.split(",") if n.strip()]
        except ValueError:
            raise ValueError(
                f"--writers takes numbers, e.g. 1,8,64; got {self.writers!r}"
            ) from None
        if not counts or min(counts) < 1:
            raise ValueError(f"--writers takes counts >= 1, got {self.writers!r}")
        return counts


def main(plan: LoadPlan, log: Log) -> int:
    """Run the load bench; print one line per (backend, writers) and one JSON line."""
    try:
        backends, counts = plan.backend_list(), plan.counts()
    except ValueError as e:
        return usage_error(e)
    load = Load(steps=plan.batches)
    records = [r for b in backends for r in scan(b, counts, load, log)]
    print(json.dumps({"load": asdict(load), "largest_held": largest_held(records)}))
    return 0
