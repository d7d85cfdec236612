"""Training: ``fit`` / ``evaluate`` / ``predict``, the same call on a laptop CPU, a GPU, or under torchrun.

fit: AdamW (2-D weights decay; biases, norms, cls_token and pos_embed don't), linear warm-up then
cosine decay per step, gradient clipping, label smoothing, mixed precision where it pays, optional
``torch.compile``, a checkpoint written atomically after every epoch (``resume=True`` continues it,
bit-for-bit on CPU), and a :class:`History` of per-epoch losses and accuracies.

Under ``torchrun`` (``WORLD_SIZE`` set) the same call joins the process group (NCCL on CUDA, gloo on
CPU), wraps the model in DistributedDataParallel, gives each rank its shard of every batch
(``batch_size`` stays the global batch), sums metrics over ranks and writes files on rank 0 only.
"""

from __future__ import annotations

import argparse
import atexit
import copy
import json
import math
import os
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from vitkit.data import Augment, Dataset, default_augment, load_dataset, make_loader
from vitkit.pretrained import _unwrap, atomic_save, model_record

__all__ = ["History", "RECIPES", "distillation_loss", "evaluate", "fit", "predict", "recipe", "resolve_device", "resolve_precision"]

# Default recipes per preset: `vitkit train --model NAME --data mnist5k` uses these unless flags say otherwise.
# 28×28 digits shift by at most 1 pixel: with the 3-pixel default (1/8 of the image) vit_mnist reached 56%
# instead of 91% test accuracy after 10 epochs on mnist5k (94.8% vs 96.4% after 30); the CNN does not care.
RECIPES: dict[str, dict] = {
    "vit_mnist": dict(epochs=30, batch_size=64, lr=1e-3, weight_decay=0.05, warmup=1, label_smoothing=0.1, augment=Augment(translate=1)),
    "resnet_mnist": dict(epochs=10, batch_size=64, lr=3e-3, weight_decay=0.05, warmup=0.5, label_smoothing=0.0, augment=Augment(translate=1)),
    # The debate's arms start from their family's recipe (not tuned on their own): deit_mnist and hybrid_mnist
    # from vit_mnist's, convmixer_mnist from the CNN's. deit_mnist learns a teacher with `--teacher CHECKPOINT`.
    "deit_mnist": dict(epochs=30, batch_size=64, lr=1e-3, weight_decay=0.05, warmup=1, label_smoothing=0.1, augment=Augment(translate=1)),
    "hybrid_mnist": dict(epochs=30, batch_size=64, lr=1e-3, weight_decay=0.05, warmup=1, label_smoothing=0.1, augment=Augment(translate=1)),
    "convmixer_mnist": dict(epochs=10, batch_size=64, lr=3e-3, weight_decay=0.05, warmup=0.5, label_smoothing=0.0, augment=Augment(translate=1)),
    "vit_cifar": dict(epochs=50, batch_size=128, lr=1e-3, weight_decay=0.05, warmup=5, label_smoothing=0.1, augment=True),
    "resnet_cifar": dict(epochs=30, batch_size=128, lr=2e-3, weight_decay=0.05, warmup=2, label_smoothing=0.0, augment=True),
}
_GENERIC = dict(epochs=10, batch_size=128, lr=1e-3, weight_decay=0.05, warmup=1, label_smoothing=0.0, augment=True)


def recipe(name: str) -> dict:
    """The default hyper-parameters for preset ``name`` (a copy; unknown presets get a generic recipe)."""
    return copy.deepcopy(RECIPES.get(name, _GENERIC))  # deep: the Augment inside is the caller's to change


# ----------------------------------------------------------------------------- history


