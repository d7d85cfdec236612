"""Looking inside a Vision Transformer: what it attends to, how far, and what its positions encode.

Organised by topic, each topic computing tensors first and plotting second:

- photographs: real images that ship with scikit-image, as tensors (no download);
- attention maps: the CLS token's attention over the patches, upsampled to pixels;
- attention rollout: attention propagated through all layers (Abnar & Zuidema, 2020);
- attention distance: how far in the image each head looks, per layer (the ViT paper's Figure 7);
- position embeddings: cosine similarity between the positions' embeddings;
- plots: matplotlib helpers for all of the above.

Attention tensors follow ``ViT.attention_maps``: one (B, H, T, T) tensor per layer, T tokens with the
``num_prefix_tokens`` CLS token(s) first, rows the queries, each row summing to 1 over the keys.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------- photographs

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")  # colour photographs bundled with scikit-image


def load_photo(name: str = "astronaut", size: int | None = 224) -> torch.Tensor:
    """A colour photograph from ``skimage.data`` as a float tensor (3, size, size) in [0, 1].

    The photo is centre-cropped to a square, then resized to ``size`` (``None`` keeps the crop).
    Only the photographs in :data:`PHOTOS` are used: they ship with scikit-image, nothing downloads.
    """
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; choose one of {', '.join(PHOTOS)} (they ship with scikit-image)")
    import skimage.data

    array = getattr(skimage.data, name)()  # (H, W, 3) uint8
    image = torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255.0  # (3, H, W)
    h, w = image.shape[1:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    image = image[:, top : top + side, left : left + side]
    if size is not None and size != side:
        image = F.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    return image.clamp(0, 1)


# ----------------------------------------------------------------------------- attention maps


def _grid_side(num_patches: int) -> int:
    side = math.isqrt(num_patches)
    if side * side != num_patches:
        raise ValueError(f"{num_patches} patch tokens do not form a square grid; is num_prefix_tokens right?")
    return side


def cls_attention(weights: torch.Tensor, num_prefix_tokens: int = 1) -> torch.Tensor:
    """The CLS token's attention to each patch, as a grid: (B, H, T, T) -> (B, H, h, w), h·w = T − prefix.

    Needs a CLS token (``num_prefix_tokens >= 1``); for mean-pooled models use :func:`attention_rollout`
    and average the rows instead.
    """
    if weights.dim() != 4 or weights.shape[-1] != weights.shape[-2]:
        raise ValueError(f"attention weights must have shape (B, H, T, T), got {tuple(weights.shape)}")
    if num_prefix_tokens < 1:
        raise ValueError("cls_attention needs a CLS token (num_prefix_tokens >= 1); this model pools by the mean")
    row = weights[:, :, 0, num_prefix_tokens:]  # (B, H, N): query = CLS, keys = patches
    side = _grid_side(row.shape[-1])
    return row.reshape(*row.shape[:2], side, side)


def upsample_map(maps: torch.Tensor, size: int | tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Grids of patch scores (..., h, w) -> pixel maps (..., H, W), for overlaying on the image."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:]).float()
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    return F.interpolate(flat, size=size, mode=mode, **kwargs).reshape(*lead, *size)


@torch.no_grad()
def attention_map(model, image: torch.Tensor, layer: int = -1) -> torch.Tensor:
    """The CLS token's attention of every head of one layer on ``image`` (C, H, W), upsampled to pixels.

    ``model`` is a vitkit ``ViT`` (anything with ``attention_maps`` and ``num_prefix_tokens``).
    Returns (heads, H, W); each head's map sums to 1 over the patches before upsampling.
    """
    if image.dim() != 3:
        raise ValueError(f"image must have shape (C, H, W), got {tuple(image.shape)}")
    weights = model.attention_maps(image[None])[layer]  # (1, heads, T, T)
    grid = cls_attention(weights, getattr(model, "num_prefix_tokens", 1))[0]  # (heads, h, w)
    return upsample_map(grid, image.shape[-2:])


# ----------------------------------------------------------------------------- attention rollout


_NO_FLOAT64 = {"mps"}  # device types without float64


def _wide(tensor: torch.Tensor) -> torch.Tensor:
    """float64 for sums over many small weights, float32 on Apple's MPS (it has no float64)."""
    return tensor.float() if tensor.device.type in _NO_FLOAT64 else tensor.double()


