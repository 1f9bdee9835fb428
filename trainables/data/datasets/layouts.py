"""The official on-disk layouts of the real datasets, parsed into lists of samples.

Nothing here decodes a video or opens an image: a parser reads split and annotation files,
checks that every file they name exists, and returns :class:`Split` objects. A missing file is a
:class:`DatasetError` naming it, raised before any training starts.

Layouts (``../shared/REFERENCE.md``):

- UCF101: ``ROOT/UCF-101/<Class>/v_<Class>_gXX_cYY.avi`` and ``ROOT/ucfTrainTestlist/``
  with ``classInd.txt`` (``1 ApplyEyeMakeup``), ``trainlist0N.txt`` (``Class/video.avi 1``)
  and ``testlist0N.txt`` (``Class/video.avi``).
- HMDB51: ``ROOT/<class>/<video>.avi`` and split files ``<class>_test_splitN.txt`` with lines
  ``<video>.avi K`` (1 train, 2 test, 0 unused), in ``ROOT/testTrainMulti_7030_splits/`` or
  ``ROOT/splits/`` or ``ROOT`` itself.
- PA-HMDB51: ``ROOT/PrivacyAttributes/<class>.json`` mapping each HMDB51 video to its five
  attributes, each a list of ``[start, end, value]`` frame ranges (value an int or a list of
  ints). A video carries an attribute when any range has a value >= 1 (skin colour visible,
  a relationship, a (partial) face, nudity level >= 1, a visible gender). The videos are
  HMDB51's; train/test follow the HMDB51 split file.
- VISPR: ``ROOT/images/<split>/<id>.jpg`` with ``ROOT/annos/<split>/<id>.json`` holding
  ``"labels": ["a17_color", ...]``; splits ``train2017``, ``val2017``, ``test2017`` as the
  release names them, or ``train``, ``val``, ``test`` (val joins train).
- VP-UCF / VP-HMDB: ``ROOT/annotations.csv`` with a ``video`` column (the path relative to the
  UCF101 ``UCF-101`` folder or the HMDB51 root) and one 0/1 column per attribute (face,
  skin_color, gender, nudity, relationship); train/test follow the action dataset's split.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

VISPR1 = (
    "a17_color",
    "a4_gender",
    "a9_face_complete",
    "a10_face_partial",
    "a12_semi_nudity",
    "a64_rel_personal",
    "a65_rel_soci",
)
VISPR2 = (
    "a6_hair_color",
    "a16_race",
    "a59_sports",
    "a1_age_approx",
    "a2_weight_approx",
    "a73_landmark",
    "a11_tattoo",
)
PAHMDB_ATTRIBUTES = ("skin_color", "relationship", "face", "nudity", "gender")
VP_ATTRIBUTES = ("face", "skin_color", "gender", "nudity", "relationship")


class DatasetError(ValueError):
    """A dataset that cannot be read as laid out; the message names the file and the fix."""


@dataclass(frozen=True)
class Sample:
    """One video or image: its path, its action label (-1: none) and attributes (0/1)."""

    path: Path
    label: int = -1
    attributes: tuple[float, ...] = ()


@dataclass
class Split:
    """The train and test samples of one dataset split, with its class or attribute names."""

    name: str
    train: list[Sample]
    test: list[Sample]
    classes: tuple[str, ...] = ()
    attributes: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        out: dict[str, object] = {"dataset": self.name, "train": len(self.train)}
        out["test"] = len(self.test)
        if self.classes:
            out["classes"] = len(self.classes)
        if self.attributes:
            out["attributes"] = list(self.attributes)
        return out


def _need(path: Path, what: str, fix: str) -> Path:
    if not path.exists():
        raise DatasetError(f"{what} {path} is missing; {fix}")
    return path


def _check_files(samples: list[Sample], source: Path, dataset: str) -> None:
    missing = [s.path for s in samples if not s.path.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DatasetError(
            f"{dataset}: {source} names {missing[0]}, which does not exist{more}; "
            f"check the dataset root or remove the entry from the split file"
        )


def ucf101(root: Path, split: int = 1) -> Split:
    """UCF101 split ``split`` (1-3) in the official layout."""
    root = Path(root)
    lists = _need(root / "ucfTrainTestlist", "UCF101 split folder", "is --ucf101-root right?")
    videos = _need(root / "UCF-101", "UCF101 video folder", "is --ucf101-root right?")
    class_file = _need(lists / "classInd.txt", "UCF101 class list", "it ships with the splits")
    classes: dict[str, int] = {}
    for line in class_file.read_text().split("\n"):
        if line.strip():
            idx, name = line.split()
            classes[name] = int(idx) - 1
    names = tuple(sorted(classes, key=classes.__getitem__))
    out: dict[str, list[Sample]] = {}
    for part in ("train", "test"):
        f = _need(lists / f"{part}list0{split}.txt", f"UCF101 {part} list", "use --split 1, 2 or 3")
        samples = []
        for n, line in enumerate(f.read_text().split("\n"), start=1):
            if not line.strip():
                continue
            rel = line.split()[0]
            cls = rel.split("/")[0]
            if cls not in classes:
                raise DatasetError(f"{f}:{n}: class {cls!r} is not in {class_file}")
            samples.append(Sample(videos / rel, classes[cls]))
        _check_files(samples, f, "UCF101")
        out[part] = samples
    return Split("ucf101", out["train"], out["test"], classes=names)


def _hmdb_split_dir(root: Path) -> Path:
    for d in (root / "testTrainMulti_7030_splits", root / "splits", root):
        if d.is_dir() and any(d.glob("*_test_split*.txt")):
            return d
    raise DatasetError(
        f"HMDB51: no <class>_test_splitN.txt files in {root}/testTrainMulti_7030_splits, "
        f"{root}/splits or {root}; unpack the official split archive there"
    )


def hmdb51(root: Path, split: int = 1) -> Split:
    """HMDB51 split ``split`` (1-3): 1 = train, 2 = test, 0 = unused."""
    root = Path(root)
    _need(root, "HMDB51 root", "is --hmdb51-root right?")
    sdir = _hmdb_split_dir(root)
    files = sorted(sdir.glob(f"*_test_split{split}.txt"))
    if not files:
        raise DatasetError(f"HMDB51: no *_test_split{split}.txt in {sdir}; use --split 1, 2 or 3")
    classes = tuple(f.name[: -len(f"_test_split{split}.txt")] for f in files)
    train, test = [], []
    for label, (cls, f) in enumerate(zip(classes, files, strict=True)):
        for n, line in enumerate(f.read_text().split("\n"), start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DatasetError(f"{f}:{n}: expected '<video>.avi 0|1|2', got {line!r}")
            s = Sample(root / cls / parts[0], label)
            if parts[1] == "1":
                train.append(s)
            elif parts[1] == "2":
                test.append(s)
    _check_files(train + test, sdir, "HMDB51")
    return Split("hmdb51", train, test, classes=classes)


def _present(ranges: list[list[object]]) -> float:
    for r in ranges:
        v = r[2] if len(r) > 2 else 0
        values = v if isinstance(v, list) else [v]
        if any(int(str(x)) >= 1 for x in values):
            return 1.0
    return 0.0


def pahmdb(root: Path, hmdb_root: Path, split: int = 1) -> Split:
    """PA-HMDB51: the annotated HMDB51 videos with their five attributes, split as HMDB51."""
    ann = _need(
        Path(root) / "PrivacyAttributes", "PA-HMDB51 annotation folder", "is --pahmdb-root right?"
    )
    hmdb = hmdb51(hmdb_root, split)
    side = {s.path.name: ("train", s) for s in hmdb.train} | {
        s.path.name: ("test", s) for s in hmdb.test
    }
    out: dict[str, list[Sample]] = {"train": [], "test": []}
    files = sorted(ann.glob("*.json"))
    if not files:
        raise DatasetError(f"PA-HMDB51: no <class>.json files in {ann}")
    for f in files:
        try:
            videos = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise DatasetError(f"{f}: not valid JSON ({e})") from e
        for video, attrs in videos.items():
            missing = [a for a in PAHMDB_ATTRIBUTES if a not in attrs]
            if missing:
                raise DatasetError(f"{f}: video {video} lacks attributes {missing}")
            if video not in side:
                path = Path(hmdb_root) / f.stem / video
                raise DatasetError(
                    f"{f} names {path}, which is not in the HMDB51 split {split} "
                    f"(missing from the split files, or marked 0 = unused)"
                )
            part, s = side[video]
            labels = tuple(_present(attrs[a]) for a in PAHMDB_ATTRIBUTES)
            out[part].append(Sample(s.path, s.label, labels))
    return Split(
        "pa-hmdb",
        out["train"],
        out["test"],
        classes=hmdb.classes,
        attributes=PAHMDB_ATTRIBUTES,
    )


def vispr(root: Path, subset: tuple[str, ...], name: str) -> Split:
    """VISPR images with the multi-label attributes ``subset`` (VISPR1 or VISPR2)."""
    root = Path(root)
    images = _need(root / "images", "VISPR image folder", "is --vispr-root right?")
    annos = _need(root / "annos", "VISPR annotation folder", "is --vispr-root right?")
    out: dict[str, list[Sample]] = {"train": [], "test": []}
    for split, part in (("train", "train"), ("val", "train"), ("test", "test")):
        # The release names its splits train2017, val2017 and test2017; take either spelling.
        split_dir = next(
            (d for d in (split, f"{split}2017") if (annos / d).is_dir()), f"{split}2017"
        )
        adir = annos / split_dir
        if not adir.is_dir():
            if split == "val":
                continue
            raise DatasetError(
                f"VISPR: neither {annos / split} nor {adir} exists; the release has "
                f"annos/{split}2017/ (or annos/{split}/)"
            )
        samples = []
        for a in sorted(adir.glob("*.json")):
            try:
                labels = set(json.loads(a.read_text()).get("labels", []))
            except json.JSONDecodeError as e:
                raise DatasetError(f"{a}: not valid JSON ({e})") from e
            img = images / split_dir / (a.stem + ".jpg")
            samples.append(Sample(img, -1, tuple(float(x in labels) for x in subset)))
        _check_files(samples, adir, "VISPR")
        out[part] += samples
    return Split(name, out["train"], out["test"], attributes=subset)


def vp_videos(csv_path: Path, action: Split, video_root: Path, name: str) -> Split:
    """VP-UCF or VP-HMDB: the action split's videos that ``csv_path`` labels, with its labels."""
    csv_path = _need(Path(csv_path), f"{name} annotations", f"pass --{name.replace('-', '')}-root")
    with csv_path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    header = set(rows[0]) if rows else set()
    missing = [c for c in ("video", *VP_ATTRIBUTES) if c not in header]
    if missing:
        raise DatasetError(
            f"{csv_path}: columns {missing} are missing; expected video,{','.join(VP_ATTRIBUTES)}"
        )
    side = {s.path: ("train", s) for s in action.train} | {s.path: ("test", s) for s in action.test}
    out: dict[str, list[Sample]] = {"train": [], "test": []}
    for n, row in enumerate(rows, start=2):
        path = Path(video_root) / row["video"]
        if path not in side:
            raise DatasetError(
                f"{csv_path}:{n} names {path}, which is not in the {action.name} split"
                + ("" if path.exists() else " (and does not exist)")
            )
        part, s = side[path]
        try:
            labels = tuple(float(int(row[a]) > 0) for a in VP_ATTRIBUTES)
        except ValueError as e:
            raise DatasetError(f"{csv_path}:{n}: attribute values must be 0 or 1 ({e})") from e
        out[part].append(Sample(s.path, s.label, labels))
    return Split(name, out["train"], out["test"], classes=action.classes, attributes=VP_ATTRIBUTES)
