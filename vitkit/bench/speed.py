"""Training speed against the usual tools: vitkit's ViT vs timm's, ``fit`` vs a plain DataLoader loop, torchrun scaling.

Sections ``model``, ``train`` and ``ddp`` of ``vitkit bench`` (:mod:`vitkit.bench`).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from vitkit.bench.timing import alternate, matmul_flops_per_s


def training_step(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    """One AdamW step of cross-entropy training on a fixed batch, as a closure."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()

    return step


def timm_twin(model) -> torch.nn.Module:
    """timm's VisionTransformer with the same configuration as a vitkit ViT."""
    from timm.models.vision_transformer import VisionTransformer

    c = model.config
    return VisionTransformer(
        img_size=c.img_size,
        patch_size=c.patch_size,
        in_chans=c.in_chans,
        num_classes=c.num_classes,
        embed_dim=c.dim,
        depth=c.depth,
        num_heads=c.num_heads,
        mlp_ratio=c.mlp_ratio,
        qkv_bias=c.qkv_bias,
        global_pool="token",
    )


def model(args) -> list[str]:
    """vitkit's ViT vs timm's: training-step time and achieved FLOP/s against the matmul rate."""
    from vitkit import count_flops, create_model

    cases = [("vit_tiny", 16), ("vit_mnist", 128)] if not args.quick else [("vit_mnist", 32)]
    rate = matmul_flops_per_s()
    lines = [f"fp32 matmul rate (2048×2048, {torch.get_num_threads()} threads): {rate / 1e9:.1f} GFLOP/s"]
    for name, batch in cases:
        torch.manual_seed(0)
        ours = create_model(name)
        theirs = timm_twin(ours)
        c = ours.config
        images = torch.randn(batch, c.in_chans, c.img_size, c.img_size)
        labels = torch.randint(0, c.num_classes, (batch,))
        flops = count_flops(ours, images.shape, backward=True)
        t = alternate(
            {"vitkit": training_step(ours, images, labels), "timm": training_step(theirs, images, labels)},
            rounds=args.rounds,
        )
        lines += [
            f"{name} ({c.img_size}×{c.img_size}, batch {batch}): step vitkit {t['vitkit'] * 1e3:.0f} ms, timm {t['timm'] * 1e3:.0f} ms",
            f"  step time vitkit ÷ timm: {t['vitkit'] / t['timm']:.3f}   (target ≤ 1.00)",
            f"  training FLOP/s ÷ matmul FLOP/s: vitkit {flops / t['vitkit'] / rate:.2f}, timm {flops / t['timm'] / rate:.2f}"
            f"   (target ≥ {0.60 if name == 'vit_tiny' else 0.45:.2f})",
        ]
    return lines


def _plain_timm_epoch(model, data, batch_size: int, translate: int):
    """One epoch of the usual recipe: a DataLoader over a per-image transforms pipeline, timm's ViT, AdamW."""
    from torch.utils.data import DataLoader
    from torchvision.transforms import v2

    pixels = (data.denormalize(data.train.images) * 255).round().to(torch.uint8)  # the stored digits, as uint8 images
    pipeline = v2.Compose(
        [
            v2.RandomCrop(data.image_size, padding=translate),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(data.mean, data.std),
        ]
    )

    class Digits(torch.utils.data.Dataset):
        def __len__(self):
            return len(pixels)

        def __getitem__(self, i):
            return pipeline(pixels[i]), data.train.labels[i]

    loader = DataLoader(Digits(), batch_size=batch_size, shuffle=True, num_workers=2, persistent_workers=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)

    def epoch():
        model.train()
        for images, labels in loader:
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()

    return epoch


def train(args) -> list[str]:
    """End-to-end training images/s: vitkit's fit (the `vitkit train` path) vs a plain loop over timm's ViT + DataLoader."""
    from vitkit import create_model
    from vitkit.data import load_dataset
    from vitkit.train import fit, recipe

    data = load_dataset("mnist5k", val_size=0)  # training epochs only, on both sides: neither loop validates
    settings = recipe("vit_mnist").replace(epochs=1)
    if args.quick:
        data.train = data.train.__class__(data.train.images[:512], data.train.labels[:512])
    torch.manual_seed(0)
    ours, theirs = create_model("vit_mnist"), timm_twin(create_model("vit_mnist"))
    plain = _plain_timm_epoch(theirs, data, settings.batch_size, settings.augment.translate)  # the same shifts
    t = alternate(
        {"vitkit": lambda: fit(ours, data, settings, device="cpu", progress=False), "plain": plain},
        rounds=max(1, min(args.rounds, 3) if not args.quick else 1),
        warmup=1,
    )
    n = len(data.train)
    return [
        f"vit_mnist on mnist5k ({n} training images, batch {settings.batch_size}, one epoch per timing):",
        f"  vitkit fit (in-memory loader, augmentation on the device, set-up included): {n / t['vitkit']:.0f} images/s",
        f"  plain timm ViT + DataLoader (2 workers, transforms v2 per image):        {n / t['plain']:.0f} images/s",
        f"  vitkit ÷ plain: {t['plain'] / t['vitkit']:.2f}×   (target ≥ 1.20)",
    ]


def _cli_images_per_s(nproc: int, threads: int, steps: int, out: str) -> float:
    """Training images/s of `vitkit train --model vit_mnist` (global batch 128) in nproc processes of `threads` threads."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    args = [
        "train",
        "--model",
        "vit_mnist",
        "--data",
        "mnist5k",
        "--epochs",
        "2",
        "--max-steps",
        str(steps),
        "--val-size",
        "0",
        "--batch-size",
        "128",
        "--no-progress",
        "--out",
        out,
        "--device",
        "cpu",
    ]  # CPU scaling, on a GPU machine too
    if nproc == 1:
        cmd = [sys.executable, "-m", "vitkit.cli", *args]
    else:
        cmd = [
            str(Path(sys.executable).with_name("torchrun")),
            "--standalone",
            "--nproc_per_node",
            str(nproc),
            "-m",
            "vitkit.cli",
            *args,
        ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=900)
    return json.loads((Path(out) / "history.json").read_text())["images_per_s"][-1]  # epoch 2: warmed up


def ddp(args) -> list[str]:
    """torchrun scaling on this machine: 2 processes × 1 thread vs 1 × 1 and 1 × 2, same global batch (vit_mnist)."""
    import statistics
    import tempfile

    steps = 4 if args.quick else 12
    runs = {"1×1": (1, 1), "2×1": (2, 1), "1×2": (1, 2)}
    rates: dict[str, list[float]] = {k: [] for k in runs}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(1 if args.quick else max(1, min(args.rounds, 3))):
            for name, (nproc, threads) in runs.items():
                rates[name].append(_cli_images_per_s(nproc, threads, steps, f"{tmp}/{name}"))
    r = {k: statistics.median(v) for k, v in rates.items()}
    return [
        f"vitkit train vit_mnist, global batch 128, {steps} steps/epoch, images/s of epoch 2 (median of {len(rates['1×1'])}):",
        f"  1 process × 1 thread {r['1×1']:.0f}, torchrun 2 processes × 1 thread {r['2×1']:.0f}, 1 process × 2 threads {r['1×2']:.0f}",
        f"  2×1 ÷ 1×1: {r['2×1'] / r['1×1']:.2f}×   (target ≥ 1.60)",
        f"  2×1 ÷ 1×2: {r['2×1'] / r['1×2']:.2f}×   (target ≥ 1.00)",
    ]
