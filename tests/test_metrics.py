import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, f1_score

from trainables.evaluation import metrics


@pytest.mark.parametrize("seed", range(5))
def test_average_precision_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=(60, 5)) < 0.4).astype(float)
    y[0] = 1
    scores = np.round(rng.uniform(size=(60, 5)), 1)  # many ties
    ours = metrics.average_precision(torch.tensor(scores), torch.tensor(y)).numpy()
    ref = average_precision_score(y, scores, average=None)
    np.testing.assert_allclose(ours, ref, atol=1e-10)
    assert metrics.cmap(torch.tensor(scores), torch.tensor(y)) == pytest.approx(ref.mean())


@pytest.mark.parametrize("seed", range(3))
def test_mean_f1_matches_sklearn_at_probability_half(seed):
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=(40, 6)) < 0.5).astype(int)
    probs = rng.uniform(size=(40, 6))
    probs[:, 5] = 0.1  # an attribute never predicted: F1 0
    ref = f1_score(y, (probs >= 0.5).astype(int), average=None, zero_division=0).mean()
    assert metrics.mean_f1(torch.tensor(probs), torch.tensor(y)) == pytest.approx(ref)


def test_top1():
    logits = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert metrics.top1(logits, torch.tensor([1, 1, 1])) == pytest.approx(2 / 3)


def test_cmap_perfect_and_undefined():
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert metrics.cmap(y.clone(), y) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no attribute"):
        metrics.cmap(torch.rand(3, 2), torch.zeros(3, 2))


def test_video_top1_averages_the_softmax_of_each_videos_clips():
    # Video 0: one confident wrong clip, two mildly right ones -> wrong; video 1: right.
    logits = torch.tensor([[5.0, 0.0], [0.0, 0.5], [0.0, 0.5], [0.0, 3.0]])
    labels = torch.tensor([1, 1, 1, 1])
    video = torch.tensor([0, 0, 0, 1])
    assert metrics.top1(logits, labels) == pytest.approx(0.75)
    assert metrics.video_top1(logits, labels, video) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="different labels"):
        metrics.video_top1(logits, torch.tensor([0, 1, 1, 1]), video)


def test_per_video_scores_average_a_videos_clips():
    scores = torch.tensor([[0.9, 0.1], [0.5, 0.3], [0.2, 0.8]])
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    s, t = metrics.per_video(scores, targets, torch.tensor([4, 4, 7]))
    assert torch.allclose(s, torch.tensor([[0.7, 0.2], [0.2, 0.8]]))
    assert torch.equal(t, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="different attributes"):
        metrics.per_video(scores, torch.eye(3)[:, :2], torch.tensor([4, 4, 7]))
