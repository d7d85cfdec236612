"""torchvision's file formats (MNIST's idx files, CIFAR's pickles) from a local root, and image folders."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import torch

from vitkit.data.splits import Dataset, FolderSplit, Split, _carve, _fixed_test_indices, _take

_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _need_root(name: str, root) -> Path:
    if root is None:
        raise ValueError(
            f"data set {name!r} is read from files: pass root='folder' (and download=True to fetch it), "
            "or use the offline default 'mnist5k'"
        )
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
        raise FileNotFoundError(
            f"{name}: missing {', '.join(missing)} in {raw}; put torchvision's {cls.__name__} idx files there "
            "or pass download=True"
        )
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
        raise FileNotFoundError(
            f"{name}: missing {', '.join(missing)} in {folder}; put the python-version batches "
            f"(the {cls.base_folder} folder of the official archive) there or pass download=True"
        )
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


IN_MEMORY_BYTES = 2 << 30  # image folders up to this size (float32) are loaded into memory; larger ones stay on disk


def _imagefolder(path: str, seed: int, subset, fraction, val_size, image_size, in_memory) -> Dataset:
    """``path/<class>/*.png`` (split here: a fixed 20% test) or ``path/{train,test[,val]}/<class>/...``."""
    from PIL import Image
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"imagefolder: no folder {root}; expected {root}/<class name>/<image files>")
    has_splits = (root / "train").is_dir() and (root / "test").is_dir()
    folders = (
        {s: ImageFolder(str(root / s)) for s in ("train", "test", "val") if (root / s).is_dir()}
        if has_splits
        else {"all": ImageFolder(str(root))}
    )
    first = next(iter(folders.values()))
    classes = list(first.classes)
    for s, f in folders.items():
        if f.classes != classes:
            raise ValueError(
                f"imagefolder: the {s} folder has classes {f.classes}, the others {classes}; give every split the same class folders"
            )
    with Image.open(first.samples[0][0]) as im:
        mode = "L" if im.mode in ("L", "1", "I", "I;16") else "RGB"
        width, height = im.size
    if image_size is None:
        if width != height:
            raise ValueError(
                f"imagefolder: images are {width}×{height}, not square; pass image_size=N to resize and centre-crop them"
            )
        image_size = width
    samples = {s: f.samples for s, f in folders.items()}
    labels = {s: torch.tensor([y for _, y in v]) for s, v in samples.items()}
    if not has_splits:
        test_idx = torch.as_tensor(_fixed_test_indices(labels["all"].numpy(), max(1, len(samples["all"]) // 5)))
        keep = torch.ones(len(samples["all"]), dtype=torch.bool)
        keep[test_idx] = False
        samples = {
            "pool": [samples["all"][i] for i in keep.nonzero().flatten()],
            "test": [samples["all"][i] for i in test_idx],
        }
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
    to_tensor = v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(image_size, antialias=True),
            v2.CenterCrop(image_size),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )
    total = sum(len(v) for v in split_samples.values())
    in_chans = 1 if mode == "L" else 3
    # by size, not count: 20,000 images of 224×224 are 12 GB of float32, too much for host memory and GPUs alike
    in_memory = total * in_chans * image_size**2 * 4 <= IN_MEMORY_BYTES if in_memory is None else in_memory
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
    return Dataset(
        name=f"imagefolder:{path}",
        **splits,
        classes=classes,
        image_size=image_size,
        in_chans=in_chans,
        mean=mean,
        std=std,
        flip=in_chans == 3,
    )
