"""The storage rule of a cluster study: every node sees the study dir.

A trial that Ray Tune restarts after its node died resumes from the newest checkpoint under
``STUDY/ray`` (Ray's ``storage_path``), on whichever node has room; every trial also loads the
study's shared stages from ``STUDY/shared``, and its spool lives under the study dir. So on a
cluster the study dir must be one folder that every node mounts at the same path (NFS, a
cluster filesystem, or the head's disk exported to the workers).

The launcher does not guess from the filesystem type (an NFS server's own export is ext4 to
it): it writes a probe file with a fresh token into the study dir and asks one Ray task on
each live node to read it back. :func:`judge` is the pure verdict on what the nodes answered.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FLAG = "--study-dir"
#: Seconds the launcher waits for every node's probe task.
PROBE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Sightings:
    """Which live nodes (by address) read the probe back, which read something else or
    nothing, and which did not answer in time."""

    seen: tuple[str, ...] = ()
    unseen: tuple[str, ...] = ()
    silent: tuple[str, ...] = ()


def judge(root: Path, s: Sightings) -> tuple[str, str]:
    """``("ok" | "warn" | "error", message)`` for a study dir and what the nodes saw of it."""
    if s.unseen:
        return "error", (
            f"{FLAG} {root.parent}: the study dir {root} is not visible on node(s) "
            f"{', '.join(s.unseen)}. A trial Ray Tune restarts there after a node fails could "
            "not find its checkpoints, and no trial there could load the shared stages. Put "
            f"the study dir on a filesystem every node mounts at the same path (NFS or a "
            f"cluster filesystem), e.g. {FLAG} /mnt/shared/studies; see docs/cluster.md"
        )
    if s.silent:
        return "warn", (
            f"[study] warning: node(s) {', '.join(s.silent)} did not answer the storage probe "
            f"within {PROBE_TIMEOUT_S:.0f} s, so the launcher cannot tell whether they see "
            f"the study dir {root}; if they do not, pass {FLAG} on a filesystem every node "
            "mounts (docs/cluster.md)"
        )
    if len(s.seen) < 2:
        return "warn", (
            f"[study] warning: only {len(s.seen)} node is up, so the launcher cannot tell "
            f"whether nodes that join later will see the study dir {root}; a trial restarted "
            f"on one that does not fails. Pass {FLAG} on a filesystem every node mounts "
            "(docs/cluster.md)"
        )
    return "ok", f"[study] the study dir is visible on all {len(s.seen)} nodes"


def _read_probe(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as e:
        return f"<{type(e).__name__}>"


def probe(root: Path, timeout: float = PROBE_TIMEOUT_S) -> Sightings:
    """Ask one task on each live Ray node to read a fresh token from ``root``."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = secrets.token_hex(16)
    path = root / f".storage-probe-{token}"
    path.write_text(token)
    try:
        reader = ray.remote(num_cpus=0, max_retries=0)(_read_probe)
        pending: dict[Any, str] = {}
        for node in ray.nodes():
            if not node.get("Alive"):
                continue
            where = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            ref = reader.options(scheduling_strategy=where).remote(str(path))
            pending[ref] = node.get("NodeManagerAddress", node["NodeID"])
        seen: list[str] = []
        unseen: list[str] = []
        failed: list[str] = []
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            done, _ = ray.wait(list(pending), timeout=max(0.0, deadline - time.monotonic()))
            for ref in done:
                addr = pending.pop(ref)
                try:
                    (seen if ray.get(ref) == token else unseen).append(addr)
                except Exception:  # the task died: the node is going away
                    failed.append(addr)
        silent = sorted([*failed, *pending.values()])
        return Sightings(tuple(sorted(seen)), tuple(sorted(unseen)), tuple(silent))
    finally:
        path.unlink(missing_ok=True)