def attention_rollout(attentions, head_fusion: str = "mean", residual: bool = True) -> torch.Tensor:
    """Attention rollout: how much each token's final representation draws on each input token.

    attentions: a list of (B, H, T, T), first layer first. Heads are fused (``mean``, ``max`` or ``min``),
    the residual connection is modelled as 0.5·A + 0.5·I (``residual``), rows are renormalised, and the
    layers are multiplied: R = A_L · … · A_1. Returns (B, T, T); each row sums to 1.
    """
    if len(attentions) == 0:
        raise ValueError("attention_rollout needs at least one layer's attention weights")
    fuse = {"mean": lambda a: a.mean(1), "max": lambda a: a.amax(1), "min": lambda a: a.amin(1)}
    if head_fusion not in fuse:
        raise ValueError(f"head_fusion must be one of {', '.join(fuse)}, got {head_fusion!r}")
    rollout = None
    for weights in attentions:
        if weights.dim() != 4:
            raise ValueError(f"each layer's attention must have shape (B, H, T, T), got {tuple(weights.shape)}")
        a = fuse[head_fusion](_wide(weights))  # (B, T, T)
        if residual:
            a = 0.5 * a + 0.5 * torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout
    return rollout.to(attentions[0].dtype)


def rollout_map(attentions, size: int | tuple[int, int], num_prefix_tokens: int = 1, **kwargs) -> torch.Tensor:
    """The rollout of the CLS token over the patches, upsampled to pixels: (B, H, W), normalised to max 1."""
    rollout = attention_rollout(attentions, **kwargs)  # (B, T, T)
    row = rollout[:, 0, num_prefix_tokens:] if num_prefix_tokens else rollout.mean(1)
    side = _grid_side(row.shape[-1])
    maps = upsample_map(row.reshape(-1, side, side), size)
    return maps / maps.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]


# ----------------------------------------------------------------------------- attention distance


def patch_distances(grid_size: int | tuple[int, int], patch_size: int = 1) -> torch.Tensor:
    """Euclidean distances between patch centres, in pixels: (N, N), N = h·w patches in row-major order."""
    h, w = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    rows, cols = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    centres = torch.stack([rows.flatten(), cols.flatten()], dim=1) * patch_size  # (N, 2)
    return torch.cdist(centres, centres)


def mean_attention_distance(weights: torch.Tensor, patch_size: int = 1, num_prefix_tokens: int = 1) -> torch.Tensor:
    """How far each head looks: Σ_j a_ij · distance(i, j), averaged over query patches and images.

    weights: (B, H, T, T) of one layer. Only patch-to-patch attention counts; each query's weights
    over the patches are renormalised to sum to 1. Returns (H,) in pixels (patch units if patch_size=1).
    """
    if weights.dim() != 4:
        raise ValueError(f"attention weights must have shape (B, H, T, T), got {tuple(weights.shape)}")
    patches = _wide(weights[:, :, num_prefix_tokens:, num_prefix_tokens:])  # (B, H, N, N)
    side = _grid_side(patches.shape[-1])
    patches = patches / patches.sum(-1, keepdim=True).clamp_min(1e-12)
    distances = patch_distances(side, patch_size).to(patches.device, patches.dtype)  # (N, N)
    return (patches * distances).sum(-1).mean(dim=(0, 2)).to(weights.dtype)  # (H,)


def mean_attention_distances(attentions, patch_size: int = 1, num_prefix_tokens: int = 1) -> torch.Tensor:
    """:func:`mean_attention_distance` for every layer: a list of (B, H, T, T) -> (layers, H)."""
    return torch.stack([mean_attention_distance(w, patch_size, num_prefix_tokens) for w in attentions])


# ----------------------------------------------------------------------------- position embeddings


