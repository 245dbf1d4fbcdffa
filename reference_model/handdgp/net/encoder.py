"""A compact residual image encoder sized for CPU training at 128 px.

A ResNet-18 layout (four stages of two basic blocks) at a configurable width:
``width=0.5`` (the default) has 32-64-128-256 channels, ~2.8 M parameters, and
trains several times faster on a CPU than the full-width network; ``width=1.0``
and ``depth=(2, 2, 2, 2)`` is ResNet-18 itself for a GPU user.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

__all__ = ["Encoder", "EncoderFeatures"]


class EncoderFeatures(NamedTuple):
    """Feature maps of :class:`Encoder` for a `(B, 3, H, W)` input.

    Attributes:
        fine: `(B, C_fine, H/8, W/8)`, for the 2D keypoint and weight heads.
        coarse: `(B, C_coarse, H/32, W/32)`, the latent sampled by the mesh decoder.
        early: `(B, C_early, H/4, W/4)`, the first stage's output, for a stride-4
            2D keypoint head.
        middle: `(B, C_middle, H/16, W/16)`, the third stage's output, for the
            keypoint head's top-down context.
    """

    fine: Tensor
    coarse: Tensor
    early: Tensor
    middle: Tensor


class _BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.skip = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.skip(x))


class Encoder(nn.Module):
    """Residual encoder returning stride-4, stride-8, stride-16 and stride-32 features.

    Args:
        width: channel multiplier of the ResNet-18 widths (64, 128, 256, 512).
        depth: number of basic blocks per stage.
    """

    def __init__(self, width: float = 0.5, depth: tuple[int, ...] = (2, 2, 2, 2)) -> None:
        super().__init__()
        channels = [max(8, round(c * width)) for c in (64, 128, 256, 512)]
        self.stem = nn.Sequential(
            nn.Conv2d(3, channels[0], 7, 2, 3, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        stages, in_channels = [], channels[0]
        for i, (out_channels, blocks) in enumerate(zip(channels, depth, strict=True)):
            layers = [_BasicBlock(in_channels, out_channels, 1 if i == 0 else 2)]
            layers += [_BasicBlock(out_channels, out_channels, 1) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layers))
            in_channels = out_channels
        self.stages = nn.ModuleList(stages)
        self.early_channels = channels[0]
        self.fine_channels = channels[1]
        self.middle_channels = channels[2]
        self.coarse_channels = channels[3]

    def forward(self, images: Tensor) -> EncoderFeatures:
        """`(B, 3, H, W)` normalised images -> :class:`EncoderFeatures`."""
        x = self.stem(images)
        early = self.stages[0](x)
        fine = self.stages[1](early)
        middle = self.stages[2](fine)
        coarse = self.stages[3](middle)
        return EncoderFeatures(fine, coarse, early, middle)
