"""Tiny datasets in the official layouts, written by the tests themselves: videos with PyAV,
images with Pillow, and the split and annotation files. Counts are in ``COUNTS``."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from trainables.data.datasets.encode import write_video

UCF_CLASSES = ("ApplyEyeMakeup", "Basketball", "CliffDiving")
HMDB_CLASSES = ("brush_hair", "climb", "wave")
#: Expected (train, test) samples of each dataset in split 1.
COUNTS = {
    "ucf101": (6, 3),  # 3 classes x (2 train + 1 test)
    "hmdb51": (6, 3),  # 3 classes x (2 train + 1 test), plus 1 unused per class
    "pa-hmdb": (3, 3),  # 1 train + 1 test video annotated per class
    "vispr1": (5, 3),  # 4 train + 1 val, 3 test images
    "vispr2": (5, 3),
    "vp-ucf": (3, 3),
    "vp-hmdb": (3, 3),
}


def write_image(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, size=(36, 44, 3), dtype=np.uint8)).save(path)


@dataclass
class Roots:
    ucf101: Path
    hmdb51: Path
    pahmdb: Path
    vispr: Path
    vpucf: Path
    vphmdb: Path

    def config(self) -> dict[str, str]:
        return {
            "ucf101_root": str(self.ucf101),
            "hmdb51_root": str(self.hmdb51),
            "pahmdb_root": str(self.pahmdb),
            "vispr_root": str(self.vispr),
            "vpucf_root": str(self.vpucf),
            "vphmdb_root": str(self.vphmdb),
        }


def make_ucf101(root: Path) -> list[tuple[str, str]]:
    """Returns (relative path, part) of every video."""
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text(
        "".join(f"{i} {c}\n" for i, c in enumerate(UCF_CLASSES, start=1))
    )
    train: list[str] = []
    test: list[str] = []
    videos: list[tuple[str, str]] = []
    for i, c in enumerate(UCF_CLASSES, start=1):
        for g in (1, 2, 3):
            rel = f"{c}/v_{c}_g0{g}_c01.avi"
            write_video(root / "UCF-101" / rel, seed=10 * i + g)
            part = "test" if g == 3 else "train"
            (test if part == "test" else train).append(rel if part == "test" else f"{rel} {i}")
            videos.append((rel, part))
    (lists / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (lists / "testlist01.txt").write_text("\n".join(test) + "\n")
    return videos


def make_hmdb51(root: Path) -> list[tuple[str, str]]:
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    videos = []
    for i, c in enumerate(HMDB_CLASSES):
        lines = []
        for k, code in enumerate(("1", "1", "2", "0")):
            name = f"{c}_video_{k}.avi"
            write_video(root / c / name, seed=100 + 10 * i + k)
            lines.append(f"{name} {code}")
            if code != "0":
                videos.append((f"{c}/{name}", "train" if code == "1" else "test"))
        (splits / f"{c}_test_split1.txt").write_text("\n".join(lines) + "\n")
    return videos


def make_pahmdb(root: Path) -> None:
    ann = root / "PrivacyAttributes"
    ann.mkdir(parents=True)
    for i, c in enumerate(HMDB_CLASSES):
        videos = {}
        for k in (0, 2):  # one train and one test video
            videos[f"{c}_video_{k}.avi"] = {
                "skin_color": [[0, 11, 1]],
                "relationship": [[0, 11, 0]],
                "face": [[0, 5, 0], [6, 11, 2 if (i + k) % 2 else 0]],
                "nudity": [[0, 11, 0]],
                "gender": [[0, 11, [1, 2] if k else 0]],
                "review": True,
                "note": "",
            }
        (ann / f"{c}.json").write_text(json.dumps(videos))


def make_vispr(root: Path) -> None:
    sizes = {"train": 4, "val": 1, "test": 3}
    labels = ["a17_color", "a4_gender", "a6_hair_color", "a73_landmark"]
    n = 0
    for split, count in sizes.items():
        (root / "annos" / split).mkdir(parents=True)
        for _ in range(count):
            name = f"2017_{n:08d}"
            write_image(root / "images" / split / f"{name}.jpg", seed=n)
            mine = [lab for j, lab in enumerate(labels) if (n + j) % 2 == 0]
            (root / "annos" / split / f"{name}.json").write_text(
                json.dumps({"id": name, "labels": mine})
            )
            n += 1


def make_vp(root: Path, videos: list[tuple[str, str]]) -> None:
    """annotations.csv for one train and one test video of each class."""
    root.mkdir(parents=True)
    picked, seen = [], set()
    for rel, part in videos:
        key = (rel.split("/")[0], part)
        if key not in seen:
            seen.add(key)
            picked.append(rel)
    with (root / "annotations.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["video", "face", "skin_color", "gender", "nudity", "relationship"])
        for k, rel in enumerate(picked):
            w.writerow([rel, k % 2, 1, (k + 1) % 2, 0, int(k % 3 == 0)])


def make_all(base: Path) -> Roots:
    r = Roots(
        base / "ucf101",
        base / "hmdb51",
        base / "pahmdb",
        base / "vispr",
        base / "vpucf",
        base / "vphmdb",
    )
    ucf = make_ucf101(r.ucf101)
    hmdb = make_hmdb51(r.hmdb51)
    make_pahmdb(r.pahmdb)
    make_vispr(r.vispr)
    make_vp(r.vpucf, ucf)
    make_vp(r.vphmdb, hmdb)
    return r
