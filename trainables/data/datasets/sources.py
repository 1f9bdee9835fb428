"""The real datasets by name, with their roots from flags or the environment."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from trainables.config import TrialConfig
from trainables.data.datasets import layouts
from trainables.data.datasets.layouts import DatasetError, Split
from trainables.registry import Registry

#: Config field -> environment variable that fills it when the flag is not given.
ROOT_ENV = {
    "ucf101_root": "UCF101_ROOT",
    "hmdb51_root": "HMDB51_ROOT",
    "pahmdb_root": "PAHMDB_ROOT",
    "vispr_root": "VISPR_ROOT",
    "vpucf_root": "VPUCF_ROOT",
    "vphmdb_root": "VPHMDB_ROOT",
}


def resolve_roots(cfg: TrialConfig) -> TrialConfig:
    """``cfg`` with every empty dataset root filled from its environment variable."""
    filled: dict[str, Any] = {
        k: os.environ.get(env, "") for k, env in ROOT_ENV.items() if not getattr(cfg, k)
    }
    return dataclasses.replace(cfg, **{k: v for k, v in filled.items() if v})


#: The root fields each dataset reads.
NEEDS = {
    "ucf101": ("ucf101_root",),
    "hmdb51": ("hmdb51_root",),
    "pa-hmdb": ("pahmdb_root", "hmdb51_root"),
    "vispr1": ("vispr_root",),
    "vispr2": ("vispr_root",),
    "vp-ucf": ("vpucf_root", "ucf101_root"),
    "vp-hmdb": ("vphmdb_root", "hmdb51_root"),
}


def check_roots(cfg: TrialConfig, datasets: list[str], what: str) -> None:
    """One error listing every root that ``datasets`` need and neither a flag nor the
    environment gives."""
    fields = dict.fromkeys(f for d in datasets for f in NEEDS[d])
    missing = [f for f in fields if not (getattr(cfg, f) or os.environ.get(ROOT_ENV[f]))]
    if missing:
        flags = ", ".join(f"--{f.replace('_', '-')} (or {ROOT_ENV[f]})" for f in missing)
        raise DatasetError(f"{what} needs the dataset roots {flags}")


def root(cfg: TrialConfig, field: str) -> Path:
    value = getattr(cfg, field) or os.environ.get(ROOT_ENV[field], "")
    if not value:
        flag = "--" + field.replace("_", "-")
        raise DatasetError(
            f"dataset {cfg.dataset} needs {flag} (or the environment variable {ROOT_ENV[field]})"
        )
    return Path(value)


#: Real datasets: name -> reader of its official layout (no decoding).
SOURCES: Registry[Split] = Registry("real dataset")


@SOURCES.register("ucf101", "UCF101, 101 actions (--ucf101-root)")
def ucf101(cfg: TrialConfig) -> Split:
    return layouts.ucf101(root(cfg, "ucf101_root"), cfg.split)


@SOURCES.register("hmdb51", "HMDB51, 51 actions (--hmdb51-root)")
def hmdb51(cfg: TrialConfig) -> Split:
    return layouts.hmdb51(root(cfg, "hmdb51_root"), cfg.split)


@SOURCES.register("pa-hmdb", "PA-HMDB51, 5 attributes on HMDB51 videos (--pahmdb-root)")
def pahmdb(cfg: TrialConfig) -> Split:
    return layouts.pahmdb(root(cfg, "pahmdb_root"), root(cfg, "hmdb51_root"), cfg.split)


@SOURCES.register("vispr1", "VISPR images, VISPR1 attributes (--vispr-root)")
def vispr1(cfg: TrialConfig) -> Split:
    return layouts.vispr(root(cfg, "vispr_root"), layouts.VISPR1, "vispr1")


@SOURCES.register("vispr2", "VISPR images, VISPR2 attributes (--vispr-root)")
def vispr2(cfg: TrialConfig) -> Split:
    return layouts.vispr(root(cfg, "vispr_root"), layouts.VISPR2, "vispr2")


@SOURCES.register("vp-ucf", "VP-UCF: UCF101 videos with 5 attributes (--vpucf-root)")
def vpucf(cfg: TrialConfig) -> Split:
    base = root(cfg, "ucf101_root")
    return layouts.vp_videos(
        root(cfg, "vpucf_root") / "annotations.csv", ucf101(cfg), base / "UCF-101", "vp-ucf"
    )


@SOURCES.register("vp-hmdb", "VP-HMDB: HMDB51 videos with 5 attributes (--vphmdb-root)")
def vphmdb(cfg: TrialConfig) -> Split:
    return layouts.vp_videos(
        root(cfg, "vphmdb_root") / "annotations.csv",
        hmdb51(cfg),
        root(cfg, "hmdb51_root"),
        "vp-hmdb",
    )


def read_source(name: str, cfg: TrialConfig) -> Split:
    """The samples of real dataset ``name``; unknown names list the valid ones."""
    return SOURCES.build(name, cfg=cfg)
