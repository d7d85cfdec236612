"""The Vision Transformer of Dosovitskiy et al. (2021), with timm's parameter names.

image -> patches -> linear patch embedding -> [CLS] + tokens -> + position embeddings
      -> depth × Block (pre-norm multi-head self-attention and MLP, each with a residual)
      -> LayerNorm -> CLS token (or the mean of the tokens) -> linear head -> class scores
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.ops import StochasticDepth

from vitkit.attention import Attention
from vitkit.embedding import PatchEmbed, sincos_pos_embed_2d
from vitkit.registry import create_model, list_models, register_model  # noqa: F401  (vitkit.vit.create_model stays)


@dataclass
class ViTConfig:
    img_size: int = 224  # input images are img_size × img_size
    patch_size: int = 16  # P: each token is a P×P patch
    in_chans: int = 3  # 3 for colour, 1 for grey images
    num_classes: int = 1000  # 0 for no head (features only)
    dim: int = 768  # token width D
    depth: int = 12  # number of encoder blocks
    num_heads: int = 12  # attention heads per block; dim must divide by it
    mlp_ratio: float = 4.0  # MLP hidden width = mlp_ratio · dim
    qkv_bias: bool = True
    pool: str = "cls"  # "cls": classify the CLS token; "mean": average the patch tokens (no CLS token)
    pos_embed: str = "learned"  # "learned" (the paper) or "sincos" (fixed 2-D sine-cosine)
    drop_rate: float = 0.0  # dropout after attention projection, MLP and embeddings
    attn_drop_rate: float = 0.0  # dropout on attention weights
    drop_path_rate: float = 0.0  # stochastic depth, rising linearly to this value over the blocks

    def __post_init__(self):
        if self.dim % self.num_heads:
            raise ValueError(
                f"dim {self.dim} is not divisible by num_heads {self.num_heads}; try num_heads={_divisor_near(self.dim, self.num_heads)}"
            )
        if self.img_size % self.patch_size:
            lower = self.img_size - self.img_size % self.patch_size
            raise ValueError(
                f"image size {self.img_size} is not divisible by patch size {self.patch_size}; use img_size={lower} or {lower + self.patch_size}, or another patch size"
            )
        if self.pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', got {self.pool!r}")
        if self.pos_embed not in ("learned", "sincos"):
            raise ValueError(f"pos_embed must be 'learned' or 'sincos', got {self.pos_embed!r}")


def _divisor_near(n: int, k: int) -> int:
    return min((d for d in range(1, n + 1) if n % d == 0), key=lambda d: (abs(d - k), d))


class Mlp(nn.Module):
    """The transformer's feed-forward part: Linear -> GELU -> Linear, applied to every token alone."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    """One encoder block, pre-norm: x + Attention(LN(x)), then x + MLP(LN(x)). (B, N, D) -> (B, N, D)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.drop_path = StochasticDepth(drop_path, "row") if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, return_weights: bool = False):
        if return_weights:
            attended, weights = self.attn(self.norm1(x), return_weights=True)
        else:
            attended, weights = self.attn(self.norm1(x)), None
        x = x + self.drop_path(attended)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return (x, weights) if return_weights else x