@dataclass
class History:
    """Per-epoch figures of a ``fit``: losses and accuracies (validation ones are NaN without a validation split)."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # wall time of the epoch (training and validation)
    images_per_s: list[float] = field(default_factory=list)  # training throughput, all ranks together

    def append(self, **row) -> None:
        for key, value in row.items():
            getattr(self, key).append(value)

    def __len__(self) -> int:
        return len(self.epoch)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(**{k: list(v) for k, v in d.items()})

    def table(self) -> str:
        """The history as a text table, one line per epoch."""
        lines = ["epoch  train_loss  train_acc  val_loss  val_acc        lr   seconds  images/s"]
        for i in range(len(self)):
            lines.append(f"{self.epoch[i]:5d}  {self.train_loss[i]:10.4f}  {self.train_accuracy[i]:9.4f}  {self.val_loss[i]:8.4f}  "
                         f"{self.val_accuracy[i]:7.4f}  {self.lr[i]:8.2e}  {self.seconds[i]:8.1f}  {self.images_per_s[i]:8.0f}")
        return "\n".join(lines)

    def plot(self, axes=None):
        """Loss and accuracy curves (train and validation) on two matplotlib axes; returns the axes."""
        import matplotlib.pyplot as plt

        if axes is None:
            _, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        for ax, key in zip(axes, ("loss", "accuracy")):
            ax.plot(self.epoch, getattr(self, f"train_{key}"), "o-", label="train")
            if any(math.isfinite(v) for v in getattr(self, f"val_{key}")):
                ax.plot(self.epoch, getattr(self, f"val_{key}"), "o-", label="validation")
            ax.set_xlabel("epoch")
            ax.set_ylabel(key)
            ax.legend()
        return axes


# ----------------------------------------------------------------------------- devices, precision, processes


def resolve_device(device="auto") -> torch.device:
    """"auto" -> cuda (this rank's GPU under torchrun), then mps, then cpu; anything else as given."""
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" -> "bf16" on CUDA that supports it, "fp16" (with a gradient scaler) on older CUDA, else "fp32".

    On CPUs "auto" stays fp32 even with avx512_bf16: bf16 autocast trained the small presets at the same accuracy
    but slower (vit_mnist 0.71×, resnet_mnist 0.93× the speed; ``vitkit bench --only cpu_bf16``, docs/benchmarks.md).
    """
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    if precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be 'auto', 'fp32', 'bf16' or 'fp16', got {precision!r}")
    return precision


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def _distributed(device: torch.device, timeout_s: float = 300) -> tuple[int, int]:
    """(rank, world_size): joins the torchrun process group on first use (gloo on CPU, NCCL on CUDA)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1:
        return 0, 1
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))  # a rank that never arrives fails, not hangs
    atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    return dist.get_rank(), dist.get_world_size()


def _all_sum(values: torch.Tensor, world_size: int) -> torch.Tensor:
    if world_size > 1:
        values = values.clone()
        dist.all_reduce(values)
    return values


def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": [list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    random.setstate((3, tuple(state["python"][0]), state["python"][1]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    # Weight decay on matrices and kernels (≥ 2-D) only; biases, norm scales, cls/dist tokens and pos_embed are left alone.
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 and not name.endswith(("cls_token", "dist_token", "pos_embed")) else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _warmup_cosine(warmup_steps: int, total_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return factor


def _splits(data) -> tuple:
    """(train, val or None, mean, std, augment default) from a Dataset or a bare Split."""
    if isinstance(data, Dataset):
        return data.train, (data.val if len(data.val) else None), data.mean, data.std
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1], None, None
    return data, None, None, None


# ----------------------------------------------------------------------------- distillation (DeiT)


