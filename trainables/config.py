"""The trial configuration: one typed dataclass, its named scales, validation and the CLI flags.

Every field carries its help text; the command line of ``trainables.run`` (and the launcher's
overrides) is derived from these fields, so each flag is defined once.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any


def help_field(default: Any, help: str) -> Any:
    """A dataclass field whose help text becomes the flag's help."""
    return field(default=default, metadata={"help": help})


_f = help_field


@dataclass(frozen=True)
class TrialConfig:
    """Everything one trial needs. Defaults are the ``smoke`` scale."""

    scale: str = _f("smoke", "named scale whose defaults fill every unset field")
    dataset: str = _f("synthetic", "dataset or protocol name")
    B: float = _f(0.3, "penalty bound B on RMS(X - f_A(X)) of action inputs, in [0, 1]")
    lam: float = _f(1.0, "penalty weight lambda_penalty, >= 0")
    seed: int = _f(0, "seed of model initialisation and training order")
    data_seed: int = _f(0, "seed of the synthetic benchmark and of the shared stages")
    # Models.
    anonymizer: str = _f("unetpp_tiny", "anonymizer f_A (learned or a fixed baseline)")
    anon_encoder: str = _f("mobilenet_v2", "encoder of a learned anonymizer (smp name)")
    action_model: str = _f("i3d_r50_tiny", "action model f_T used in the minimax game")
    privacy_model: str = _f("resnet10_tiny", "privacy model f_B used in the minimax game")
    eval_action_model: str = _f("", "fresh action model f_T' for evaluation ('' = action_model)")
    eval_privacy_model: str = _f("", "fresh privacy model f_B' for evaluation ('' = privacy_model)")
    # Data geometry and sizes.
    size: int = _f(32, "frame height and width in pixels")
    frames: int = _f(8, "frames per clip")
    skip: int = _f(4, "frame skip when sampling clips from real videos")
    n_action_train: int = _f(192, "synthetic action clips for training")
    n_action_test: int = _f(96, "synthetic action clips for testing")
    n_privacy_train: int = _f(192, "synthetic privacy images for training")
    n_privacy_test: int = _f(96, "synthetic privacy images for testing")
    # Optimisation.
    batch_size: int = _f(16, "action clips per batch")
    privacy_batch_size: int = _f(32, "privacy samples (pairs) per batch")
    identity_epochs: int = _f(3, "epochs of L1 identity initialisation of f_A")
    identity_lr: float = _f(1e-3, "learning rate of the identity initialisation")
    pretrain_action_epochs: int = _f(
        6, "epochs training f_T on raw clips before the game (stands in for Kinetics-400 weights)"
    )
    pretrain_privacy_epochs: int = _f(
        3,
        "epochs of SimCLR on raw privacy data before the game "
        "(stands in for self-supervised weights)",
    )
    minimax_epochs: int = _f(2, "epochs of the minimax game")
    lr_anon: float = _f(1e-3, "learning rate of f_A in the game")
    lr_action: float = _f(1e-3, "learning rate of f_T in the game")
    lr_privacy: float = _f(1e-3, "learning rate of f_B in the game")
    temperature: float = _f(0.1, "NT-Xent temperature")
    positives: str = _f(
        "augment",
        "NT-Xent positives: 'augment' (two augmentations of one "
        "privacy image) or 'frames' (two frames frame_gap apart)",
    )
    frame_gap: int = _f(4, "frame distance of the positives when positives='frames'")
    eval_action_epochs: int = _f(6, "epochs training the fresh f_T'")
    eval_privacy_epochs: int = _f(4, "epochs training the fresh f_B'")
    eval_lr_action: float = _f(3e-3, "learning rate of f_T'")
    eval_lr_privacy: float = _f(2e-3, "learning rate of f_B'")
    eval_batch_size: int = _f(32, "batch size of f_T' and f_B' training")
    max_steps_per_epoch: int = _f(0, "cap on batches per epoch in every stage (0 = no cap)")
    augment: str = _f(
        "light",
        "training augmentation: 'light' (flip, crop, brightness) or 'paper' (adds colour jitter "
        "and random erasing)",
    )
    # Real datasets (see trainables/datasets): roots default to the environment variables
    # UCF101_ROOT, HMDB51_ROOT, PAHMDB_ROOT, VISPR_ROOT, VPUCF_ROOT and VPHMDB_ROOT.
    ucf101_root: str = _f("", "UCF101 root (UCF-101/ and ucfTrainTestlist/)")
    hmdb51_root: str = _f("", "HMDB51 root (<class>/<video>.avi and the split files)")
    pahmdb_root: str = _f("", "PA-HMDB51 root (PrivacyAttributes/<class>.json)")
    vispr_root: str = _f("", "VISPR root (images/<split>/ and annos/<split>/)")
    vpucf_root: str = _f("", "VP-UCF root (annotations.csv)")
    vphmdb_root: str = _f("", "VP-HMDB root (annotations.csv)")
    split: int = _f(1, "official split of UCF101/HMDB51 (1-3)")
    crop: float = _f(0.8, "fraction of the frame each clip crops before resizing")
    test_clips: int = _f(5, "evenly spaced clips per test video (Top-1 averages their softmax)")
    workers: int = _f(2, "DataLoader workers decoding real videos")
    clip_store: str = _f(
        "stream",
        "how real videos become clips: 'stream' (decoded batch by batch in persistent DataLoader "
        "workers, a fresh random clip of each training video every epoch; memory does not grow "
        "with the dataset) or 'memory' (decoded once before training, one random clip per "
        "training video; faster for small subsets)",
    )
    anon_weights: str = _f(
        "", "local file of identity-trained f_A weights (skips the identity initialisation)"
    )
    action_weights: str = _f(
        "", "local file of Kinetics-400 weights for f_T (and f_T' when it is the same model)"
    )
    privacy_weights: str = _f("", "local file of SimCLR self-supervised weights for f_B")
    amp: bool = _f(False, "bf16 autocast on CUDA")
    device: str = _f("auto", "'auto', 'cpu' or 'cuda[:N]'")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def target_action_model(self) -> str:
        return self.eval_action_model or self.action_model

    @property
    def target_privacy_model(self) -> str:
        return self.eval_privacy_model or self.privacy_model


