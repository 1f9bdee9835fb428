"""Evaluation metrics: action Top-1, privacy cMAP and F1. Pure functions over tensors."""

from __future__ import annotations

import torch


def top1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of samples whose highest logit is the label."""
    if len(labels) == 0:
        raise ValueError("top1 of an empty set")
    return float((logits.argmax(dim=1) == labels).float().mean())


def video_top1(logits: torch.Tensor, labels: torch.Tensor, video: torch.Tensor) -> float:
    """Top-1 over videos: the softmax averaged over each video's clips (rows with the same
    ``video`` id, which must share a label), as the reference evaluates test videos."""
    if len(labels) == 0:
        raise ValueError("video_top1 of an empty set")
    ids, inverse = torch.unique(video, return_inverse=True)
    probs = torch.zeros(len(ids), logits.shape[1], dtype=torch.float64)
    probs.index_add_(0, inverse, torch.softmax(logits.double(), dim=1))
    vid_labels = torch.full((len(ids),), -1, dtype=labels.dtype)
    vid_labels[inverse] = labels
    if not torch.equal(vid_labels[inverse], labels):
        raise ValueError("clips of one video carry different labels")
    return float((probs.argmax(dim=1) == vid_labels).float().mean())


def per_video(
    scores: torch.Tensor, targets: torch.Tensor, video: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-clip attribute scores (N, A) and targets (N, A) -> per-video ones (V, A): a video's
    score is the mean over its clips (rows with the same ``video`` id, which must share their
    targets), ordered by video id."""
    if len(scores) == 0:
        raise ValueError("per_video of an empty set")
    ids, inverse = torch.unique(video, return_inverse=True)
    sums = torch.zeros(len(ids), scores.shape[1], dtype=torch.float64)
    sums.index_add_(0, inverse, scores.double())
    counts = torch.bincount(inverse, minlength=len(ids)).double().unsqueeze(1)
    vid_targets = torch.zeros(len(ids), targets.shape[1], dtype=targets.dtype)
    vid_targets[inverse] = targets
    if not torch.equal(vid_targets[inverse], targets):
        raise ValueError("clips of one video carry different attributes")
    return (sums / counts).to(scores.dtype), vid_targets


def average_precision(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-column average precision (A,), as ``sklearn.metrics.average_precision_score``.

    AP = sum_k (R_k - R_{k-1}) P_k over the distinct score thresholds, highest first; tied
    scores count as one threshold. A column without positives gets NaN.
    """
    scores, targets = scores.double(), targets.double()
    out = torch.empty(scores.shape[1], dtype=torch.float64)
    for a in range(scores.shape[1]):
        s, y = scores[:, a], targets[:, a]
        n_pos = y.sum()
        if n_pos == 0:
            out[a] = float("nan")
            continue
        order = torch.argsort(s, descending=True, stable=True)
        s, y = s[order], y[order]
        tp = torch.cumsum(y, 0)
        fp = torch.cumsum(1 - y, 0)
        # Keep the last index of each run of tied scores.
        last = torch.ones_like(s, dtype=torch.bool)
        last[:-1] = s[1:] != s[:-1]
        tp, fp = tp[last], fp[last]
        precision = tp / (tp + fp)
        recall = tp / n_pos
        prev = torch.cat([torch.zeros(1, dtype=torch.float64), recall[:-1]])
        out[a] = ((recall - prev) * precision).sum()
    return out


def cmap(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Class-mean average precision over attributes that have at least one positive."""
    ap = average_precision(scores, targets)
    ap = ap[~torch.isnan(ap)]
    if len(ap) == 0:
        raise ValueError("cMAP is undefined: no attribute has a positive sample")
    return float(ap.mean())


def f1_per_attribute(
    probs: torch.Tensor, targets: torch.Tensor, threshold: float = 0.5
) -> torch.Tensor:
    """F1 of each attribute with predictions ``probs >= threshold`` (sklearn's zero_division=0)."""
    pred = (probs >= threshold).double()
    y = targets.double()
    tp = (pred * y).sum(0)
    fp = (pred * (1 - y)).sum(0)
    fn = ((1 - pred) * y).sum(0)
    denom = 2 * tp + fp + fn
    return torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.zeros_like(tp))


def mean_f1(probs: torch.Tensor, targets: torch.Tensor, threshold: float = 0.5) -> float:
    """Mean over attributes of the per-attribute F1, thresholding *probabilities* at 0.5.

    (The reference code thresholds raw logits at 0.5, i.e. sigmoid 0.62; we do not.)
    """
    return float(f1_per_attribute(probs, targets, threshold).mean())


def chance_top1(labels: torch.Tensor) -> float:
    """The Top-1 of always answering the commonest class of ``labels``: the floor a trained
    action model must clear."""
    if len(labels) == 0:
        return float("nan")
    return float(torch.bincount(labels.long().flatten()).max() / len(labels))


def chance_cmap(targets: torch.Tensor) -> float:
    """The expected cMAP of a random scorer: the mean prevalence of the attributes of
    ``targets`` (N, A) that have a positive (the ones :func:`cmap` averages over)."""
    rate = targets.double().mean(0)
    rate = rate[targets.double().sum(0) > 0]
    return float(rate.mean()) if len(rate) else float("nan")
