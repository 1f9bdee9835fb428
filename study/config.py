"""The study configuration: one typed dataclass whose fields are the launcher's flags."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path

from trainables.config import SCALES, STUDY_SCALE, help_field
from trainables.flags import add_flags

_f = help_field


@dataclass(frozen=True)
class StudyConfig:
    space: str = _f("penalty_grid", "named search space (see --list-spaces)")
    space_module: str = _f(
        "", "import this module first, so that the spaces it registers (SPACES.register) exist"
    )
    scale: str = _f(STUDY_SCALE, "trial scale (its values fill every unset field)", tuple(SCALES))
    dataset: str = _f("synthetic", "dataset or protocol name")
    seeds: int = _f(
        1,
        "replicates: each grid point, or each configuration a search samples, runs N times, "
        "replicate r with model seed r and data seed D+r (D: --set data_seed, default 0); the "
        "evaluation seed stays the same",
    )
    max_concurrent: int = _f(0, "trials running at once (0: as many as the CPUs and GPUs allow)")
    cpus_per_trial: float = _f(1.0, "CPUs reserved by each trial (and its torch threads)")
    gpus_per_trial: float = _f(0.0, "GPUs reserved by each trial (fractions share a GPU)")
    address: str = _f("", "address of an existing Ray cluster (empty: start a local one)")
    tracking_uri: str = _f("", "MLflow tracking server (empty: start one on 127.0.0.1)")
    tracking_backend: str = _f(
        "",
        "backend store of the MLflow server the launcher starts: empty for SQLite in the study "
        "dir, or postgresql://USER@HOST:PORT/DB when many trials write at once (the password "
        "from PGPASSWORD or ~/.pgpass, never from the URI)",
    )
    optuna_storage: str = _f(
        "",
        "storage of a search's Optuna study: empty for SQLite in the study dir "
        "(STUDY/optuna.db), or postgresql://USER@HOST:PORT/DB",
    )
    mlflow_auth: bool = _f(
        False,
        "start the launcher's MLflow server with MLflow's basic-auth app; the admin credentials "
        "are MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD from the environment of the "
        "launcher and of every Ray node",
    )
    mlflow_host: str = _f(
        "127.0.0.1",
        "address the launcher's MLflow server binds to (a cluster needs the head's address; "
        "use it with --mlflow-auth)",
    )
    experiment: str = _f("", "MLflow experiment name (empty: the space name)")
    study_dir: str = _f("studies", "root folder; the study lives in STUDY_DIR/EXPERIMENT")
    resume: bool = _f(False, "continue an interrupted study in the same study dir")
    max_failures: int = _f(2, "retries of a failed trial (it resumes from its checkpoint)")
    sampler: str = _f(
        "",
        "Optuna sampler of a search space: tpe, gp, nsga2 or random (empty: the space's own); "
        "grids refuse it",
    )
    num_samples: int = _f(
        0, "configurations a search space samples (0: the space's own number); grids refuse it"
    )
    dry_run: bool = _f(
        False,
        "print the trials, the shared stages and reused results they imply, and an estimated "
        "wall time; start nothing",
    )
    no_reuse: bool = _f(
        False,
        "train every trial, even one equivalent to a finished trial (lambda = 0 or B >= 1: "
        "the penalty is inert, so B and lambda do not matter)",
    )
    private_stages: bool = _f(
        False,
        "for benchmarks: every trial computes its own shared stages (identity initialisation, "
        "warm start, raw reference) in its own process instead of loading the study's; with "
        "--no-reuse nothing is shared (study.bench --ratios times the saving this way)",
    )
    mlflow_port: int = _f(0, "port of the MLflow server the launcher starts (0: a free one)")
    set: tuple[str, ...] = _f((), "trial config overrides KEY=VALUE, e.g. --set minimax_epochs=1")
    grid: tuple[str, ...] = _f(
        (),
        "grid axes KEY=V1,V2,... that replace (or add to) the space's axes, e.g. "
        "--grid B=0.05,0.1,0.15: an ad-hoc grid without writing Python",
    )

    @property
    def experiment_name(self) -> str:
        return self.experiment or self.space

    @property
    def root(self) -> Path:
        return Path(self.study_dir).resolve() / self.experiment_name


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m study.launch",
        description="Run a named hyperparameter study of penalty-driven anonymization on Ray "
        "Tune, recorded in MLflow.",
    )
    p.add_argument("--list-spaces", action="store_true", help="list the named spaces and exit")
    defaults = {f.name: f.default for f in fields(StudyConfig)}
    add_flags(p, StudyConfig, defaults=defaults, repeat=("set", "grid"))
    return p


def from_args(args: argparse.Namespace) -> StudyConfig:
    values = {f.name: getattr(args, f.name) for f in fields(StudyConfig)}
    values["set"] = tuple(values["set"] or ())
    values["grid"] = tuple(values["grid"] or ())
    return StudyConfig(**values)
