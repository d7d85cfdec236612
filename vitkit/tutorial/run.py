"""Running the comparison: training and measuring each model, the pre-trained ViT, data efficiency and
robustness.
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from vitkit import count_flops, count_params, create_model
from vitkit.data import Dataset, Split, load_dataset
from vitkit.data.splits import balanced_order
from vitkit.robustness import PROBES, robustness_curve
from vitkit.train import resolve_device
from vitkit.tutorial.plan import (
    COMPARED,
    PRETRAINED,
    SCRATCH_TWIN,
    Plan,
    _epochs_for,
    _steps_per_epoch,
    report_progress,
)
from vitkit.tutorial.workers import Job, chains, run_jobs, worker_layout

# ----------------------------------------------------------------------------- training and measuring


@dataclass
class Run:
    """One training run: which model, on how much data, and what it reached."""

    model: str
    fraction: float
    train_images: int
    epochs: int
    steps: int
    seconds: float
    test_accuracy: float
    test_loss: float
    history: dict  # vitkit.train.History.as_dict()
    seed: int = 0  # the seed of the initial weights, the batch order and (below 100%) the data share
    precision: str = "fp32"  # what fit's precision="auto" ran this model in (vitkit.train.resolve_precision)


def _no_validation(data: Dataset) -> Dataset:
    empty = Split(torch.empty(0, *data.val.images.shape[1:]), torch.empty(0, dtype=torch.long))
    return dataclasses.replace(data, val=empty)


def train_model(
    name: str | nn.Module,
    data: Dataset,
    p: Plan,
    full_train_images: int | None = None,
    validate: bool = True,
    label: str | None = None,
    device="auto",
    progress: bool = False,
    teacher: nn.Module | None = None,
    seed: int | None = None,
    budget: float = 1.0,
) -> tuple[nn.Module, Run]:
    """Train a preset (by name, initialised with ``seed``, default ``p.seed``) or a given model with plan ``p``; return it and its :class:`Run`.

    ``full_train_images``: the size of the full training split, so that a smaller ``data.train`` gets
    as many steps as the full one would (default: ``len(data.train)``). ``validate=False`` skips the
    per-epoch validation (faster; the history's validation columns are NaN). ``teacher``: a trained
    model the student also learns from (DeiT's distillation, ``p.distillation`` targets). ``budget``: the share of
    those steps to train for (the pre-trained ViT's fine-tuning, :attr:`Plan.finetune`), warm-up included.
    """
    from vitkit.train import evaluate, fit, resolve_precision

    seed = p.seed if seed is None else seed
    if isinstance(name, str):
        torch.manual_seed(seed)
        model, label = create_model(name), label or name
    else:
        model, label = name, label or type(name).__name__
    n = len(data.train)
    full_n = full_train_images or n
    if not 0 < budget <= 1:
        raise ValueError(f"budget is a share of the plan's steps, in (0, 1]; got {budget}")
    epochs = max(1, round(_epochs_for(n, full_n, p) * budget))
    # the same warm-up in steps (a shorter run: the same share of it)
    warmup = p.warmup * budget * _steps_per_epoch(full_n, p) / _steps_per_epoch(n, p)
    config = p.train_config(seed).replace(epochs=epochs, warmup=warmup)
    started = time.perf_counter()
    history = fit(
        model,
        data if validate else _no_validation(data),
        config=config,
        device=device,
        progress=progress,
        teacher=teacher,
    )
    seconds = time.perf_counter() - started
    test = evaluate(model, data.test)
    run = Run(
        model=label,
        fraction=round(n / full_n, 4),
        train_images=n,
        epochs=epochs,
        steps=epochs * _steps_per_epoch(n, p),
        seconds=seconds,
        test_accuracy=test["accuracy"],
        test_loss=test["loss"],
        history=history.as_dict(),
        seed=seed,
        precision=resolve_precision(config.precision, resolve_device(device), model, config.compile),
    )
    return model, run


def train_models(
    data: Dataset, p: Plan, names=COMPARED, device="auto", progress: bool = False
) -> dict[str, tuple[nn.Module, Run]]:
    """Train every model in ``names`` on the full training split with the same plan: {name: (model, Run)}, in ``names``' order.

    A student of :data:`TEACHERS` (``deit_mnist``) learns from its teacher trained just before it. On a CPU the
    runs go side by side to worker processes (:mod:`vitkit.tutorial.workers`); ``progress`` shows each epoch
    when they run in this process.
    """
    device = resolve_device(device)
    names = list(names)
    progress = progress and worker_layout(p, device)[0] == 1  # fit's progress bars, when the runs are in this process
    jobs = [Job([(n, n) for n in chain], data, p.seed, keep=set(chain), progress=progress) for chain in chains(names)]
    done = 0

    def finished(result):
        nonlocal done
        for name, _, run in result:
            done += 1
            print(
                f"{name:16s} {run.steps} steps in {run.seconds:5.1f} s: test accuracy {run.test_accuracy:.4f}",
                flush=True,
            )
            report_progress("training on the full split", done, len(names), run.steps)

    out = {name: (model, run) for result in run_jobs(jobs, p, device, finished) for name, model, run in result}
    return {name: out[name] for name in names}


def _synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (CUDA and MPS run asynchronously; the CPU does not)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@torch.no_grad()
def inference_throughput(model: nn.Module, image_shape, batch_size: int = 256, repeats: int = 3) -> float:
    """Images per second of a forward pass in eval mode on the model's device (median of ``repeats`` batches)."""
    device = next(model.parameters()).device
    x = torch.randn(batch_size, *image_shape, device=device)
    was_training = model.training
    model.eval()
    try:
        model(x)  # warm-up
        times = []
        for _ in range(repeats):
            _synchronize(device)
            start = time.perf_counter()
            model(x)
            _synchronize(device)  # GPUs run asynchronously: stop the clock when the work is done, not queued
            times.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return batch_size / statistics.median(times)


def measure(model: nn.Module, run: Run, image_shape, batch_size: int = 256) -> dict:
    """Parameters, forward FLOPs per image, training and inference throughput (images/s) of a trained model."""
    history = run.history
    train_rates = history["images_per_s"][1:] or history["images_per_s"]  # the first epoch includes warm-up costs
    return {
        "parameters": count_params(model),
        "flops": count_flops(model, tuple(image_shape)),
        "train_images_per_s": statistics.median(train_rates),
        "inference_images_per_s": inference_throughput(model, image_shape, batch_size),
    }


# ----------------------------------------------------------------------------- the pre-trained ViT


def find_pretrained() -> tuple[Path | None, str]:
    """The kit's pre-trained tiny-ViT checkpoint (``vitkit pretrain``) and a line saying what was found.

    (None, "not available: ...") when the checkpoint has not been made yet.
    """
    try:
        from vitkit.pretrain import CHECKPOINT
    except ImportError as err:
        return None, f"not available: vitkit.pretrain does not import ({err})"
    if not CHECKPOINT.is_file():
        return None, f"not available: no checkpoint at {CHECKPOINT} (make it with `vitkit pretrain`)"
    return CHECKPOINT, f"{CHECKPOINT.name}: a tiny ViT pre-trained on generated glyphs by `vitkit pretrain`"


def pretrained_arms(path: Path | None, num_classes: int = 10, seed: int = 0, scratch_twin: bool = True) -> dict:
    """{label: (seed) -> fresh model} for the pre-training comparison: the pre-trained tiny ViT with a new
    zero-initialised head, and (``scratch_twin``) the same architecture from scratch, initialised with the
    seed given (default ``seed``). Empty when ``path`` is None.
    """
    if path is None:
        return {}
    # functools.partial of module functions, not lambdas: the arms travel to worker processes (vitkit.tutorial.workers)
    arms = {PRETRAINED: functools.partial(_pretrained_arm, path, num_classes)}
    if scratch_twin:
        arms[SCRATCH_TWIN] = functools.partial(_scratch_arm, num_classes, default_seed=seed)
    return arms


def _pretrained_arm(path: Path, num_classes: int, init_seed: int | None = None) -> nn.Module:
    """The pre-trained tiny ViT with a new head (the seed does not change the pre-trained weights)."""
    from vitkit.pretrain import load_pretrained

    return load_pretrained(path, num_classes)


def _scratch_arm(num_classes: int, init_seed: int | None = None, default_seed: int = 0) -> nn.Module:
    """The tiny ViT's architecture, randomly initialised with ``init_seed`` (default ``default_seed``)."""
    from vitkit.pretrain import glyph_config
    from vitkit.vit import ViT

    torch.manual_seed(default_seed if init_seed is None else init_seed)
    return ViT(glyph_config(num_classes))


# ----------------------------------------------------------------------------- data efficiency and robustness


def data_efficiency(
    p: Plan,
    full_runs: dict[str, Run] | None = None,
    names=COMPARED,
    extra_arms: dict | None = None,
    device="auto",
    full_models: dict[str, nn.Module] | None = None,
) -> tuple[list[Run], dict[str, nn.Module]]:
    """Train each model on each share of the training split in ``p.fractions``, once per seed in ``p.seeds``,
    every run with the same number of steps.

    Each seed draws its own shares (they nest for one seed: its 10% split lies inside its 25% one...) and its
    own initial weights. Runs already made on the full split with ``p.seed`` can be passed as ``full_runs``
    ({name: Run}, with their models in ``full_models``) and are reused. A student of :data:`TEACHERS` learns
    from its teacher trained on the same share with the same seed. ``extra_arms`` ({label: (seed) -> model},
    e.g. :func:`pretrained_arms`) are trained the same way. Returns every Run, and the models that this call
    trained on the full split with ``p.seed`` ({label: model}).
    """
    full_n = len(load_data(p).train)
    device = resolve_device(device)
    makers: dict = {name: name for name in names}
    makers.update(extra_arms or {})
    reused = full_runs or {}
    jobs, shares, made = [], [], {}  # shares: each job's (seed, fraction); made: (seed, fraction, label) -> Run
    for seed in p.seeds:
        for fraction in p.fractions:
            data = load_data(p, fraction, seed=seed)
            first = fraction == 1.0 and seed == p.seed  # the share and seed of the full-split runs
            for chain in chains(makers):
                todo = [label for label in chain if not (first and label in reused)]
                made.update({(seed, fraction, label): reused[label] for label in chain if label not in todo})
                if not todo:
                    continue
                teachers = {}
                if todo[0] != chain[0]:  # students of a teacher trained on the full split already
                    teachers[chain[0]] = (full_models or {}).get(chain[0])
                    if teachers[chain[0]] is None:
                        raise ValueError(
                            f"{todo[0]} learns from {chain[0]}, whose model for {fraction:.0%} of the data and seed "
                            f"{seed} is missing; pass full_models= with full_runs="
                        )
                arms = [(label, makers[label]) for label in todo]
                jobs.append(
                    Job(arms, data, seed, full_n, validate=False, keep=set(todo) if first else set(), teachers=teachers)
                )
                shares.append((seed, fraction))
    total, done = len(makers) * len(p.fractions) * len(p.seeds), len(made)

    def finished(result):
        nonlocal done
        for label, _, run in result:
            done += 1
            print(
                f"{label:24s} {run.fraction:4.0%} of the data ({run.train_images:4d} images, seed {run.seed}, "
                f"{run.steps} steps): test accuracy {run.test_accuracy:.4f}  ({run.seconds:.0f} s)",
                flush=True,
            )
            report_progress("data efficiency", done, total, run.steps)

    new_models = {}
    for (seed, fraction), result in zip(shares, run_jobs(jobs, p, device, finished)):
        for label, model, run in result:
            made[seed, fraction, label] = run
            if model is not None:
                new_models[label] = model
    runs = [made[seed, fraction, label] for seed in p.seeds for fraction in p.fractions for label in makers]
    return runs, new_models


def balanced_indices(labels: torch.Tensor, count: int | None, seed: int = 0) -> torch.Tensor:
    """``count`` indices into ``labels`` (N,), the classes taking turns, drawn with ``seed``; sorted. None: all N."""
    if count is None or count >= len(labels):
        return torch.arange(len(labels))
    return balanced_order(labels, torch.Generator().manual_seed(seed))[:count].sort().values


def load_data(p: Plan, fraction: float | None = None, seed: int | None = None) -> Dataset:
    """``mnist5k`` (``seed``, default ``p.seed``, draws the validation images and the ``fraction`` of the training split),
    its test split cut to ``p.test_images`` if set (the same test images whatever the seed)."""
    data = load_dataset(
        "mnist5k", seed=p.seed if seed is None else seed, fraction=None if fraction == 1.0 else fraction
    )
    if p.test_images is not None:
        keep = balanced_indices(data.test.labels, p.test_images, p.seed)
        data = dataclasses.replace(data, test=Split(data.test.images[keep], data.test.labels[keep]))
    return data


def probe_subset(data: Dataset, p: Plan) -> tuple[torch.Tensor, torch.Tensor]:
    """The class-balanced test images the robustness probes damage: (N, C, H, W), (N,)."""
    keep = balanced_indices(data.test.labels, p.probe_images, p.seed)
    return data.test.images[keep], data.test.labels[keep]


def examples(data: Dataset, count: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """The first test image of each of the first ``count`` classes: (count, C, H, W), (count,)."""
    index = torch.stack([(data.test.labels == c).nonzero()[0, 0] for c in range(count)])
    return data.test.images[index], data.test.labels[index]


def robustness(models: dict[str, nn.Module], data: Dataset, p: Plan) -> dict[str, dict[str, list[float]]]:
    """Accuracy against severity of every probe for every model: {probe: {"severities": [...], model: [accuracy...]}}."""
    images, labels = probe_subset(data, p)
    out = {}
    for probe_name, (probe, _) in PROBES.items():
        severities = p.severities[probe_name]
        kwargs = {"std": data.std} if probe_name == "gaussian noise" else {}
        out[probe_name] = {"severities": list(severities)}
        for name, model in models.items():
            out[probe_name][name] = robustness_curve(model, images, labels, probe, severities, seed=p.seed, **kwargs)
    return out
