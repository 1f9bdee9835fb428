"""The paper's evaluation protocols by name, built into :class:`~trainables.data.load.TrialData`.

A protocol names what the minimax game trains on (action videos and privacy images) and what the
fresh evaluation models train and are scored on (``(dataset, part)`` pairs). Known-attribute
protocols score privacy on the attributes the game's privacy data carries; novel ones on
attributes or videos the game never saw.

| protocol | game: action + privacy | f_T' train / test | f_B' train / test |
| --- | --- | --- | --- |
| ucf101-vispr1 | UCF101 + VISPR1 | UCF101 | VISPR1 images |
| hmdb51-vispr1-pahmdb | HMDB51 + VISPR1 | HMDB51 train / PA-HMDB test | PA-HMDB clips |
| vphmdb-vispr1 | VP-HMDB + VISPR1 | VP-HMDB | VP-HMDB clips |
| ucf101-hmdb51 (novel) | UCF101 + VISPR1 | HMDB51 | PA-HMDB clips |
| vispr1-vispr2 (novel) | UCF101 + VISPR1 | UCF101 | VISPR2 images |
| vphmdb-vpucf (novel) | VP-HMDB + VISPR1 | VP-UCF | VP-UCF clips |

Sizes: ``n_action_train`` / ``n_action_test`` / ``n_privacy_train`` / ``n_privacy_test`` cap
each set (a seeded subsample). Privacy images are decoded into memory. Clips are streamed from
the video files (``clip_store="stream"``, :mod:`trainables.data.datasets.stream`) or decoded once
into memory (``"memory"``); what has to fit in memory is checked against what is free before
anything is decoded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import psutil
import torch

from trainables.config import TrialConfig
from trainables.data.datasets.layouts import DatasetError, Sample, Split
from trainables.data.datasets.loading import ClipSpec, Loaded, clip_bytes, load_clips, load_images
from trainables.data.datasets.sources import check_roots, read_source, resolve_roots
from trainables.data.datasets.stream import ClipStream, probe_videos
from trainables.data.sets import ClipSet, ImageSet, TrialData
from trainables.log import Log

Part = tuple[str, str]  # (dataset, "train" | "test")


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    action: str
    privacy: str
    eval_action: tuple[Part, Part]
    eval_privacy: tuple[Part, Part]


def _p(name: str, desc: str, action: str, ea: tuple[Part, Part], ep: tuple[Part, Part]) -> Protocol:
    return Protocol(name, desc, action, "vispr1", ea, ep)


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        _p(
            "ucf101-vispr1",
            "known: UCF101 actions, VISPR1 attributes",
            "ucf101",
            (("ucf101", "train"), ("ucf101", "test")),
            (("vispr1", "train"), ("vispr1", "test")),
        ),
        _p(
            "hmdb51-vispr1-pahmdb",
            "known: HMDB51 + VISPR1, scored on PA-HMDB",
            "hmdb51",
            (("hmdb51", "train"), ("pa-hmdb", "test")),
            (("pa-hmdb", "train"), ("pa-hmdb", "test")),
        ),
        _p(
            "vphmdb-vispr1",
            "known: VP-HMDB + VISPR1, scored on VP-HMDB",
            "vp-hmdb",
            (("vp-hmdb", "train"), ("vp-hmdb", "test")),
            (("vp-hmdb", "train"), ("vp-hmdb", "test")),
        ),
        _p(
            "ucf101-hmdb51",
            "novel: trained on UCF101, scored on HMDB51 / PA-HMDB",
            "ucf101",
            (("hmdb51", "train"), ("hmdb51", "test")),
            (("pa-hmdb", "train"), ("pa-hmdb", "test")),
        ),
        _p(
            "vispr1-vispr2",
            "novel: trained on VISPR1 attributes, scored on VISPR2's",
            "ucf101",
            (("ucf101", "train"), ("ucf101", "test")),
            (("vispr2", "train"), ("vispr2", "test")),
        ),
        _p(
            "vphmdb-vpucf",
            "novel: trained on VP-HMDB, scored on VP-UCF",
            "vp-hmdb",
            (("vp-ucf", "train"), ("vp-ucf", "test")),
            (("vp-ucf", "train"), ("vp-ucf", "test")),
        ),
    )
}


def _subsample(samples: list[Sample], n: int, seed: int) -> list[Sample]:
    if n <= 0 or n >= len(samples):
        return samples
    keep = np.sort(np.random.default_rng(seed).permutation(len(samples))[:n])
    return [samples[i] for i in keep]


class _Builder:
    """Reads each dataset once and decodes each (dataset, part) once per protocol."""

    def __init__(self, cfg: TrialConfig, log: Log) -> None:
        self.cfg, self.log = cfg, log
        self.splits: dict[str, Split] = {}
        self.decoded: dict[tuple[str, str, bool], tuple[Loaded, list[Sample]]] = {}
        self.clipsets: dict[Part, ClipSet] = {}
        self.probe_skipped: list[str] = []
        self.stream = cfg.clip_store == "stream"
        self.spec = ClipSpec(cfg.frames, cfg.skip, cfg.size, cfg.crop, cfg.test_clips)

    def split(self, name: str) -> Split:
        if name not in self.splits:
            self.splits[name] = read_source(name, self.cfg)
        return self.splits[name]

    def samples(self, part: Part, images: bool) -> list[Sample]:
        name, side = part
        samples = getattr(self.split(name), side)
        if not samples:
            raise DatasetError(f"{name} has no {side} samples in split {self.cfg.split}")
        c = self.cfg
        if images:
            n = c.n_privacy_train if side == "train" else c.n_privacy_test
        else:
            n = c.n_action_train if side == "train" else c.n_action_test
        return _subsample(samples, n, c.data_seed)

    def needed_bytes(self, parts: list[tuple[Part, bool]]) -> int:
        total = 0
        for part, images in set(parts):
            n = len(self.samples(part, images))
            if images:
                total += n * 3 * self.cfg.size**2
            elif self.stream:
                continue
            elif part[1] == "train":
                total += clip_bytes(n, 0, self.spec)
            else:
                total += clip_bytes(0, n, self.spec)
        return total

    def load(self, part: Part, images: bool) -> tuple[Loaded, list[Sample]]:
        key = (part[0], part[1], images)
        if key not in self.decoded:
            samples = self.samples(part, images)
            what = f"{part[0]} {part[1]}"
            w = self.cfg.workers
            if images:
                loaded = load_images(samples, self.cfg.size, workers=w, what=what, log=self.log)
            else:
                loaded = load_clips(
                    samples,
                    self.spec,
                    train=part[1] == "train",
                    seed=self.cfg.data_seed,
                    workers=w,
                    what=what,
                    log=self.log,
                )
            self.decoded[key] = (loaded, samples)
        return self.decoded[key]

    def clipset(self, part: Part) -> ClipSet:
        """The clips of ``part``; the same object each time, so that the evaluation
        anonymizes a set that serves f_T' and f_B' once."""
        if part not in self.clipsets:
            self.clipsets[part] = self._clipset(part)
        return self.clipsets[part]

    def _clipset(self, part: Part) -> ClipSet:
        if self.stream:
            return self._streamset(part)
        loaded, samples = self.load(part, images=False)
        kept = [samples[i] for i in loaded.kept]
        return _with_labels(loaded.pixels, kept, loaded.video)

    def _streamset(self, part: Part) -> ClipSet:
        samples = self.samples(part, images=False)
        what = f"{part[0]} {part[1]}"
        kept_i, counts, skipped = probe_videos(
            [s.path for s in samples], workers=self.cfg.workers, what=what, log=self.log
        )
        self.probe_skipped += skipped
        kept = [samples[i] for i in kept_i]
        train = part[1] == "train"
        stream = ClipStream(
            [s.path for s in kept],
            counts,
            self.spec,
            train=train,
            seed=self.cfg.data_seed,
            workers=self.cfg.workers,
            what=what,
            log=self.log,
        )
        per_video = torch.arange(len(kept)).repeat_interleave(1 if train else self.spec.test_clips)
        return _with_labels(stream, kept, per_video)

    def imageset(self, part: Part) -> ImageSet:
        loaded, samples = self.load(part, images=True)
        attrs = torch.tensor(
            [list(samples[i].attributes) for i in loaded.kept], dtype=torch.float32
        )
        return ImageSet(loaded.pixels, attrs, None)

    def skipped(self) -> list[str]:
        return [m for loaded, _ in self.decoded.values() for m in loaded.skipped] + list(
            self.probe_skipped
        )


def _with_labels(
    pixels: torch.Tensor | ClipStream, kept: list[Sample], per_video: torch.Tensor
) -> ClipSet:
    """A ClipSet whose row r is a clip of video ``kept[per_video[r]]``."""
    rows = per_video.tolist()
    labels = torch.tensor([kept[v].label for v in rows], dtype=torch.long)
    attrs = torch.tensor([list(kept[v].attributes) for v in rows], dtype=torch.float32)
    multi = len(rows) != len(kept)
    return ClipSet(pixels, labels, attrs.reshape(len(rows), -1), None, per_video if multi else None)


def _is_images(name: str) -> bool:
    return name.startswith("vispr")


def _check(name: str, b: _Builder) -> int:
    """Read every split and annotation file the protocol needs, check that every file they
    name exists and that the decoded sets fit in memory; return the bytes they need."""
    proto = PROTOCOLS[name]
    cfg = b.cfg
    used = [proto.action, proto.privacy] + [p[0] for p in proto.eval_action + proto.eval_privacy]
    check_roots(cfg, used, f"protocol {name}")
    game = [((proto.action, "train"), False), ((proto.action, "test"), False)]
    game += [((proto.privacy, "train"), True), ((proto.privacy, "test"), True)]
    ev = [(p, False) for p in proto.eval_action]
    ev += [(p, _is_images(p[0])) for p in proto.eval_privacy]
    need = b.needed_bytes(game + ev)
    free = psutil.virtual_memory().available
    if need > 0.8 * free:
        raise DatasetError(
            f"protocol {name} at --size {cfg.size} --frames {cfg.frames} --test-clips "
            f"{cfg.test_clips} --clip-store {cfg.clip_store} needs {need / 2**30:.1f} GiB of "
            f"decoded {'images' if b.stream else 'clips and images'} in memory, and "
            f"{free / 2**30:.1f} GiB is free; "
            + ("" if b.stream else "use --clip-store stream, or ")
            + "lower --size, --frames or --test-clips, or cap the sets with "
            "--n-action-train/--n-action-test/--n-privacy-train/--n-privacy-test"
        )
    return need


def check_protocol(name: str, cfg: TrialConfig) -> int:
    """What :func:`build_protocol` checks before decoding, without decoding anything."""
    return _check(name, _Builder(resolve_roots(cfg), lambda m: None))


def build_protocol(name: str, cfg: TrialConfig, log: Log = print) -> TrialData:
    """Read, check and decode everything protocol ``name`` needs into a TrialData."""
    proto = PROTOCOLS[name]
    cfg = resolve_roots(cfg)
    b = _Builder(cfg, log)
    need = _check(name, b)
    held = "images" if b.stream else "clips and images"
    log(f"[data] {name}: decoding about {need / 2**30:.2f} GiB of {held} into memory")
    action = b.split(proto.action)
    eval_action_split = b.split(proto.eval_action[1][0])
    a_tr, a_te = b.clipset((proto.action, "train")), b.clipset((proto.action, "test"))
    p_tr, p_te = b.imageset((proto.privacy, "train")), b.imageset((proto.privacy, "test"))
    ea = (b.clipset(proto.eval_action[0]), b.clipset(proto.eval_action[1]))
    ep = tuple(b.imageset(p) if _is_images(p[0]) else b.clipset(p) for p in proto.eval_privacy)
    attributes = b.split(proto.eval_privacy[0][0]).attributes
    same_classes = eval_action_split.classes == action.classes
    data = TrialData(
        a_tr,
        a_te,
        p_tr,
        p_te,
        action.classes,
        attributes,
        privacy_scored_on="images" if _is_images(proto.eval_privacy[0][0]) else "clips",
        hflip_labels=None,
        eval_action=ea,
        eval_privacy=(ep[0], ep[1]),
        skipped=b.skipped(),
        eval_actions=None if same_classes else eval_action_split.classes,
    )
    if data.skipped:
        log(f"[data] {len(data.skipped)} files failed to decode and were left out")
    return data
