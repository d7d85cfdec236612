"""Training: ``fit`` / ``evaluate`` / ``predict``, the same call on a laptop CPU, a GPU, or under torchrun.

fit: AdamW (2-D weights decay; biases, norms, cls_token and pos_embed don't), linear warm-up then
cosine decay per step, gradient clipping, label smoothing, mixed precision where it pays, optional
``torch.compile``, a checkpoint written atomically after every epoch (``resume=True`` continues it,
bit-for-bit on CPU), and a :class:`History` of per-epoch losses and accuracies.

Under ``torchrun`` (``WORLD_SIZE`` set) the same call joins the process group (NCCL on CUDA, gloo on
CPU), wraps the model in DistributedDataParallel, synchronises BatchNorm, seeds each rank's dropout
on its own, gives each rank its shard of every batch (``batch_size`` stays the global batch), sums
metrics over ranks and writes files on rank 0 only. ``vitkit doctor`` says what a machine will use.
"""

from __future__ import annotations

import argparse
import atexit
import copy
import math
import os
import random
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from vitkit.checkpoint import atomic_json, atomic_save, model_record
from vitkit.checkpoint import unwrap as _unwrap
from vitkit.data import Augment, Dataset, default_augment, load_dataset, make_loader

__all__ = [
    "History",
    "RECIPES",
    "distillation_loss",
    "evaluate",
    "fit",
    "predict",
    "recipe",
    "resolve_device",
    "resolve_precision",
]

