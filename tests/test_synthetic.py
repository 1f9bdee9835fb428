import numpy as np
import pytest
import torch

from trainables.synthetic import ACTIONS, ATTRIBUTES, SyntheticSpec, make_benchmark

SPEC = SyntheticSpec(
    size=32,
    frames=8,
    n_action_train=64,
    n_action_test=32,
    n_privacy_train=64,
    n_privacy_test=32,
    seed=3,
)


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
    assert torch.equal(bench.action_train.clips, again.action_train.clips)
    assert torch.equal(bench.privacy_train.images, again.privacy_train.images)
    other = make_benchmark(SyntheticSpec(**{**SPEC.__dict__, "seed": 4}))
    assert not torch.equal(bench.action_train.clips, other.action_train.clips)


def test_privacy_set_is_disjoint_from_action_set(bench):
    frames = bench.action_train.clips.permute(0, 2, 1, 3, 4).reshape(-1, 3, 32, 32)
    imgs = bench.privacy_train.images
    same = (frames[None].float() - imgs[:, None].float()).abs().flatten(2).amax(2) == 0
    assert not same.any()


def test_the_actor_moves_and_attributes_are_balanced():
    b = make_benchmark(
        SyntheticSpec(
            n_action_train=400, n_action_test=2, n_privacy_train=2, n_privacy_test=2, seed=0
        )
    )
    m = b.action_train.masks.float()
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    actor_only = b.action_train.attributes[:, 3] == 0  # no bystander in the mask
    cx = (m * xs).sum((2, 3)) / m.sum((2, 3))
    travel = (cx[:, -1] - cx[:, 0])[actor_only]
    labels = b.action_train.labels[actor_only]
    assert travel[labels == 0].mean() > 5 and travel[labels == 1].mean() < -5
    frac = b.action_train.attributes.mean(0).numpy()
    assert np.all((frac > 0.35) & (frac < 0.65))


def test_bad_spec_is_rejected():
    with pytest.raises(ValueError, match="frames"):
        make_benchmark(SyntheticSpec(frames=2))
