"""Batch loaders: in-memory splits on the device (the fast path), a DataLoader for anything else."""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, DistributedSampler

from vitkit.data.augment import Augment
from vitkit.data.splits import FolderSplit, Split, _stats

DEVICE_SPLIT_BYTES = (
    1 << 30
)  # in-memory splits up to this size are copied whole to a GPU; larger ones go batch by batch


class TensorLoader:
    """Batches ``(images, labels, real)`` of an in-memory split, kept on ``device``: the fast path.

    A split larger than ``DEVICE_SPLIT_BYTES`` stays in host memory and each batch is sent on its own.

    Training (``shuffle=True``) draws the order from a ``DistributedSampler`` (one rank of ``world_size``;
    ``set_epoch`` reshuffles); ``real`` (B,) bool marks the samples that are not the sampler's padding.
    Evaluation gives each rank every ``world_size``-th image, so all ranks together see each image once.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        shuffle: bool = False,
        augment: Augment | None = None,
        mean=None,
        std=None,
        device="cpu",
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        device = torch.device(device)
        # a split larger than DEVICE_SPLIT_BYTES stays in host memory (every GPU of a node would hold a copy):
        # each batch is gathered there and sent on its own
        self.on_device = device.type == "cpu" or split.images.nbytes <= DEVICE_SPLIT_BYTES
        self.images = split.images.to(device) if self.on_device else split.images
        self.labels = split.labels.to(device)
        if mean is not None:  # once, on the device: the augmentation needs them every batch
            mean, std = _stats(mean, std, torch.empty(0, device=device))
        self.batch_size, self.shuffle, self.augment, self.mean, self.std = batch_size, shuffle, augment, mean, std
        self.device, self.seed, self.rank, self.world_size, self.epoch = torch.device(device), seed, rank, world_size, 0
        self.sampler = (
            DistributedSampler(split, num_replicas=world_size, rank=rank, shuffle=True, seed=seed) if shuffle else None
        )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)

    def indices(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's indices for the current epoch and whether each is a real sample (not padding)."""
        n = len(self.labels)
        if self.sampler is None:
            index = torch.arange(self.rank, n, self.world_size)
            return index, torch.ones(len(index), dtype=torch.bool)
        index = torch.tensor(list(self.sampler), dtype=torch.long)
        position = self.rank + self.world_size * torch.arange(len(index))  # place in the padded global order
        return index, position < n

    def __len__(self) -> int:
        n = (
            self.sampler.num_samples
            if self.sampler is not None
            else len(range(self.rank, len(self.labels), self.world_size))
        )
        return math.ceil(n / self.batch_size)

    def __iter__(self):
        host_index, real = self.indices()
        index, real = host_index.to(self.device), real.to(self.device)
        generator = None
        if self.augment is not None:
            generator = torch.Generator(self.device).manual_seed(1_000_003 * self.seed + 1_009 * self.epoch + self.rank)
        for start in range(0, len(index), self.batch_size):
            batch = index[start : start + self.batch_size]
            if self.on_device:
                images = self.images[batch]
            else:
                images = self.images[host_index[start : start + self.batch_size]]
                if self.device.type == "cuda":
                    images = images.pin_memory()  # then the copy runs alongside the GPU's work
                images = images.to(self.device, non_blocking=True)
            if self.augment is not None:
                images = self.augment(images, self.mean, self.std, generator)
            yield images, self.labels[batch], real[start : start + self.batch_size]


class _DataLoaderAdapter:
    """The standard path: a DataLoader with workers and pinned memory, yielding ``(images, labels, real)``."""

    def __init__(self, loader: DataLoader, sampler, n: int, rank: int, world_size: int, device):
        self.loader, self.sampler, self.n, self.rank, self.world_size, self.device = (
            loader,
            sampler,
            n,
            rank,
            world_size,
            torch.device(device),
        )

    def set_epoch(self, epoch: int) -> None:
        if isinstance(self.sampler, DistributedSampler):
            self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        seen = 0
        for images, labels in self.loader:
            # made on the device (no small host tensor copied per batch)
            position = self.rank + self.world_size * (seen + torch.arange(len(labels), device=self.device))
            seen += len(labels)
            real = (
                position < self.n
                if isinstance(self.sampler, DistributedSampler)
                else torch.ones(len(labels), dtype=torch.bool, device=self.device)
            )
            nb = self.device.type == "cuda"
            yield images.to(self.device, non_blocking=nb), labels.to(self.device, non_blocking=nb), real


def make_loader(
    split,
    batch_size: int,
    train: bool = False,
    augment: Augment | None = None,
    mean=None,
    std=None,
    device="cpu",
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int | None = None,
    image_size: int | None = None,
):
    """A loader of ``(images, labels, real)`` batches for ``split``: in memory on ``device`` for a :class:`Split`,
    a DataLoader (workers, pinned memory, distributed sampler) for any other torch Dataset.
    """
    if isinstance(split, Split):
        return TensorLoader(
            split,
            batch_size,
            shuffle=train,
            augment=augment if train else None,
            mean=mean,
            std=std,
            device=device,
            seed=seed,
            rank=rank,
            world_size=world_size,
        )
    import os

    if train and augment is not None and isinstance(split, FolderSplit):
        from torchvision.transforms import v2

        base = split.transform  # files -> [0, 1] -> normalised: augment before normalising
        steps = list(base.transforms)
        split = split.with_transform(v2.Compose(steps[:-1] + [augment.transforms(image_size or 0), steps[-1]]))
    if train:
        sampler = DistributedSampler(split, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    else:
        sampler = list(range(rank, len(split), world_size))
    workers = min(4, os.cpu_count() or 1) if num_workers is None else num_workers
    loader = DataLoader(
        split,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=torch.device(device).type == "cuda",
        persistent_workers=workers > 0,
    )
    return _DataLoaderAdapter(loader, sampler, len(split), rank, world_size, device)