class ViT(nn.Module):
    """Vision Transformer. ``ViT(img_size=28, patch_size=4, in_chans=1, num_classes=10, dim=128, ...)``
    or ``ViT(config=ViTConfig(...))``. Images (B, C, H, W) -> logits (B, num_classes).
    """

    def __init__(self, config: ViTConfig | None = None, **kwargs):
        super().__init__()
        if config is None:
            config = ViTConfig(**kwargs)
        elif kwargs:
            config = dataclasses.replace(config, **kwargs)
        self.config = c = config
        self.patch_embed = PatchEmbed(c.img_size, c.patch_size, c.in_chans, c.dim)
        self.num_prefix_tokens = 1 if c.pool == "cls" else 0
        num_tokens = self.num_prefix_tokens + self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim)) if c.pool == "cls" else None
        if c.pos_embed == "learned":
            self.pos_embed = nn.Parameter(torch.randn(1, num_tokens, c.dim) * 0.02)
        else:
            grid = sincos_pos_embed_2d(self.patch_embed.grid_size, c.dim)
            prefix = torch.zeros(self.num_prefix_tokens, c.dim)  # the CLS token needs no position
            self.register_buffer("pos_embed", torch.cat([prefix, grid]).unsqueeze(0), persistent=False)
        self.pos_drop = nn.Dropout(c.drop_rate)
        drop_paths = torch.linspace(0, c.drop_path_rate, c.depth).tolist()
        self.blocks = nn.ModuleList(
            Block(c.dim, c.num_heads, c.mlp_ratio, c.qkv_bias, c.drop_rate, c.attn_drop_rate, dp) for dp in drop_paths
        )
        self.norm = nn.LayerNorm(c.dim, eps=1e-6)
        self.head = nn.Linear(c.dim, c.num_classes) if c.num_classes > 0 else nn.Identity()
        self.apply(_init_weights)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, [1 +] N, D): patch tokens, CLS token prepended, position embeddings added."""
        if images.dim() != 4:
            raise ValueError(
                f"ViT expects images of shape (B, C, H, W), got {tuple(images.shape)}; add a batch dimension with images.unsqueeze(0)"
            )
        x = self.patch_embed(images)  # (B, N, D)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1 + N, D)
        return self.pos_drop(x + self.pos_embed)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> normalised tokens (B, [1 +] N, D) after the last block."""
        x = self.embed(images)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, [1 +] N, D) -> (B, D): the CLS token, or the mean of the patch tokens."""
        return tokens[:, 0] if self.config.pool == "cls" else tokens.mean(dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.forward_features(images)))

    @torch.no_grad()
    def attention_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Attention weights of every block for ``images``: a list of depth tensors (B, H, T, T), T tokens."""
        x = self.embed(images)
        maps = []
        for block in self.blocks:
            x, weights = block(x, return_weights=True)
            maps.append(weights)
        return maps


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# ----------------------------------------------------------------------------- presets (vitkit.registry)


def _vit(overrides: dict, **defaults) -> ViT:
    return ViT(ViTConfig(**{**defaults, **overrides}))


# The small-image shapes, shared by the ViT presets and the debate's arms built on them (vitkit.deit, vitkit.hybrid).
_SHAPES = {
    "vit_mnist": dict(
        img_size=28, patch_size=7, in_chans=1, num_classes=10, dim=96, depth=4, num_heads=3, mlp_ratio=2.0
    ),
    "vit_cifar": dict(
        img_size=32, patch_size=4, in_chans=3, num_classes=10, dim=192, depth=6, num_heads=3, mlp_ratio=2.0
    ),
}


def _vit_defaults(name: str) -> dict:
    """The ViTConfig fields of small preset ``name`` (a copy)."""
    return dict(_SHAPES[name])


@register_model
def vit_tiny(**overrides) -> ViT:
    """ViT-Ti/16 at 224×224 (DeiT-Tiny): 192 wide, 12 blocks, 3 heads."""
    return _vit(overrides, dim=192, depth=12, num_heads=3)


@register_model
def vit_small(**overrides) -> ViT:
    """ViT-S/16 at 224×224: 384 wide, 12 blocks, 6 heads."""
    return _vit(overrides, dim=384, depth=12, num_heads=6)


@register_model
def vit_base(**overrides) -> ViT:
    """ViT-B/16 at 224×224, the paper's base model: 768 wide, 12 blocks, 12 heads (86,567,656 parameters)."""
    return _vit(overrides, dim=768, depth=12, num_heads=12)


@register_model
def vit_large(**overrides) -> ViT:
    """ViT-L/16 at 224×224: 1024 wide, 24 blocks, 16 heads."""
    return _vit(overrides, dim=1024, depth=24, num_heads=16)


@register_model
def vit_mnist(**overrides) -> ViT:
    """Small-image preset for 28×28 grey images (MNIST): 7×7 patches (16 tokens + CLS), 96 wide, 4 blocks of 3 heads.

    7×7 rather than 4×4 patches: on the 4,000 digits of mnist5k the ViT learns about three times
    faster per step and per second (4×4 patches reached ~40% test accuracy in the tutorial's budget).
    96 wide and 4 blocks rather than 128 and 6 (806 k parameters before, 307 k now): a step takes half the time on
    a CPU thread, and in the 90 s of its recipe the smaller ViT trains more epochs and ends more accurate
    (docs/benchmarks.md). It is also the shape of the kit's pre-trained tiny ViT (:mod:`vitkit.pretrain`), so
    pre-training is measured against this ViT trained from scratch.
    """
    return _vit(overrides, **_vit_defaults("vit_mnist"))


@register_model
def vit_cifar(**overrides) -> ViT:
    """Small-image preset for 32×32 colour images (CIFAR): 4×4 patches (64 tokens + CLS)."""
    return _vit(overrides, **_vit_defaults("vit_cifar"))
