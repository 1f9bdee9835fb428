"""Evaluation with fresh target models (Algorithm 1, step 4).

f_A* anonymizes every set (once into memory for in-memory sets; batch by batch as they are
decoded for streamed ones); a fresh f_T' is trained on the anonymized action train set and
scored by Top-1 on the anonymized action test set; a fresh f_B' is trained with BCE on the
anonymized privacy train set and scored by cMAP and F1 on the anonymized privacy test set.
Test videos with several clips are scored per video: f_T' averages the softmax of a video's
clips, f_B' its attribute probabilities.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn

from trainables.config import PRETRAINED, TrialConfig
from trainables.data.augment import augment_images
from trainables.data.datasets.stream import ClipStream
from trainables.data.sets import ClipSet, ImageSet, TrialData, batches, to_float
from trainables.evaluation import metrics
from trainables.game import losses
from trainables.game.device import Runtime, check_finite, seed_everything
from trainables.game.pixels import Anonymized, Pixels, fetch
from trainables.game.train import Featurizer, fit_action_classifier, shuffled
from trainables.log import Log
from trainables.models.action_models import build_action_model
from trainables.models.privacy_models import build_privacy_model
from trainables.models.weights import load_weights


@dataclass
class EvalResult:
    top1: float
    cmap: float
    f1: float
    rms: float
    ap: list[float] = field(default_factory=list)
    seconds: float = 0.0
    #: What the scores are worth without learning: the commonest class's share of the action
    #: test labels and the attributes' prevalence on the privacy test set.
    chance_top1: float = float("nan")
    chance_cmap: float = float("nan")
    #: With more than one fresh model (``eval_action_models``/``eval_privacy_models``): each
    #: model's score (``top1/<model>``, ``cmap/<model>``, ``f1/<model>``) and, per metric, the
    #: ``mean`` and the ``worst`` (lowest Top-1, highest cMAP) over the models.
    models: dict[str, float] = field(default_factory=dict)
    #: Seconds of its parts: ``anonymize`` (the evaluation sets through f_A), ``eval_action``
    #: (training and testing every f_T'), ``eval_privacy`` (every f_B').
    stage_seconds: dict[str, float] = field(default_factory=dict)


def across_models(scores: dict[str, float], metric: str, worst: str) -> dict[str, float]:
    """``metric/<model>`` scores with their ``metric/mean`` and ``metric/worst`` (``worst``:
    'min' or 'max')."""
    values = list(scores.values())
    pick = min if worst == "min" else max
    return {
        **{f"{metric}/{m}": v for m, v in scores.items()},
        f"{metric}/mean": sum(values) / len(values),
        f"{metric}/worst": pick(values),
    }


@torch.no_grad()
def anonymize_set(
    anon: nn.Module, x: Pixels, masks: torch.Tensor | None, rt: Runtime, batch_size: int
) -> tuple[Pixels, torch.Tensor | None]:
    """Anonymize uint8 samples batch by batch. Returns uint8 outputs (on the device of ``x``) and each
    sample's RMS(x - f_A(x)) on [0, 1] pixels. A stream is not decoded here: it comes back as
    an :class:`Anonymized` view, whose RMS is recorded when it is read (None here)."""
    anon.eval()
    if isinstance(x, ClipStream):
        return Anonymized(x, anon, rt.autocast), None
    assert isinstance(x, torch.Tensor)
    outs, rms = [], []
    for idx in batches(len(x), batch_size, None):
        xb = to_float(x[idx], rt.device)
        mb = None if masks is None else masks[idx].to(rt.device)
        with rt.autocast():
            yb = anon(xb, mb).float().clamp(0, 1)
        rms.append(losses.rms_per_sample(xb, yb).cpu())
        outs.append(yb.mul(255).round().to(torch.uint8).to(x.device))  # stays where x is
    return torch.cat(outs), torch.cat(rms)


def train_action_target(
    train_x: Pixels,
    train_y: torch.Tensor,
    test_x: Pixels,
    test_y: torch.Tensor,
    num_classes: int,
    cfg: TrialConfig,
    rt: Runtime,
    log: Log,
    flip_labels: torch.Tensor | None = None,
    test_video: torch.Tensor | None = None,
    name: str = "",
) -> float:
    """Train a fresh f_T' (``name``, default ``cfg.target_action_model``) and return its Top-1
    on the test clips (on the test videos, averaging the softmax over each video's clips, when
    ``test_video`` says which clip is whose)."""
    name = name or cfg.target_action_model
    model = build_action_model(name, num_classes=num_classes, frames=cfg.frames, size=cfg.size)
    if cfg.action_weights and name == cfg.action_model:
        load_weights(model, cfg.action_weights, "f_T' (" + name + ")", log)
    model = model.to(rt.device)
    fit_action_classifier(
        model,
        train_x,
        train_y,
        epochs=cfg.eval_action_epochs,
        lr=cfg.eval_lr_action,
        batch_size=cfg.eval_batch_size,
        cfg=cfg,
        rt=rt,
        log=log,
        tag="eval f_T'",
        flip_labels=flip_labels,
    )
    model.eval()
    logits, rows = [], []
    with torch.no_grad(), rt.autocast():
        for idx, x in fetch(test_x, batches(len(test_x), cfg.eval_batch_size, None), rt.device):
            logits.append(model(x).float().cpu())
            rows.append(idx)
    seen = torch.cat(rows)
    labels = test_y.cpu()[seen]
    if test_video is not None:
        return metrics.video_top1(torch.cat(logits), labels, test_video.cpu()[seen])
    return metrics.top1(torch.cat(logits), labels)


def train_privacy_target(
    train_x: Pixels,
    train_a: torch.Tensor,
    test_x: Pixels,
    test_a: torch.Tensor,
    cfg: TrialConfig,
    rt: Runtime,
    log: Log,
    test_video: torch.Tensor | None = None,
    name: str = "",
) -> tuple[float, float, list[float]]:
    """Train a fresh f_B' (``name``, default ``cfg.target_privacy_model``) with BCE; return
    cMAP, mean F1 at probability 0.5, per-attribute AP.

    Inputs are images (N, C, H, W) or clips (N, C, T, H, W); clips train on one random frame
    per clip and epoch and are scored by the mean probability over their frames (and over a
    video's clips, when ``test_video`` says which clip is whose).
    """
    name = name or cfg.target_privacy_model
    base = name.removesuffix(PRETRAINED)
    model = build_privacy_model(base, head="multilabel", num_outputs=train_a.shape[1])
    if name != base:  # a pretrained variant: its local weights, its head replaced
        load_weights(model, cfg.privacy_eval_weights[base], f"f_B' ({name})", log)
    rt.place(model, channels_last=True)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.eval_lr_privacy)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.eval_privacy_epochs)
    clips = train_x.dim() == 5
    for epoch in range(1, cfg.eval_privacy_epochs + 1):
        model.train()
        vals = []
        frame_gen = rt.gen if clips else None
        for step, (idx, xb) in enumerate(
            shuffled(train_x, cfg.eval_batch_size, cfg, rt, epoch, frame_gen=frame_gen)
        ):
            xb = augment_images(xb, rt.gen, policy=cfg.augment)
            with rt.autocast():
                loss = losses.multilabel_bce(model(xb), train_a[idx].to(rt.device))
            check_finite("BCE of f_B'", loss, "evaluation", epoch, step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            vals.append(loss.item())
        sched.step()
        log(
            f"  [eval f_B'] epoch {epoch}/{cfg.eval_privacy_epochs} bce={sum(vals) / len(vals):.3f}"
        )
    model.eval()
    probs, rows = [], []
    with torch.no_grad(), rt.autocast():
        for idx, xb in fetch(test_x, batches(len(test_x), cfg.eval_batch_size, None), rt.device):
            rows.append(idx)
            if clips:
                n, c, t, h, w = xb.shape
                frames = xb.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
                p = torch.sigmoid(model(frames).float()).reshape(n, t, -1).mean(1)
            else:
                p = torch.sigmoid(model(xb).float())
            probs.append(p.cpu())
    seen = torch.cat(rows)
    scores, targets = torch.cat(probs), test_a.cpu()[seen]
    if test_video is not None:
        scores, targets = metrics.per_video(scores, targets, test_video.cpu()[seen])
    ap = metrics.average_precision(scores, targets)
    return metrics.cmap(scores, targets), metrics.mean_f1(scores, targets), ap.tolist()


def _pixels(s: ClipSet | ImageSet) -> Pixels:
    return s.clips if isinstance(s, ClipSet) else s.images


def evaluate(
    anon: nn.Module, data: TrialData, cfg: TrialConfig, rt: Runtime, log: Log, label: str = ""
) -> EvalResult:
    """The full evaluation of one anonymizer with fresh target models. f_T' and f_B' draw their
    initial weights, batch order and augmentation from ``cfg.eval_seed`` alone, so every
    anonymizer of a study (the raw reference included) is scored by identically seeded
    targets."""
    t0 = time.time()
    bs = max(cfg.eval_batch_size, cfg.batch_size)
    act_tr, act_te = data.action_eval_sets()
    a_tr, _ = anonymize_set(anon, act_tr.clips, act_tr.masks, rt, bs)
    a_te, rms_te = anonymize_set(anon, act_te.clips, act_te.masks, rt, bs)
    stages = {"anonymize": time.time() - t0}
    if rms_te is not None:
        log(f"[eval{label}] anonymized the action sets into memory")
    top1s: dict[str, float] = {}
    t1 = time.time()
    for name in cfg.action_eval_models:  # each with the same seed: a paired comparison
        rt = Runtime(rt.device, rt.amp, seed_everything(cfg.eval_seed))
        top1s[name] = train_action_target(
            a_tr,
            act_tr.labels,
            a_te,
            act_te.labels,
            data.eval_num_classes,
            cfg,
            rt,
            log,
            data.flip_labels(),
            test_video=act_te.video,
            name=name,
        )
    top1 = top1s[cfg.target_action_model]
    stages["eval_action"] = time.time() - t1
    rms = float(rms_te.mean()) if rms_te is not None else a_te.mean_rms()  # type: ignore[union-attr]
    log(f"[eval{label}] action Top-1 = {top1:.4f}; mean RMS on test = {rms:.4f}")
    priv_tr, priv_te = data.privacy_eval_sets()
    t1 = time.time()
    if priv_tr is act_tr and priv_te is act_te:
        p_tr, p_te = a_tr, a_te
    else:
        p_tr, _ = anonymize_set(anon, _pixels(priv_tr), priv_tr.masks, rt, bs)
        p_te, _ = anonymize_set(anon, _pixels(priv_te), priv_te.masks, rt, bs)
    stages["anonymize"] += time.time() - t1
    t1 = time.time()
    privacy: dict[str, tuple[float, float, list[float]]] = {}
    for name in cfg.privacy_eval_models:
        rt = Runtime(rt.device, rt.amp, seed_everything(cfg.eval_seed + 1))
        privacy[name] = train_privacy_target(
            p_tr,
            priv_tr.attributes,
            p_te,
            priv_te.attributes,
            cfg,
            rt,
            log,
            test_video=priv_te.video if isinstance(priv_te, ClipSet) else None,
            name=name,
        )
    cmap, f1, ap = privacy[cfg.target_privacy_model]
    stages["eval_privacy"] = time.time() - t1
    log(f"[eval{label}] privacy cMAP = {cmap:.4f}, F1 = {f1:.4f}")
    models: dict[str, float] = {}
    if len(top1s) > 1:
        models.update(across_models(top1s, "top1", worst="min"))
        log(f"[eval{label}] Top-1 per f_T': " + ", ".join(f"{m} {v:.4f}" for m, v in top1s.items()))
    if len(privacy) > 1:
        models.update(across_models({m: v[0] for m, v in privacy.items()}, "cmap", worst="max"))
        models.update({f"f1/{m}": v[1] for m, v in privacy.items()})
        log(
            f"[eval{label}] cMAP per f_B': "
            + ", ".join(f"{m} {v[0]:.4f}" for m, v in privacy.items())
        )
    return EvalResult(
        top1=top1,
        cmap=cmap,
        f1=f1,
        rms=rms,
        ap=ap,
        seconds=time.time() - t0,
        chance_top1=metrics.chance_top1(act_te.labels),
        chance_cmap=metrics.chance_cmap(priv_te.attributes),
        models=models,
        stage_seconds=stages,
    )


def feature_distance_on(
    anon: nn.Module, phi: Featurizer, clips: Pixels, cfg: TrialConfig, rt: Runtime
) -> float:
    """The mean over ``clips`` of ||phi(x) - phi(f_A(x))|| / ||phi(x)||: the distance the
    feature-based penalty bounds, on the test clips (as the trial's RMS is for the pixel one)."""
    anon.eval()
    out: list[torch.Tensor] = []
    with torch.no_grad(), rt.autocast():
        for _, x in fetch(clips, batches(len(clips), cfg.eval_batch_size, None), rt.device):
            out.append(losses.feature_distance(phi.features(x), phi.features(anon(x))).cpu())
    return float(torch.cat(out).mean()) if out else float("nan")
