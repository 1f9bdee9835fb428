"""Anonymizers f_A: learned encoder-decoders applied frame by frame, and the paper's fixed baselines.

Every anonymizer maps pixels in [0, 1] to pixels in [0, 1] of the same shape. It accepts
clips (B, C, T, H, W) or images (B, C, H, W); learned ones run frame by frame, as in the paper.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from trainables.config import TrialConfig, is_read, neutral_fields
from trainables.families import Family, family_of
from trainables.models.anon_base import Anonymizer
from trainables.models.minimize import MinimizeOps
from trainables.registry import Registry

ANONYMIZERS: Registry[Anonymizer] = Registry("anonymizer")


def _register(
    name: str, help: str, *, paper_baseline: bool = False
) -> Callable[[Callable[..., Anonymizer]], Callable[..., Anonymizer]]:
    """Register an anonymizer (one that no family of :data:`trainables.families.FAMILIES`
    lists is an error) and whether it is one of the paper's baselines (the ``baselines``
    space: raw, downsampling, blur, blackening)."""
    if family_of(name) is None:
        raise ValueError(
            f"anonymizer {name!r} belongs to no family: add it to the members of one in "
            "trainables/families.py"
        )
    return ANONYMIZERS.register(name, help, paper_baseline=paper_baseline)


def anonymizer_family(name: str) -> Family:
    """The family of a registered anonymizer; an unknown name is an error listing the valid
    ones."""
    ANONYMIZERS.check(name)
    fam = family_of(name)
    assert fam is not None  # _register refused any other
    return fam


def family(name: str) -> str:
    """The name of a registered anonymizer's family."""
    return anonymizer_family(name).name


def trial_family(cfg: TrialConfig) -> str:
    """The family a trial of ``cfg`` is recorded under (the ``anonymizer.family`` tag): its
    anonymizer's, or ``<family>-<value>`` when the family's ``variant`` field is away from its
    neutral value (``penalty-action_features``), so that the report draws it apart."""
    fam = anonymizer_family(cfg.anonymizer)
    if fam.variant:
        value = getattr(cfg, fam.variant)
        if value != neutral_fields()[fam.variant]:
            return f"{fam.name}-{value}"
    return fam.name


def learned_anonymizers() -> list[str]:
    """The anonymizers the minimax game trains."""
    return [n for n in ANONYMIZERS.names() if anonymizer_family(n).plays_game]


def paper_baselines() -> list[str]:
    """The paper's fixed baselines and the raw reference (the ``baselines`` space)."""
    return ANONYMIZERS.where("paper_baseline", True)


def shown_knobs(cfg: TrialConfig) -> list[str]:
    """The family fields that say something about a trial of ``cfg``: its family's ``always``
    fields, and its ``when_set`` fields away from their neutral value (at it they do nothing);
    only those this anonymizer reads (a minimize preset fixes its own operators).
    Recorded with each trial (the ``anonymizer.knobs`` tag), so the analysis knows which
    columns describe which rows without a table of its own."""
    fam = anonymizer_family(cfg.anonymizer)
    neutral = neutral_fields()
    set_ = [k for k in fam.when_set if getattr(cfg, k) != neutral[k]]
    return [k for k in (*fam.always, *set_) if is_read(cfg, k)]


def setting(cfg: TrialConfig) -> str:
    """A family's knobs in words (``keep_ratio = 0.25``, ``min_resolution = 0.5,
    min_grey = True``, ``penalty_on = action_features``), but for a family the game trains
    those it always shows (B and λ have columns of their own); '' when no other knob is set.
    The one label the summary, the dry run and the report show (recorded as the
    ``anonymizer.setting`` tag)."""
    fam = anonymizer_family(cfg.anonymizer)
    own = fam.always if fam.plays_game else ()
    values = {k: getattr(cfg, k) for k in shown_knobs(cfg) if k not in own}
    return ", ".join(f"{k} = {v:.3g}" if isinstance(v, float) else f"{k} = {v}"
                     for k, v in values.items())  # fmt: skip


#: How far from 0 and 1 a residual f_A's logit of x is taken: its output at step 0 is x
#: clamped to [EPS, 1 - EPS], so the identity within EPS.
RESIDUAL_EPS = 1e-3


