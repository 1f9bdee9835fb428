import numpy as np
import pytest
import torch

from trainables.data.sets import ClipSet
from trainables.data.synthetic import ACTIONS, ATTRIBUTES, SyntheticSpec, make_benchmark

SPEC = SyntheticSpec(
    size=32,
    frames=8,
    n_action_train=64,
    n_action_test=32,
    n_privacy_train=64,
    n_privacy_test=32,
    seed=3,
)


def _clips(s: ClipSet) -> torch.Tensor:
    """The synthetic benchmark's clips, which are always in memory."""
    assert isinstance(s.clips, torch.Tensor)
    return s.clips


@pytest.fixture(scope="module")
def bench():
    return make_benchmark(SPEC)


def test_shapes_and_ranges(bench):
    assert len(ACTIONS) >= 8 and len(ATTRIBUTES) >= 5
    a = bench.action_train
    assert a.clips.shape == (64, 3, 8, 32, 32) and a.clips.dtype == torch.uint8
    assert a.labels.min() >= 0 and a.labels.max() < len(ACTIONS)
    assert a.attributes.shape == (64, len(ATTRIBUTES))
    assert a.masks.shape == (64, 8, 32, 32) and a.masks.any(dim=(1, 2, 3)).all()
    p = bench.privacy_test
    assert p.images.shape == (32, 3, 32, 32) and p.attributes.shape == (32, len(ATTRIBUTES))


def test_deterministic_from_the_seed(bench):
    again = make_benchmark(SPEC)
    assert torch.equal(_clips(bench.action_train), _clips(again.action_train))
    assert torch.equal(bench.privacy_train.images, again.privacy_train.images)
    other = make_benchmark(SyntheticSpec(**{**SPEC.__dict__, "seed": 4}))
    assert not torch.equal(_clips(bench.action_train), _clips(other.action_train))


def test_privacy_set_is_disjoint_from_action_set(bench):
    frames = bench.action_train.clips.permute(0, 2, 1, 3, 4).reshape(-1, 3, 32, 32)
    imgs = bench.privacy_train.images
    same = (frames[None].float() - imgs[:, None].float()).abs().flatten(2).amax(2) == 0
    assert not same.any()


def test_only_the_actor_moves_and_attributes_are_balanced():
    b = make_benchmark(
        SyntheticSpec(
            n_action_train=400, n_action_test=2, n_privacy_train=2, n_privacy_test=2, seed=0
        )
    )
    clips = _clips(b.action_train).float() / 255
    change = (clips[:, :, 1:] - clips[:, :, :-1]).abs().mean(1)  # (N, T-1, H, W)
    assert b.action_train.masks is not None
    people = b.action_train.masks[:, 1:]
    # The actor's stripes drift; the background and the bystander stand still (pixel noise
    # aside), so a single frame cannot tell them apart but two frames can.
    lone = b.action_train.attributes[:, 4] == 0
    moving = change[lone][people[lone]].mean()
    assert moving > 2.5 * change[lone][~people[lone]].mean()
    assert moving > 1.3 * change[~lone][people[~lone]].mean()  # a still bystander dilutes it
    frac = b.action_train.attributes.mean(0).numpy()
    assert np.all((frac > 0.35) & (frac < 0.65))
    counts = torch.bincount(b.action_train.labels, minlength=len(ACTIONS))
    assert counts.min() > 25


def test_flattening_a_clip_costs_an_rms_above_the_swept_bounds(bench):
    from trainables.evaluation.calibration import flatten

    x = bench.action_test.clips.float() / 255
    rms = (x - flatten(x)).pow(2).flatten(1).mean(1).sqrt()
    assert rms.mean() >= 0.3


def test_a_mirrored_clip_drifts_the_mirrored_way(bench):
    from trainables.data.synthetic import HFLIP_ACTIONS

    flips = [ACTIONS[i] for i in HFLIP_ACTIONS]
    for name, mirrored in zip(ACTIONS, flips, strict=True):
        expect = name.replace("left", "L").replace("right", "left").replace("L", "right")
        assert mirrored == expect


def test_bad_spec_is_rejected():
    with pytest.raises(ValueError, match="frames"):
        make_benchmark(SyntheticSpec(frames=2))
