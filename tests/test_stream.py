"""Streamed clips (``--clip-store stream``, the default for real datasets): per-epoch random
clips decoded in persistent DataLoader workers, on the tiny real-layout fixtures."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import pytest
import torch

from tests.conftest import TINY
from tests.real_fixtures import COUNTS, make_all
from trainables.config import config_for
from trainables.data.datasets.layouts import DatasetError
from trainables.data.datasets.protocols import check_protocol
from trainables.data.datasets.stream import ClipStream
from trainables.data.load import load_data
from trainables.data.sets import batches
from trainables.game.pixels import Anonymized, fetch
from trainables.models.anonymizers import build_anonymizer
from trainables.trial import run_trial

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    return make_all(tmp_path_factory.mktemp("real"))


def _stream(px: object) -> ClipStream:
    """A set's pixels that must be a stream (the clip store these tests choose)."""
    assert isinstance(px, ClipStream), type(px)
    return px


def _cfg(roots, dataset="ucf101-vispr1", **kw):
    values = {**TINY, "frames": 4, "skip": 2, "test_clips": 2, "workers": 0, **kw}
    return config_for("smoke", dataset=dataset, **{**roots.config(), **values})


def _read(px, epoch, n, batch=4):
    rows, xs = [], []
    for idx, x in fetch(px, batches(n, batch, None), CPU, epoch=epoch):
        rows.append(idx)
        xs.append(x)
    return torch.cat(rows), torch.cat(xs)


def test_streamed_training_clips_change_each_epoch_but_not_with_the_workers(roots):
    data0 = load_data(_cfg(roots), log=lambda m: None)
    data2 = load_data(_cfg(roots, workers=2), log=lambda m: None)
    s0, s2 = data0.action_train.clips, data2.action_train.clips
    assert isinstance(s0, ClipStream) and len(s0) == COUNTS["ucf101"][0]
    rows, e1 = _read(s0, 1, len(s0))
    assert torch.equal(rows, torch.arange(len(s0)))
    _, e1_again = _read(s0, 1, len(s0))
    _, e2 = _read(s0, 2, len(s0))
    assert torch.equal(e1, e1_again)  # an epoch's clips are seeded
    assert not torch.equal(e1, e2)  # a fresh random clip (and crop) every epoch
    _, e1_workers = _read(s2, 1, len(s2))
    _, e2_workers = _read(s2, 2, len(s2))
    assert torch.equal(e1, e1_workers) and torch.equal(e2, e2_workers)


def test_streamed_test_clips_equal_the_in_memory_ones(roots):
    streamed = load_data(_cfg(roots), log=lambda m: None).action_test
    memory = load_data(_cfg(roots, clip_store="memory"), log=lambda m: None).action_test
    assert isinstance(memory.clips, torch.Tensor)
    assert torch.equal(streamed.labels, memory.labels)
    assert streamed.video is not None and memory.video is not None
    assert torch.equal(streamed.video, memory.video)
    _, x = _read(streamed.clips, 0, len(streamed.clips))
    assert torch.equal(x.mul(255).round().to(torch.uint8), memory.clips)


def test_persistent_workers_serve_every_pass(roots):
    stream = _stream(load_data(_cfg(roots, workers=2), log=lambda m: None).action_train.clips)
    _read(stream, 1, len(stream))
    assert stream._loader is not None
    it: Any = stream._loader._iterator  # the DataLoader's private multiprocess iterator
    pids = [w.pid for w in it._workers]
    next(fetch(stream, batches(len(stream), 2, None), CPU, epoch=2))  # a pass left unfinished
    _read(stream, 3, len(stream))
    assert stream._loader is not None
    same = stream._loader._iterator is it
    assert same and [w.pid for w in it._workers] == pids
    assert all(w.is_alive() for w in it._workers)


