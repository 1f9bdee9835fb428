"""Training stages of Algorithm 1: identity initialisation of f_A, the warm start of f_T and f_B,
the minimax game, and the classifier training that the evaluation reuses. Where they run is
:mod:`trainables.game.device`'s concern."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

import torch
from torch import nn

from trainables.config import TrialConfig
from trainables.data.augment import augment_clips, augment_images
from trainables.data.sets import TrialData, batches, to_float
from trainables.game import losses
from trainables.game.device import Runtime, check_finite
from trainables.game.pixels import Pixels, fetch, take
from trainables.log import Log


def set_trainable(model: nn.Module, flag: bool) -> None:
    for p in model.parameters():
        p.requires_grad_(flag)


def privacy_views(
    data: TrialData, idx: torch.Tensor, cfg: TrialConfig, rt: Runtime
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two views of each privacy sample that NT-Xent treats as positives."""
    if cfg.positives == "frames":
        clips = data.action_train.clips
        idx = idx % len(clips)
        t = torch.randint(0, cfg.frames - cfg.frame_gap, (len(idx),), generator=rt.gen)
        sel = take(clips, idx)
        ar = torch.arange(len(idx))
        v1, v2 = sel[ar, :, t], sel[ar, :, t + cfg.frame_gap]
        return to_float(v1, rt.device), to_float(v2, rt.device)
    x = to_float(data.privacy_train.images[idx], rt.device)
    p = cfg.augment
    return augment_images(x, rt.gen, policy=p), augment_images(x, rt.gen, policy=p)


def n_privacy(data: TrialData, cfg: TrialConfig) -> int:
    return (
        len(data.action_train.clips)
        if cfg.positives == "frames"
        else len(data.privacy_train.images)
    )