SCALES: dict[str, dict[str, Any]] = {
    # Tests and quick looks: a whole trial in well under a minute on 2 CPU cores.
    "smoke": {},
    # The built-in study: enough data and epochs for the trade-off to show.
    "default": dict(
        n_action_train=768,
        n_action_test=384,
        n_privacy_train=768,
        n_privacy_test=384,
        identity_epochs=8,
        pretrain_action_epochs=24,
        pretrain_privacy_epochs=6,
        minimax_epochs=3,
        eval_action_epochs=24,
        eval_privacy_epochs=8,
    ),
    # The paper's protocol (Algorithm 1 and the reference hyperparameters), for GPUs.
    "paper": dict(
        size=224,
        frames=16,
        skip=4,
        anonymizer="unetpp",
        anon_encoder="resnet18",
        action_model="i3d_r50",
        privacy_model="resnet50",
        batch_size=8,
        privacy_batch_size=8,
        identity_epochs=100,
        identity_lr=1e-3,
        pretrain_action_epochs=0,
        pretrain_privacy_epochs=0,
        minimax_epochs=100,
        lr_anon=4e-5,
        lr_action=1e-4,
        lr_privacy=1e-4,
        eval_action_epochs=100,
        eval_privacy_epochs=100,
        eval_lr_action=1e-4,
        eval_lr_privacy=1e-3,
        eval_batch_size=16,
        augment="paper",
        workers=8,
        amp=True,
        n_action_train=9537,
        n_action_test=3783,
        n_privacy_train=2048,
        n_privacy_test=1024,
    ),
}

POSITIVES = ("augment", "frames")
CLIP_STORES = ("stream", "memory")


