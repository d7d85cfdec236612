"""The training commands: ``vitkit train`` (fit a preset, print a per-epoch table, save checkpoint and history),
``vitkit eval`` (score a checkpoint on a split) and ``vitkit doctor`` (what training will use on this machine).

One parser serves all three (:func:`add_arguments`); :mod:`vitkit.cli` imports this module only when one of them runs.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from vitkit.checkpoint import atomic_json, build_from_record, load, read
from vitkit.data import load_dataset
from vitkit.train import History, TrainConfig, describe, evaluate, fit, recipe, resolve_device
from vitkit.train.config import checkpoint_config
from vitkit.train.devices import _distributed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``vitkit train``, ``vitkit eval`` and ``vitkit doctor`` (one parser serves all three)."""
    if parser.prog.split()[-1] == "doctor":
        parser.add_argument("--device", default="auto")
        parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16", "bf16-conv"))
        parser.add_argument("--compile", action="store_true", help="say what --compile would do")
        return
    if parser.prog.split()[-1] == "eval":
        parser.add_argument("--checkpoint", required=True, help="a file written by vitkit train / fit")
        parser.add_argument("--data", default="mnist5k", help="data set name (default mnist5k)")
        parser.add_argument("--root", help="folder of torchvision-format data")
        parser.add_argument("--split", default="test", choices=("train", "val", "test"))
        parser.add_argument("--device", default="auto")
        return
    parser.add_argument("--model", default="vit_mnist", help="model preset (vitkit models lists them)")
    parser.add_argument(
        "--data",
        default="mnist5k",
        help="data set: mnist5k, digits, mnist, fashion_mnist, cifar10, cifar100, imagefolder:PATH",
    )
    parser.add_argument("--root", help="folder of torchvision-format data")
    parser.add_argument("--download", action="store_true", help="allow downloading the data set into --root")
    parser.add_argument(
        "--out", default="runs/train", help="folder for checkpoint.pt and history.json (default runs/train)"
    )
    for name, kind in (
        ("epochs", int),
        ("batch-size", int),
        ("lr", float),
        ("weight-decay", float),
        ("warmup", float),
        ("label-smoothing", float),
    ):
        parser.add_argument(f"--{name}", type=kind, help="default: the preset's recipe")
    parser.add_argument(
        "--augment",
        choices=("default", "none", "randaugment"),
        help="default: the data set's standard shifts (1/8 of the image) and flips; randaugment: those and "
        "RandAugment; unset: the preset's recipe (±1 px shifts for the 28×28 presets)",
    )
    parser.add_argument(
        "--teacher",
        help="a checkpoint written by vitkit train (e.g. the CNN's): distil its predictions into the "
        "model (DeiT; a deit_* preset learns them with its distillation token)",
    )
    parser.add_argument(
        "--distillation",
        choices=("hard", "soft"),
        help="the teacher's top class (hard, default) or its softened probabilities (soft)",
    )
    parser.add_argument("--subset", type=int, help="train on this many training images")
    parser.add_argument(
        "--val-size", type=float, default=0.1, help="validation share (<1) or count of the training pool"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16", "bf16-conv"), help="default auto")
    parser.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUT/checkpoint.pt with the settings saved in it (flags given now override them)",
    )
    parser.add_argument("--seed", type=int, help="default 0")
    parser.add_argument("--max-steps", type=int, help="cap the steps per epoch (quick checks)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    """``vitkit train`` (fit a preset, print a per-epoch table, save checkpoint and history), ``vitkit eval`` or
    ``vitkit doctor``."""
    from vitkit import create_model

    if args.command == "doctor":
        print("\n".join(describe(args.device, args.precision, args.compile)))
        return 0
    if args.command == "eval":
        record = read(args.checkpoint)
        model = build_from_record(record).to(resolve_device(args.device))
        data = load_dataset(args.data, root=args.root)
        metrics = evaluate(model, getattr(data, args.split))
        print(
            f"{args.checkpoint} on {args.data} {args.split}: loss {metrics['loss']:.4f}, accuracy {metrics['accuracy']:.4f}"
        )
        config = checkpoint_config(record)
        if config is not None:
            epochs = f"{record['epoch']} of {config.epochs}" if "epoch" in record else str(config.epochs)
            print(f"trained {epochs} epochs with {config}")
        return 0
    out = Path(args.out)
    config = train_config(args, out / "checkpoint.pt")
    val_size = int(args.val_size) if args.val_size >= 1 else args.val_size
    _distributed(
        resolve_device(args.device)
    )  # under torchrun: join first, so that only one process per machine downloads
    data = load_dataset(
        args.data, root=args.root, download=args.download, seed=config.seed, subset=args.subset, val_size=val_size
    )
    torch.manual_seed(config.seed)  # the initial weights
    model = create_model(args.model, in_chans=data.in_chans, num_classes=data.num_classes, img_size=data.image_size)
    rank = int(os.environ.get("RANK", 0))
    printed = [0]

    def log(history: History) -> None:
        lines = history.table().splitlines()
        if printed[0] == 0:
            print(lines[0])
        for line in lines[1 + printed[0] :]:
            print(line, flush=True)
        printed[0] = len(history)
        atomic_json(history.as_dict(), out / "history.json")

    started = time.perf_counter()
    history = fit(
        model,
        data,
        config,
        device=args.device,
        checkpoint=out / "checkpoint.pt",
        resume=args.resume,
        progress=not args.no_progress,
        log=log,
        teacher=load(args.teacher) if args.teacher else None,
    )
    if rank == 0 and printed[0] == 0 and len(history):  # resumed a finished run: show its table
        print(history.table())
    test = evaluate(model, data.test)
    if rank == 0:
        atomic_json(history.as_dict(), out / "history.json")
        print(
            f"test: loss {test['loss']:.4f}, accuracy {test['accuracy']:.4f}  ({time.perf_counter() - started:.1f} s; "
            f"checkpoint {out / 'checkpoint.pt'})"
        )
    return 0


# flags of `vitkit train` that set a TrainConfig field of the same name (None: not given)
_SETTINGS = (
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "warmup",
    "label_smoothing",
    "precision",
    "compile",
    "seed",
    "max_steps",
    "distillation",
)


def train_config(args: argparse.Namespace, checkpoint: Path) -> TrainConfig:
    """The settings of a ``vitkit train`` run: the preset's recipe (with ``--resume``, the settings saved in
    ``checkpoint`` instead), then every flag given on the command line."""
    config = recipe(args.model)
    if args.resume and checkpoint.is_file():
        config = checkpoint_config(read(checkpoint)) or config
    changes = {key: getattr(args, key) for key in _SETTINGS if getattr(args, key) is not None}
    if args.augment is not None:
        changes["augment"] = {"default": True, "none": False, "randaugment": "randaugment"}[args.augment]
    return config.replace(**changes)
