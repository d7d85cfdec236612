"""From an image to a sequence of tokens: patches, patch embedding, CLS token, position embeddings.

An image of H×W pixels has (H·W)² pixel pairs for attention; cut into P×P patches it has
((H/P)·(W/P))² token pairs. Patches are flattened in (row-in-patch, column-in-patch, channel)
order, like ``einops.rearrange(x, 'b c (h p1) (w p2) -> b (h w) (p1 p2 c)')``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _check_images(images: torch.Tensor, patch_size: int, in_chans: int | None = None) -> tuple[int, int, int, int]:
    if images.dim() != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    B, C, H, W = images.shape
    if in_chans is not None and C != in_chans:
        raise ValueError(f"expected images with {in_chans} channel(s), got {C} (shape {tuple(images.shape)})")
    for side, size in (("height", H), ("width", W)):
        if size % patch_size:
            lower = size - size % patch_size
            raise ValueError(
                f"image {side} {size} is not divisible by patch size {patch_size}; "
                f"crop or resize to {lower} or {lower + patch_size}, or pick a patch size that divides {size}"
            )
    return B, C, H, W


def patch_grid(img_size: int, patch_size: int, other_patch_sizes: bool = True) -> int:
    """Patches along each side of an ``img_size``×``img_size`` image cut into ``patch_size``×``patch_size`` patches.

    Raises a ValueError that names the nearest image sizes that divide (and suggests another patch size when
    ``other_patch_sizes``: a model that only takes some patch sizes says so itself).
    """
    if img_size % patch_size:
        lower = img_size - img_size % patch_size
        raise ValueError(
            f"image size {img_size} is not divisible by patch size {patch_size}; use img_size={lower} or "
            f"{lower + patch_size}" + (", or another patch size" if other_patch_sizes else "")
        )
    return img_size // patch_size


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into non-overlapping patches: (B, C, H, W) -> (B, N, P*P*C), N = (H/P)·(W/P), row-major."""
    B, C, H, W = _check_images(images, patch_size)
    p = patch_size
    x = images.reshape(B, C, H // p, p, W // p, p)  # (B, C, h, p1, w, p2)
    x = x.permute(0, 2, 4, 3, 5, 1)  # (B, h, w, p1, p2, C)
    return x.reshape(B, (H // p) * (W // p), p * p * C)


def unpatchify(
    patches: torch.Tensor, patch_size: int, image_size: int | tuple[int, int], in_chans: int
) -> torch.Tensor:
    """Inverse of :func:`patchify`: (B, N, P*P*C) -> (B, C, H, W)."""
    H, W = (image_size, image_size) if isinstance(image_size, int) else image_size
    p = patch_size
    h, w = H // p, W // p
    if patches.dim() != 3 or patches.shape[1] != h * w or patches.shape[2] != p * p * in_chans:
        raise ValueError(
            f"patches of shape {tuple(patches.shape)} do not fit a {in_chans}×{H}×{W} image in {p}×{p} patches; "
            f"expected (B, {h * w}, {p * p * in_chans})"
        )
    x = patches.reshape(patches.shape[0], h, w, p, p, in_chans)  # (B, h, w, p1, p2, C)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(patches.shape[0], in_chans, H, W)


class PatchEmbed(nn.Module):
    """Linear embedding of P×P patches, computed as a P-strided P×P convolution.

    (B, C, H, W) -> (B, N, embed_dim). Equal to ``nn.Linear(P*P*C, embed_dim)`` on ``patchify``;
    :meth:`as_linear` builds that linear layer.
    """

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768):
        super().__init__()
        self.img_size, self.patch_size, self.in_chans = img_size, patch_size, in_chans
        self.grid_size = patch_grid(img_size, patch_size)
        self.num_patches = self.grid_size**2
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _, _, H, W = _check_images(images, self.patch_size, self.in_chans)
        if (H, W) != (self.img_size, self.img_size):
            raise ValueError(
                f"this model takes {self.img_size}×{self.img_size} images, got {H}×{W}; resize the images, "
                f"or build the model with img_size={H} and resample its position embeddings (resample_pos_embed)"
            )
        return self.proj(images).flatten(2).transpose(1, 2)  # (B, D, h, w) -> (B, N, D)

    def as_linear(self) -> nn.Linear:
        """The same map as an ``nn.Linear`` acting on ``patchify(images, patch_size)``."""
        weight = self.proj.weight  # (D, C, P, P)
        linear = nn.Linear(weight.shape[1] * self.patch_size**2, weight.shape[0])
        with torch.no_grad():
            linear.weight.copy_(weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1))  # (D, P*P*C), (p1 p2 c) order
            linear.bias.copy_(self.proj.bias)
        return linear


def sincos_pos_embed_2d(grid_size: int | tuple[int, int], dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embeddings: (h*w, dim), half the channels for rows, half for columns."""
    h, w = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    if dim % 4:
        raise ValueError(f"2-D sin-cos position embeddings need dim divisible by 4, got {dim}")
    rows, cols = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    omega = 1.0 / temperature ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))  # (dim/4,)
    out_rows = rows.reshape(-1, 1) * omega  # (h*w, dim/4)
    out_cols = cols.reshape(-1, 1) * omega
    emb = torch.cat([out_rows.sin(), out_rows.cos(), out_cols.sin(), out_cols.cos()], dim=1)
    return emb.float()


def resample_pos_embed(
    pos_embed: torch.Tensor, new_grid: int | tuple[int, int], num_prefix_tokens: int = 1, mode: str = "bicubic"
) -> torch.Tensor:
    """Move a square grid of position embeddings to a new grid size (to fine-tune at another resolution).

    pos_embed: (1, num_prefix_tokens + h*w, D); the prefix (the CLS entry) is kept as it is.
    Returns (1, num_prefix_tokens + H*W, D), the grid interpolated with ``mode``.
    """
    if pos_embed.dim() != 3:
        raise ValueError(f"pos_embed must have shape (1, N, D), got {tuple(pos_embed.shape)}")
    new_h, new_w = (new_grid, new_grid) if isinstance(new_grid, int) else new_grid
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    old = math.isqrt(grid.shape[1])
    if old * old != grid.shape[1]:
        raise ValueError(
            f"{grid.shape[1]} grid tokens are not a square grid; is num_prefix_tokens={num_prefix_tokens} right?"
        )
    if (old, old) == (new_h, new_w):
        return pos_embed
    dim = grid.shape[-1]
    grid = grid.reshape(1, old, old, dim).permute(0, 3, 1, 2)  # (1, D, h, w)
    grid = F.interpolate(grid.float(), size=(new_h, new_w), mode=mode, align_corners=False).to(pos_embed.dtype)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_h * new_w, dim)
    return torch.cat([prefix, grid], dim=1)
