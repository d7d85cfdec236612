"""ConvMixer: "Patches Are All You Need?" (Trockman & Kolter, TMLR 2023, arXiv:2201.09792).

Keep the ViT's patches, drop attention. A P-strided P×P convolution cuts the image into patch
embeddings as in the ViT; then each block mixes *space* with a depthwise k×k convolution (one
filter per channel, a residual around it) and mixes *channels* with a pointwise 1×1 convolution,
the roles that self-attention and the MLP play in a transformer block. The resolution stays that
of the patch grid throughout. If it matches the ViT, the patches (not attention) did the work:

image -> P×P conv / P, GELU, BN -> depth × [x + BN(GELU(depthwise k×k(x))), BN(GELU(1×1(x)))]
      -> global average pool -> linear head
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from vitkit.embedding import _check_images, patch_grid
from vitkit.registry import register_model


@dataclass
class ConvMixerConfig:
    img_size: int = 28  # used for validation and FLOP counts; the network itself is size-agnostic
    in_chans: int = 1
    num_classes: int = 10
    dim: int = 128  # channels h of every layer (the "token width")
    depth: int = 6  # ConvMixer blocks
    patch_size: int = 4  # P: the patch embedding's kernel and stride
    kernel_size: int = 5  # k: the depthwise convolution's kernel (the spatial mixing range per block)

    def __post_init__(self):
        patch_grid(
            self.img_size, self.patch_size, other_patch_sizes=False
        )  # raises if the patches do not tile the image
        if self.kernel_size % 2 == 0:
            raise ValueError(
                f"kernel_size must be odd so that 'same' padding keeps the grid, got {self.kernel_size}; use {self.kernel_size + 1}"
            )


class MixerBlock(nn.Module):
    """Depthwise k×k convolution (space) with a residual, then pointwise 1×1 convolution (channels). (B, h, g, g) -> (B, h, g, g)."""

    def __init__(self, dim: int, kernel_size: int):
        super().__init__()
        self.spatial = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size, groups=dim, padding=kernel_size // 2), nn.GELU(), nn.BatchNorm2d(dim)
        )
        self.channel = nn.Sequential(nn.Conv2d(dim, dim, 1), nn.GELU(), nn.BatchNorm2d(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.channel(x + self.spatial(x))


class ConvMixer(nn.Module):
    """Images (B, C, H, W) -> logits (B, num_classes)."""

    def __init__(self, config: ConvMixerConfig | None = None, **kwargs):
        super().__init__()
        if config is None:
            config = ConvMixerConfig(**kwargs)
        elif kwargs:
            config = dataclasses.replace(config, **kwargs)
        self.config = c = config
        self.patch_embed = nn.Sequential(
            nn.Conv2d(c.in_chans, c.dim, c.patch_size, stride=c.patch_size), nn.GELU(), nn.BatchNorm2d(c.dim)
        )
        self.blocks = nn.Sequential(*(MixerBlock(c.dim, c.kernel_size) for _ in range(c.depth)))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(c.dim, c.num_classes)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> feature maps on the patch grid (B, dim, H / P, W / P)."""
        _check_images(images, self.config.patch_size, self.config.in_chans)
        return self.blocks(self.patch_embed(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.forward_features(images)).flatten(1))  # (B, dim) -> (B, num_classes)


@register_model
def convmixer_mnist(**overrides) -> ConvMixer:
    """ConvMixer for 28×28 grey images: 4×4 patches (a 7×7 grid), 128 channels, 6 blocks, 5×5 depthwise kernels."""
    return ConvMixer(
        ConvMixerConfig(
            **{
                **dict(img_size=28, in_chans=1, num_classes=10, dim=128, depth=6, patch_size=4, kernel_size=5),
                **overrides,
            }
        )
    )