def shuffled(
    px: Pixels,
    batch_size: int,
    cfg: TrialConfig,
    rt: Runtime,
    epoch: int,
    *,
    drop_last: bool = True,
    frame_gen: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One training epoch over ``px``: (rows, pixels on the device) in a random order drawn
    from ``rt.gen``, capped at ``cfg.max_steps_per_epoch`` batches. With ``drop_last``, a
    streamed batch that files failing mid-run left with a single row is dropped too (batch
    norm cannot train on one sample)."""
    order = batches(
        len(px), batch_size, rt.gen, drop_last=drop_last, max_batches=cfg.max_steps_per_epoch
    )
    for idx, x in fetch(px, order, rt.device, epoch=epoch, frame_gen=frame_gen):
        if drop_last and len(idx) < 2:
            continue
        yield idx, x


def _mean(xs: list[float]) -> float:
    return float(sum(xs) / max(len(xs), 1))


def identity_init(
    anon: nn.Module, data: TrialData, cfg: TrialConfig, rt: Runtime, log: Log
) -> list[float]:
    """Train f_A to reproduce its input with L1 (paper Eq. 5); lr / 5 on a plateau."""
    opt = torch.optim.Adam(anon.parameters(), lr=cfg.identity_lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.2, patience=1)
    anon.train()
    history = []
    n_priv = len(data.privacy_train.images)
    for epoch in range(1, cfg.identity_epochs + 1):
        t0, vals = time.time(), []
        pb = batches(n_priv, cfg.privacy_batch_size, rt.gen)
        for step, (_, x) in enumerate(
            shuffled(data.action_train.clips, cfg.batch_size, cfg, rt, epoch, drop_last=False)
        ):
            pidx = next(pb, None)
            if pidx is None:
                pb = batches(n_priv, cfg.privacy_batch_size, rt.gen)
                pidx = next(pb)
            p = to_float(data.privacy_train.images[pidx], rt.device)
            with rt.autocast():
                loss = losses.l1_reconstruction(anon(x), x) + losses.l1_reconstruction(anon(p), p)
            check_finite("L1", loss, "identity initialisation", epoch, step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            vals.append(loss.item() / 2)
        history.append(_mean(vals))
        sched.step(history[-1])
        log(
            f"[identity] epoch {epoch}/{cfg.identity_epochs} l1={history[-1]:.4f} "
            f"({time.time() - t0:.1f}s)"
        )
    return history


#: Batches of action clips and of privacy images that estimate a frozen f_A's batch-norm
#: statistics (the whole default-scale sets; plenty for the statistics of 32 px frames).
BN_CALIBRATION_BATCHES = 32


@torch.no_grad()
def calibrate_batch_norm(anon: nn.Module, data: TrialData, cfg: TrialConfig, rt: Runtime) -> int:
    """Estimate f_A's batch-norm statistics on raw training data (action clips and privacy
    images, in a fixed order: no random stream is drawn), as plain averages over the batches;
    return the frames seen. The game then runs f_A in eval mode with these statistics."""
    norms = [m for m in anon.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average
    anon.train()
    seen = 0
    sets: list[Pixels] = [data.action_train.clips, data.privacy_train.images]
    for px in sets:  # a fixed shuffle: real sets are stored class by class
        gen = torch.Generator().manual_seed(0)
        order = batches(len(px), cfg.batch_size, gen, max_batches=BN_CALIBRATION_BATCHES)
        for _, x in fetch(px, order, rt.device):
            with rt.autocast():
                anon(x)
            seen += x.shape[0] * (x.shape[2] if x.dim() == 5 else 1)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    anon.eval()
    return seen


def fit_action_classifier(
    model: nn.Module,
    clips: Pixels,
    labels: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    cfg: TrialConfig,
    rt: Runtime,
    log: Log,
    tag: str,
    flip_labels: torch.Tensor | None = None,
) -> list[float]:
    """Train an action classifier with cross-entropy on uint8 clips: Adam with a cosine
    schedule and motion-aware augmentation. Shared by the f_T warm start and f_T'."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        t0, vals = time.time(), []
        for step, (idx, x) in enumerate(shuffled(clips, batch_size, cfg, rt, epoch)):
            x, y = augment_clips(
                x,
                labels[idx].to(rt.device),
                rt.gen,
                flip_labels=flip_labels,
                policy=cfg.augment,
            )
            with rt.autocast():
                loss = losses.cross_entropy(model(x), y)
            check_finite("CE", loss, tag, epoch, step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            vals.append(loss.item())
        sched.step()
        history.append(_mean(vals))
        log(f"[{tag}] epoch {epoch}/{epochs} ce={history[-1]:.4f} ({time.time() - t0:.1f}s)")
    return history


def pretrain_action(
    f_t: nn.Module, data: TrialData, cfg: TrialConfig, rt: Runtime, log: Log
) -> list[float]:
    """Warm-start f_T with cross-entropy on raw clips (our stand-in for Kinetics weights)."""
    return fit_action_classifier(
        f_t,
        data.action_train.clips,
        data.action_train.labels,
        epochs=cfg.pretrain_action_epochs,
        lr=cfg.eval_lr_action,
        batch_size=cfg.eval_batch_size,
        cfg=cfg,
        rt=rt,
        log=log,
        tag="warm f_T",
        flip_labels=data.flip_labels(),
    )


def pretrain_privacy(
    f_b: nn.Module, data: TrialData, cfg: TrialConfig, rt: Runtime, log: Log
) -> list[float]:
    """Warm-start f_B with SimCLR on raw privacy data (stand-in for self-supervised weights)."""
    opt = torch.optim.Adam(f_b.parameters(), lr=cfg.eval_lr_privacy)
    f_b.train()
    history = []
    for epoch in range(1, cfg.pretrain_privacy_epochs + 1):
        t0, vals = time.time(), []
        for step, idx in enumerate(
            batches(
                n_privacy(data, cfg),
                cfg.privacy_batch_size,
                rt.gen,
                drop_last=True,
                max_batches=cfg.max_steps_per_epoch,
            )
        ):
            v1, v2 = privacy_views(data, idx, cfg, rt)
            with rt.autocast():
                loss = losses.nt_xent(f_b(v1), f_b(v2), cfg.temperature)
            check_finite("L_B", loss, "f_B warm start", epoch, step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            vals.append(loss.item())
        history.append(_mean(vals))
        log(
            f"[warm f_B] epoch {epoch}/{cfg.pretrain_privacy_epochs} nt_xent={history[-1]:.4f} "
            f"({time.time() - t0:.1f}s)"
        )
    return history


EpochCallback = Callable[[int, dict[str, float]], None]


def privacy_samples(
    data: TrialData, idx: torch.Tensor, cfg: TrialConfig, rt: Runtime
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The raw privacy samples of one game step: two frames ``frame_gap`` apart of each action
    clip (``positives='frames'``), or each privacy image and None (its two views are two
    augmentations, drawn in :func:`game_views`)."""
    if cfg.positives == "frames":
        return privacy_views(data, idx, cfg, rt)
    return to_float(data.privacy_train.images[idx], rt.device), None


@dataclass
class GameViews:
    """What the game's losses see of one batch: ``ref``, the clips the penalty compares f_A's
    output ``out`` with; ``clips`` and ``labels``, what f_T classifies; ``v1`` and ``v2``, the
    two anonymized views of the privacy batch that f_B embeds."""

    ref: torch.Tensor
    out: torch.Tensor
    clips: torch.Tensor
    labels: torch.Tensor
    v1: torch.Tensor
    v2: torch.Tensor


def game_views(
    anon: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    p1: torch.Tensor,
    p2: torch.Tensor | None,
    cfg: TrialConfig,
    gen: torch.Generator,
    flip_labels: torch.Tensor | None,
) -> GameViews:
    """f_A applied to one batch, with the training augmentation where ``cfg.augment_at`` puts
    it: on f_A's output ('output': f_A sees the clips and images as the evaluation gives them,
    and the penalty bounds exactly that change), or on its input ('input', the released code's:
    f_A also sees the augmented samples, and can learn to tell the two views of an image apart
    by their augmentation instead of hiding what they show)."""
    policy = cfg.augment
    if cfg.augment_at == "input":
        ref, labels = augment_clips(x, y, gen, flip_labels=flip_labels, policy=policy)
        if p2 is None:
            p1, p2 = augment_images(p1, gen, policy=policy), augment_images(p1, gen, policy=policy)
        out = anon(ref)
        return GameViews(ref, out, out, labels, anon(p1), anon(p2))
    out = anon(x)
    clips, labels = augment_clips(out, y, gen, flip_labels=flip_labels, policy=policy)
    if p2 is None:
        a = anon(p1)
        v1, v2 = augment_images(a, gen, policy=policy), augment_images(a, gen, policy=policy)
    else:
        v1, v2 = anon(p1), anon(p2)
    return GameViews(x, out, clips, labels, v1, v2)


def minimax(
    anon: nn.Module,
    f_t: nn.Module,
    f_b: nn.Module,
    data: TrialData,
    cfg: TrialConfig,
    rt: Runtime,
    log: Log,
    *,
    on_epoch: EpochCallback | None = None,
    start_epoch: int = 1,
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    features: Featurizer | None = None,
) -> list[dict[str, float]]:
    """The minimax game of Algorithm 1, batch by batch. ``features``: the feature-based
    penalty's frozen f_T (:func:`penalty_reference` of the warm-started f_T).

    Step 1 updates f_A on L_T - L_B + lambda * L_penalty with f_T and f_B frozen. Step 2 updates
    f_T on L_T and f_B on L_B with f_A frozen (its outputs recomputed after step 1). The
    training augmentation (the paper's section 4.2) applies where ``cfg.augment_at`` says.
    """
    opts = optimizers or make_minimax_optimizers(anon, f_t, f_b, cfg)
    history: list[dict[str, float]] = []
    n_priv = n_privacy(data, cfg)
    flip_labels = data.flip_labels()
    per_epoch = steps_per_epoch(len(data.action_train.clips), cfg)
    for epoch in range(start_epoch, cfg.minimax_epochs + 1):
        t0 = time.time()
        acc: dict[str, list[float]] = {k: [] for k in STEP_METRICS}
        pb = batches(n_priv, cfg.privacy_batch_size, rt.gen, drop_last=True)
        for step, (idx, x) in enumerate(
            shuffled(data.action_train.clips, cfg.batch_size, cfg, rt, epoch)
        ):
            pidx = next(pb, None)
            if pidx is None:
                pb = batches(n_priv, cfg.privacy_batch_size, rt.gen, drop_last=True)
                pidx = next(pb)
            y = data.action_train.labels[idx].to(rt.device)
            p1, p2 = privacy_samples(data, pidx, cfg, rt)
            set_game_lr(opts, cfg, (epoch - 1) * per_epoch + step, cfg.minimax_epochs * per_epoch)
            row = minimax_step(
                anon, f_t, f_b, x, y, p1, p2, cfg, rt, opts, epoch, step, flip_labels=flip_labels,
                features=features,
            )  # fmt: skip
            for k, v in row.items():
                acc[k].append(v)
        row = {k: _mean(v) for k, v in acc.items()}
        row["seconds"] = time.time() - t0
        row["steps"] = float(len(acc["L_A"]))
        history.append(row)
        log(
            f"[minimax] epoch {epoch}/{cfg.minimax_epochs} L_A={row['L_A']:.3f} "
            f"L_T={row['L_T']:.3f} L_B={row['L_B']:.3f} pen={row['L_penalty']:.4f} "
            f"rms={row['rms']:.3f} f_T acc={row['train_top1']:.2f} ({row['seconds']:.1f}s)"
        )
        if on_epoch is not None:
            on_epoch(epoch, row)
    return history


def steps_per_epoch(n: int, cfg: TrialConfig) -> int:
    """The game's steps in one epoch over ``n`` action clips (full batches, capped)."""
    steps = n // cfg.batch_size if n >= cfg.batch_size else 1
    return min(steps, cfg.max_steps_per_epoch) if cfg.max_steps_per_epoch else steps


#: The share of the game's steps over which a 'cosine' schedule warms up from 0.
GAME_WARMUP = 0.1


def game_lr_factor(schedule: str, step: int, total: int) -> float:
    """The factor on the game's learning rates at ``step`` of ``total``: 1 for 'constant'; for
    'cosine', a linear warm-up over the first GAME_WARMUP of the steps, then a half cosine
    down to 0. A pure function of the step, so a resumed game continues the same schedule."""
    if schedule == "constant" or total <= 0:
        return 1.0
    warm = GAME_WARMUP * total
    if step < warm:
        return min(1.0, (step + 1) / warm)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warm, total) / max(total - warm, 1)))