def pos_embed_similarity(pos_embed: torch.Tensor, num_prefix_tokens: int = 0) -> torch.Tensor:
    """Cosine similarity between the position embeddings of every pair of patches.

    pos_embed: (N, D), or (1, prefix + N, D) as a model stores it (pass ``num_prefix_tokens`` to drop the
    CLS entry). Returns (N, N); entry (i, j) is cos(pos_i, pos_j).
    """
    emb = pos_embed.detach()
    if emb.dim() == 3:
        if emb.shape[0] != 1:
            raise ValueError(f"pos_embed must be (N, D) or (1, N, D), got {tuple(emb.shape)}")
        emb = emb[0]
    if emb.dim() != 2:
        raise ValueError(f"pos_embed must be (N, D) or (1, N, D), got {tuple(pos_embed.shape)}")
    emb = F.normalize(_wide(emb[num_prefix_tokens:]), dim=-1)
    return (emb @ emb.T).to(pos_embed.dtype)


# ----------------------------------------------------------------------------- plots


def _plt():
    import matplotlib.pyplot as plt

    return plt


def to_image(image: torch.Tensor):
    """(C, H, W) tensor in [0, 1] -> an (H, W, C) or (H, W) numpy array for ``imshow``."""
    array = image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def plot_attention_maps(
    image: torch.Tensor, maps: torch.Tensor, titles=None, alpha: float = 0.6, cmap: str = "inferno", axes=None
):
    """The image, then each map (K, H, W) overlaid on it. Returns the matplotlib figure."""
    plt = _plt()
    maps = maps.detach().cpu()
    k = maps.shape[0]
    if axes is None:
        _, axes = plt.subplots(1, k + 1, figsize=(2.6 * (k + 1), 2.8))
    axes[0].imshow(to_image(image), cmap="gray")
    axes[0].set_title("image")
    for i in range(k):
        axes[i + 1].imshow(to_image(image), cmap="gray")
        axes[i + 1].imshow(maps[i].numpy(), cmap=cmap, alpha=alpha)
        axes[i + 1].set_title(titles[i] if titles else f"head {i}")
    for ax in axes:
        ax.axis("off")
    fig = axes[0].figure
    fig.tight_layout()
    return fig


def plot_pos_embed_similarity(
    similarity: torch.Tensor, grid_size: int | tuple[int, int], title: str | None = None, step: int = 1
):
    """The ViT paper's picture: for each patch (every ``step``-th row and column), its similarity to all
    patches, drawn as a small grid at that patch's place. similarity: (N, N). Returns the figure."""
    plt = _plt()
    h, w = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    sim = similarity.detach().float().cpu().reshape(h, w, h, w)
    rows, cols = list(range(0, h, step)), list(range(0, w, step))
    fig, axes = plt.subplots(
        len(rows), len(cols), figsize=(0.55 * len(cols) + 1, 0.55 * len(rows) + 0.6), squeeze=False
    )
    for a, r in enumerate(rows):
        for b, c in enumerate(cols):
            ax = axes[a][b]
            image = ax.imshow(sim[r, c].numpy(), cmap="viridis", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if b == 0:
                ax.set_ylabel(str(r + 1), rotation=0, labelpad=8, fontsize=7)
            if a == len(rows) - 1:
                ax.set_xlabel(str(c + 1), fontsize=7)
    fig.supxlabel("input patch column", fontsize=9)
    fig.supylabel("input patch row", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.colorbar(image, ax=axes, shrink=0.6, label="cosine similarity")
    return fig


def plot_mean_attention_distance(
    distances: torch.Tensor, title: str | None = None, ax=None, ylabel: str = "mean attention distance (pixels)"
):
    """One dot per head at each layer, like the ViT paper's Figure 7 (right). distances: (layers, H)."""
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.2))
    d = distances.detach().cpu()
    for head in range(d.shape[1]):
        ax.scatter(torch.arange(1, d.shape[0] + 1), d[:, head], s=14, label=f"head {head}")
    ax.set_xlabel("network depth (layer)")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if d.shape[1] <= 8:
        ax.legend(fontsize=7, ncol=2)
    ax.figure.tight_layout()
    return ax.figure
