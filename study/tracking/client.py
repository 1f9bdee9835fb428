"""MLflow records of a study: one parent run, one child run per trial, via MlflowClient.

MLflow is the record, not the channel: results travel as return values through Ray Tune, and
these helpers only write what happened.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

PARENT_TAG = "mlflow.parentRunId"
ROLE_TAG = "study.role"
TRIAL_TAG = "study.trial_id"
#: "learned" or "fixed" (a baseline): how the report tells them apart.
ANONYMIZER_KIND_TAG = "anonymizer.kind"
#: The anonymizer's family (trainables.models.anonymizers.family; the families: trainables.families).
ANONYMIZER_FAMILY_TAG = "anonymizer.family"
#: The family fields that describe the trial (trainables.models.anonymizers.shown_knobs), comma-separated.
ANONYMIZER_KNOBS_TAG = "anonymizer.knobs"
#: Its fixed family's knobs in words (trainables.models.anonymizers.setting); '' for the game's.
ANONYMIZER_SETTING_TAG = "anonymizer.setting"
_SECRET = re.compile(r"(token|password|secret|credential|api_key)", re.IGNORECASE)
#: ``scheme://user:password@host``: the password of a URI.
_URI_PASSWORD = re.compile(r"(\w[\w+.-]*://[^/:@\s]*):[^@\s/]*@")


def redact(text: str) -> str:
    """``text`` with the password of any URI in it replaced by ``***``."""
    return _URI_PASSWORD.sub(r"\1:***@", text)


#: MLflow's HTTP client retries 7 times with a backoff factor of 2 and a 120 s timeout, about
#: 9 minutes against a dead server; these bound it to about a minute (the user's values win).
RETRY_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def bound_retries() -> None:
    """Bounded retries and timeouts for this process's MLflow calls (set before the first)."""
    import os

    for k, v in RETRY_ENV.items():
        os.environ.setdefault(k, v)


def client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


#: Marks an experiment as model training, so that MLflow 3's UI opens it on the runs table (not
#: on the GenAI overview of traces).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def experiment_id(c: Any, name: str) -> str:
    """The experiment's id, created if new; marked as a model-training experiment either way."""
    exp = c.get_experiment_by_name(name)
    exp_id = exp.experiment_id if exp is not None else c.create_experiment(name)
    for k, v in EXPERIMENT_KIND.items():
        c.set_experiment_tag(exp_id, k, v)
    return str(exp_id)


#: MLflow 3's UI keeps a global GenAI / model-training switch (GenAI unless the browser chose
#: otherwise); this URL parameter sets it, so that the link opens on the runs table.
RUNS_VIEW = "runs?workflowType=machine_learning"


def runs_url(uri: str, exp_id: str) -> str:
    """The MLflow UI's runs table of the experiment (served by the tracking server at ``uri``)."""
    return f"{uri.rstrip('/')}/#/experiments/{exp_id}/{RUNS_VIEW}"


_PACKAGES = (
    "torch",
    "torchvision",
    "segmentation-models-pytorch",
    "pytorchvideo",
    "ray",
    "mlflow",
    "optuna",
    "numpy",
)