# Default recipes per preset: `vitkit train --model NAME --data mnist5k` uses these unless flags say otherwise.
# 28×28 digits shift by at most 1 pixel: with the 3-pixel default (1/8 of the image) vit_mnist reached 56%
# instead of 91% test accuracy after 10 epochs on mnist5k (94.8% vs 96.4% after 30); the CNN does not care.
RECIPES: dict[str, dict] = {
    "vit_mnist": dict(
        epochs=30,
        batch_size=64,
        lr=1e-3,
        weight_decay=0.05,
        warmup=1,
        label_smoothing=0.1,
        augment=Augment(translate=1),
    ),
    "resnet_mnist": dict(
        epochs=10,
        batch_size=64,
        lr=3e-3,
        weight_decay=0.05,
        warmup=0.5,
        label_smoothing=0.0,
        augment=Augment(translate=1),
    ),
    # The debate's arms start from their family's recipe (not tuned on their own): deit_mnist and hybrid_mnist
    # from vit_mnist's, convmixer_mnist from the CNN's. deit_mnist learns a teacher with `--teacher CHECKPOINT`.
    "deit_mnist": dict(
        epochs=30,
        batch_size=64,
        lr=1e-3,
        weight_decay=0.05,
        warmup=1,
        label_smoothing=0.1,
        augment=Augment(translate=1),
    ),
    "hybrid_mnist": dict(
        epochs=30,
        batch_size=64,
        lr=1e-3,
        weight_decay=0.05,
        warmup=1,
        label_smoothing=0.1,
        augment=Augment(translate=1),
    ),
    "convmixer_mnist": dict(
        epochs=10,
        batch_size=64,
        lr=3e-3,
        weight_decay=0.05,
        warmup=0.5,
        label_smoothing=0.0,
        augment=Augment(translate=1),
    ),
    "vit_cifar": dict(
        epochs=50, batch_size=128, lr=1e-3, weight_decay=0.05, warmup=5, label_smoothing=0.1, augment=True
    ),
    "resnet_cifar": dict(
        epochs=30, batch_size=128, lr=2e-3, weight_decay=0.05, warmup=2, label_smoothing=0.0, augment=True
    ),
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
            lines.append(
                f"{self.epoch[i]:5d}  {self.train_loss[i]:10.4f}  {self.train_accuracy[i]:9.4f}  {self.val_loss[i]:8.4f}  "
                f"{self.val_accuracy[i]:7.4f}  {self.lr[i]:8.2e}  {self.seconds[i]:8.1f}  {self.images_per_s[i]:8.0f}"
            )
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


def _torchrun() -> tuple[int, int, int]:
    """(world size, local rank, processes on this machine) as torchrun sets them; (1, 0, 1) outside torchrun."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    return world, local_rank, int(os.environ.get("LOCAL_WORLD_SIZE", world))


def _pick_device(device="auto") -> tuple[torch.device, str]:
    """The device ``device`` stands for and why (a sentence for ``vitkit doctor``)."""
    world, local_rank, local_world = _torchrun()
    if str(device) != "auto":
        chosen = torch.device(device)
        if world > 1 and chosen.type == "mps":
            raise ValueError(
                f"device={str(device)!r} under torchrun: gloo, the only backend on a Mac, cannot carry MPS tensors; "
                "use device='cpu' (or train in one process on MPS)"
            )
        if world > 1 and chosen.type == "cuda":
            gpus = torch.cuda.device_count()
            if local_world > gpus:
                raise ValueError(
                    f"device={str(device)!r} under torchrun with {local_world} processes on a machine with {gpus} GPU(s): "
                    f"NCCL needs one GPU per process; use --nproc_per_node {gpus} (or device='cpu' / 'auto')"
                )
            if chosen.index is None:
                chosen = torch.device("cuda", local_rank)
        return chosen, f"asked for {chosen}"
    if torch.cuda.is_available():
        gpus = torch.cuda.device_count()
        if world > 1 and local_world > gpus:
            # NCCL refuses two ranks on one GPU; every rank sees the same counts, so all of them fall back together
            return torch.device("cpu"), (
                f"torchrun started {local_world} processes on this machine but it has {gpus} GPU(s): "
                f"all processes train on the CPU with gloo (use --nproc_per_node {gpus} for the GPUs)"
            )
        index = local_rank if world > 1 else 0
        name = torch.cuda.get_device_name(index)
        return torch.device("cuda", index), f"CUDA is available ({gpus} GPU(s), this process uses GPU {index}: {name})"
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if mps and world > 1:
        return torch.device(
            "cpu"
        ), "Apple's MPS is available, but torchrun's gloo backend cannot carry MPS tensors: CPU"
    if mps:
        return torch.device("mps"), "no CUDA; Apple's MPS is available"
    return torch.device("cpu"), "no CUDA or MPS device"


def resolve_device(device="auto") -> torch.device:
    """ "auto" -> cuda (this rank's GPU under torchrun), then mps, then cpu; anything else as given.

    Under torchrun: more processes than GPUs -> every process on the CPU (gloo); never MPS (gloo cannot carry it).
    """
    return _pick_device(device)[0]


# CUDA compute capability from which bf16 runs natively (Ampere); before it cuDNN has no bf16 convolutions and
# matrix products emulate it, so fp16 with a gradient scaler is the fast choice from Volta (7.0) and P100 (6.0) on;
# consumer Pascal (6.1, GTX 10xx) runs fp16 at a small fraction of its fp32 rate.
_BF16_FROM = (8, 0)
_FP16_CAPABILITIES = lambda cc: cc >= (7, 0) or cc == (6, 0)  # noqa: E731


def _pick_precision(precision: str, device: torch.device) -> tuple[str, str]:
    """The precision ``precision`` stands for on ``device`` and why."""
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be 'auto', 'fp32', 'bf16' or 'fp16', got {precision!r}")
    if precision != "auto":
        return precision, f"asked for {precision}"
    device = torch.device(device)
    if device.type == "cuda":
        # by compute capability, not torch.cuda.is_bf16_supported(): that is True on a T4 or V100, where bf16 is emulated
        cc = tuple(torch.cuda.get_device_capability(device))
        if cc >= _BF16_FROM:
            return "bf16", f"compute capability {cc[0]}.{cc[1]} (Ampere or newer) runs bf16 natively"
        if _FP16_CAPABILITIES(cc):
            return "fp16", f"compute capability {cc[0]}.{cc[1]} has no native bf16: fp16 with a gradient scaler"
        return "fp32", f"compute capability {cc[0]}.{cc[1]} runs fp16 slowly and bf16 not at all"
    if device.type == "mps":
        return "fp32", "MPS: fp32 (the kit does not use autocast on MPS unless asked: precision='fp16')"
    return "fp32", "CPU: fp32"


def resolve_precision(precision: str, device: torch.device) -> str:
    """ "auto" -> "bf16" on CUDA of compute capability 8.0+ (Ampere), "fp16" (with a gradient scaler) on older CUDA
    (Volta, Turing, P100), else "fp32"; an explicit "fp32", "bf16" or "fp16" is kept.

    On CPUs "auto" stays fp32 even with avx512_bf16: bf16 autocast trained the small presets at the same accuracy
    but slower (vit_mnist 0.71×, resnet_mnist 0.93× the speed; ``vitkit bench --only cpu_bf16``, docs/benchmarks.md).
    """
    return _pick_precision(precision, device)[0]


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
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": [list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    random.setstate((3, tuple(state["python"][0]), state["python"][1]))
    if "cuda" in state and torch.cuda.is_available():
        # a machine with fewer GPUs than the one that saved: restore the GPUs this one has (each rank uses one)
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)


def _restore_rngs(rngs: list, rank: int, world_size: int, seed: int, epoch: int) -> None:
    """Each rank continues its own random streams; ranks the saving run did not have get fresh streams of their own."""
    if rank < len(rngs):
        _set_rng_state(rngs[rank])
    else:
        _set_rng_state(rngs[0])  # numpy and Python as rank 0; torch (dropout, drop-path) distinct per rank
        torch.manual_seed(_rank_seed(seed, rank) + 7_919 * epoch)


def _rank_seed(seed: int, rank: int) -> int:
    """The seed of dropout and stochastic depth on ``rank``: distinct masks on every rank, rank 0 as one process."""
    return seed + 1_000_003 * rank


def _sync_batchnorm(model: nn.Module, device: torch.device):
    """Under DDP, BatchNorm layers normalise with the statistics of the global batch, as one process would.

    Swaps each BatchNorm for a synchronised one sharing its parameters and running buffers (torch's SyncBatchNorm
    on CUDA; on the CPU, where torch's needs a GPU, :class:`_GlooSyncBatchNorm`); returns a function that puts
    the originals back, so the caller's model leaves ``fit`` with the classes it came with.
    """
    swapped = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(
                child, (nn.SyncBatchNorm, _GlooSyncBatchNorm)
            ):
                sync = (nn.SyncBatchNorm if device.type == "cuda" else _GlooSyncBatchNorm)(
                    child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
                ).to(device)
                if child.affine:
                    sync.weight, sync.bias = child.weight, child.bias  # the same Parameters: the optimizer's
                sync.running_mean, sync.running_var, sync.num_batches_tracked = (
                    child.running_mean,
                    child.running_var,
                    child.num_batches_tracked,
                )
                sync.train(child.training)
                setattr(parent, name, sync)
                swapped.append((parent, name, child))

    def restore():
        for parent, name, child in swapped:
            child.train(getattr(parent, name).training)
            setattr(parent, name, child)

    return restore


class _GlooSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch of all ranks, for CPU processes (gloo); (B, C, ...) -> (B, C, ...).

    Two autograd-aware all-reduces per layer: the per-channel sums and counts give the global mean, then the
    squared deviations from it give the global (biased) variance, exactly as one process computes them.
    """

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (B, C, ...), got {tuple(input.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = [0] + list(range(2, x.dim()))  # every axis but the channels
        local = torch.cat([x.sum(dims), x.new_full((1,), x.numel() // x.shape[1])])  # (C + 1,): sums, count
        total = all_reduce(local)
        count = total[-1]
        mean = total[:-1] / count  # (C,)
        shape = [1, -1] + [1] * (x.dim() - 2)
        centred = x - mean.view(shape)
        var = all_reduce(centred.pow(2).sum(dims)) / count  # (C,), biased, as BatchNorm normalises
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), factor)
                self.running_var.lerp_(var.detach() * count / (count - 1), factor)  # unbiased, as BatchNorm keeps it
        return out


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
    """(train, val or None, mean, std) from a Dataset, a (train, val) pair or a bare Split."""
    if isinstance(data, Dataset):
        return data.train, (data.val if len(data.val) else None), data.mean, data.std
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1], None, None
    return data, None, None, None


# ----------------------------------------------------------------------------- distillation (DeiT)


def distillation_loss(
    outputs,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    kind: str = "hard",
    alpha: float = 0.5,
    tau: float = 3.0,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
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
        distill = (
            F.kl_div(
                F.log_softmax(dist_logits / tau, -1),
                F.log_softmax(teacher_logits / tau, -1),
                reduction="batchmean",
                log_target=True,
            )
            * tau**2
        )
    else:
        raise ValueError(f"distillation must be 'hard' or 'soft', got {kind!r}")
    return (1 - alpha) * base + alpha * distill


# ----------------------------------------------------------------------------- fit


@contextmanager
def _device_tuning(model: nn.Module, device: torch.device):
    """For the length of a ``fit`` on CUDA: TF32 matrix products and convolutions, cuDNN's autotuner, and a CNN in
    ``channels_last`` (the layout tensor cores read); the process's TF32 and autotuner settings are restored after.
    """
    if device.type != "cuda":
        yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True  # fixed image sizes: pick the fastest convolution once per shape
    if any(isinstance(m, nn.Conv2d) for m in model.modules()):
        model.to(memory_format=torch.channels_last)  # convolutions then run NHWC without layout transposes
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved


def _compiler(compile):
    """``compile`` (False, True for inductor, or a torch.compile backend name or callable) -> a function wrapping a module, or None."""
    if compile is False or compile is None:
        return None
    backend = "inductor" if compile is True else compile
    return lambda module: torch.compile(module, backend=backend)


def fit(
    model: nn.Module,
    data,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    warmup: float = 1,
    label_smoothing: float = 0.0,
    device="auto",
    precision: str = "auto",
    compile=False,
    checkpoint=None,
    resume: bool = False,
    seed: int = 0,
    progress: bool = True,
    augment=True,
    clip_grad: float | None = 1.0,
    max_steps: int | None = None,
    num_workers: int | None = None,
    log=None,
    teacher: nn.Module | None = None,
    distillation: str = "hard",
    distill_alpha: float = 0.5,
    distill_tau: float = 3.0,
) -> History:
    """Train ``model`` in place on ``data`` (a Dataset: train + validation; or a Split) and return its History.

    batch_size is the global batch (split over torchrun ranks); warmup is in epochs (may be fractional);
    augment: True (the data set's default shifts/flips), False, "randaugment", or an ``Augment``.
    checkpoint: a file written after every epoch; resume=True continues from it. max_steps caps the steps per epoch.
    compile: True (torch.compile with inductor) or a backend name; the batch axis is compiled as dynamic, so the
    last, smaller batch reuses the graph, and validation runs compiled too.
    The model stays on ``device`` afterwards: move inputs with ``x.to(next(model.parameters()).device)``.

    teacher: a trained model (e.g. the CNN) whose predictions on each augmented batch the student also learns
    (DeiT): the loss is :func:`distillation_loss` with ``distillation`` "hard" (the teacher's top class as a
    second label) or "soft" (its softened distribution at temperature ``distill_tau``), weighted ``distill_alpha``.
    A model with a distillation token (``vitkit.deit``) learns the teacher with that token's head, any other
    model with its one head. The teacher stays frozen in eval mode. Accuracies in the history are the model's
    test-time output (for DeiT the mean of both heads).
    """
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    rank, world_size = _distributed(device)
    if batch_size % world_size:
        raise ValueError(
            f"batch_size {batch_size} is not divisible by the {world_size} processes; use a multiple of {world_size}"
        )
    train, val, mean, std = _splits(data)
    if augment is True:
        augment = default_augment(data) if isinstance(data, Dataset) else None
    elif augment == "randaugment":
        augment = default_augment(data, randaugment=True) if isinstance(data, Dataset) else Augment(randaugment=True)
    elif not augment:
        augment = None
    if augment is not None and mean is None:
        raise ValueError(
            "augmentation needs the data set's mean and std: pass the Dataset from load_dataset, or augment=False"
        )
    train_loader = make_loader(
        train,
        batch_size // world_size,
        train=True,
        augment=augment,
        mean=mean,
        std=std,
        device=device,
        seed=seed,
        rank=rank,
        world_size=world_size,
        num_workers=num_workers,
        image_size=data.image_size if isinstance(data, Dataset) else None,
    )
    # made once: an in-memory validation split goes to the device once, not every epoch
    val_loader = (
        make_loader(val, max(256, batch_size), device=device, rank=rank, world_size=world_size, num_workers=num_workers)
        if val is not None
        else None
    )
    steps_per_epoch = len(train_loader) if max_steps is None else min(max_steps, len(train_loader))

    torch.manual_seed(_rank_seed(seed, rank))  # dropout and stochastic depth: each rank draws its own masks
    model.to(device)
    with _device_tuning(model, device):
        restore_batchnorm = _sync_batchnorm(model, device) if world_size > 1 else (lambda: None)
        try:
            return _fit_loop(
                model,
                train_loader,
                val_loader,
                steps_per_epoch,
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                weight_decay=weight_decay,
                warmup=warmup,
                label_smoothing=label_smoothing,
                device=device,
                precision=precision,
                compile=compile,
                checkpoint=checkpoint,
                resume=resume,
                seed=seed,
                progress=progress,
                clip_grad=clip_grad,
                log=log,
                rank=rank,
                world_size=world_size,
                teacher=teacher,
                distillation=distillation,
                distill_alpha=distill_alpha,
                distill_tau=distill_tau,
            )
        finally:
            restore_batchnorm()


def _fit_loop(
    model,
    train_loader,
    val_loader,
    steps_per_epoch,
    *,
    epochs,
    batch_size,
    lr,
    weight_decay,
    warmup,
    label_smoothing,
    device,
    precision,
    compile,
    checkpoint,
    resume,
    seed,
    progress,
    clip_grad,
    log,
    rank,
    world_size,
    teacher=None,
    distillation="hard",
    distill_alpha=0.5,
    distill_tau=3.0,
) -> History:
    """fit's epochs, once the data, the device and the processes are settled."""
    # fused: one kernel for the whole update, on CPU as on CUDA (a few % of a small model's step); with fp16 the
    # fused step also reads the gradient scaler's inf check on the device (no wait for the GPU each step)
    optimizer = torch.optim.AdamW(
        _param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.999), fused=device.type in ("cpu", "cuda")
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _warmup_cosine(round(warmup * steps_per_epoch), epochs * steps_per_epoch)
    )
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    history, start_epoch = History(), 0
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if resume:
        if checkpoint is None or not checkpoint.is_file():
            raise FileNotFoundError(
                f"resume=True but there is no checkpoint at {checkpoint}; pass the checkpoint= file a previous fit wrote"
            )
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        _unwrap(model).load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history, start_epoch = History.from_dict(state["history"]), state["epoch"]
        _restore_rngs(state["rng"], rank, world_size, seed, start_epoch)

    trained = model
    if world_size > 1:
        # gradient_as_bucket_view: gradients live in the all-reduce buckets (no copy in and out each step)
        trained = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, gradient_as_bucket_view=True
        )
    compiler = _compiler(compile)
    scored = model
    if compiler is not None:
        trained = compiler(trained)  # after DDP, as DDP's docs ask
        scored = compiler(model)  # validation: the bare model (no DDP hooks), compiled too
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
        # Everything a step reports stays on the device: the CPU queues the next step while the GPU works. The
        # figures (and the divergence check) are read once per epoch.
        totals = torch.zeros(
            4, device=device
        )  # loss sum, correct, count (real samples only), steps with a non-finite loss
        first_bad = torch.zeros(2, device=device)  # (step + 1, loss) of the first non-finite loss; step 0 = none
        bar = (
            tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{epochs}", leave=False, file=sys.stdout)
            if show
            else None
        )
        for step, (images, labels, real) in enumerate(train_loader):
            if step >= steps_per_epoch:
                break
            if compiler is not None:
                torch._dynamo.mark_dynamic(images, 0)  # one graph for every batch size: the last batch is smaller
            with _autocast(device, precision):
                outputs = trained(images)
                if teacher is not None:
                    with torch.no_grad():
                        teacher_logits = teacher(images)
                    loss = distillation_loss(
                        outputs, teacher_logits, labels, distillation, distill_alpha, distill_tau, label_smoothing
                    )
                elif isinstance(outputs, tuple):  # both heads of a distilled model learn the labels
                    loss = (loss_fn(outputs[0].float(), labels) + loss_fn(outputs[1].float(), labels)) / 2
                else:
                    loss = loss_fn(outputs.float(), labels)
                logits = (
                    (outputs[0] + outputs[1]) / 2 if isinstance(outputs, tuple) else outputs
                )  # (B, K): what the model predicts
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if clip_grad:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            with torch.no_grad():
                bad = ~torch.isfinite(loss.detach())
                first_bad = torch.where(
                    bad & (first_bad[0] == 0), torch.stack([torch.full_like(loss, step + 1), loss.detach()]), first_bad
                )
                per_sample = F.cross_entropy(logits.float(), labels, reduction="none")
                totals += torch.stack(
                    [(per_sample * real).sum(), ((logits.argmax(1) == labels) & real).sum(), real.sum(), bad.float()]
                )
            if bar is not None:
                bar.update()
        totals = _all_sum(totals, world_size).tolist()  # the epoch's one wait for the device
        if totals[3]:
            step, value = first_bad.tolist()
            where = f"step {int(step)}" if step else "a step on another process"
            raise FloatingPointError(
                f"the loss became {value if step else 'non-finite'} at epoch {epoch + 1}, {where}: training diverged; "
                f"try a lower learning rate than lr={lr:g} (or precision='fp32')"
            )
        if bar is not None:
            bar.set_postfix(loss=f"{totals[0] / max(1, totals[2]):.3f}")
            bar.close()
        train_seconds = time.perf_counter() - started
        metrics = (
            _score(scored, val_loader, device, precision, world_size, dynamic=compiler is not None)
            if val_loader is not None
            else {"loss": math.nan, "accuracy": math.nan}
        )
        history.append(
            epoch=epoch + 1,
            train_loss=totals[0] / max(1, totals[2]),
            train_accuracy=totals[1] / max(1, totals[2]),
            val_loss=metrics["loss"],
            val_accuracy=metrics["accuracy"],
            lr=optimizer.param_groups[0]["lr"],
            seconds=time.perf_counter() - started,
            images_per_s=totals[2] / train_seconds,
        )
        if log is not None and rank == 0:
            log(history)
        if checkpoint is not None:
            rngs = [_rng_state()]
            if world_size > 1:
                rngs = [None] * world_size
                dist.all_gather_object(rngs, _rng_state())
            if rank == 0:
                atomic_save(
                    {
                        **model_record(model),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                        "epoch": epoch + 1,
                        "history": history.as_dict(),
                        "rng": rngs,
                        "world_size": world_size,
                        "fit": {
                            "epochs": epochs,
                            "batch_size": batch_size,
                            "lr": lr,
                            "weight_decay": weight_decay,
                            "warmup": warmup,
                            "label_smoothing": label_smoothing,
                            "seed": seed,
                            "precision": precision,
                        },
                    },
                    checkpoint,
                )
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
    rank, world_size = (
        (dist.get_rank(), dist.get_world_size()) if dist.is_available() and dist.is_initialized() else (0, 1)
    )
    return _score(
        model,
        make_loader(split, batch_size, device=device, rank=rank, world_size=world_size),
        device,
        precision,
        world_size,
    )


@torch.no_grad()
def _score(
    model: nn.Module, loader, device: torch.device, precision: str, world_size: int, dynamic: bool = False
) -> dict:
    """{"loss", "accuracy"} over a loader's batches, summed over ranks; one wait for the device, at the end."""
    was_training = model.training
    model.eval()
    dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
    totals = torch.zeros(2, dtype=dtype, device=device)  # loss sum, correct
    count = 0  # counted on the host: no small tensor sent to the device per batch
    try:
        for images, labels, _ in loader:
            if dynamic:
                torch._dynamo.mark_dynamic(images, 0)  # the last batch is smaller: no second graph
            with _autocast(device, precision):
                logits = model(images).float()
            totals += torch.stack(
                [F.cross_entropy(logits, labels, reduction="sum"), (logits.argmax(1) == labels).sum()]
            ).to(dtype)
            count += len(labels)
    finally:
        model.train(was_training)
    loss, correct, count = _all_sum(torch.cat([totals, totals.new_tensor([count])]), world_size).tolist()
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
                raise ValueError(
                    f"predict expects a batch (N, C, H, W), got {tuple(images.shape)}; use images.unsqueeze(0) for one image"
                )
            batches = (images[i : i + batch_size].to(device) for i in range(0, len(images), batch_size))
        else:
            batches = (x for x, _, _ in make_loader(split, batch_size, device=device))
        logits = torch.cat([model(x).float().cpu() for x in batches])  # (N, num_classes)
    finally:
        model.train(was_training)
    return logits.softmax(-1) if probabilities else logits.argmax(-1)


# ----------------------------------------------------------------------------- the CLI: vitkit train / vitkit eval


def describe(device="auto", precision: str = "auto", compile: bool = False) -> list[str]:
    """What ``fit`` will use on this machine, and why: device, precision, compile, processes per GPU (lines of text)."""
    world, local_rank, local_world = _torchrun()
    chosen, why_device = _pick_device(device)
    chosen_precision, why_precision = _pick_precision(precision, chosen)
    lines = [
        f"torch {torch.__version__}",
        f"device:     {chosen}  ({why_device})",
        f"precision:  {chosen_precision}  ({why_precision})",
    ]
    if chosen.type == "cuda":
        lines.append(
            "cuda:       TF32 matrix products and cuDNN autotuning during fit (restored after); CNNs in channels_last"
        )
    if compile:
        import importlib.util

        inductor = importlib.util.find_spec("triton") is not None or chosen.type == "cpu"
        lines.append(
            f"compile:    torch.compile, batch axis dynamic (one graph for every batch size), validation compiled too"
            f"{'' if inductor else '; inductor needs triton on a GPU: pip install triton, or leave --compile off'}"
        )
    else:
        lines.append("compile:    off (--compile to turn it on: slower first epoch, faster after on a GPU)")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if world > 1:
        per_gpu = "none (CPU, gloo)" if chosen.type != "cuda" else "1 (NCCL)"
        lines.append(
            f"processes:  {world} under torchrun, {local_world} on this machine (this is local rank {local_rank}); "
            f"{gpus} GPU(s) here; processes per GPU: {per_gpu}"
        )
    else:
        hint = f"; torchrun --nproc_per_node {gpus} uses them all" if gpus > 1 else ""
        lines.append(f"processes:  1 (not under torchrun); {gpus} GPU(s) here{hint}")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``vitkit train``, ``vitkit eval`` and ``vitkit doctor`` (one parser serves all three)."""
    if parser.prog.split()[-1] == "doctor":
        parser.add_argument("--device", default="auto")
        parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
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
        default="hard",
        choices=("hard", "soft"),
        help="the teacher's top class (hard, default) or its softened probabilities (soft)",
    )
    parser.add_argument("--subset", type=int, help="train on this many training images")
    parser.add_argument(
        "--val-size", type=float, default=0.1, help="validation share (<1) or count of the training pool"
    )
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

    if args.command == "doctor":
        print("\n".join(describe(args.device, args.precision, args.compile)))
        return 0
    if args.command == "eval":
        from vitkit.checkpoint import load

        model = load(args.checkpoint).to(resolve_device(args.device))
        data = load_dataset(args.data, root=args.root)
        metrics = evaluate(model, getattr(data, args.split))
        print(
            f"{args.checkpoint} on {args.data} {args.split}: loss {metrics['loss']:.4f}, accuracy {metrics['accuracy']:.4f}"
        )
        return 0
    val_size = int(args.val_size) if args.val_size >= 1 else args.val_size
    _distributed(
        resolve_device(args.device)
    )  # under torchrun: join first, so that only one process per machine downloads
    data = load_dataset(
        args.data, root=args.root, download=args.download, seed=args.seed, subset=args.subset, val_size=val_size
    )
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
        for line in lines[1 + printed[0] :]:
            print(line, flush=True)
        printed[0] = len(history)
        atomic_json(history.as_dict(), out / "history.json")

    if args.teacher:
        from vitkit.checkpoint import load

        settings.update(teacher=load(args.teacher), distillation=args.distillation)
    started = time.perf_counter()
    history = fit(
        model,
        data,
        **settings,
        device=args.device,
        precision=args.precision,
        compile=args.compile,
        checkpoint=out / "checkpoint.pt",
        resume=args.resume,
        seed=args.seed,
        progress=not args.no_progress,
        max_steps=args.max_steps,
        log=log,
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