def set_game_lr(
    opts: dict[str, torch.optim.Optimizer], cfg: TrialConfig, step: int, total: int
) -> None:
    factor = game_lr_factor(cfg.game_schedule, step, total)
    base = {"anon": cfg.lr_anon, "action": cfg.lr_action, "privacy": cfg.lr_privacy}
    for name, opt in opts.items():
        for group in opt.param_groups:
            group["lr"] = base[name] * factor


class Featurizer(Protocol):
    """What the feature-based penalty needs of an action model: its penultimate features."""

    def features(self, clips: torch.Tensor) -> torch.Tensor: ...


_Model = TypeVar("_Model", bound=nn.Module)


def penalty_reference(f_t: _Model, cfg: TrialConfig) -> _Model | None:
    """For the feature-based penalty, a frozen copy of ``f_t`` (call it with the warm-started
    f_T): the fixed reference phi that the game's f_A is measured against, as the raw clips
    are for the pixel penalty. None for the pixel penalty."""
    if cfg.penalty_on != "action_features":
        return None
    phi = copy.deepcopy(f_t).eval()
    set_trainable(phi, False)
    return phi


def penalty_term(
    g: GameViews, cfg: TrialConfig, features: Featurizer | None, rt: Runtime
) -> torch.Tensor:
    """L_penalty of one batch: on pixels, max(0, RMS(x - f_A(x)) - B); on the action features,
    the same hinge on phi's relative distance, phi(x) computed once here without gradient."""
    if cfg.penalty_on == "pixels":
        return losses.penalty(g.ref, g.out.float(), cfg.B)
    if features is None:
        raise ValueError(
            "penalty_on=action_features needs the frozen f_T of the game (penalty_reference)"
        )
    with torch.no_grad(), rt.autocast():
        ref = features.features(g.ref)
    with rt.autocast():
        out = features.features(g.out)
    return losses.feature_penalty(ref, out, cfg.B)


