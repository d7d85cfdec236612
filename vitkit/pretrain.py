"""Pre-training a tiny ViT offline on generated glyphs: ``vitkit pretrain`` makes ``vitkit/checkpoints/vit_glyphs.pt``.

The paper's second ingredient is pre-training on far more data than the target task has, then
fine-tuning with a new head. A course machine has no ImageNet, so the kit pre-trains on data it can
make: **printed glyphs**, the digits 0-9 and the letters A-Z rendered in the 21 typefaces that ship with
matplotlib (DejaVu Sans/Serif/Mono, STIX, Computer Modern; regular, bold, italic) at three stroke
widths, then randomly rotated, scaled, sheared, shifted and blurred, so every batch is new. The
labels say which character it is: 36 classes.

Why this, of the offline options:
- it is a *different* data set from the one students fine-tune on (handwritten MNIST digits): no
  handwritten image, and in particular none of mnist5k's test images, is ever seen in pre-training,
  so the fine-tuning gain is honest transfer, as from ImageNet-21k to CIFAR-10 in the paper;
- it is unlimited: a tiny ViT does not over-fit it in a few CPU minutes, while the largest
  offline *real* alternative (scikit-learn's 1,797 8×8 digits) is smaller than the target set;
- it teaches what handwritten digits are made of (strokes, curves, loops and where they sit), so a
  few CPU minutes of it give features a digit classifier can use. Formula-driven fractals
  (FractalDB) or masked-patch pre-training need far longer runs to pay off, by their papers; we
  did not measure them here. What we did measure (PS5, ``solutions/ps5_pretrain_finetune``): with
  300 labelled mnist5k digits and the same 15-epoch recipe, the model fine-tuned from this
  checkpoint reaches about 90% on mnist5k's 1,000 test digits, the same model from scratch about 27%.

``vitkit pretrain --out PATH [--steps N] [--seed S]`` reproduces the checkpoint (same config; the same
weights on the same machine and thread count); ``load_pretrained()`` reads the shipped one.
"""

from __future__ import annotations

import argparse
import math
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vitkit.vit import ViT, ViTConfig, _vit_defaults

CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "vit_glyphs.pt"
CHARACTERS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf",
    "cmr10.ttf",
    "cmss10.ttf",
    "cmtt10.ttf",
    "cmb10.ttf",
    "cmti10.ttf",
)
STROKES = (0, 1, 2)  # extra stroke width in pixels at the 48-pt rendering: thin, regular, bold pens


def glyph_config(num_classes: int = len(CHARACTERS)) -> ViTConfig:
    """The tiny ViT that is pre-trained: ``vit_mnist``'s shape (28×28 grey images, 7×7 patches, 16 tokens + CLS,
    96 wide, 4 blocks of 3 heads) with ``num_classes`` outputs."""
    return ViTConfig(**{**_vit_defaults("vit_mnist"), "num_classes": num_classes})


# ----------------------------------------------------------------------------- the glyphs


