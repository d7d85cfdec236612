"""vitkit.data: every loader format through the real code (small files written here), splits, augmentation, loaders."""

from __future__ import annotations

import gzip
import pickle
import struct
import time

import numpy as np
import pytest
import torch

from vitkit.data import Augment, FolderSplit, Split, TensorLoader, default_augment, load_dataset, make_loader

# ----------------------------------------------------------------------------- mnist5k and digits


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_mnist5k_has_fixed_balanced_splits_and_normalised_images():
    data = load_dataset("mnist5k")
    assert (len(data.train), len(data.val), len(data.test)) == (3600, 400, 1000)
    assert data.train.images.shape[1:] == (1, 28, 28) and data.train.images.dtype == torch.float32
    assert data.test.labels.bincount().tolist() == [100] * 10
    assert (data.image_size, data.in_chans, data.classes) == (28, 1, [str(d) for d in range(10)])
    pool = torch.cat([data.train.images, data.val.images])
    assert abs(pool.mean().item()) < 1e-3 and abs(pool.std().item() - 1) < 1e-3  # normalised with the pool's statistics
    pixels = data.denormalize(data.test.images)
    assert pixels.min() >= 0 and pixels.max() <= 1 and pixels.max() > 0.99
    assert torch.allclose(data.normalize(pixels), data.test.images, atol=1e-5)


def test_mnist5k_test_split_ignores_seed_validation_split_follows_it():
    a, b = load_dataset("mnist5k", seed=0), load_dataset("mnist5k", seed=1)
    assert torch.equal(a.test.images, b.test.images)
    assert not torch.equal(a.val.images, b.val.images)
    assert torch.equal(load_dataset("mnist5k", seed=1).val.images, b.val.images)


def test_mnist5k_loads_fast_after_the_first_time():
    load_dataset("mnist5k")
    start = time.perf_counter()
    load_dataset("mnist5k")
    assert time.perf_counter() - start < 1.0


def test_subsets_are_class_balanced_and_nested():
    small, large = load_dataset("mnist5k", subset=50), load_dataset("mnist5k", subset=200)
    assert small.train.labels.bincount().tolist() == [5] * 10
    rows = {tuple(x.flatten()[::7].tolist()) for x in large.train.images}
    assert all(tuple(x.flatten()[::7].tolist()) in rows for x in small.train.images)
    assert len(load_dataset("mnist5k", fraction=0.25).train) == 900
    with pytest.raises(ValueError, match="subset=.* or fraction"):
        load_dataset("mnist5k", subset=10, fraction=0.5)
    with pytest.raises(ValueError, match="1..3600"):
        load_dataset("mnist5k", subset=10_000)


def test_digits_are_8x8_in_unit_range_before_normalising():
    data = load_dataset("digits")
    assert data.train.images.shape[1:] == (1, 8, 8) and len(data.test) == 360
    assert len(data.train) + len(data.val) + len(data.test) == 1797
    assert data.denormalize(data.train.images).max() <= 1


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="mnist5k.*cifar10"):
        load_dataset("svhn")


# ----------------------------------------------------------------------------- torchvision file formats


def _write_idx(path, array: np.ndarray, compress: bool = False) -> None:
    code = 0x08  # unsigned byte
    header = struct.pack(">I", (code << 8) | array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    blob = header + array.astype(np.uint8).tobytes()
    if compress:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(blob))
    else:
        path.write_bytes(blob)


@pytest.mark.parametrize("name,folder,compress", [("mnist", "MNIST", False), ("fashion_mnist", "FashionMNIST", True)])
def test_idx_files_load_through_torchvision_readers(tmp_path, name, folder, compress):
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_x, test_x = rng.integers(0, 256, (40, 28, 28)), rng.integers(0, 256, (10, 28, 28))
    train_y, test_y = np.arange(40) % 10, np.arange(10)
    for stem, arr in (
        ("train-images-idx3-ubyte", train_x),
        ("train-labels-idx1-ubyte", train_y),
        ("t10k-images-idx3-ubyte", test_x),
        ("t10k-labels-idx1-ubyte", test_y),
    ):
        _write_idx(raw / stem, arr, compress)
    data = load_dataset(name, root=tmp_path, val_size=10)
    assert (len(data.train), len(data.val), len(data.test)) == (30, 10, 10)
    assert torch.allclose(
        data.denormalize(data.test.images)[:, 0] * 255, torch.tensor(test_x, dtype=torch.float32), atol=1e-3
    )
    assert data.test.labels.tolist() == test_y.tolist()
    assert len(data.classes) == 10 and (data.classes[0] == "T-shirt/top") == (name == "fashion_mnist")


