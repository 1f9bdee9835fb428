"""Action models f_T and f_T': pytorchvideo and torchvision video classifiers.

Each builder takes the number of classes and the clip geometry, builds the network with random
weights (nothing is downloaded), and wraps it so that it takes clips (B, C, T, H, W) with pixels
in [0, 1] and returns logits (B, K).
"""

from __future__ import annotations

import torch
from torch import nn

from trainables.registry import Registry

# Kinetics normalisation used by both pytorchvideo and torchvision video models.
KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)
TORCHVISION_VIDEO_MEAN = (0.43216, 0.394666, 0.37645)
TORCHVISION_VIDEO_STD = (0.22803, 0.22145, 0.216989)


class VideoClassifier(nn.Module):
    """Normalises [0, 1] clips and runs the backbone. :meth:`features` gives the penultimate
    feature map, the input of the backbone's last linear layer (its classifier)."""

    def __init__(
        self,
        backbone: nn.Module,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        min_frames: int = 1,
        size_multiple: int = 1,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1, 1), persistent=False)
        self.min_frames = min_frames
        self.size_multiple = size_multiple
        linears = [n for n, m in backbone.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError(
                f"{type(backbone).__name__} has no linear classifier to read features at"
            )
        # Its name, not the module: a second reference would register it twice and put its
        # parameters in the state dict again (checkpoints keep the backbone's keys only).
        self.classifier_name = linears[-1]

    @property
    def classifier(self) -> nn.Linear:
        """The backbone's last linear layer, whose input :meth:`features` returns."""
        head = self.backbone.get_submodule(self.classifier_name)
        assert isinstance(head, nn.Linear)
        return head

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.backbone((clips - self.mean) / self.std)

    def features(self, clips: torch.Tensor) -> torch.Tensor:
        """The penultimate feature map of ``clips``, flattened per sample (N, D): what the
        classifier reads. Differentiable with respect to ``clips``."""
        seen: list[torch.Tensor] = []

        def keep(_: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            seen.append(inputs[0])

        hook = self.classifier.register_forward_pre_hook(keep)
        try:
            self(clips)
        finally:
            hook.remove()
        return seen[-1].flatten(1)


ACTION_MODELS: Registry[VideoClassifier] = Registry("action model")


def _x3d(
    num_classes: int,
    frames: int,
    size: int,
    width: float,
    depth: float,
    head_dim: int = 2048,
    stem_dim: int = 12,
) -> VideoClassifier:
    from pytorchvideo.models.x3d import create_x3d

    net = create_x3d(
        input_clip_length=frames,
        input_crop_size=size,
        model_num_class=num_classes,
        width_factor=width,
        depth_factor=depth,
        head_dim_out=head_dim,
        stem_dim_in=stem_dim,
        head_activation=None,
        dropout_rate=0.0 if head_dim < 2048 else 0.5,
    )
    # X3D's head pools over a fixed window computed from the geometry: sizes must be exact.
    return VideoClassifier(net, KINETICS_MEAN, KINETICS_STD, min_frames=1, size_multiple=32)


def _pv_resnet(num_classes: int, i3d: bool, stem_dim: int = 64, depth: int = 50) -> VideoClassifier:
    from pytorchvideo.models.resnet import create_resnet

    kw: dict[str, object] = {}
    if i3d:  # pytorchvideo's hub i3d_r50 configuration
        kw = dict(
            stem_conv_kernel_size=(5, 7, 7),
            stage1_pool=nn.MaxPool3d,
            stage_conv_a_kernel_size=(
                (3, 1, 1),
                [(3, 1, 1), (1, 1, 1)],
                [(3, 1, 1), (1, 1, 1)],
                [(1, 1, 1), (3, 1, 1)],
            ),
        )
    else:  # hub slow_r50
        kw = dict(stem_conv_kernel_size=(1, 7, 7))
    net = create_resnet(
        model_depth=depth,
        model_num_class=num_classes,
        stem_dim_out=stem_dim,
        head_pool=nn.AdaptiveAvgPool3d,
        head_output_size=(1, 1, 1),
        dropout_rate=0.5 if stem_dim == 64 else 0.0,
        **kw,
    )
    # i3d's stage-1 pool halves time.
    return VideoClassifier(
        net, KINETICS_MEAN, KINETICS_STD, min_frames=2 if i3d else 1, size_multiple=32
    )


def _torchvision(name: str, num_classes: int) -> VideoClassifier:
    from torchvision.models import video

    net = getattr(video, name)(weights=None, num_classes=num_classes)
    return VideoClassifier(
        net, TORCHVISION_VIDEO_MEAN, TORCHVISION_VIDEO_STD, min_frames=1, size_multiple=1
    )


@ACTION_MODELS.register(
    "x3d_xs", "pytorchvideo X3D-XS/S/M (one network; they differ by input geometry)"
)
def x3d_xs(num_classes: int, frames: int, size: int) -> VideoClassifier:
    return _x3d(num_classes, frames, size, width=2.0, depth=2.2)


@ACTION_MODELS.register("x3d_l", "pytorchvideo X3D-L (deeper: depth factor 5)")
def x3d_l(num_classes: int, frames: int, size: int) -> VideoClassifier:
    return _x3d(num_classes, frames, size, width=2.0, depth=5.0)


@ACTION_MODELS.register("x3d_tiny", "small CPU X3D: width 1, depth 1, stem 8, head 128")
def x3d_tiny(num_classes: int, frames: int, size: int) -> VideoClassifier:
    return _x3d(num_classes, frames, size, width=1.0, depth=1.0, head_dim=128, stem_dim=8)


@ACTION_MODELS.register("i3d_r50", "pytorchvideo I3D ResNet-50 (the paper's f_T)")
def i3d_r50(num_classes: int, frames: int, size: int) -> VideoClassifier:
    return _pv_resnet(num_classes, i3d=True)


@ACTION_MODELS.register("slow_r50", "pytorchvideo Slow ResNet-50")
def slow_r50(num_classes: int, frames: int, size: int) -> VideoClassifier:
    return _pv_resnet(num_classes, i3d=False)


@ACTION_MODELS.register("i3d_r50_tiny", "small CPU I3D ResNet-50 layout, stem width 8")
def i3d_r50_tiny(num_classes: int, frames: int, size: int) -> VideoClassifier:
    return _pv_resnet(num_classes, i3d=True, stem_dim=8)


def _c3d_block(cin: int, cout: int, pool: tuple[int, int, int]) -> list[nn.Module]:
    return [
        nn.Conv3d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm3d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool3d(pool),
    ]


@ACTION_MODELS.register(
    "c3d_tiny", "small CPU C3D (supplement Table 5): 4 conv3d stages of widths 16/32/64/64"
)
def c3d_tiny(num_classes: int, frames: int, size: int) -> VideoClassifier:
    net = nn.Sequential(
        *_c3d_block(3, 16, (1, 2, 2)),  # space first: the motion is read at full frame rate
        *_c3d_block(16, 32, (2, 2, 2)),
        *_c3d_block(32, 64, (2, 2, 2)),
        nn.Conv3d(64, 64, 3, padding=1, bias=False),
        nn.BatchNorm3d(64),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool3d(1),
        nn.Flatten(),
        nn.Linear(64, num_classes),
    )
    return VideoClassifier(net, KINETICS_MEAN, KINETICS_STD, min_frames=4, size_multiple=8)


@ACTION_MODELS.register("r3d_18", "torchvision R3D-18 (SPAct's f_T)")
def r3d_18(num_classes: int, frames: int, size: int) -> VideoClassifier:
    return _torchvision("r3d_18", num_classes)


@ACTION_MODELS.register("r2plus1d_18", "torchvision R(2+1)D-18")
def r2plus1d_18(num_classes: int, frames: int, size: int) -> VideoClassifier:
    return _torchvision("r2plus1d_18", num_classes)


@ACTION_MODELS.register("mc3_18", "torchvision MC3-18")
def mc3_18(num_classes: int, frames: int, size: int) -> VideoClassifier:
    return _torchvision("mc3_18", num_classes)


def build_action_model(name: str, *, num_classes: int, frames: int, size: int) -> VideoClassifier:
    """Build a registered action model; an unknown name raises an error listing the valid ones."""
    return ACTION_MODELS.build(name, num_classes=num_classes, frames=frames, size=size)
