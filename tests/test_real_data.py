"""Real-dataset loaders and protocols, on tiny fixtures in the official layouts that these tests
write themselves (PyAV videos, Pillow images, split and annotation files)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch

from tests.conftest import TINY
from tests.real_fixtures import COUNTS, make_all
from trainables.config import ConfigError, config_for
from trainables.data.datasets.decode import (
    clip_indices,
    crop_resize,
    evenly_spaced_starts,
    sample_clips,
)
from trainables.data.datasets.layouts import DatasetError
from trainables.data.datasets.protocols import PROTOCOLS
from trainables.data.datasets.sources import read_source
from trainables.data.load import DATASETS, load_data
from trainables.trial import run_trial

QUIET: dict[str, Any] = dict(log=lambda m: None)


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    return make_all(tmp_path_factory.mktemp("real"))


def _cfg(roots, dataset, **kw):
    values = {**TINY, "frames": 4, "skip": 2, "test_clips": 2, "workers": 0, **kw}
    return config_for("smoke", dataset=dataset, **{**roots.config(), **values})


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_each_layout_reads_its_counts(roots, name):
    s = read_source(name, _cfg(roots, "synthetic"))
    assert (len(s.train), len(s.test)) == COUNTS[name]
    if name in ("ucf101", "hmdb51", "pa-hmdb", "vp-ucf", "vp-hmdb"):
        assert len(s.classes) == 3 and all(0 <= x.label < 3 for x in s.train + s.test)
    if name != "ucf101" and name != "hmdb51":
        assert len(s.attributes) in (5, 7)
        assert all(len(x.attributes) == len(s.attributes) for x in s.train + s.test)


def test_attribute_labels_follow_the_annotations(roots):
    pa = read_source("pa-hmdb", _cfg(roots, "synthetic"))
    by_name = {x.path.name: dict(zip(pa.attributes, x.attributes, strict=True)) for x in pa.train}
    # brush_hair_video_0: face 0 then 0 (i + k even) -> absent; gender 0 -> absent.
    assert by_name["brush_hair_video_0.avi"]["face"] == 0.0
    assert by_name["brush_hair_video_0.avi"]["skin_color"] == 1.0
    # climb_video_0: face 2 in the second range -> present.
    assert by_name["climb_video_0.avi"]["face"] == 1.0
    test = {x.path.name: dict(zip(pa.attributes, x.attributes, strict=True)) for x in pa.test}
    assert test["wave_video_2.avi"]["gender"] == 1.0  # a list of values [1, 2]
    v1 = read_source("vispr1", _cfg(roots, "synthetic"))
    got = [x.attributes[v1.attributes.index("a17_color")] for x in v1.train]
    assert got == [1.0, 0.0, 1.0, 0.0, 1.0]  # image n has a17_color iff n is even


def test_clip_sampling_follows_the_paper():
    assert clip_indices(100, 4, 4, 10) == [10, 14, 18, 22]
    assert clip_indices(5, 4, 2, 0) == [0, 2, 4, 1]  # a short video loops
    assert evenly_spaced_starts(100, 4, 4, 3) == [0, 44, 87]
    video = np.zeros((30, 40, 60, 3), dtype=np.uint8)
    video[:, 20, 30] = 255
    out = crop_resize(video[:4], 16, 0.8, None)
    assert out.shape == (3, 4, 16, 16) and out.dtype == torch.uint8
    rng = np.random.default_rng(0)
    train = sample_clips(video, frames=4, skip=2, size=16, crop=0.8, train=True, clips=5, rng=rng)
    test = sample_clips(video, frames=4, skip=2, size=16, crop=0.8, train=False, clips=5, rng=rng)
    assert train.shape == (1, 3, 4, 16, 16) and test.shape == (5, 3, 4, 16, 16)


def test_a_split_file_naming_a_missing_video_is_an_error_naming_it(roots, tmp_path):
    ucf = tmp_path / "ucf"
    shutil.copytree(roots.ucf101, ucf)
    gone = ucf / "UCF-101" / "Basketball" / "v_Basketball_g02_c01.avi"
    gone.unlink()
    cfg = dataclasses.replace(_cfg(roots, "ucf101-vispr1"), ucf101_root=str(ucf))
    with pytest.raises(DatasetError, match="v_Basketball_g02_c01.avi, which does not exist"):
        read_source("ucf101", cfg)
    # In a trial, before anything trains.
    logs: list[str] = []
    with pytest.raises(DatasetError, match="v_Basketball_g02_c01.avi"):
        run_trial(cfg, log=logs.append)
    assert not any("[identity]" in m for m in logs)


def test_a_missing_root_names_the_flag_and_the_variable(roots, monkeypatch):
    monkeypatch.delenv("VISPR_ROOT", raising=False)
    cfg = dataclasses.replace(_cfg(roots, "ucf101-vispr1"), vispr_root="")
    with pytest.raises(DatasetError, match="--vispr-root .*VISPR_ROOT"):
        read_source("vispr1", cfg)
    monkeypatch.setenv("VISPR_ROOT", str(roots.vispr))
    assert len(read_source("vispr1", cfg).train) == COUNTS["vispr1"][0]


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_registered_dataset_builds_sets_the_trial_can_use(roots, name):
    data = load_data(_cfg(roots, name), **QUIET)
    (ea_tr, ea_te), (ep_tr, ep_te) = data.action_eval_sets(), data.privacy_eval_sets()
    for s in (data.action_train, data.action_test, ea_tr, ea_te):
        assert s.clips.shape[1:] == (3, 4, 32, 32) and s.clips.dtype == torch.uint8
        assert len(s.labels) == len(s.clips)
    assert int(data.action_train.labels.max()) < data.num_classes
    assert int(ea_te.labels.max()) < data.eval_num_classes
    assert data.privacy_train.images.shape[1:] == (3, 32, 32)
    assert ep_tr.attributes.shape[1] == ep_te.attributes.shape[1] == data.num_attributes
    assert data.skipped_files() == []


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_each_protocol_builds_its_sets(roots, name):

    data = load_data(_cfg(roots, name), **QUIET)
    proto = PROTOCOLS[name]
    (ea_tr, ea_te), (ep_tr, ep_te) = data.action_eval_sets(), data.privacy_eval_sets()
    train_n, test_n = COUNTS[proto.eval_action[0][0]][0], COUNTS[proto.eval_action[1][0]][1]
    assert len(ea_tr.clips) == train_n
    assert len(ea_te.clips) == 2 * test_n and ea_te.video is not None  # 2 clips per video
    assert ea_tr.clips.shape[1:] == (3, 4, 32, 32) and ea_tr.clips.dtype == torch.uint8
    assert len(data.action_train.clips) == COUNTS[proto.action][0]
    assert len(data.privacy_train.images) == COUNTS["vispr1"][0]
    assert ep_tr.attributes.shape[1] == ep_te.attributes.shape[1] == data.num_attributes
    assert data.skipped == []
    if proto.eval_action == proto.eval_privacy:  # one set serves f_T' and f_B': decoded once
        assert ea_tr is ep_tr and ea_te is ep_te


@pytest.mark.parametrize("clip_store", ["stream", "memory"])
def test_a_broken_video_is_skipped_counted_and_reported(roots, tmp_path, clip_store):
    ucf = tmp_path / "ucf"
    shutil.copytree(roots.ucf101, ucf)
    bad = ucf / "UCF-101" / "CliffDiving" / "v_CliffDiving_g01_c01.avi"
    bad.write_bytes(b"this is not a video")
    cfg = _cfg(roots, "ucf101-vispr1", ucf101_root=str(ucf), clip_store=clip_store)

    logs: list[str] = []
    data = load_data(cfg, log=logs.append)
    assert len(data.action_train.clips) == COUNTS["ucf101"][0] - 1
    assert len(data.skipped) == 1 and "v_CliffDiving_g01_c01.avi" in data.skipped[0]
    assert any("skipped" in m and "v_CliffDiving_g01_c01.avi" in m for m in logs)
    # The check command reports it too, as JSON.
    r = subprocess.run(
        [sys.executable, "-m", "trainables.data", "--dataset", "ucf101", "--root", str(ucf)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert (out["train"], out["test"], out["classes"], out["skipped"]) == (6, 3, 3, 1)


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_the_check_command_prints_counts(roots, name):
    root = {
        "ucf101": roots.ucf101,
        "hmdb51": roots.hmdb51,
        "pa-hmdb": roots.pahmdb,
        "vispr1": roots.vispr,
        "vispr2": roots.vispr,
        "vp-ucf": roots.vpucf,
        "vp-hmdb": roots.vphmdb,
    }[name]
    video_root = {"pa-hmdb": roots.hmdb51, "vp-hmdb": roots.hmdb51, "vp-ucf": roots.ucf101}
    args = [sys.executable, "-m", "trainables.data", "--dataset", name, "--root", str(root)]
    if name in video_root:
        args += ["--video-root", str(video_root[name])]
    r = subprocess.run(args + ["--workers", "0"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["train"], out["test"], out["skipped"]) == (*COUNTS[name], 0)
    assert "classes" in out or "attributes" in out


def test_the_check_command_explains_a_wrong_root(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "trainables.data", "--dataset", "ucf101", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2 and "ucfTrainTestlist" in r.stderr and "--ucf101-root" in r.stderr


def test_a_protocol_trial_runs_end_to_end(roots):
    cfg = _cfg(roots, "hmdb51-vispr1-pahmdb", augment="paper")
    res = run_trial(cfg, **QUIET)
    for k in ("top1", "cmap", "f1", "raw_top1", "raw_cmap"):
        assert 0.0 <= getattr(res, k) <= 1.0, k
    assert len(res.ap) == 5  # the PA-HMDB attributes


def test_paper_models_run_a_trial_on_two_tiny_clips(roots):
    """The paper scale's models (UNet++ resnet18, I3D R50, ResNet-50) on a real-layout
    protocol, two clips per set."""
    cfg = config_for(
        "paper",
        dataset="ucf101-vispr1",
        **roots.config(),
        size=64,
        frames=4,
        skip=2,
        test_clips=1,
        n_action_train=2,
        n_action_test=2,
        n_privacy_train=2,
        n_privacy_test=2,
        batch_size=2,
        privacy_batch_size=2,
        eval_batch_size=2,
        identity_epochs=1,
        minimax_epochs=1,
        eval_action_epochs=1,
        eval_privacy_epochs=1,
        max_steps_per_epoch=1,
        workers=0,
        device="cpu",
    )
    assert (cfg.anonymizer, cfg.action_model, cfg.privacy_model) == (
        "unetpp",
        "i3d_r50",
        "resnet50",
    )
    res = run_trial(cfg, **QUIET)
    assert len(res.history) == 1 and np.isfinite(res.history[0]["L_A"])


def test_bad_real_data_flags_are_config_errors():
    from trainables.catalog import validate

    with pytest.raises(ConfigError) as e:
        validate(config_for("smoke", split=4, crop=0.0, test_clips=0, augment="heavy"))
    for flag in ("--split", "--crop", "--test-clips", "--augment"):
        assert flag in str(e.value)


def test_the_benchmark_prints_its_figures():
    r = subprocess.run(
        [sys.executable, "-m", "study.bench", "speed", "--scale", "smoke", "--videos", "2",
         "--workers", "1", "--steps", "1"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["step_clips_per_s"] > 0 and out["load_clips_per_s"] > 0 and out["peak_rss_gib"] > 0
    assert "minimax step:" in r.stdout and "data loading:" in r.stdout


def test_the_trial_command_names_every_missing_root():
    env = {k: v for k, v in __import__("os").environ.items() if not k.endswith("_ROOT")}
    r = subprocess.run(
        [sys.executable, "-m", "trainables.run", "--dataset", "hmdb51-vispr1-pahmdb"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert r.returncode == 2
    for flag in ("--hmdb51-root (or HMDB51_ROOT)", "--vispr-root", "--pahmdb-root"):
        assert flag in r.stderr


def test_vispr_takes_the_release_split_names(roots, tmp_path):
    """VISPR's release names its splits train2017, val2017 and test2017."""
    release = tmp_path / "vispr"
    for kind in ("images", "annos"):
        for split in ("train", "val", "test"):
            shutil.copytree(roots.vispr / kind / split, release / kind / f"{split}2017")
    ours = read_source("vispr1", _cfg(roots, "synthetic"))
    theirs = read_source(
        "vispr1", dataclasses.replace(_cfg(roots, "synthetic"), vispr_root=str(release))
    )
    assert [s.attributes for s in theirs.train] == [s.attributes for s in ours.train]
    assert len(theirs.train) == COUNTS["vispr1"][0] and len(theirs.test) == COUNTS["vispr1"][1]
    shutil.rmtree(release / "annos" / "test2017")
    with pytest.raises(DatasetError, match="annos/test2017"):
        read_source(
            "vispr1", dataclasses.replace(_cfg(roots, "synthetic"), vispr_root=str(release))
        )
