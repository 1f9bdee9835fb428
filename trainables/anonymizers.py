"""Anonymizers f_A: learned encoder-decoders applied frame by frame, and the paper's fixed baselines.

Every anonymizer maps pixels in [0, 1] to pixels in [0, 1] of the same shape. It accepts
clips (B, C, T, H, W) or images (B, C, H, W); learned ones run frame by frame, as in the paper.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from trainables.registry import Registry


class Anonymizer(nn.Module):
    """Base class: ``trainable`` says whether minimax updates it; ``needs_mask`` whether it
    needs the actor mask (blackening)."""

    trainable: bool = False
    needs_mask: bool = False
    #: Height and width must be multiples of this.
    size_multiple: int = 1

    def anonymize_frames(self, frames: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() == 4:
            return self.anonymize_frames(x, mask)
        if x.dim() != 5:
            raise ValueError(f"anonymizers take (B,C,H,W) or (B,C,T,H,W), got {tuple(x.shape)}")
        b, c, t, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        fmask = None if mask is None else mask.reshape(b * t, h, w)
        out = self.anonymize_frames(frames, fmask)
        return out.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)


ANONYMIZERS: Registry[Anonymizer] = Registry("anonymizer")
#: The registered anonymizers that the minimax game trains; every other one is a fixed baseline.
LEARNED: set[str] = set()


def _learned(
    name: str, help: str
) -> Callable[[Callable[..., Anonymizer]], Callable[..., Anonymizer]]:
    LEARNED.add(name)
    return ANONYMIZERS.register(name, help)


def fixed_anonymizers() -> list[str]:
    """The registered fixed anonymizers (the paper's baselines and the raw reference)."""
    return [n for n in ANONYMIZERS.names() if n not in LEARNED]


class LearnedAnonymizer(Anonymizer):
    """An smp encoder-decoder with a sigmoid, so its output stays a valid image in [0, 1]."""

    trainable = True

    def __init__(self, net: nn.Module, size_multiple: int) -> None:
        super().__init__()
        self.net = net
        self.size_multiple = size_multiple

    def anonymize_frames(self, frames: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return torch.sigmoid(self.net(frames))


def _smp(arch: str, encoder: str, depth: int, decoder: tuple[int, ...]) -> LearnedAnonymizer:
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
    return LearnedAnonymizer(net, size_multiple=2**depth)


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


@_learned("unetpp", "UNet++ (the paper's f_A): depth 4, decoder (256,128,64,32)")
def unetpp(encoder: str = "resnet18") -> Anonymizer:
    return _smp("unetpp", encoder, 4, (256, 128, 64, 32))


@_learned("unet", "plain UNet (SPAct's f_A): depth 4, decoder (256,128,64,32)")
def unet(encoder: str = "resnet18") -> Anonymizer:
    return _smp("unet", encoder, 4, (256, 128, 64, 32))


@_learned("unetpp_tiny", "small CPU UNet++: depth 3, decoder (32,16,16)")
def unetpp_tiny(encoder: str = "resnet18") -> Anonymizer:
    return _smp("unetpp", encoder, 3, (32, 16, 16))


@_learned("unet_tiny", "small CPU UNet: depth 3, decoder (32,16,16)")
def unet_tiny(encoder: str = "resnet18") -> Anonymizer:
    return _smp("unet", encoder, 3, (32, 16, 16))


class Identity(Anonymizer):
    def anonymize_frames(self, frames: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return frames


class Downsample(Anonymizer):
    """Average-pool by ``factor`` and upsample back, so the models see the usual size."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = factor
        self.size_multiple = factor

    def anonymize_frames(self, frames: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        small = F.avg_pool2d(frames, self.factor)
        return F.interpolate(small, size=frames.shape[-2:], mode="bilinear", align_corners=False)


class GaussianBlur(Anonymizer):
    """Gaussian blur whose sigma is a fraction of the frame width, so it means the same at any
    resolution."""

    def __init__(self, sigma_fraction: float) -> None:
        super().__init__()
        self.sigma_fraction = sigma_fraction

    def anonymize_frames(self, frames: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        sigma = max(self.sigma_fraction * frames.shape[-1], 1e-3)
        radius = max(1, math.ceil(3 * sigma))
        k = torch.arange(-radius, radius + 1, dtype=frames.dtype, device=frames.device)
        k = torch.exp(-0.5 * (k / sigma) ** 2)
        k = k / k.sum()
        c = frames.shape[1]
        x = F.pad(frames, (radius, radius, radius, radius), mode="replicate")
        x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
        return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


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


@ANONYMIZERS.register("identity", "raw data: no anonymization (the reference)")
def identity(encoder: str = "") -> Anonymizer:
    return Identity()


@ANONYMIZERS.register("downsample2x", "downsample 2x and upsample back")
def downsample2x(encoder: str = "") -> Anonymizer:
    return Downsample(2)


@ANONYMIZERS.register("downsample4x", "downsample 4x and upsample back")
def downsample4x(encoder: str = "") -> Anonymizer:
    return Downsample(4)


@ANONYMIZERS.register("blur_weak", "weak Gaussian blur, sigma = 1/56 of the width (4 px at 224)")
def blur_weak(encoder: str = "") -> Anonymizer:
    return GaussianBlur(1 / 56)


@ANONYMIZERS.register(
    "blur_strong", "strong Gaussian blur, sigma = 1/16 of the width (14 px at 224)"
)
def blur_strong(encoder: str = "") -> Anonymizer:
    return GaussianBlur(1 / 16)


@ANONYMIZERS.register("blacken", "blackening of the people, where their masks are known")
def blacken(encoder: str = "") -> Anonymizer:
    return Blacken()


def build_anonymizer(name: str, encoder: str = "resnet18") -> Anonymizer:
    """Build a registered anonymizer; an unknown name raises an error listing the valid ones."""
    return ANONYMIZERS.build(name, encoder=encoder)
