"""Privacy models: f_B (ResNet + SimCLR projection head) and f_B' (ResNet + multi-label head).

Builders take the head kind and its output size; networks take images (B, C, H, W) with pixels
in [0, 1]. Nothing is downloaded: weights are random unless loaded from a local file.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from trainables.registry import Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Head = Literal["simclr", "multilabel"]


class SimCLRHead(nn.Module):
    """Linear(d, d) -> ReLU -> Linear(d, 128), L2-normalised (the paper's f_B projection)."""

    def __init__(self, dim: int, out: int = 128) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(x), dim=1)


class ImageModel(nn.Module):
    """Normalises [0, 1] images, extracts ResNet features and applies the head."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone((images - self.mean) / self.std))


PRIVACY_MODELS: Registry[ImageModel] = Registry("privacy model")


def _wrap(backbone: nn.Module, head: Head, num_outputs: int) -> ImageModel:
    fc = backbone.fc
    assert isinstance(fc, nn.Linear), f"the backbone's fc is a {type(fc).__name__}"
    dim = fc.in_features
    backbone.fc = nn.Identity()
    if head == "simclr":
        return ImageModel(backbone, SimCLRHead(dim, num_outputs))
    if head == "multilabel":
        return ImageModel(backbone, nn.Linear(dim, num_outputs))
    raise ValueError(f"unknown privacy head {head!r}; valid heads are: simclr, multilabel")


def _tv(name: str):
    def build(head: Head, num_outputs: int) -> ImageModel:
        from torchvision import models

        return _wrap(getattr(models, name)(weights=None), head, num_outputs)

    return build


for _name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
    PRIVACY_MODELS.register(_name, f"torchvision {_name}")(_tv(_name))


@PRIVACY_MODELS.register("resnet10_tiny", "small CPU ResNet: torchvision BasicBlock x [1,1,1,1]")
def resnet10_tiny(head: Head, num_outputs: int) -> ImageModel:
    from torchvision.models.resnet import BasicBlock, ResNet

    return _wrap(ResNet(BasicBlock, [1, 1, 1, 1]), head, num_outputs)


class _FullResolutionResNet(nn.Module):
    """A CIFAR-style ResNet: a 3x3 stride-1 stem and no pooling before the first stage, so
    one-pixel cues of a 32 px image survive into the features."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64)) -> None:
        from torchvision.models.resnet import BasicBlock

        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(3, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        inplanes = widths[0]
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or inplanes != w:
                down = nn.Sequential(
                    nn.Conv2d(inplanes, w, 1, stride=stride, bias=False), nn.BatchNorm2d(w)
                )
            layers.append(BasicBlock(inplanes, w, stride=stride, downsample=down))
            inplanes = w
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(inplanes, 1)  # replaced by the head; says the feature width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@PRIVACY_MODELS.register(
    "resnet8_full",
    "small CPU ResNet at full resolution: 3x3 stride-1 stem, no pooling, BasicBlock x 3 "
    "stages (16/32/64)",
)
def resnet8_full(head: Head, num_outputs: int) -> ImageModel:
    return _wrap(_FullResolutionResNet(), head, num_outputs)


def build_privacy_model(name: str, *, head: Head, num_outputs: int) -> ImageModel:
    """Build a registered privacy model; an unknown name raises an error listing the valid ones."""
    return PRIVACY_MODELS.build(name, head=head, num_outputs=num_outputs)
