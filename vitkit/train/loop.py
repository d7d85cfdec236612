"""``fit``: the training loop, from the data, device and processes to the epochs, the checkpoints and the history.

AdamW (2-D weights decay; biases, norms, cls_token and pos_embed don't), linear warm-up then cosine decay per
step, gradient clipping, label smoothing, mixed precision where it pays, optional ``torch.compile``, a checkpoint
written atomically after every epoch (``resume=True`` continues it, bit-for-bit on CPU).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from vitkit.checkpoint import atomic_save, model_record
from vitkit.checkpoint import unwrap as _unwrap
from vitkit.data import Augment, Dataset, default_augment, make_loader
from vitkit.train.config import TrainConfig
from vitkit.train.devices import (
    _all_sum,
    _autocast,
    _bf16_convolutions,
    _compiler,
    _device_tuning,
    _distributed,
    _sync_batchnorm,
    resolve_device,
    resolve_precision,
)
from vitkit.train.distillation import distillation_loss
from vitkit.train.evaluate import _score
from vitkit.train.state import History, _rank_seed, _restore_rngs, _rng_state

__all__ = ["fit"]


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


def fit(
    model: nn.Module,
    data,
    config: TrainConfig | None = None,
    *,
    device="auto",
    checkpoint=None,
    resume: bool = False,
    progress: bool = True,
    num_workers: int | None = None,
    log=None,
    teacher: nn.Module | None = None,
    **overrides,
) -> History:
    """Train ``model`` in place on ``data`` (a Dataset: train + validation; or a Split) and return its History.

    config: the training settings (a :class:`TrainConfig`; None: its defaults); keyword ``overrides`` replace single
    settings (``fit(model, data, epochs=3, lr=2e-3)``, or ``fit(model, data, recipe("vit_mnist"), epochs=3)``).
    The rest is where and how to run: ``device``, ``checkpoint``, ``resume``, ``progress``, ``num_workers``
    (loader processes), ``log`` (called with the History after every epoch) and ``teacher``.

    batch_size is the global batch (split over torchrun ranks); warmup is in epochs (may be fractional);
    augment: True (the data set's default shifts/flips), False, "randaugment", or an ``Augment``.
    checkpoint: a file written after every epoch, with the settings (``asdict``) beside the model's config;
    resume=True continues from it. max_steps caps the steps per epoch.
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
    if config is None:
        config = TrainConfig()
    elif isinstance(config, dict):
        config = TrainConfig.from_record(config)
    elif not isinstance(config, TrainConfig):
        raise TypeError(
            f"fit's third argument is a TrainConfig, got {type(config).__name__} {config!r}; "
            "pass single settings as keywords, e.g. fit(model, data, epochs=3)"
        )
    config = config.replace(**overrides)
    device = resolve_device(device)
    precision = resolve_precision(config.precision, device, model, config.compile)
    rank, world_size = _distributed(device)
    batch_size = config.batch_size
    if batch_size % world_size:
        raise ValueError(
            f"batch_size {batch_size} is not divisible by the {world_size} processes; use a multiple of {world_size}"
        )
    train, val, mean, std = _splits(data)
    augment = config.augment
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
        seed=config.seed,
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
    max_steps = config.max_steps
    steps_per_epoch = len(train_loader) if max_steps is None else min(max_steps, len(train_loader))

    torch.manual_seed(_rank_seed(config.seed, rank))  # dropout and stochastic depth: each rank draws its own masks
    model.to(device)
    with _device_tuning(model, device, precision), _bf16_convolutions(model, teacher, on=precision == "bf16-conv"):
        restore_batchnorm = _sync_batchnorm(model, device) if world_size > 1 else (lambda: None)
        try:
            return _fit_loop(
                model,
                train_loader,
                val_loader,
                steps_per_epoch,
                config,
                device=device,
                precision=precision,
                checkpoint=checkpoint,
                resume=resume,
                progress=progress,
                log=log,
                rank=rank,
                world_size=world_size,
                teacher=teacher,
            )
        finally:
            restore_batchnorm()


def _fit_loop(
    model,
    train_loader,
    val_loader,
    steps_per_epoch,
    config: TrainConfig,
    *,
    device,
    precision,
    checkpoint,
    resume,
    progress,
    log,
    rank,
    world_size,
    teacher=None,
) -> History:
    """fit's epochs, once the data, the device and the processes are settled."""
    # fused: one kernel for the whole update, on CPU as on CUDA (a few % of a small model's step); with fp16 the
    # fused step also reads the gradient scaler's inf check on the device (no wait for the GPU each step)
    optimizer = torch.optim.AdamW(
        _param_groups(model, config.weight_decay),
        lr=config.lr,
        betas=(0.9, 0.999),
        fused=device.type in ("cpu", "cuda"),
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _warmup_cosine(round(config.warmup * steps_per_epoch), config.epochs * steps_per_epoch)
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
        _restore_rngs(state["rng"], rank, world_size, config.seed, start_epoch)

    trained = model
    if world_size > 1:
        # gradient_as_bucket_view: gradients live in the all-reduce buckets (no copy in and out each step)
        trained = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, gradient_as_bucket_view=True
        )
    compiler = _compiler(config.compile)
    scored = model
    if compiler is not None:
        trained = compiler(trained)  # after DDP, as DDP's docs ask
        scored = compiler(model)  # validation: the bare model (no DDP hooks), compiled too
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    if teacher is not None:
        if config.distillation not in ("hard", "soft"):
            raise ValueError(f"distillation must be 'hard' or 'soft', got {config.distillation!r}")
        teacher = _unwrap(teacher).to(device).eval()
    distilled = hasattr(model, "distilled_training")
    if distilled:  # a distillation token: its head learns the teacher, or (no teacher) the labels like the CLS head
        model.distilled_training = True
    show = progress and rank == 0
    if show:
        from tqdm.auto import tqdm  # renders in JupyterLab and in a terminal
    for epoch in range(start_epoch, config.epochs):
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
            tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False, file=sys.stdout)
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
                        outputs,
                        teacher_logits,
                        labels,
                        config.distillation,
                        config.distill_alpha,
                        config.distill_tau,
                        config.label_smoothing,
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
            if config.clip_grad:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
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
                f"try a lower learning rate than lr={config.lr:g} (or precision='fp32')"
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
                        **model_record(model, config),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                        "epoch": epoch + 1,
                        "history": history.as_dict(),
                        "rng": rngs,
                        "world_size": world_size,
                    },
                    checkpoint,
                )
            if world_size > 1:
                dist.barrier()  # no rank runs ahead (and may be killed) before the checkpoint is on disk
    if distilled:
        model.distilled_training = False
    return history
