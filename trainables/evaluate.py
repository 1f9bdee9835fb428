"""Evaluation with fresh target models (Algorithm 1, step 4).

f_A* anonymizes every set once; a fresh f_T' is trained on the anonymized action train set and
scored by Top-1 on the anonymized action test set; a fresh f_B' is trained with BCE on the
anonymized privacy train set and scored by cMAP and F1 on the anonymized privacy test set.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from trainables import losses, metrics
from trainables.action_models import build_action_model
from trainables.augment import augment_images
from trainables.config import TrialConfig
from trainables.data import TrialData, batches, flip_label_tensor, to_float
from trainables.privacy_models import build_privacy_model
from trainables.synthetic import ClipSet, ImageSet
from trainables.train import Log, Runtime, check_finite, fit_action_classifier


@dataclass
class EvalResult:
    top1: float
    cmap: float
    f1: float
    rms: float
    ap: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@torch.no_grad()
def anonymize_set(
    anon: nn.Module, x: torch.Tensor, masks: torch.Tensor | None, rt: Runtime, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Anonymize uint8 samples batch by batch. Returns uint8 outputs (on the device of ``x``) and each
    sample's RMS(x - f_A(x)) on [0, 1] pixels."""
    anon.eval()
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
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
    cfg: TrialConfig,
    rt: Runtime,
    log: Log,
    flip_labels: torch.Tensor | None = None,
    test_video: torch.Tensor | None = None,
) -> float:
    """Train a fresh f_T' and return its Top-1 on the test clips (on the test videos, averaging
    the softmax over each video's clips, when ``test_video`` says which clip is whose)."""
    model = build_action_model(
        cfg.target_action_model, num_classes=num_classes, frames=cfg.frames, size=cfg.size
    )
    if cfg.action_weights and cfg.target_action_model == cfg.action_model:
        from trainables.weights import load_weights

        load_weights(model, cfg.action_weights, "f_T' (" + cfg.target_action_model + ")", log)
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
    logits = []
    with torch.no_grad(), rt.autocast():
        for idx in batches(len(test_x), cfg.eval_batch_size, None):
            logits.append(model(to_float(test_x[idx], rt.device)).float().cpu())
    if test_video is not None:
        return metrics.video_top1(torch.cat(logits), test_y, test_video)
    return metrics.top1(torch.cat(logits), test_y)


def _frames_of(clips: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One random frame of each clip (N, C, T, H, W) -> (N, C, H, W)."""
    t = torch.randint(0, clips.shape[2], (len(clips),), generator=gen)
    return clips[torch.arange(len(clips)), :, t]


def train_privacy_target(
    train_x: torch.Tensor,
    train_a: torch.Tensor,
    test_x: torch.Tensor,
    test_a: torch.Tensor,
    cfg: TrialConfig,
    rt: Runtime,
    log: Log,
) -> tuple[float, float, list[float]]:
    """Train a fresh f_B' with BCE; return cMAP, mean F1 at probability 0.5, per-attribute AP.

    Inputs are images (N, C, H, W) or clips (N, C, T, H, W); clips train on one random frame
    per clip and epoch and are scored by the mean probability over their frames.
    """
    model = build_privacy_model(
        cfg.target_privacy_model, head="multilabel", num_outputs=train_a.shape[1]
    )
    rt.place(model, image_net=True)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.eval_lr_privacy)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.eval_privacy_epochs)
    clips = train_x.dim() == 5
    for epoch in range(1, cfg.eval_privacy_epochs + 1):
        model.train()
        epoch_x = _frames_of(train_x, rt.gen) if clips else train_x
        vals = []
        for step, idx in enumerate(
            batches(
                len(epoch_x),
                cfg.eval_batch_size,
                rt.gen,
                drop_last=True,
                max_batches=cfg.max_steps_per_epoch,
            )
        ):
            xb = augment_images(to_float(epoch_x[idx], rt.device), rt.gen, policy=cfg.augment)
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
    probs = []
    with torch.no_grad(), rt.autocast():
        for idx in batches(len(test_x), cfg.eval_batch_size, None):
            xb = to_float(test_x[idx], rt.device)
            if clips:
                n, c, t, h, w = xb.shape
                frames = xb.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
                p = torch.sigmoid(model(frames).float()).reshape(n, t, -1).mean(1)
            else:
                p = torch.sigmoid(model(xb).float())
            probs.append(p.cpu())
    scores = torch.cat(probs)
    ap = metrics.average_precision(scores, test_a)
    return metrics.cmap(scores, test_a), metrics.mean_f1(scores, test_a), ap.tolist()


def _pixels(s: ClipSet | ImageSet) -> torch.Tensor:
    return s.clips if isinstance(s, ClipSet) else s.images


def evaluate(
    anon: nn.Module, data: TrialData, cfg: TrialConfig, rt: Runtime, log: Log, label: str = ""
) -> EvalResult:
    """The full evaluation of one anonymizer with fresh target models."""
    t0 = time.time()
    bs = max(cfg.eval_batch_size, cfg.batch_size)
    act_tr, act_te = data.action_eval_sets()
    a_tr, _ = anonymize_set(anon, act_tr.clips, act_tr.masks, rt, bs)
    a_te, rms = anonymize_set(anon, act_te.clips, act_te.masks, rt, bs)
    log(f"[eval{label}] anonymized action sets; mean RMS on test = {rms.mean():.4f}")
    top1 = train_action_target(
        a_tr,
        act_tr.labels,
        a_te,
        act_te.labels,
        data.eval_num_classes,
        cfg,
        rt,
        log,
        flip_label_tensor(data),
        test_video=act_te.video,
    )
    log(f"[eval{label}] action Top-1 = {top1:.4f}")
    priv_tr, priv_te = data.privacy_eval_sets()
    if priv_tr is act_tr and priv_te is act_te:
        p_tr, p_te = a_tr, a_te
    else:
        p_tr, _ = anonymize_set(anon, _pixels(priv_tr), priv_tr.masks, rt, bs)
        p_te, _ = anonymize_set(anon, _pixels(priv_te), priv_te.masks, rt, bs)
    cmap, f1, ap = train_privacy_target(
        p_tr, priv_tr.attributes, p_te, priv_te.attributes, cfg, rt, log
    )
    log(f"[eval{label}] privacy cMAP = {cmap:.4f}, F1 = {f1:.4f}")
    return EvalResult(
        top1=top1, cmap=cmap, f1=f1, rms=float(rms.mean()), ap=ap, seconds=time.time() - t0
    )