def provenance(argv: list[str] | None = None) -> dict[str, str]:
    """Tags that say what produced a run: the git commit of this code and whether its tree had
    uncommitted changes, the command line, Python's and the key packages' versions."""
    import platform
    import shlex
    import subprocess
    import sys
    from importlib import metadata
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(
                ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=20
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    tags = {
        "mlflow.source.git.commit": commit or "unknown (not a git checkout)",
        "git.dirty": "unknown" if status is None else str(bool(status)).lower(),
        # orig_argv keeps `-m study.launch` as typed (argv[0] would be launch.py's path).
        "command": redact(shlex.join(sys.orig_argv if argv is None else argv))[:5000],
        "version.python": platform.python_version(),
    }
    for name in _PACKAGES:
        try:
            tags[f"version.{name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            tags[f"version.{name}"] = "not installed"
    return tags


def safe_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Params as strings, without anything that looks like a secret: no key that names one, no
    password of a URI."""
    return {k: redact(str(v))[:6000] for k, v in params.items() if not _SECRET.search(k)}


def log_params(c: Any, run_id: str, params: Mapping[str, Any]) -> None:
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in safe_params(params).items()]
    for i in range(0, len(items), 100):
        c.log_batch(run_id, params=items[i : i + 100])


def log_metrics(c: Any, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
    from mlflow.entities import Metric

    ts = int(time.time() * 1000)
    items = [
        Metric(k, float(v), ts, step) for k, v in metrics.items() if isinstance(v, (int, float))
    ]
    for i in range(0, len(items), 500):
        c.log_batch(run_id, metrics=items[i : i + 500])


def find_runs(c: Any, exp_id: str, filter_string: str) -> list[Any]:
    return list(c.search_runs([exp_id], filter_string=filter_string, max_results=5000))


def parent_run(
    c: Any,
    exp_id: str,
    study_name: str,
    *,
    resume: bool,
    params: Mapping[str, Any],
    tags: Mapping[str, str] | None = None,
) -> str:
    """The study's parent run: reopened on --resume, created otherwise; ``tags`` (provenance)
    are set either way."""
    if resume:
        found = find_runs(
            c, exp_id, f"tags.`{ROLE_TAG}` = 'parent' and tags.`study.name` = '{study_name}'"
        )
        if found:
            run_id = found[0].info.run_id
            c.update_run(run_id, status="RUNNING")
            c.set_tag(run_id, "study.resumed", "true")
            for k, v in (tags or {}).items():
                c.set_tag(run_id, k, v)
            return run_id
    run = c.create_run(
        exp_id,
        run_name=study_name,
        tags={ROLE_TAG: "parent", "study.name": study_name, **(tags or {})},
    )
    log_params(c, run.info.run_id, params)
    return run.info.run_id


def child_run(
    c: Any,
    exp_id: str,
    parent_id: str,
    trial_id: str,
    *,
    name: str,
    params: Mapping[str, Any],
    tags: Mapping[str, str],
) -> str:
    """The trial's child run: the same run again when a trial is retried or resumed, so a
    trial never leaves two runs."""
    found = find_runs(
        c, exp_id, f"tags.`{PARENT_TAG}` = '{parent_id}' and tags.`{TRIAL_TAG}` = '{trial_id}'"
    )
    if found:
        run_id = found[0].info.run_id
        c.update_run(run_id, status="RUNNING")
        c.set_tag(
            run_id, "study.attempts", str(int(found[0].data.tags.get("study.attempts", "1")) + 1)
        )
    else:
        run = c.create_run(
            exp_id,
            run_name=name,
            tags={
                PARENT_TAG: parent_id,
                ROLE_TAG: "trial",
                TRIAL_TAG: trial_id,
                "study.attempts": "1",
            },
        )
        run_id = run.info.run_id
        log_params(c, run_id, params)
    for k, v in tags.items():
        c.set_tag(run_id, k, v)
    return run_id


def end_run(c: Any, run_id: str, status: str, reason: str = "") -> None:
    """End a run as FINISHED, FAILED or KILLED, with the reason as a tag."""
    if reason:
        c.set_tag(run_id, "failure_reason", reason[:5000])
    c.set_tag(run_id, "status", status.lower())
    c.set_terminated(run_id, status=status)


def close_unfinished_children(c: Any, exp_id: str, parent_id: str, reason: str) -> int:
    """Mark every child still RUNNING as KILLED (a trial process killed without a word)."""
    runs = find_runs(
        c, exp_id, f"tags.`{PARENT_TAG}` = '{parent_id}' and attributes.status = 'RUNNING'"
    )
    for r in runs:
        end_run(c, r.info.run_id, "KILLED", reason)
    return len(runs)
