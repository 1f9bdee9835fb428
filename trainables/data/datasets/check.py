"""``python -m trainables.data --dataset NAME --root DIR [--split N]``: check a real dataset.

Reads the split and annotation files (every named file must exist), then opens every video
(decoding its first frame) or image, in DataLoader workers, and prints one JSON object: the
sample counts, the classes or attributes, and the files that failed to decode.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader, Dataset

from trainables.config import config_for
from trainables.data.datasets.decode import DecodeError, decode_image, probe_video
from trainables.data.datasets.layouts import DatasetError, Sample
from trainables.data.datasets.sources import SOURCES, read_source
from trainables.log import usage_error

#: The config field ``--root`` sets for each dataset, and the one ``--video-root`` sets.
ROOT_FIELD = {
    "ucf101": ("ucf101_root", ""),
    "hmdb51": ("hmdb51_root", ""),
    "pa-hmdb": ("pahmdb_root", "hmdb51_root"),
    "vispr1": ("vispr_root", ""),
    "vispr2": ("vispr_root", ""),
    "vp-ucf": ("vpucf_root", "ucf101_root"),
    "vp-hmdb": ("vphmdb_root", "hmdb51_root"),
}


class _Probe(Dataset):
    def __init__(self, samples: list[Sample]) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> str:
        path = self.samples[i].path
        try:
            if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
                decode_image(path)
            else:
                probe_video(path)
        except DecodeError as e:
            return str(e)
        return ""


def check(
    name: str, root: Path, split: int = 1, video_root: Path | None = None, workers: int = 2
) -> dict[str, object]:
    """Check dataset ``name`` at ``root``; return the JSON summary."""
    SOURCES.check(name)
    own, other = ROOT_FIELD[name]
    values: dict[str, Any] = {own: str(root), "split": split}
    if other and video_root is not None:
        values[other] = str(video_root)
    cfg = dataclasses.replace(config_for("smoke"), dataset=name, **values)
    s = read_source(name, cfg)
    loader = DataLoader(
        _Probe(s.train + s.test), batch_size=None, num_workers=workers, shuffle=False
    )
    errors = [e for e in loader if e]
    return {**s.summary(), "split": split, "skipped": len(errors), "skipped_files": errors}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m trainables.data",
        description="Check a real dataset in its official layout; print one JSON object.",
    )
    p.add_argument("--dataset", required=True, help=f"one of: {', '.join(SOURCES.names())}")
    p.add_argument("--root", required=True, type=Path, help="the dataset's root folder")
    p.add_argument("--split", type=int, default=1, help="official split (1-3) of UCF101/HMDB51")
    p.add_argument(
        "--video-root",
        type=Path,
        default=None,
        help="for pa-hmdb and vp-hmdb the HMDB51 root, for vp-ucf the UCF101 root "
        "(default: the HMDB51_ROOT / UCF101_ROOT environment variables)",
    )
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        out = check(args.dataset, args.root, args.split, args.video_root, args.workers)
    except (DatasetError, ValueError) as e:
        return usage_error(e)
    print(json.dumps(out))
    return 0