#: What one game step reports (the epoch's row is their means).
STEP_METRICS = ("L_A", "L_T", "L_B", "L_penalty", "rms", "L_T_step2", "L_B_step2", "train_top1")


def minimax_step(
    anon: nn.Module,
    f_t: nn.Module,
    f_b: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    p1: torch.Tensor,
    p2: torch.Tensor | None,
    cfg: TrialConfig,
    rt: Runtime,
    opts: dict[str, torch.optim.Optimizer],
    epoch: int = 0,
    step: int = 0,
    *,
    flip_labels: torch.Tensor | None = None,
    features: Featurizer | None = None,
) -> dict[str, float]:
    """One batch of the game: step 1 updates f_A, step 2 updates f_T and f_B. ``x`` are raw
    action clips in [0, 1] with labels ``y``; ``p1``/``p2`` the raw privacy samples
    (:func:`privacy_samples`); augmentation is drawn here (:func:`game_views`). ``features``:
    the frozen f_T whose features the feature-based penalty compares
    (:func:`penalty_reference`; needed with ``penalty_on`` = action_features).

    Step 2 runs the updated f_A again on the batch (no gradient), with the same augmentation
    draws, and trains f_T and f_B on its outputs. (Training them on step 1's outputs instead
    saves a tenth of the step but changed where the game ends: at seed 0 the unconstrained game
    no longer erased the clips; docs/benchmark-design.md.)

    Batch norm runs as in the released code for f_T and f_B: the frozen networks of each step
    are in eval mode, so their running statistics, not the batch's, enter the gradient of the
    other side. f_A's runs in eval mode too unless ``anon_batch_norm`` is 'batch', where the
    step that trains f_A updates it."""
    draws = rt.gen.get_state()  # step 2 augments its recomputed outputs the same way
    # Step 1: f_A against frozen f_T and f_B (f_A's own batch norm frozen too, unless 'batch').
    anon.train(cfg.anon_batch_norm == "batch")
    f_t.eval()
    f_b.eval()
    set_trainable(anon, True)
    set_trainable(f_t, False)
    set_trainable(f_b, False)
    with rt.autocast():
        g = game_views(anon, x, y, p1, p2, cfg, rt.gen, flip_labels)
        l_t = losses.cross_entropy(f_t(g.clips), g.labels)
        l_b = losses.nt_xent(f_b(g.v1), f_b(g.v2), cfg.temperature)
    l_pen = penalty_term(g, cfg, features, rt)
    l_b_anon = losses.clamp_at_chance(l_b, len(g.v1)) if cfg.privacy_clamp else l_b
    l_a = losses.anonymizer_objective(
        l_t.float(), l_b_anon, l_pen, cfg.lam, w_action=cfg.w_action, w_privacy=cfg.w_privacy
    )
    for name, val in (("L_T", l_t), ("L_B", l_b), ("L_penalty", l_pen), ("L_A", l_a)):
        check_finite(name, val, "minimax step 1", epoch, step)
    opts["anon"].zero_grad(set_to_none=True)
    l_a.backward()
    if cfg.anon_grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(anon.parameters(), cfg.anon_grad_clip)
    opts["anon"].step()

    # Step 2: f_T and f_B against the updated, frozen f_A.
    anon.eval()
    f_t.train()
    f_b.train()
    set_trainable(anon, False)
    set_trainable(f_t, True)
    set_trainable(f_b, True)
    same = torch.Generator().set_state(draws)
    with torch.no_grad(), rt.autocast():
        g2 = game_views(anon, x, y, p1, p2, cfg, same, flip_labels)
    with rt.autocast():
        logits = f_t(g2.clips)
        l_t2 = losses.cross_entropy(logits, g2.labels)
        l_b2 = losses.nt_xent(f_b(g2.v1), f_b(g2.v2), cfg.temperature)
    check_finite("L_T (f_T update)", l_t2, "minimax step 2", epoch, step)
    check_finite("L_B (f_B update)", l_b2, "minimax step 2", epoch, step)
    opts["action"].zero_grad(set_to_none=True)
    opts["privacy"].zero_grad(set_to_none=True)
    (l_t2 + l_b2).backward()
    opts["action"].step()
    opts["privacy"].step()
    set_trainable(anon, True)
    return {
        "L_A": l_a.item(),
        "L_T": l_t.item(),
        "L_B": l_b.item(),
        "L_penalty": l_pen.item(),
        "rms": losses.rms_per_sample(g.ref, g.out.detach()).mean().item(),
        "L_T_step2": l_t2.item(),
        "L_B_step2": l_b2.item(),
        "train_top1": (logits.argmax(1) == g2.labels).float().mean().item(),
    }


def make_minimax_optimizers(
    anon: nn.Module, f_t: nn.Module, f_b: nn.Module, cfg: TrialConfig
) -> dict[str, torch.optim.Optimizer]:
    return {
        "anon": torch.optim.Adam(anon.parameters(), lr=cfg.lr_anon, betas=(0.9, cfg.anon_beta2)),
        "action": torch.optim.Adam(f_t.parameters(), lr=cfg.lr_action),
        "privacy": torch.optim.Adam(f_b.parameters(), lr=cfg.lr_privacy),
    }
