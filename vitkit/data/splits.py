"""Splits held in memory or read from files, and the data set that bundles them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


class Split(torch.utils.data.Dataset):
    """An in-memory split: ``images`` (N, C, H, W) float32, normalised; ``labels`` (N,) int64.

    Indexing gives ``(image (C, H, W), label)`` like any torch Dataset.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        if images.dim() != 4 or labels.dim() != 1 or len(images) != len(labels):
            raise ValueError(
                f"a Split needs images (N, C, H, W) and labels (N,), got {tuple(images.shape)} and {tuple(labels.shape)}"
            )
        self.images = images.float()
        self.labels = labels.long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], self.labels[index]

    def __repr__(self) -> str:
        return f"Split({len(self)} images of shape {tuple(self.images.shape[1:])})"


class FolderSplit(torch.utils.data.Dataset):
    """A split of image files read lazily (for folders too large to hold in memory).

    ``samples`` is a list of (path, label); ``transform`` turns a PIL image into a normalised (C, H, W) tensor.
    """

    def __init__(self, samples: list[tuple[str, int]], transform, mode: str):
        self.samples, self.transform, self.mode = samples, transform, mode
        self.labels = torch.tensor([label for _, label in samples], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index):
        from PIL import Image

        path, label = self.samples[index]
        with Image.open(path) as image:
            return self.transform(image.convert(self.mode)), label

    def with_transform(self, transform) -> "FolderSplit":
        """The same files under another transform (training augmentation, say)."""
        return FolderSplit(self.samples, transform, self.mode)

    def __repr__(self) -> str:
        return f"FolderSplit({len(self)} image files)"


@dataclass
class Dataset:
    """Train/validation/test splits and what a model needs to know about them."""

    name: str
    train: Split | FolderSplit
    val: Split | FolderSplit
    test: Split | FolderSplit
    classes: list[str]
    image_size: int
    in_chans: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool = False  # True where a mirrored image keeps its label (photos, not digits)
    info: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] (…, C, H, W) -> the normalised values models are trained on."""
        mean, std = _stats(self.mean, self.std, images)
        return (images - mean) / std

    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images (…, C, H, W) -> pixels in [0, 1], e.g. for ``plt.imshow``."""
        mean, std = _stats(self.mean, self.std, images)
        return (images * std + mean).clamp(0, 1)

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}: train {len(self.train)}, val {len(self.val)}, test {len(self.test)}; "
            f"{self.in_chans}×{self.image_size}×{self.image_size}, {self.num_classes} classes)"
        )


def _stats(mean, std, like: torch.Tensor):
    """mean and std (tuples, or tensors already made) as (C, 1, 1) tensors of ``like``'s dtype and device."""
    shape = (-1, 1, 1)
    if isinstance(mean, torch.Tensor):  # made once per loader: no small host-to-device copy per batch
        return mean.to(like.device, like.dtype).view(shape), std.to(like.device, like.dtype).view(shape)
    return (
        torch.tensor(mean, dtype=like.dtype, device=like.device).view(shape),
        torch.tensor(std, dtype=like.dtype, device=like.device).view(shape),
    )


# ----------------------------------------------------------------------------- class-balanced carving


def _fixed_test_indices(labels: np.ndarray, count: int) -> np.ndarray:
    """The same stratified test split for everyone (seed 0, whatever ``seed`` the caller passes)."""
    order = balanced_order(torch.as_tensor(labels), torch.Generator().manual_seed(0))
    return np.sort(order[:count].numpy())


def balanced_order(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A shuffled order of all N indices of ``labels`` (N,) in which the classes take turns: every prefix is nearly
    class-balanced, and a shorter prefix is part of a longer one. Hand-written on purpose: scikit-learn's
    ``StratifiedShuffleSplit`` balances one split but would choose other images (and not nested ones)."""
    perm = torch.randperm(len(labels), generator=generator)
    rank = torch.empty(len(labels), dtype=torch.long)
    for c in labels.unique():
        members = perm[labels[perm] == c]  # this class, in shuffled order
        rank[members] = torch.arange(len(members))
    key = rank[perm] * len(labels) + torch.arange(len(labels))  # by turn, then by shuffled position
    return perm[key.argsort()]


def _carve(labels: torch.Tensor, val_size: int | float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(labels)
    count = int(round(val_size * n)) if isinstance(val_size, float) else int(val_size)
    if not 0 <= count < n:
        raise ValueError(
            f"val_size={val_size!r} leaves no training images out of {n}; use a fraction below 1 or a count below {n}"
        )
    order = balanced_order(labels, torch.Generator().manual_seed(10_000 + seed))
    return order[count:].sort().values, order[:count].sort().values


def _take(
    labels: torch.Tensor, train_idx: torch.Tensor, subset: int | None, fraction: float | None, seed: int
) -> torch.Tensor:
    """``subset`` images (or a ``fraction``) of the training split, class-balanced; smaller subsets nest in larger ones."""
    if subset is None and fraction is None:
        return train_idx
    if subset is not None and fraction is not None:
        raise ValueError(f"give subset={subset} or fraction={fraction}, not both")
    n = len(train_idx)
    count = subset if subset is not None else int(round(fraction * n))
    if not 0 < count <= n:
        raise ValueError(
            f"subset/fraction asks for {count} of {n} training images; use a subset in 1..{n} or a fraction in (0, 1]"
        )
    order = balanced_order(labels[train_idx], torch.Generator().manual_seed(20_000 + seed))
    return train_idx[order[:count].sort().values]