def distillation_loss(outputs, teacher_logits: torch.Tensor, labels: torch.Tensor, kind: str = "hard", alpha: float = 0.5,
                      tau: float = 3.0, label_smoothing: float = 0.0) -> torch.Tensor:
    """DeiT's distillation objective (Touvron et al. 2021), a scalar.

    outputs: the student's logits (B, K), or ``(cls_logits, dist_logits)`` from a model with a distillation
    token (:class:`vitkit.deit.DistilledViT`); a plain model uses its one head for both terms.
    teacher_logits (B, K); labels (B,) true classes.

    - ``kind="hard"``: (1 - alpha)·CE(cls_logits, labels) + alpha·CE(dist_logits, teacher's argmax)
      (the paper's choice, alpha = 1/2).
    - ``kind="soft"``: (1 - alpha)·CE(cls_logits, labels) + alpha·tau²·KL(softmax(teacher/tau) ‖ softmax(dist/tau))
      (Hinton et al.'s knowledge distillation; DeiT tried alpha = 0.1, tau = 3).

    label_smoothing applies to the true-label term only.
    """
    cls_logits, dist_logits = outputs if isinstance(outputs, (tuple, list)) else (outputs, outputs)
    cls_logits, dist_logits, teacher_logits = cls_logits.float(), dist_logits.float(), teacher_logits.float()
    base = F.cross_entropy(cls_logits, labels, label_smoothing=label_smoothing)
    if kind == "hard":
        distill = F.cross_entropy(dist_logits, teacher_logits.argmax(-1))
    elif kind == "soft":
        distill = F.kl_div(F.log_softmax(dist_logits / tau, -1), F.log_softmax(teacher_logits / tau, -1), reduction="batchmean",
                           log_target=True) * tau**2
    else:
        raise ValueError(f"distillation must be 'hard' or 'soft', got {kind!r}")
    return (1 - alpha) * base + alpha * distill


# ----------------------------------------------------------------------------- fit