def config_for(scale: str = "smoke", **overrides: Any) -> TrialConfig:
    """The config of a named scale with ``overrides`` applied; unknown names are errors."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; valid scales are: {', '.join(SCALES)}")
    known = {f.name for f in fields(TrialConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(
            f"unknown config keys {unknown}; valid keys are: {', '.join(sorted(known))}"
        )
    values = {**SCALES[scale], **{k: v for k, v in overrides.items() if v is not None}}
    return TrialConfig(scale=scale, **values)


def from_dict(d: dict[str, Any]) -> TrialConfig:
    """Build a config from a flat dict (a Ray Tune config, MLflow params): the scale first, then
    the rest as overrides, each converted to its field's type."""
    types = {f.name: f.type for f in fields(TrialConfig)}
    conv: dict[str, Any] = {}
    for k, v in d.items():
        if k == "scale" or k not in types or v is None:
            continue
        t = types[k]
        if t in ("bool", bool) and isinstance(v, str):
            conv[k] = v.lower() in ("1", "true", "yes")
        elif t in ("int", int):
            conv[k] = int(v)
        elif t in ("float", float):
            conv[k] = float(v)
        else:
            conv[k] = v
    extra = sorted(set(d) - set(types))
    if extra:
        raise ValueError(f"unknown config keys {extra}; valid keys are: {', '.join(sorted(types))}")
    return config_for(str(d.get("scale", "smoke")), **conv)


class ConfigError(ValueError):
    """A config that cannot run; raised before any training starts."""


def validate(cfg: TrialConfig) -> None:
    """Check names, ranges and sizes; raise ConfigError naming the field and the fix."""
    from trainables.action_models import ACTION_MODELS
    from trainables.anonymizers import ANONYMIZERS
    from trainables.data import DATASETS
    from trainables.privacy_models import PRIVACY_MODELS

    errors: list[str] = []

    def check(ok: bool, msg: str) -> None:
        if not ok:
            errors.append(msg)

    for reg, name, flag in (
        (ANONYMIZERS, cfg.anonymizer, "--anonymizer"),
        (ACTION_MODELS, cfg.action_model, "--action-model"),
        (ACTION_MODELS, cfg.target_action_model, "--eval-action-model"),
        (PRIVACY_MODELS, cfg.privacy_model, "--privacy-model"),
        (PRIVACY_MODELS, cfg.target_privacy_model, "--eval-privacy-model"),
        (DATASETS, cfg.dataset, "--dataset"),
    ):
        check(name in reg, f"{flag}: unknown {reg.kind} {name!r}; valid: {', '.join(reg.names())}")
    check(0.0 <= cfg.B <= 1.0, f"--B must lie in [0, 1] (an RMS of pixels in [0, 1]), got {cfg.B}")
    check(cfg.lam >= 0, f"--lam must be >= 0, got {cfg.lam}")
    check(cfg.size >= 16, f"--size must be >= 16 pixels, got {cfg.size}")
    check(cfg.frames >= 2, f"--frames must be >= 2 to show motion, got {cfg.frames}")
    check(cfg.skip >= 1, f"--skip must be >= 1, got {cfg.skip}")
    for name in (
        "n_action_train",
        "n_action_test",
        "n_privacy_train",
        "n_privacy_test",
        "batch_size",
        "privacy_batch_size",
        "eval_batch_size",
    ):
        check(
            getattr(cfg, name) >= 2,
            f"--{name.replace('_', '-')} must be >= 2, got {getattr(cfg, name)}",
        )
    for name in (
        "identity_epochs",
        "pretrain_action_epochs",
        "pretrain_privacy_epochs",
        "minimax_epochs",
        "max_steps_per_epoch",
    ):
        check(getattr(cfg, name) >= 0, f"--{name.replace('_', '-')} must be >= 0")
    for name in ("eval_action_epochs", "eval_privacy_epochs"):
        check(getattr(cfg, name) >= 1, f"--{name.replace('_', '-')} must be >= 1")
    for name in (
        "identity_lr",
        "lr_anon",
        "lr_action",
        "lr_privacy",
        "eval_lr_action",
        "eval_lr_privacy",
        "temperature",
    ):
        check(getattr(cfg, name) > 0, f"--{name.replace('_', '-')} must be > 0")
    check(
        cfg.positives in POSITIVES,
        f"--positives must be one of {', '.join(POSITIVES)}, got {cfg.positives!r}",
    )
    if cfg.positives == "frames":
        check(
            1 <= cfg.frame_gap < cfg.frames,
            f"--frame-gap must be in [1, frames-1] = [1, {cfg.frames - 1}], got {cfg.frame_gap}",
        )
    from trainables.augment import POLICIES

    check(
        cfg.augment in POLICIES,
        f"--augment must be one of {', '.join(POLICIES)}, got {cfg.augment!r}",
    )
    check(cfg.split in (1, 2, 3), f"--split must be 1, 2 or 3, got {cfg.split}")
    check(0 < cfg.crop <= 1, f"--crop must lie in (0, 1], got {cfg.crop}")
    check(cfg.test_clips >= 1, f"--test-clips must be >= 1, got {cfg.test_clips}")
    check(cfg.workers >= 0, f"--workers must be >= 0, got {cfg.workers}")
    check(
        cfg.clip_store in CLIP_STORES,
        f"--clip-store must be one of {', '.join(CLIP_STORES)}, got {cfg.clip_store!r}",
    )
    check(
        cfg.device == "auto" or cfg.device == "cpu" or cfg.device.startswith("cuda"),
        f"--device must be auto, cpu or cuda[:N], got {cfg.device!r}",
    )
    if cfg.dataset.startswith("synthetic") and not errors:
        need = synthetic_render_bytes(cfg)
        check(
            need <= SYNTHETIC_RENDER_LIMIT,
            f"the synthetic benchmark at --size {cfg.size} --frames {cfg.frames} with "
            f"{max(cfg.n_action_train, cfg.n_action_test, cfg.n_privacy_train, cfg.n_privacy_test)} "
            f"samples per set needs about {need / 2**30:.1f} GiB to render (limit "
            f"{SYNTHETIC_RENDER_LIMIT / 2**30:.0f} GiB); lower --size, --frames or the --n-* "
            f"sizes (the paper scale is meant for real datasets)",
        )
    from pathlib import Path

    for name in ("anon_weights", "action_weights", "privacy_weights"):
        value = getattr(cfg, name)
        check(
            not value or Path(value).is_file(),
            f"--{name.replace('_', '-')}: {value} does not exist (weights are never downloaded; "
            "give a local file)",
        )
    if errors:
        raise ConfigError("invalid trial config:\n  - " + "\n  - ".join(errors))