@lru_cache(maxsize=1)
def glyph_templates() -> tuple[torch.Tensor, torch.Tensor]:
    """Every (font, character, stroke) rendered once: images (K, 1, 56, 56) in [0, 1], labels (K,).

    Each glyph is cropped to its ink, scaled to fit a 40×40 box (aspect kept) and centred on a 56×56
    canvas: MNIST's layout (a 20×20 box in 28×28) at twice the resolution, for clean resampling.
    """
    import matplotlib
    from PIL import Image, ImageDraw, ImageFont

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    images, labels = [], []
    for font_file in FONTS:
        font = ImageFont.truetype(str(folder / font_file), 48)
        for label, char in enumerate(CHARACTERS):
            for stroke in STROKES:
                canvas = Image.new("L", (96, 96), 0)
                ImageDraw.Draw(canvas).text(
                    (48, 48), char, fill=255, font=font, anchor="mm", stroke_width=stroke, stroke_fill=255
                )
                box = canvas.getbbox()
                if box is None:
                    continue
                ink = canvas.crop(box)
                scale = 40 / max(ink.size)
                ink = ink.resize((max(1, round(ink.width * scale)), max(1, round(ink.height * scale))), Image.BILINEAR)
                out = Image.new("L", (56, 56), 0)
                out.paste(ink, ((56 - ink.width) // 2, (56 - ink.height) // 2))
                images.append(np.asarray(out, dtype=np.float32) / 255.0)
                labels.append(label)
    return torch.from_numpy(np.stack(images)).unsqueeze(1), torch.tensor(labels)


def make_glyphs(n: int, seed: int = 0, batch: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random glyph images (n, 1, 28, 28) in [0, 1] and their labels (n,), the same for the same seed.

    Each is a template under a random affine map (rotation ±15°, scale 0.8-1.15, aspect 0.85-1.15,
    shear ±0.3, shift ±2.5 px), resampled to 28×28, with a random slight blur.
    """
    templates, template_labels = glyph_templates()
    g = torch.Generator().manual_seed(seed)
    images, labels = [], []
    for start in range(0, n, batch):
        b = min(batch, n - start)
        pick = torch.randint(0, len(templates), (b,), generator=g)
        u = lambda lo, hi: lo + (hi - lo) * torch.rand(b, generator=g)  # noqa: E731
        angle, scale, aspect, shear = u(-15, 15) * math.pi / 180, u(0.8, 1.15), u(0.85, 1.15), u(-0.3, 0.3)
        shift = u(-2.5, 2.5), u(-2.5, 2.5)
        cos, sin = torch.cos(angle), torch.sin(angle)
        sx, sy = (
            1 / (scale * aspect.sqrt()),
            aspect.sqrt() / scale,
        )  # the grid maps output to input coordinates: inverse scales
        theta = torch.stack(
            [
                torch.stack([cos * sx, (-sin + shear) * sx, shift[0] / 14], 1),
                torch.stack([sin * sy, cos * sy, shift[1] / 14], 1),
            ],
            1,
        )  # (b, 2, 3)
        grid = F.affine_grid(theta, (b, 1, 28, 28), align_corners=False)
        out = F.grid_sample(
            templates[pick], grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )  # (b, 1, 28, 28)
        blur = torch.rand(b, generator=g) < 0.5
        kernel = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]).view(1, 1, 3, 3) / 16
        out = torch.where(blur.view(b, 1, 1, 1), F.conv2d(out, kernel, padding=1), out)
        images.append(out.clamp(0, 1))
        labels.append(template_labels[pick])
    return torch.cat(images), torch.cat(labels)


def glyph_dataset(n_train: int = 60_000, n_val: int = 2_000, seed: int = 0):
    """A ``vitkit.data.Dataset`` of generated glyphs (train, val; no test split), normalised with its own statistics."""
    from vitkit.data import Dataset, Split

    train_x, train_y = make_glyphs(n_train, seed=seed)
    val_x, val_y = make_glyphs(n_val, seed=seed + 1_000_000)
    mean, std = train_x.mean().item(), train_x.std().item()
    norm = lambda x: (x - mean) / std  # noqa: E731
    empty = Split(torch.empty(0, 1, 28, 28), torch.empty(0, dtype=torch.long))
    return Dataset(
        name="glyphs",
        train=Split(norm(train_x), train_y),
        val=Split(norm(val_x), val_y),
        test=empty,
        classes=list(CHARACTERS),
        image_size=28,
        in_chans=1,
        mean=(mean,),
        std=(std,),
    )


# ----------------------------------------------------------------------------- pre-training


def pretrain(
    out: str | Path = CHECKPOINT,
    images: int = 50_000,
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    max_steps: int | None = None,
    progress: bool = True,
) -> ViT:
    """Pre-train ``glyph_config()`` on generated glyphs and save it to ``out`` (a vitkit checkpoint, about 1.2 MB).

    The file holds the model's config and weights, the ``TrainConfig`` it was trained with, and a ``pretrain`` record (recipe, glyph statistics,
    validation accuracy) for ``load_pretrained``. ``max_steps`` caps the steps per epoch (quick runs, tests).
    """
    from vitkit.checkpoint import save
    from vitkit.train import TrainConfig, evaluate, fit

    torch.manual_seed(seed)
    data = glyph_dataset(images, seed=seed)
    model = ViT(glyph_config())
    started = time.perf_counter()
    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=0.05,
        warmup=0.5,
        label_smoothing=0.1,
        precision="fp32",
        seed=seed,
        augment=False,
        max_steps=max_steps,
    )
    history = fit(model, data, config, device="cpu", progress=progress)
    val = evaluate(model, data.val)
    record = {
        "data": "glyphs",
        "characters": CHARACTERS,
        "images": images,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "max_steps": max_steps,
        "mean": data.mean,
        "std": data.std,
        "val_accuracy": val["accuracy"],
        "train_loss": history.train_loss,
        "seconds": round(time.perf_counter() - started, 1),
        "torch": str(torch.__version__),
    }
    save(model.eval(), out, train_config=config, pretrain=record)
    if progress:
        print(
            f"glyph pre-training: validation accuracy {val['accuracy']:.1%} on {len(CHARACTERS)} characters, "
            f"{record['seconds']:.0f} s; saved {out} ({Path(out).stat().st_size / 1e6:.2f} MB)"
        )
    return model


def load_pretrained(path: str | Path = CHECKPOINT, num_classes: int | None = None) -> ViT:
    """The pre-trained glyph ViT; with ``num_classes`` its head is replaced by a new zero-initialised one (the paper's recipe)."""
    from vitkit.checkpoint import load

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no pre-trained checkpoint at {path}; make it with `vitkit pretrain --out {path}` (a few CPU minutes)"
        )
    model = load(path)
    if num_classes is not None:
        replace_head(model, num_classes)
    return model


def replace_head(model: ViT, num_classes: int) -> ViT:
    """Swap ``model.head`` for a new ``nn.Linear(dim, num_classes)`` with zero weights and bias: the paper's fine-tuning recipe."""
    head = torch.nn.Linear(model.config.dim, num_classes)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    model.head = head
    model.config.num_classes = num_classes
    return model


# ----------------------------------------------------------------------------- the CLI: vitkit pretrain


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``vitkit pretrain``."""
    parser.add_argument("--out", default=str(CHECKPOINT), help=f"where to write the checkpoint (default {CHECKPOINT})")
    parser.add_argument("--images", type=int, default=50_000, help="generated training glyphs (default 50000)")
    parser.add_argument("--epochs", type=int, default=3, help="passes over them (default 3)")
    parser.add_argument("--steps", type=int, default=None, help="cap the steps per epoch (a quick run; default: all)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    """``vitkit pretrain``: pre-train the tiny glyph ViT and write its checkpoint."""
    pretrain(
        args.out,
        images=args.images,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        max_steps=args.steps,
        progress=not args.quiet,
    )
    return 0