def fit(model: nn.Module, data, epochs: int = 10, batch_size: int = 128, lr: float = 1e-3, weight_decay: float = 0.05,
        warmup: float = 1, label_smoothing: float = 0.0, device="auto", precision: str = "auto", compile: bool = False,
        checkpoint=None, resume: bool = False, seed: int = 0, progress: bool = True, augment=True, clip_grad: float | None = 1.0,
        max_steps: int | None = None, num_workers: int | None = None, log=None, teacher: nn.Module | None = None,
        distillation: str = "hard", distill_alpha: float = 0.5, distill_tau: float = 3.0) -> History:
    """Train ``model`` in place on ``data`` (a Dataset: train + validation; or a Split) and return its History.

    batch_size is the global batch (split over torchrun ranks); warmup is in epochs (may be fractional);
    augment: True (the data set's default shifts/flips), False, "randaugment", or an ``Augment``.
    checkpoint: a file written after every epoch; resume=True continues from it. max_steps caps the steps per epoch.

    teacher: a trained model (e.g. the CNN) whose predictions on each augmented batch the student also learns
    (DeiT): the loss is :func:`distillation_loss` with ``distillation`` "hard" (the teacher's top class as a
    second label) or "soft" (its softened distribution at temperature ``distill_tau``), weighted ``distill_alpha``.
    A model with a distillation token (``vitkit.deit``) learns the teacher with that token's head, any other
    model with its one head. The teacher stays frozen in eval mode. Accuracies in the history are the model's
    test-time output (for DeiT the mean of both heads).
    """
    device = resolve_device(device)
    if device.type == "cuda" and device.index is None:  # "cuda" under torchrun: this rank's GPU
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    precision = resolve_precision(precision, device)
    rank, world_size = _distributed(device)
    if batch_size % world_size:
        raise ValueError(f"batch_size {batch_size} is not divisible by the {world_size} processes; use a multiple of {world_size}")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    train, val, mean, std = _splits(data)
    if augment is True:
        augment = default_augment(data) if isinstance(data, Dataset) else None
    elif augment == "randaugment":
        augment = default_augment(data, randaugment=True) if isinstance(data, Dataset) else Augment(randaugment=True)
    elif not augment:
        augment = None
    if augment is not None and mean is None:
        raise ValueError("augmentation needs the data set's mean and std: pass the Dataset from load_dataset, or augment=False")
    train_loader = make_loader(train, batch_size // world_size, train=True, augment=augment, mean=mean, std=std, device=device,
                               seed=seed, rank=rank, world_size=world_size, num_workers=num_workers,
                               image_size=data.image_size if isinstance(data, Dataset) else None)
    steps_per_epoch = len(train_loader) if max_steps is None else min(max_steps, len(train_loader))

    torch.manual_seed(seed)  # dropout and stochastic depth
    model.to(device)
    # fused: one kernel for the whole update, on CPU as on CUDA (a few % of a small model's step)
    optimizer = torch.optim.AdamW(_param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.999), fused=device.type in ("cpu", "cuda"))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(round(warmup * steps_per_epoch), epochs * steps_per_epoch))
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    history, start_epoch = History(), 0
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if resume:
        if checkpoint is None or not checkpoint.is_file():
            raise FileNotFoundError(f"resume=True but there is no checkpoint at {checkpoint}; pass the checkpoint= file a previous fit wrote")
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        _unwrap(model).load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history, start_epoch = History.from_dict(state["history"]), state["epoch"]
        rngs = state["rng"]
        _set_rng_state(rngs[rank] if len(rngs) == world_size else rngs[0])

    trained = model
    if world_size > 1:
        # gradient_as_bucket_view: gradients live in the all-reduce buckets (no copy in and out each step)
        trained = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                                      gradient_as_bucket_view=True)
    if compile:
        trained = torch.compile(trained)  # after DDP, as DDP's docs ask
    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    if teacher is not None:
        if distillation not in ("hard", "soft"):
            raise ValueError(f"distillation must be 'hard' or 'soft', got {distillation!r}")
        teacher = _unwrap(teacher).to(device).eval()
    distilled = hasattr(model, "distilled_training")
    if distilled:  # a distillation token: its head learns the teacher, or (no teacher) the labels like the CLS head
        model.distilled_training = True
    show = progress and rank == 0
    if show:
        from tqdm.auto import tqdm  # renders in JupyterLab and in a terminal
    for epoch in range(start_epoch, epochs):
        started = time.perf_counter()
        trained.train()
        train_loader.set_epoch(epoch)
        totals = torch.zeros(3, device=device)  # loss sum, correct, count (real samples only)
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{epochs}", leave=False, file=sys.stdout) if show else None
        for step, (images, labels, real) in enumerate(train_loader):
            if step >= steps_per_epoch:
                break
            with _autocast(device, precision):
                outputs = trained(images)
                if teacher is not None:
                    with torch.no_grad():
                        teacher_logits = teacher(images)
                    loss = distillation_loss(outputs, teacher_logits, labels, distillation, distill_alpha, distill_tau, label_smoothing)
                elif isinstance(outputs, tuple):  # both heads of a distilled model learn the labels
                    loss = (loss_fn(outputs[0].float(), labels) + loss_fn(outputs[1].float(), labels)) / 2
                else:
                    loss = loss_fn(outputs.float(), labels)
                logits = (outputs[0] + outputs[1]) / 2 if isinstance(outputs, tuple) else outputs  # (B, K): what the model predicts
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}: training diverged; "
                                         f"try a lower learning rate than lr={lr:g} (or precision='fp32')")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if clip_grad:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            with torch.no_grad():
                per_sample = F.cross_entropy(logits.float(), labels, reduction="none")
                totals += torch.stack([(per_sample * real).sum(), ((logits.argmax(1) == labels) & real).sum(), real.sum()])
            if bar is not None:
                bar.update()
                bar.set_postfix(loss=f"{loss.item():.3f}")
        if bar is not None:
            bar.close()
        totals = _all_sum(totals, world_size).tolist()
        train_seconds = time.perf_counter() - started
        metrics = evaluate(model, val, batch_size=max(256, batch_size), device=device, precision=precision) if val is not None else {"loss": math.nan, "accuracy": math.nan}
        history.append(epoch=epoch + 1, train_loss=totals[0] / max(1, totals[2]), train_accuracy=totals[1] / max(1, totals[2]),
                       val_loss=metrics["loss"], val_accuracy=metrics["accuracy"], lr=optimizer.param_groups[0]["lr"],
                       seconds=time.perf_counter() - started, images_per_s=totals[2] / train_seconds)
        if log is not None and rank == 0:
            log(history)
        if checkpoint is not None:
            rngs = [_rng_state()]
            if world_size > 1:
                rngs = [None] * world_size
                dist.all_gather_object(rngs, _rng_state())
            if rank == 0:
                atomic_save({**model_record(model), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                             "scaler": scaler.state_dict() if scaler.is_enabled() else {}, "epoch": epoch + 1,
                             "history": history.as_dict(), "rng": rngs, "world_size": world_size,
                             "fit": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "warmup": warmup,
                                     "label_smoothing": label_smoothing, "seed": seed, "precision": precision}}, checkpoint)
            if world_size > 1:
                dist.barrier()  # no rank runs ahead (and may be killed) before the checkpoint is on disk
    if distilled:
        model.distilled_training = False
    return history