def test_a_video_that_breaks_after_the_probe_is_left_out_and_logged(roots, tmp_path):
    import shutil

    ucf = tmp_path / "ucf"
    shutil.copytree(roots.ucf101, ucf)
    logs: list[str] = []
    cfg = dataclasses.replace(_cfg(roots, workers=2), ucf101_root=str(ucf))
    stream = _stream(load_data(cfg, log=logs.append).action_train.clips)
    victim = stream.paths[1]
    victim.write_bytes(b"truncated")
    rows, x = _read(stream, 1, len(stream))
    assert 1 not in rows.tolist() and len(rows) == len(stream) - 1 == len(x)
    assert list(stream.failed) == [str(victim)]
    assert sum(str(victim) in m and "skipped while streaming" in m for m in logs) == 1
    _read(stream, 2, len(stream))  # logged once, not once per epoch
    assert sum(str(victim) in m for m in logs) == 1


def test_an_anonymized_stream_runs_f_a_on_each_batch_and_records_rms(roots):
    stream = _stream(load_data(_cfg(roots), log=lambda m: None).action_test.clips)
    _, raw = _read(stream, 0, len(stream))
    ident = Anonymized(stream, build_anonymizer("identity"), contextlib.nullcontext)
    _, same = _read(ident, 0, len(stream))
    assert torch.equal(raw, same) and ident.mean_rms() < 1e-5  # RMS has an epsilon
    blur = Anonymized(stream, build_anonymizer("blur_strong"), contextlib.nullcontext)
    _, blurred = _read(blur, 0, len(stream))
    assert not torch.equal(raw, blurred) and blur.mean_rms() > 0.0
    assert not torch.isnan(blur.rms).any()


def test_only_images_count_against_memory_when_streaming(roots):
    big = dict(size=4096, frames=64, test_clips=10)
    assert check_protocol("ucf101-vispr1", _cfg(roots, **big)) < 2**30
    with pytest.raises(DatasetError, match="--clip-store stream"):
        check_protocol("ucf101-vispr1", _cfg(roots, clip_store="memory", **big))


@pytest.mark.parametrize(
    ("dataset", "clip_store"), [("vphmdb-vispr1", "stream"), ("ucf101-vispr1", "memory")]
)
def test_trials_run_on_streamed_and_in_memory_clips(roots, dataset, clip_store):
    res = run_trial(_cfg(roots, dataset, clip_store=clip_store, workers=1), log=lambda m: None)
    for k in ("top1", "cmap", "f1", "rms", "raw_top1", "raw_cmap"):
        assert 0.0 <= getattr(res, k) <= 1.0, k
    assert res.rms > 0  # the learned f_A changes its inputs; an unrecorded RMS would be NaN


def test_a_trial_counts_the_files_that_broke_while_it_ran(roots, tmp_path):
    import shutil

    ucf = tmp_path / "ucf"
    shutil.copytree(roots.ucf101, ucf)
    cfg = _cfg(roots, ucf101_root=str(ucf))
    data = load_data(cfg, log=lambda m: None)
    victim = _stream(data.action_train.clips).paths[0]
    victim.write_bytes(b"truncated")
    res = run_trial(cfg, data=data, log=lambda m: None)
    assert len(res.skipped_files) == 1 and str(victim) in res.skipped_files[0]
    assert res.summary()["skipped_files"] == 1
    assert 0.0 <= res.top1 <= 1.0


def test_a_training_batch_left_with_one_clip_is_dropped(roots, tmp_path):
    import shutil

    from trainables.game.device import Runtime
    from trainables.game.train import shuffled

    ucf = tmp_path / "ucf"
    shutil.copytree(roots.ucf101, ucf)
    cfg = _cfg(roots, ucf101_root=str(ucf), max_steps_per_epoch=0)
    stream = _stream(load_data(cfg, log=lambda m: None).action_train.clips)
    stream.paths[3].write_bytes(b"truncated")
    rt = Runtime(device=CPU, amp=False, gen=torch.Generator().manual_seed(0))
    sizes = [len(idx) for idx, _ in shuffled(stream, 2, cfg, rt, epoch=1)]
    assert sizes == [2, 2]  # 6 videos in 3 batches of 2; the broken one's partner is dropped