def test_missing_files_name_the_files_and_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte.*MNIST/raw.*download=True"):
        load_dataset("mnist", root=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"data_batch_1.*cifar-10-batches-py"):
        load_dataset("cifar10", root=tmp_path)
    with pytest.raises(ValueError, match="root="):
        load_dataset("cifar100")


def _write_pickle(path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def test_cifar10_python_batches_load(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = {
            "data": rng.integers(0, 256, (6, 3072), dtype=np.uint8),
            "labels": list(rng.integers(0, 10, 6)),
        }
        _write_pickle(folder / name, batches[name])
    _write_pickle(folder / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    data = load_dataset("cifar10", root=tmp_path, val_size=0)
    assert (len(data.train), len(data.test), data.in_chans, data.image_size, data.flip) == (30, 6, 3, 32, True)
    expected = torch.tensor(batches["test_batch"]["data"].reshape(6, 3, 32, 32), dtype=torch.float32)
    assert torch.allclose(data.denormalize(data.test.images) * 255, expected, atol=1e-3)
    assert data.classes[3] == "c3" and data.test.labels.tolist() == batches["test_batch"]["labels"]


def test_cifar100_uses_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in ("train", "test"):
        _write_pickle(
            folder / name,
            {
                "data": rng.integers(0, 256, (8, 3072), dtype=np.uint8),
                "fine_labels": list(range(8)),
                "coarse_labels": [0] * 8,
            },
        )
    _write_pickle(
        folder / "meta", {"fine_label_names": [f"f{i}" for i in range(100)], "coarse_label_names": ["x"] * 20}
    )
    data = load_dataset("cifar100", root=tmp_path, val_size=2)
    assert len(data.classes) == 100 and data.test.labels.tolist() == list(range(8)) and len(data.train) == 6


def _write_pngs(folder, classes=("cat", "dog"), per_class=10, size=12, mode="RGB"):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            shape = (size, size, 3) if mode == "RGB" else (size, size)
            pixels = (rng.integers(0, 100, shape) + 100 * c).astype(np.uint8)
            Image.fromarray(pixels, mode=mode).save(folder / name / f"{i}.png")


def test_imagefolder_in_memory_splits_a_single_folder(tmp_path):
    _write_pngs(tmp_path / "pets")
    data = load_dataset(f"imagefolder:{tmp_path / 'pets'}", val_size=0.25)
    assert data.classes == ["cat", "dog"] and (data.in_chans, data.image_size) == (3, 12)
    assert isinstance(data.train, Split) and len(data.test) == 4 and len(data.train) + len(data.val) == 16
    assert data.test.labels.bincount().tolist() == [2, 2]
    # class 1 pixels are brighter by construction: the labels travel with their images
    means = [data.denormalize(data.train.images[data.train.labels == c]).mean().item() for c in (0, 1)]
    assert means[1] > means[0] + 0.2


def test_imagefolder_with_split_folders_read_lazily_through_a_dataloader(tmp_path):
    _write_pngs(tmp_path / "set" / "train", per_class=6, mode="L")
    _write_pngs(tmp_path / "set" / "test", per_class=3, mode="L")
    data = load_dataset(f"imagefolder:{tmp_path / 'set'}", in_memory=False, val_size=2, image_size=8)
    assert isinstance(data.train, FolderSplit) and (data.in_chans, data.image_size) == (1, 8)
    assert (len(data.train), len(data.val), len(data.test)) == (10, 2, 6)
    batches = list(make_loader(data.test, batch_size=4, num_workers=0))
    images = torch.cat([b[0] for b in batches])
    assert images.shape == (6, 1, 8, 8) and torch.cat([b[1] for b in batches]).tolist() == [0, 0, 0, 1, 1, 1]
    loader = make_loader(data.train, 4, train=True, augment=default_augment(data), image_size=8, num_workers=0)
    assert sum(len(b[1]) for b in loader) == 10


def test_imagefolder_errors_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="<class name>"):
        load_dataset(f"imagefolder:{tmp_path / 'nothing'}")
    from PIL import Image

    (tmp_path / "wide" / "a").mkdir(parents=True)
    Image.new("RGB", (10, 6)).save(tmp_path / "wide" / "a" / "0.png")
    with pytest.raises(ValueError, match="image_size="):
        load_dataset(f"imagefolder:{tmp_path / 'wide'}")


# ----------------------------------------------------------------------------- augmentation


def test_translation_shifts_whole_images_and_fills_with_black():
    data = load_dataset("digits")
    images = data.train.images[:64]
    out = Augment(translate=2)(images, data.mean, data.std, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    black = -data.mean[0] / data.std[0]
    pixels_in, pixels_out = data.denormalize(images), data.denormalize(out)
    for a, b, x in zip(pixels_in[:, 0], pixels_out[:, 0], out[:, 0]):
        found = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.allclose(
                torch.roll(torch.nn.functional.pad(a, (2, 2, 2, 2)), (dy, dx), (0, 1))[2:-2, 2:-2], b, atol=1e-5
            )
        ]
        assert found, "each augmented image is its original shifted by at most 2 pixels"
        assert x.min() >= black - 1e-5
    assert not torch.allclose(out, images)


def test_flips_mirror_about_half_the_images_and_are_seeded():
    images = torch.randn(200, 3, 8, 8)
    aug = Augment(flip=True)
    out = aug(images, (0, 0, 0), (1, 1, 1), torch.Generator().manual_seed(3))
    mirrored = [torch.equal(o, i.flip(-1)) for o, i in zip(out, images)]
    assert all(m or torch.equal(o, i) for m, o, i in zip(mirrored, out, images)) and 60 < sum(mirrored) < 140
    assert torch.equal(out, aug(images, (0, 0, 0), (1, 1, 1), torch.Generator().manual_seed(3)))


def test_rotation_and_zoom_match_torchvisions_affine_with_the_same_draws():
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    data = load_dataset("mnist5k")
    images = data.train.images[:6]
    aug = Augment(rotate=30, scale=0.2)
    out = aug(images, data.mean, data.std, torch.Generator().manual_seed(0))
    draw = torch.rand(2, 6, generator=torch.Generator().manual_seed(0))  # the draws Augment makes: angle, zoom
    angles, zooms = (2 * draw[0] - 1) * 30, 1 + (2 * draw[1] - 1) * 0.2
    pixels = data.denormalize(images)
    expected = torch.stack(
        [
            TF.affine(
                p,
                angle=float(a),
                translate=[0, 0],
                scale=float(z),
                shear=[0.0, 0.0],
                interpolation=InterpolationMode.BILINEAR,
            )
            for p, a, z in zip(pixels, angles, zooms)
        ]
    )  # counter-clockwise for a positive angle, the border black
    torch.testing.assert_close(data.denormalize(out), expected, atol=1e-4, rtol=0)
    assert not torch.allclose(out, images)
    assert torch.equal(Augment(rotate=0.0, scale=0.0)(images, data.mean, data.std), images)
    assert any(
        isinstance(t, __import__("torchvision").transforms.v2.RandomAffine) for t in aug.transforms(28).transforms
    )


def test_randaugment_keeps_shape_and_range():
    data = load_dataset("digits")
    out = Augment(randaugment=True)(data.train.images[:16], data.mean, data.std, torch.Generator().manual_seed(0))
    assert out.shape == (16, 1, 8, 8)
    pixels = data.denormalize(out)
    assert pixels.min() >= 0 and pixels.max() <= 1
    assert default_augment(data).flip is False and default_augment(data).translate == 1


# ----------------------------------------------------------------------------- loaders


def test_tensor_loader_shards_are_disjoint_covering_and_reshuffled_each_epoch():
    split = Split(torch.randn(23, 1, 4, 4), torch.arange(23))
    seen = {}
    for epoch in (0, 1):
        shards = []
        for rank in range(3):
            loader = TensorLoader(split, batch_size=4, shuffle=True, rank=rank, world_size=3, seed=5)
            loader.set_epoch(epoch)
            index, real = loader.indices()
            shards.append(index[real])
            assert len(index) == 8 and len(list(loader)) == len(loader) == 2  # padded to equal shards
        union = torch.cat(shards)
        assert sorted(union.tolist()) == list(range(23))  # every sample exactly once (padding marked not real)
        seen[epoch] = torch.cat(shards).tolist()
    assert seen[0] != seen[1]


def test_evaluation_loader_gives_each_rank_every_nth_image():
    split = Split(torch.randn(10, 1, 4, 4), torch.arange(10))
    got = [
        torch.cat([labels for _, labels, _ in TensorLoader(split, 3, rank=r, world_size=3)]).tolist() for r in range(3)
    ]
    assert got == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