# ----------------------------------------------------------------------------- evaluate / predict


@torch.no_grad()
def evaluate(model: nn.Module, data, batch_size: int = 512, device=None, precision: str = "fp32") -> dict:
    """{"loss", "accuracy"} of ``model`` on a split (or a Dataset's test split), every image counted once.

    Under torchrun each rank scores its share and the sums are combined, so every rank gets the whole-set figures.
    """
    split = data.test if isinstance(data, Dataset) else data
    model = _unwrap(model)  # no DDP hooks: ranks may hold different numbers of batches
    device = next(model.parameters()).device if device is None else torch.device(device)
    rank, world_size = (dist.get_rank(), dist.get_world_size()) if dist.is_available() and dist.is_initialized() else (0, 1)
    was_training = model.training
    model.eval()
    dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
    totals = torch.zeros(3, dtype=dtype, device=device)  # loss sum, correct, count
    try:
        for images, labels, _ in make_loader(split, batch_size, device=device, rank=rank, world_size=world_size):
            with _autocast(device, precision):
                logits = model(images).float()
            totals += torch.stack([F.cross_entropy(logits, labels, reduction="sum"), (logits.argmax(1) == labels).sum(),
                                   torch.tensor(len(labels), device=device)]).to(dtype)
    finally:
        model.train(was_training)
    loss, correct, count = _all_sum(totals, world_size).tolist()
    if count == 0:
        raise ValueError("evaluate got an empty split; pass a split with images (e.g. dataset.test)")
    return {"loss": loss / count, "accuracy": correct / count}


