"""Checks a launch makes before it starts any server or Ray: a study dir it can write, a
tracking server that answers, and trial resources that a node of this machine can give. Each
failure is a ValueError naming the flag and the fix."""

from __future__ import annotations

import os
import tempfile
import time
import urllib.error
import urllib.request

from study.config import StudyConfig


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


def check_tracking(uri: str, timeout: float = 8.0) -> None:
    """An ``http(s)`` tracking server answers ``/health`` within ``timeout`` seconds."""
    if not uri.startswith(("http://", "https://")):
        raise ValueError(
            f"--tracking-uri {uri}: give an MLflow tracking server, http://HOST:PORT (leave it "
            "empty and the launcher starts one)"
        )
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=2) as r:
                if r.status == 200:
                    return
                last = f"HTTP {r.status}"
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):  # a server that wants credentials is a server
                return
            last = f"HTTP {e.code}"
        except (urllib.error.URLError, OSError) as e:
            last = str(getattr(e, "reason", e))
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