class LearnedAnonymizer(Anonymizer):
    """An smp encoder-decoder with a sigmoid, so its output stays a valid image in [0, 1].

    ``residual`` (``anon_init='residual'``): the net adds to the logit of its input, and its
    output convolution starts at zero, so f_A is the identity by construction before the game.
    A plain sigmoid(net(x)) (``anon_init='l1'``) has to learn the identity by L1, and cannot
    reach pixels near 0 or 1, which puts an RMS floor under every B."""

    trainable = True

    def __init__(self, net: nn.Module, size_multiple: int, *, residual: bool = True) -> None:
        super().__init__()
        self.net = net
        self.size_multiple = size_multiple
        self.residual = residual
        if residual:
            head = net.get_submodule("segmentation_head.0")
            assert isinstance(head, nn.Conv2d), f"UNet++'s head is a {type(head).__name__}"
            nn.init.zeros_(head.weight)
            if head.bias is not None:
                nn.init.zeros_(head.bias)

    def anonymize_frames(self, frames: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        out = self.net(frames)
        if self.residual:  # in float32: bf16 would round the identity by up to 1e-2
            out = out.float() + torch.logit(frames.float().clamp(RESIDUAL_EPS, 1 - RESIDUAL_EPS))
        return torch.sigmoid(out)


def _smp(
    arch: str, encoder: str, depth: int, decoder: tuple[int, ...], cfg: TrialConfig | None
) -> LearnedAnonymizer:
    import segmentation_models_pytorch as smp

    known = smp.encoders.get_encoder_names()
    if encoder not in known and not encoder.startswith("tu-"):
        raise ValueError(
            f"unknown anonymizer encoder {encoder!r}; segmentation_models_pytorch "
            f"knows: {', '.join(known)} (and timm's as 'tu-NAME')"
        )
    cls = {"unetpp": smp.UnetPlusPlus, "unet": smp.Unet}[arch]
    # encoder_weights=None: nothing is downloaded; pretrained weights come from local files.
    net = cls(
        encoder_name=encoder,
        encoder_weights=None,
        encoder_depth=depth,
        decoder_channels=decoder,
        classes=3,
        activation=None,
    )
    _drop_unused_modules(net, probe_size=2 ** (depth + 1))
    init = (cfg or TrialConfig()).anon_init
    return LearnedAnonymizer(net, size_multiple=2**depth, residual=init == "residual")


def _drop_unused_modules(net: nn.Module, probe_size: int) -> None:
    """Replace submodules that never take part in the forward pass by nn.Identity.

    smp keeps the deeper encoder stages when encoder_depth < 5 (resnet18's layer4 at depth 4):
    dead weights that an optimizer would carry and a checkpoint would store for nothing.
    """
    net.eval()
    net(torch.zeros(2, 3, probe_size, probe_size)).sum().backward()
    unused = {n for n, p in net.named_parameters() if p.grad is None}
    net.zero_grad(set_to_none=True)
    net.train()
    if not unused:
        return
    dead: list[str] = []
    for name, module in net.named_modules():
        params = [f"{name}.{n}" for n, _ in module.named_parameters()]
        if (
            name
            and params
            and all(p in unused for p in params)
            and not any(name.startswith(d + ".") for d in dead)
        ):
            dead.append(name)
    for name in dead:
        parent_name, _, attr = name.rpartition(".")
        setattr(net.get_submodule(parent_name) if parent_name else net, attr, nn.Identity())


@_register("unetpp", "UNet++ (the paper's f_A): depth 4, decoder (256,128,64,32)")
def unetpp(encoder: str = "resnet18", cfg: TrialConfig | None = None, **_: Any) -> Anonymizer:
    return _smp("unetpp", encoder, 4, (256, 128, 64, 32), cfg)


@_register("unet", "plain UNet (SPAct's f_A): depth 4, decoder (256,128,64,32)")
def unet(encoder: str = "resnet18", cfg: TrialConfig | None = None, **_: Any) -> Anonymizer:
    return _smp("unet", encoder, 4, (256, 128, 64, 32), cfg)


@_register("unetpp_tiny", "small CPU UNet++: depth 3, decoder (32,16,16)")
def unetpp_tiny(encoder: str = "resnet18", cfg: TrialConfig | None = None, **_: Any) -> Anonymizer:
    return _smp("unetpp", encoder, 3, (32, 16, 16), cfg)


@_register("unet_tiny", "small CPU UNet: depth 3, decoder (32,16,16)")
def unet_tiny(encoder: str = "resnet18", cfg: TrialConfig | None = None, **_: Any) -> Anonymizer:
    return _smp("unet", encoder, 3, (32, 16, 16), cfg)


class Identity(Anonymizer):
    def anonymize_frames(self, frames: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return frames


class Minimize(Anonymizer):
    """Data minimisation (:mod:`trainables.models.minimize`): fixed breadth and depth reductions. It
    takes whole clips, so the frame-rate and crop operators see time."""

    def __init__(self, ops: MinimizeOps) -> None:
        super().__init__()
        self.ops = ops

    def anonymize_frames(self, frames: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.ops(frames)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() not in (4, 5):
            raise ValueError(f"anonymizers take (B,C,H,W) or (B,C,T,H,W), got {tuple(x.shape)}")
        return self.ops(x)


def minimize_ops(cfg: TrialConfig) -> MinimizeOps:
    """The ``min_*`` fields of a trial config as operators."""
    return MinimizeOps(
        resolution=cfg.min_resolution,
        frame_step=cfg.min_frame_step,
        crop=cfg.min_crop,
        bits=cfg.min_bits,
        grey=cfg.min_grey,
        blur=cfg.min_blur,
    )


class Blacken(Anonymizer):
    """Blackens the pixels of the people (actor and bystanders), where their mask is known."""

    needs_mask = True

    def anonymize_frames(self, frames: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is None:
            raise ValueError(
                "the 'blacken' anonymizer needs the actor masks, which this dataset "
                "does not provide; choose another anonymizer"
            )
        return frames * (~mask.bool()).unsqueeze(1).to(frames.dtype)


@_register("identity", "raw data: no anonymization (the reference)", paper_baseline=True)
def identity(**_: Any) -> Anonymizer:
    return Identity()


# The paper's downsampling and blur baselines are presets of the minimize family.
@_register(
    "downsample2x",
    "downsample 2x and upsample back (minimize preset)",
    paper_baseline=True,
)
def downsample2x(**_: Any) -> Anonymizer:
    return Minimize(MinimizeOps(resolution=1 / 2))


@_register(
    "downsample4x",
    "downsample 4x and upsample back (minimize preset)",
    paper_baseline=True,
)
def downsample4x(**_: Any) -> Anonymizer:
    return Minimize(MinimizeOps(resolution=1 / 4))


@_register(
    "blur_weak",
    "weak Gaussian blur, sigma = 1/56 of the width, 4 px at 224 (minimize preset)",
    paper_baseline=True,
)
def blur_weak(**_: Any) -> Anonymizer:
    return Minimize(MinimizeOps(blur=1 / 56))


@_register(
    "blur_strong",
    "strong Gaussian blur, sigma = 1/16 of the width, 14 px at 224 (minimize preset)",
    paper_baseline=True,
)
def blur_strong(**_: Any) -> Anonymizer:
    return Minimize(MinimizeOps(blur=1 / 16))


@_register(
    "minimize",
    "data minimisation: the min_* fields (resolution, frame step, motion crop, bits, grey, blur)",
)
def minimize(cfg: TrialConfig | None = None, **_: Any) -> Anonymizer:
    return Minimize(minimize_ops(cfg) if cfg is not None else MinimizeOps())


@_register(
    "tubelet_prune",
    "attention-driven tubelet pruning: a video ViT with action and privacy CLS tokens keeps "
    "the keep_ratio best-scored tubelets",
)
def tubelet_prune(cfg: TrialConfig | None = None, num_classes: int = 2, **_: Any) -> Anonymizer:
    from trainables.models.tubelet import TubeletPrune  # the ViT: only when this family is built

    return TubeletPrune.from_config(cfg or TrialConfig(), num_classes)


@_register(
    "blacken",
    "blackening of the people, where their masks are known",
    paper_baseline=True,
)
def blacken(**_: Any) -> Anonymizer:
    return Blacken()


def build_anonymizer(
    name: str, encoder: str = "resnet18", cfg: TrialConfig | None = None, num_classes: int = 2
) -> Anonymizer:
    """Build a registered anonymizer; an unknown name raises an error listing the valid ones.
    ``cfg`` gives the knobs of the minimize and tubelet_prune families; ``num_classes`` the
    action classes of tubelet_prune's scorer."""
    return ANONYMIZERS.build(name, encoder=encoder, cfg=cfg, num_classes=num_classes)