@torch.no_grad()
def predict(model: nn.Module, data, batch_size: int = 512, probabilities: bool = False) -> torch.Tensor:
    """Predicted classes (N,) for normalised images (N, C, H, W), a split or a Dataset's test split.

    probabilities=True gives the softmax (N, num_classes) instead.
    """
    split = data.test if isinstance(data, Dataset) else data
    images = split if isinstance(split, torch.Tensor) else None
    model = _unwrap(model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        if images is not None:
            if images.dim() == 3:
                raise ValueError(f"predict expects a batch (N, C, H, W), got {tuple(images.shape)}; use images.unsqueeze(0) for one image")
            batches = (images[i:i + batch_size].to(device) for i in range(0, len(images), batch_size))
        else:
            batches = (x for x, _, _ in make_loader(split, batch_size, device=device))
        logits = torch.cat([model(x).float().cpu() for x in batches])  # (N, num_classes)
    finally:
        model.train(was_training)
    return logits.softmax(-1) if probabilities else logits.argmax(-1)


# ----------------------------------------------------------------------------- the CLI: vitkit train / vitkit eval


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``vitkit train`` and ``vitkit eval`` (one parser serves both)."""
    if parser.prog.split()[-1] == "eval":
        parser.add_argument("--checkpoint", required=True, help="a file written by vitkit train / fit")
        parser.add_argument("--data", default="mnist5k", help="data set name (default mnist5k)")
        parser.add_argument("--root", help="folder of torchvision-format data")
        parser.add_argument("--split", default="test", choices=("train", "val", "test"))
        parser.add_argument("--device", default="auto")
        return
    parser.add_argument("--model", default="vit_mnist", help="model preset (vitkit models lists them)")
    parser.add_argument("--data", default="mnist5k", help="data set: mnist5k, digits, mnist, fashion_mnist, cifar10, cifar100, imagefolder:PATH")
    parser.add_argument("--root", help="folder of torchvision-format data")
    parser.add_argument("--download", action="store_true", help="allow downloading the data set into --root")
    parser.add_argument("--out", default="runs/train", help="folder for checkpoint.pt and history.json (default runs/train)")
    for name, kind in (("epochs", int), ("batch-size", int), ("lr", float), ("weight-decay", float), ("warmup", float),
                       ("label-smoothing", float)):
        parser.add_argument(f"--{name}", type=kind, help="default: the preset's recipe")
    parser.add_argument("--augment", choices=("default", "none", "randaugment"),
                        help="default: the data set's standard shifts (1/8 of the image) and flips; randaugment: those and "
                             "RandAugment; unset: the preset's recipe (±1 px shifts for the 28×28 presets)")
    parser.add_argument("--teacher", help="a checkpoint written by vitkit train (e.g. the CNN's): distil its predictions into the "
                                          "model (DeiT; a deit_* preset learns them with its distillation token)")
    parser.add_argument("--distillation", default="hard", choices=("hard", "soft"), help="the teacher's top class (hard, default) "
                        "or its softened probabilities (soft)")
    parser.add_argument("--subset", type=int, help="train on this many training images")
    parser.add_argument("--val-size", type=float, default=0.1, help="validation share (<1) or count of the training pool")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, help="cap the steps per epoch (quick checks)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    """``vitkit train`` (fit a preset, print a per-epoch table, save checkpoint and history) or ``vitkit eval``."""
    from vitkit import create_model

    if args.command == "eval":
        from vitkit.pretrained import load

        model = load(args.checkpoint).to(resolve_device(args.device))
        data = load_dataset(args.data, root=args.root)
        metrics = evaluate(model, getattr(data, args.split))
        print(f"{args.checkpoint} on {args.data} {args.split}: loss {metrics['loss']:.4f}, accuracy {metrics['accuracy']:.4f}")
        return 0
    val_size = int(args.val_size) if args.val_size >= 1 else args.val_size
    data = load_dataset(args.data, root=args.root, download=args.download, seed=args.seed, subset=args.subset, val_size=val_size)
    settings = recipe(args.model)
    for key in ("epochs", "batch_size", "lr", "weight_decay", "warmup", "label_smoothing"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if args.augment is not None:
        settings["augment"] = {"default": True, "none": False, "randaugment": "randaugment"}[args.augment]
    torch.manual_seed(args.seed)  # the initial weights
    model = create_model(args.model, in_chans=data.in_chans, num_classes=data.num_classes, img_size=data.image_size)
    out = Path(args.out)
    rank = int(os.environ.get("RANK", 0))
    printed = [0]

    def log(history: History) -> None:
        lines = history.table().splitlines()
        if printed[0] == 0:
            print(lines[0])
        for line in lines[1 + printed[0]:]:
            print(line, flush=True)
        printed[0] = len(history)
        atomic_json(history.as_dict(), out / "history.json")

    if args.teacher:
        from vitkit.pretrained import load

        settings.update(teacher=load(args.teacher), distillation=args.distillation)
    started = time.perf_counter()
    history = fit(model, data, **settings, device=args.device, precision=args.precision, compile=args.compile,
                  checkpoint=out / "checkpoint.pt", resume=args.resume, seed=args.seed, progress=not args.no_progress,
                  max_steps=args.max_steps, log=log)
    if rank == 0 and printed[0] == 0 and len(history):  # resumed a finished run: show its table
        print(history.table())
    test = evaluate(model, data.test)
    if rank == 0:
        atomic_json(history.as_dict(), out / "history.json")
        print(f"test: loss {test['loss']:.4f}, accuracy {test['accuracy']:.4f}  ({time.perf_counter() - started:.1f} s; "
              f"checkpoint {out / 'checkpoint.pt'})")
    return 0


def atomic_json(obj, path: Path) -> None:
    """Write JSON through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)