SYNTHETIC_RENDER_LIMIT = 6 * 2**30


def synthetic_render_bytes(cfg: TrialConfig) -> int:
    """Peak memory of rendering the largest synthetic set: float32 RGB frames, about four live
    temporaries of that size, plus the uint8 copies of every set."""
    largest = max(cfg.n_action_train, cfg.n_action_test, cfg.n_privacy_train, cfg.n_privacy_test)
    frame = 3 * cfg.size * cfg.size
    render = largest * cfg.frames * frame * 4 * 4
    stored = (cfg.n_action_train + cfg.n_action_test) * cfg.frames * frame
    stored += (cfg.n_privacy_train + cfg.n_privacy_test) * frame
    return render + stored


def add_config_flags(parser: argparse.ArgumentParser, *, exclude: tuple[str, ...] = ()) -> None:
    """Add one ``--flag`` per config field (default None = take the scale's value)."""
    for f in fields(TrialConfig):
        if f.name in exclude:
            continue
        flag = "--" + f.name.replace("_", "-")
        help_ = f"{f.metadata.get('help', '')} (smoke: {f.default})"
        if f.type in ("bool", bool):
            parser.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_
            )
        else:
            typ = {"int": int, "float": float, "str": str}.get(str(f.type), str)
            parser.add_argument(flag, dest=f.name, type=typ, default=None, help=help_)


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    names = {f.name for f in fields(TrialConfig)} - {"scale"}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}
