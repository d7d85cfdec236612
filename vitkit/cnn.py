"""The CNN baseline: a small ResNet for small images, sized like the small-image ViT presets.

A convolution sees a k×k neighbourhood; stacking layers grows the receptive field slowly, where
self-attention sees the whole image from the first block. Residual stages halve the resolution
and double the width: 3×3 stem -> stages of BasicBlocks -> global average pool -> linear head.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from vitkit.registry import register_model


@dataclass
class CNNConfig:
    img_size: int = 32  # used for validation and FLOP counts; the network itself is size-agnostic
    in_chans: int = 3
    num_classes: int = 10
    widths: tuple[int, ...] = (32, 64, 128)  # channels of each stage; stages after the first halve H and W
    blocks_per_stage: int = 2
    drop_rate: float = 0.0  # dropout before the head

    def __post_init__(self):
        self.widths = tuple(self.widths)
        if not self.widths or self.blocks_per_stage < 1:
            raise ValueError(
                f"a CNN needs at least one stage of at least one block, got widths={self.widths}, blocks_per_stage={self.blocks_per_stage}"
            )


class BasicBlock(nn.Module):
    """conv3×3-BN-ReLU-conv3×3-BN plus a shortcut (a 1×1 convolution when the shape changes), then ReLU."""

    def __init__(self, in_chans: int, out_chans: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, out_chans, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chans)
        self.conv2 = nn.Conv2d(out_chans, out_chans, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chans)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or in_chans != out_chans:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_chans, out_chans, 1, stride, bias=False), nn.BatchNorm2d(out_chans)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """Images (B, C, H, W) -> logits (B, num_classes)."""

    def __init__(self, config: CNNConfig | None = None, **kwargs):
        super().__init__()
        if config is None:
            config = CNNConfig(**kwargs)
        elif kwargs:
            config = dataclasses.replace(config, **kwargs)
        self.config = c = config
        self.stem = nn.Sequential(
            nn.Conv2d(c.in_chans, c.widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(c.widths[0]), nn.ReLU(inplace=True)
        )
        stages, chans = [], c.widths[0]
        for i, width in enumerate(c.widths):
            blocks = [BasicBlock(chans, width, stride=1 if i == 0 else 2)]
            blocks += [BasicBlock(width, width) for _ in range(c.blocks_per_stage - 1)]
            stages.append(nn.Sequential(*blocks))
            chans = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(c.drop_rate)
        self.head = nn.Linear(chans, c.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> feature maps (B, widths[-1], H', W')."""
        if images.dim() != 4:
            raise ValueError(f"ResNet expects images of shape (B, C, H, W), got {tuple(images.shape)}")
        if images.shape[1] != self.config.in_chans:
            raise ValueError(
                f"expected images with {self.config.in_chans} channel(s), got {images.shape[1]} (shape {tuple(images.shape)})"
            )
        return self.stages(self.stem(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.pool(self.forward_features(images)).flatten(1)))


def _resnet(overrides: dict, **defaults) -> ResNet:
    return ResNet(CNNConfig(**{**defaults, **overrides}))


@register_model
def resnet_mnist(**overrides) -> ResNet:
    """CNN preset for 28×28 grey images, the counterpart of ``vit_mnist``."""
    return _resnet(overrides, img_size=28, in_chans=1, num_classes=10, widths=(32, 64, 128), blocks_per_stage=1)


@register_model
def resnet_cifar(**overrides) -> ResNet:
    """CNN preset for 32×32 colour images, the counterpart of ``vit_cifar``."""
    return _resnet(overrides, img_size=32, in_chans=3, num_classes=10, widths=(64, 128, 256), blocks_per_stage=2)
