"""The ViT-vs-CNN tutorial's machinery: the comparison, its closing table, and the headless runner.

``lectures/04_vit_vs_cnn.ipynb`` calls these functions and stays readable; ``vitkit tutorial``
(``make tutorial``) executes that notebook headless and writes, under ``--out`` (default
``build/tutorial``): the executed notebook, an HTML report, the figures (PNG), ``results.json``
(every measured number) and ``table.md`` (the closing table, written from ``results.json``).

Everything the models get is the same: the data (``mnist5k``), the recipe (one :class:`Plan`:
optimiser, learning rate, schedule, augmentation, batch size) and the budget (the number of
training steps). How long that budget is comes from :mod:`vitkit.budget`: the full run, or a
quick one while testing (``VITKIT_QUICK=1``).

Beside the ViT and the CNN stand the debate's arms (:data:`ARMS`): a hybrid ViT with a
convolutional stem, DeiT's distilled ViT (taught by the CNN of the same run) and ConvMixer.
Data-efficiency points are trained with several seeds (:attr:`Plan.seeds`) and reported as mean
and spread. Headless runs report their progress (section, runs done, time left) through
:func:`progress`, which ``vitkit tutorial`` prints as the notebook runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from vitkit import count_flops, count_params, create_model
from vitkit.budget import budget
from vitkit.data import Augment, Dataset, Split, load_dataset
from vitkit.robustness import PROBES, gradient_saliency, robustness_curve
from vitkit.train.config import TrainConfig

__all__ = [
    "ARMS",
    "COMPARED",
    "MODELS",
    "PRETRAINED",
    "SCRATCH_TWIN",
    "TEACHERS",
    "Plan",
    "accuracy_stats",
    "report_progress",
    "robustness_summary",
    "start_progress",
    "Results",
    "Run",
    "balanced_indices",
    "closing_table",
    "data_efficiency",
    "examples",
    "find_pretrained",
    "findings",
    "inference_throughput",
    "load_data",
    "markdown",
    "measure",
    "output_dir",
    "plan",
    "plot_curves",
    "plot_data_efficiency",
    "plot_probe_examples",
    "plot_robustness",
    "plot_where_models_look",
    "execute_notebook",
    "pretrained_arms",
    "probe_subset",
    "robustness",
    "run_tutorial",
    "save_figure",
    "save_results",
    "timed",
    "train_model",
    "train_models",
    "where_models_look",
]

MODELS = ("vit_mnist", "resnet_mnist")  # the ViT and the CNN compared, both about 28×28×1 -> 10 classes
ARMS = (
    "hybrid_mnist",
    "deit_mnist",
    "convmixer_mnist",
)  # the debate's arms: conv stem + ViT, ViT taught by a CNN, patches without attention
COMPARED = MODELS + ARMS
TEACHERS = {"deit_mnist": "resnet_mnist"}  # DeiT learns from the CNN trained in the same run, on the same data and seed
PROGRESS_ENV = "VITKIT_TUTORIAL_PROGRESS"  # a file the notebook appends progress lines to (set by `vitkit tutorial`)
PRETRAINED = "tiny ViT, pre-trained"  # the kit's glyph-pre-trained ViT (vitkit.pretrain), fine-tuned with a new head
SCRATCH_TWIN = (
    "tiny ViT, from scratch"  # the same architecture, randomly initialised: what pre-training is measured against
)
OUT_ENV = "VITKIT_TUTORIAL_OUT"  # where the notebook writes figures and results (set by `vitkit tutorial`)
NOTEBOOK = Path(__file__).resolve().parents[1] / "lectures" / "04_vit_vs_cnn.ipynb"


# ----------------------------------------------------------------------------- the plan: recipe and budget


@dataclass
class Plan:
    """One recipe and one budget for every model in the comparison."""

    epochs: int  # passes over the full training split; smaller splits get the same number of steps
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: float = 1.0  # epochs of linear warm-up, then cosine decay
    label_smoothing: float = 0.0
    translate: int = (
        1  # random shifts of up to this many pixels, 0 for none (no flips for digits); 3 cost the ViT 35 points here
    )
    fractions: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)  # shares of the training split for the data-efficiency curve
    max_steps: int | None = None  # cap on steps per epoch (quick mode only)
    test_images: int | None = (
        None  # class-balanced share of the test split used everywhere (None: all 1,000; quick mode cuts it)
    )
    probe_images: int | None = 500  # of those, the class-balanced test images each robustness probe damages (None: all)
    throughput_batch: int = 256  # images per forward pass when timing inference
    scratch_twin: bool = (
        True  # beside the pre-trained tiny ViT, train the same architecture from scratch (its baseline)
    )
    seeds: tuple[int, ...] = (
        0,
        1,
        2,
    )  # data-efficiency runs per point: each seed draws its own data share and initial weights
    efficiency: tuple[str, ...] = COMPARED  # the models of the data-efficiency curve (beside the pre-trained arms)
    distillation: str = "hard"  # DeiT's targets from the teacher: "hard" (its top class) or "soft"
    severities: dict = field(
        default_factory=lambda: {
            "occlusion": [0.0, 0.1, 0.25, 0.5, 0.75],
            "patch shuffle": [0.0, 0.25, 0.5, 0.75, 1.0],
            "gaussian noise": [0.0, 0.1, 0.2, 0.4, 0.8],
        }
    )
    seed: int = 0

    def train_config(self, seed: int | None = None) -> TrainConfig:
        """The training settings every model gets (``fit``'s :class:`TrainConfig`); ``seed`` replaces the plan's."""
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            warmup=self.warmup,
            label_smoothing=self.label_smoothing,
            augment=Augment(translate=self.translate) if self.translate else False,
            max_steps=self.max_steps,
            seed=self.seed if seed is None else seed,
            distillation=self.distillation,
        )


def plan() -> Plan:
    """The full plan, or the quick one (a few steps, two data fractions) under ``VITKIT_QUICK=1`` / nbgrader."""
    return budget(
        # the full run: 8 epochs of the 3,600 training digits per model; the data-efficiency curve at 10% and 100%,
        # three seeds each, for the ViT and the CNN beside the pre-trained tiny ViT and its twin from scratch (DeiT, the
        # hybrid and ConvMixer in the full-split comparison only): about 8 minutes on a 2-core CPU
        Plan(epochs=8, batch_size=64, fractions=(0.1, 1.0), efficiency=("vit_mnist", "resnet_mnist")),
        Plan(
            epochs=1,
            batch_size=32,
            max_steps=2,
            fractions=(0.25, 1.0),
            seeds=(0, 1),
            test_images=200,
            probe_images=100,
            throughput_batch=32,
            severities={"occlusion": [0.0, 0.5], "patch shuffle": [0.0, 1.0], "gaussian noise": [0.0, 0.4]},
        ),
    )


# ----------------------------------------------------------------------------- progress of a headless run

_PROGRESS = {"steps_total": 0, "steps_done": 0, "started": 0.0}


def start_progress(p: Plan, full_train_images: int, extra_arms: int = 0, names=COMPARED) -> int:
    """Start the clock of :func:`report_progress`; return the training steps the whole tutorial will take.

    Counts the full-split runs of ``names`` and the data-efficiency runs (``p.efficiency`` plus ``extra_arms``, every
    fraction and seed, less the full-split runs they reuse). Every run has the same number of steps.
    """
    per_run = _epochs_for(full_train_images, full_train_images, p) * _steps_per_epoch(full_train_images, p)
    reused = len(set(names) & set(p.efficiency)) if 1.0 in p.fractions else 0
    runs = len(names) + (len(p.efficiency) + extra_arms) * len(p.fractions) * len(p.seeds) - reused
    _PROGRESS.update(steps_total=runs * per_run, steps_done=0, started=time.perf_counter())
    return runs * per_run


def report_progress(section: str, done: int, total: int, steps: int = 0) -> str:
    """Count ``steps`` more training steps done and say where the run stands:
    ``"[data efficiency] run 12/45 · 38% of the training · 3:12 elapsed · about 5:14 left"``.

    Headless (``vitkit tutorial`` sets ``$VITKIT_TUTORIAL_PROGRESS``) the line is appended to that file, which the
    runner prints as it grows; the time left extrapolates the training steps done so far.
    """
    _PROGRESS["steps_done"] += steps
    elapsed = time.perf_counter() - _PROGRESS["started"] if _PROGRESS["started"] else 0.0
    share = _PROGRESS["steps_done"] / _PROGRESS["steps_total"] if _PROGRESS["steps_total"] else 0.0
    line = f"[{section}] run {done}/{total}"
    if share:
        left = elapsed * (1 - share) / share
        line += f" · {share:.0%} of the training · {_clock(elapsed)} elapsed · about {_clock(max(0.0, left))} left"
    target = os.environ.get(PROGRESS_ENV)
    if target:
        with open(target, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    return line


def _clock(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


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


def _steps_per_epoch(n: int, p: Plan) -> int:
    steps = math.ceil(n / p.batch_size)
    return steps if p.max_steps is None else min(steps, p.max_steps)


def _epochs_for(n: int, full_n: int, p: Plan) -> int:
    """Epochs that give ``n`` training images the same number of steps as ``p.epochs`` over ``full_n`` images."""
    return max(1, round(p.epochs * _steps_per_epoch(full_n, p) / _steps_per_epoch(n, p)))


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
) -> tuple[nn.Module, Run]:
    """Train a preset (by name, initialised with ``seed``, default ``p.seed``) or a given model with plan ``p``; return it and its :class:`Run`.

    ``full_train_images``: the size of the full training split, so that a smaller ``data.train`` gets
    as many steps as the full one would (default: ``len(data.train)``). ``validate=False`` skips the
    per-epoch validation (faster; the history's validation columns are NaN). ``teacher``: a trained
    model the student also learns from (DeiT's distillation, ``p.distillation`` targets).
    """
    from vitkit.train import evaluate, fit

    seed = p.seed if seed is None else seed
    if isinstance(name, str):
        torch.manual_seed(seed)
        model, label = create_model(name), label or name
    else:
        model, label = name, label or type(name).__name__
    n = len(data.train)
    full_n = full_train_images or n
    epochs = _epochs_for(n, full_n, p)
    warmup = p.warmup * _steps_per_epoch(full_n, p) / _steps_per_epoch(n, p)  # the same warm-up in steps
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
    )
    return model, run


def _teacher_order(names) -> list:
    """``names`` with every teacher (:data:`TEACHERS`) moved before its student."""
    names = list(names)
    for student, teacher in TEACHERS.items():
        if student in names and teacher not in names:
            raise ValueError(f"{student} learns from {teacher}; add {teacher!r} to the models trained with it")
    return sorted(names, key=lambda n: (0 if n in TEACHERS.values() else 1, names.index(n)))


def train_models(
    data: Dataset, p: Plan, names=COMPARED, device="auto", progress: bool = False
) -> dict[str, tuple[nn.Module, Run]]:
    """Train every model in ``names`` on the full training split with the same plan: {name: (model, Run)}, in ``names``' order.

    A student of :data:`TEACHERS` (``deit_mnist``) learns from its teacher trained here first.
    """
    out = {}
    order = _teacher_order(names)
    for i, name in enumerate(order):
        teacher = out[TEACHERS[name]][0] if name in TEACHERS else None
        out[name] = train_model(name, data, p, device=device, progress=progress, teacher=teacher)
        run = out[name][1]
        print(
            f"{name:16s} {run.steps} steps in {run.seconds:5.1f} s: test accuracy {run.test_accuracy:.4f}", flush=True
        )
        report_progress("training on the full split", i + 1, len(order), run.steps)
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
    from vitkit.pretrain import glyph_config, load_pretrained
    from vitkit.vit import ViT

    def scratch(init_seed: int = seed):
        torch.manual_seed(init_seed)
        return ViT(glyph_config(num_classes))

    arms = {PRETRAINED: lambda init_seed=seed: load_pretrained(path, num_classes)}
    if scratch_twin:
        arms[SCRATCH_TWIN] = scratch
    return arms


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
    arms: dict = {name: name for name in _teacher_order(names)}
    arms.update(extra_arms or {})
    runs, new_models = [], {}
    total = len(arms) * len(p.fractions) * len(p.seeds)
    done = 0
    for seed in p.seeds:
        for fraction in p.fractions:
            data = load_data(p, fraction, seed=seed)
            trained: dict[str, nn.Module] = {}  # this share's models, for the students that learn from them
            for label, make in arms.items():
                done += 1
                if fraction == 1.0 and seed == p.seed and full_runs and label in full_runs:
                    runs.append(full_runs[label])
                    trained[label] = (full_models or {}).get(label)
                    continue
                teacher = trained.get(TEACHERS[label]) if label in TEACHERS else None
                if label in TEACHERS and teacher is None:
                    raise ValueError(
                        f"{label} learns from {TEACHERS[label]}, whose model for {fraction:.0%} of the data and seed {seed} "
                        f"is missing; pass full_models= with full_runs="
                    )
                model = make if isinstance(make, str) else make(seed)
                model, run = train_model(
                    model,
                    data,
                    p,
                    full_train_images=full_n,
                    validate=False,
                    label=label,
                    device=device,
                    teacher=teacher,
                    seed=seed,
                )
                runs.append(run)
                if label in TEACHERS.values():
                    trained[label] = model
                if fraction == 1.0 and seed == p.seed:
                    new_models[label] = model
                print(
                    f"{label:24s} {fraction:4.0%} of the data ({run.train_images:4d} images, seed {seed}, {run.steps} steps): "
                    f"test accuracy {run.test_accuracy:.4f}  ({run.seconds:.0f} s)",
                    flush=True,
                )
                report_progress("data efficiency", done, total, run.steps)
    return runs, new_models


def balanced_indices(labels: torch.Tensor, count: int | None, seed: int = 0) -> torch.Tensor:
    """``count`` indices into ``labels`` (N,), the classes taking turns, drawn with ``seed``; sorted. None: all N."""
    if count is None or count >= len(labels):
        return torch.arange(len(labels))
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    rank = torch.empty(len(labels), dtype=torch.long)
    for c in labels.unique():
        members = perm[labels[perm] == c]
        rank[members] = torch.arange(len(members))
    order = perm[(rank[perm] * len(labels) + torch.arange(len(labels))).argsort()]  # by turn, then by shuffled position
    return order[:count].sort().values


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


# ----------------------------------------------------------------------------- results, the closing table, figures


@dataclass
class Results:
    """Every number the tutorial measures; ``results.json`` is this, and the closing table is written from it."""

    plan: dict
    device: str
    quick: bool
    precision: str = "fp32"  # what fit's precision="auto" ran on that device (vitkit.train.resolve_precision)
    test_images: int = 0  # size of the test split every accuracy is measured on
    models: dict = field(
        default_factory=dict
    )  # name -> measure(...) + {"test_accuracy", "test_loss", "train_seconds", "steps"}
    data_efficiency: list = field(default_factory=list)  # Run dicts
    robustness: dict = field(default_factory=dict)  # probe -> {"severities": [...], name: [...]}
    pretrained: str = ""  # what was found for the pre-trained arm
    seconds: dict = field(default_factory=dict)  # wall time of each part of the run

    def add_model(self, model: nn.Module, run: Run, image_shape) -> None:
        batch = self.plan.get("throughput_batch", 256)
        self.models[run.model] = {
            **measure(model, run, image_shape, batch),
            "test_accuracy": run.test_accuracy,
            "test_loss": run.test_loss,
            "train_seconds": run.seconds,
            "steps": run.steps,
            "epochs": run.epochs,
        }

    def accuracy_vs_data(self) -> dict[str, dict[float, float]]:
        """{model label: {fraction: mean test accuracy over the seeds}} from the data-efficiency runs."""
        return {
            label: {f: stats["mean"] for f, stats in curve.items()}
            for label, curve in accuracy_stats(self.data_efficiency).items()
        }

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Results":
        return cls(**json.loads(text))


def accuracy_stats(runs: list[dict]) -> dict[str, dict[float, dict]]:
    """{model label: {fraction: {"mean", "std", "min", "max", "n"}}} of the test accuracies of ``runs`` (Run dicts), over seeds.

    std is the sample standard deviation (0 for a single run).
    """
    grouped: dict[str, dict[float, list[float]]] = {}
    for run in runs:
        grouped.setdefault(run["model"], {}).setdefault(run["fraction"], []).append(run["test_accuracy"])
    return {
        label: {
            f: {
                "mean": statistics.fmean(v),
                "std": statistics.stdev(v) if len(v) > 1 else 0.0,
                "min": min(v),
                "max": max(v),
                "n": len(v),
            }
            for f, v in sorted(curve.items())
        }
        for label, curve in grouped.items()
    }


def robustness_summary(curve: dict) -> dict:
    """One probe's curves ({"severities": [...], model: [accuracy...]}) summed up for the table.

    {"auc": {model: mean accuracy over the severity range (trapezoids, severities scaled to [0, 1])},
     "severity": the damaged severity where the models' accuracies are furthest apart (the last one on ties),
     "at": {model: accuracy at that severity}}.
    """
    severities = curve["severities"]
    names = [n for n in curve if n != "severities"]
    span = (severities[-1] - severities[0]) or 1.0
    auc = {
        n: sum(
            (b - a) * (curve[n][i] + curve[n][i + 1]) / 2 for i, (a, b) in enumerate(zip(severities, severities[1:]))
        )
        / span
        for n in names
    }
    damaged = [i for i, sev in enumerate(severities) if sev > 0] or [len(severities) - 1]
    spread = {i: max(curve[n][i] for n in names) - min(curve[n][i] for n in names) if names else 0.0 for i in damaged}
    best = max(damaged, key=lambda i: (round(spread[i], 9), i))
    return {"auc": auc, "severity": severities[best], "at": {n: curve[n][best] for n in names}}


def closing_table(results: Results) -> list[list[str]]:
    """The measured comparison as rows of strings (a header row first): one column per model, one row per measure."""
    names = list(results.models)
    curves = results.accuracy_vs_data()
    columns = names + [label for label in curves if label not in names]
    rows = [["measure", *columns]]

    def row(label, values):
        rows.append([label, *values])

    def per_model(key, fmt):
        return [fmt(results.models[n][key]) if n in results.models else "–" for n in columns]

    row(
        f"test accuracy (full training split; {results.test_images:,d} test images)",
        per_model("test_accuracy", lambda v: f"{v:.3f}"),
    )
    row("parameters", per_model("parameters", lambda v: f"{v:,d}"))
    row("forward MFLOPs per image", per_model("flops", lambda v: f"{v / 1e6:.1f}"))
    row("training throughput (images/s)", per_model("train_images_per_s", lambda v: f"{v:,.0f}"))
    row("inference throughput (images/s)", per_model("inference_images_per_s", lambda v: f"{v:,.0f}"))
    row("wall time of the full-split run (s)", per_model("train_seconds", lambda v: f"{v:.0f}"))
    stats = accuracy_stats(results.data_efficiency)
    fractions = sorted({f for curve in curves.values() for f in curve})
    seeds = max((s["n"] for curve in stats.values() for s in curve.values()), default=1)
    for fraction in fractions:
        label = f"test accuracy, {fraction:.0%} of the training data" + (
            f" (mean ± std of {seeds} seeds)" if seeds > 1 else ""
        )
        row(label, [_mean_spread(stats[n][fraction]) if fraction in stats.get(n, {}) else "–" for n in columns])
    for probe_name, curve in results.robustness.items():
        summary = robustness_summary(curve)
        what = PROBES[probe_name][1]
        row(
            f"{probe_name}: area under the accuracy curve, 0–{curve['severities'][-1]:g}",
            [f"{summary['auc'][n]:.3f}" if n in curve else "–" for n in columns],
        )
        row(
            f"{probe_name} at {summary['severity']:g}, where the models differ most ({what})",
            [f"{summary['at'][n]:.3f}" if n in curve else "–" for n in columns],
        )
    return rows


def _mean_spread(stats: dict) -> str:
    return f"{stats['mean']:.3f} ± {stats['std']:.3f}" if stats["n"] > 1 else f"{stats['mean']:.3f}"


def findings(results: Results, vit: str = MODELS[0], cnn: str = MODELS[1]) -> list[str]:
    """Plain sentences comparing the ViT and the CNN, each computed from ``results`` (never from expectations)."""
    lines = []
    m = results.models
    if vit in m and cnn in m:
        gap = 100 * (m[cnn]["test_accuracy"] - m[vit]["test_accuracy"])
        lead, trail = (cnn, vit) if gap >= 0 else (vit, cnn)
        lines.append(
            f"On the full training split {lead} beat {trail} by {abs(gap):.1f} percentage points of test accuracy "
            f"({m[vit]['test_accuracy']:.3f} vs {m[cnn]['test_accuracy']:.3f}) with "
            f"{m[vit]['parameters'] / m[cnn]['parameters']:.1f}× the parameters in the ViT."
        )
    curves = results.accuracy_vs_data()
    if vit in curves and cnn in curves:
        shared = sorted(set(curves[vit]) & set(curves[cnn]))
        if len(shared) >= 2:
            gaps = {f: 100 * (curves[cnn][f] - curves[vit][f]) for f in (shared[0], shared[-1])}
            lines.append(
                f"CNN minus ViT test accuracy: {gaps[shared[0]]:+.1f} points with {shared[0]:.0%} of the data, "
                f"{gaps[shared[-1]]:+.1f} points with {shared[-1]:.0%}."
            )
    if PRETRAINED in curves and SCRATCH_TWIN in curves:
        shared = sorted(set(curves[PRETRAINED]) & set(curves[SCRATCH_TWIN]))
        gains = ", ".join(f"{100 * (curves[PRETRAINED][f] - curves[SCRATCH_TWIN][f]):+.1f} at {f:.0%}" for f in shared)
        lines.append(f"Pre-training the tiny ViT changed its test accuracy by (points): {gains}.")
    transformers = [a for a in ("hybrid_mnist", "deit_mnist") if a in m]
    if transformers and vit in m and cnn in m:
        best = max(transformers, key=lambda a: m[a]["test_accuracy"])
        gap = 100 * (m[cnn]["test_accuracy"] - m[best]["test_accuracy"])
        text = (
            f"The best transformer arm, {best}, reached {m[best]['test_accuracy']:.3f} on the full split: "
            f"{abs(gap):.1f} points {'behind' if gap > 0 else 'ahead of'} the CNN and "
            f"{100 * (m[best]['test_accuracy'] - m[vit]['test_accuracy']):+.1f} against the plain ViT"
        )
        low = min(curves.get(best, {}), default=None)
        if low is not None and low < 1.0 and low in curves.get(vit, {}):
            text += f"; with {low:.0%} of the data {100 * (curves[best][low] - curves[vit][low]):+.1f} points against the plain ViT"
        lines.append(text + ".")
    if "convmixer_mnist" in m and vit in m:
        cm = m["convmixer_mnist"]
        lines.append(
            f"ConvMixer (the ViT's patches, no attention) reached {cm['test_accuracy']:.3f} with "
            f"{cm['parameters']:,d} parameters, against the ViT's {m[vit]['test_accuracy']:.3f} with {m[vit]['parameters']:,d}."
        )
    stats = accuracy_stats(results.data_efficiency)
    noisy = [
        f"{n} at {f:.0%}: ±{100 * st['std']:.1f}"
        for n, curve in stats.items()
        for f, st in curve.items()
        if st["n"] > 1
    ]
    if noisy:
        widest = max(noisy, key=lambda t: float(t.rsplit("±", 1)[1]))
        lines.append(
            f"Across seeds the widest spread (standard deviation, points) was {widest}: differences smaller than that are not findings."
        )
    for probe_name, curve in results.robustness.items():
        names = [n for n in curve if n != "severities"]
        if len(names) >= 2:
            summary = robustness_summary(curve)
            ranked = sorted(names, key=lambda n: -summary["auc"][n])
            lines.append(
                f"{probe_name}, area under the accuracy curve: "
                + ", ".join(f"{n} {summary['auc'][n]:.3f}" for n in ranked)
                + f" (the models differ most at {summary['severity']:g})."
            )
    return lines


def markdown(rows: list[list[str]]) -> str:
    """Rows of strings (header first) as a GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(rows[0]) + " |", "| --- |" + " ---: |" * (len(rows[0]) - 1)]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


class timed:
    """``with timed(results, "training"):`` adds the block's wall time (s) to ``results.seconds["training"]``."""

    def __init__(self, results: Results, part: str):
        self.results, self.part = results, part

    def __enter__(self):
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.results.seconds[self.part] = round(
            self.results.seconds.get(self.part, 0.0) + time.perf_counter() - self.started, 2
        )
        return False


def output_dir() -> Path | None:
    """The folder ``vitkit tutorial`` asked the notebook to write into (``$VITKIT_TUTORIAL_OUT``), created; None in JupyterLab."""
    value = os.environ.get(OUT_ENV)
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    (path / "figures").mkdir(parents=True, exist_ok=True)
    return path


def save_figure(fig, name: str, out: Path | None = None) -> None:
    """Save ``fig`` as ``<out>/figures/<name>.png`` when there is an output folder (headless runs)."""
    out = output_dir() if out is None else out
    if out is not None:
        fig.savefig(out / "figures" / f"{name}.png", dpi=110, bbox_inches="tight")


def save_results(results: Results, out: Path | None = None) -> str:
    """Write ``results.json`` and ``table.md`` (when there is an output folder); return the table as markdown."""
    table = markdown(closing_table(results))
    out = output_dir() if out is None else out
    if out is not None:
        (out / "results.json").write_text(results.to_json())
        (out / "table.md").write_text(table + "\n")
    return table


# ----------------------------------------------------------------------------- plots


def plot_curves(runs: dict[str, Run]):
    """Training curves of the full-data runs: loss and validation accuracy per epoch, one line per model."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for i, (name, run) in enumerate(runs.items()):
        h, color = run.history, f"C{i}"  # one colour per model: training solid, validation dashed
        for ax, key in zip(axes, ("loss", "accuracy")):
            ax.plot(h["epoch"], h[f"train_{key}"], "o-", color=color, label=f"{name} train")
            ax.plot(h["epoch"], h[f"val_{key}"], "s--", color=color, label=f"{name} validation")
    for ax, what in zip(axes, ("loss", "accuracy")):
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_data_efficiency(results: Results):
    """Test accuracy against the number of training images, one line per model: the mean over seeds, bars from min to max."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    images = {}
    for run in results.data_efficiency:
        images.setdefault((run["model"], run["fraction"]), []).append(run["train_images"])
    ticks = {}
    for name, curve in accuracy_stats(results.data_efficiency).items():
        xs = [statistics.median(images[(name, f)]) for f in curve]
        means = [st["mean"] for st in curve.values()]
        low = [st["mean"] - st["min"] for st in curve.values()]
        high = [st["max"] - st["mean"] for st in curve.values()]
        style = "o-" if name in COMPARED else "s--"  # the tiny ViTs of the pre-training comparison: dashed
        ax.errorbar(xs, means, yerr=[low, high], fmt=style, capsize=3, label=name)
        for x, f in zip(xs, curve):
            ticks[x] = f"{x:,.0f}\n({f:.0%})"
    ax.set_xscale("log")
    ax.set_xticks(sorted(ticks), [ticks[n] for n in sorted(ticks)], fontsize=8)
    ax.minorticks_off()
    ax.set_xlabel("training images (log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title("accuracy against data, same number of steps (mean, min–max over seeds)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_robustness(curves: dict):
    """Accuracy against severity, one panel per probe, one line per model."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.5), squeeze=False)
    for ax, (probe_name, curve) in zip(axes[0], curves.items()):
        for name, values in curve.items():
            if name != "severities":
                ax.plot(curve["severities"], values, "o-", label=name)
        ax.set_title(probe_name)
        ax.set_xlabel(PROBES[probe_name][1])
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_probe_examples(data: Dataset, p: Plan):
    """A test image under each probe at each severity of the plan (what the models are asked to classify)."""
    import matplotlib.pyplot as plt

    images, _ = examples(data, 1)
    per_probe = max(len(p.severities[n]) for n in PROBES)
    fig, axes = plt.subplots(len(PROBES), per_probe, figsize=(1.6 * per_probe, 1.8 * len(PROBES)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, name in enumerate(PROBES):
        probe = PROBES[name][0]
        kwargs = {"std": data.std} if name == "gaussian noise" else {}
        for c, sev in enumerate(p.severities[name]):
            damaged = probe(images, sev, generator=torch.Generator().manual_seed(0), **kwargs)
            axes[r, c].imshow(data.denormalize(damaged)[0].permute(1, 2, 0).squeeze(-1), cmap="gray", vmin=0, vmax=1)
            axes[r, c].set_title(f"{name}\n{sev:g}", fontsize=8)
    fig.tight_layout()
    return fig


def where_models_look(models: dict[str, nn.Module], images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Maps (B, H, W) in [0, 1] of where each model looks at ``images`` (B, C, H, W), keyed "<model>: <method>".

    Every model: gradient saliency for its own prediction. A ViT also: the CLS token's attention to
    the patches in the last block (mean over heads) and attention rollout, upsampled to the image size.
    """
    from vitkit.analysis import cls_attention, rollout_map, upsample_map
    from vitkit.vit import ViT

    out = {}
    size = tuple(images.shape[-2:])
    for name, model in models.items():
        if isinstance(model, ViT):
            attentions = [
                w.cpu() for w in model.attention_maps(images.to(next(model.parameters()).device))
            ]  # depth × (B, heads, T, T)
            last = upsample_map(cls_attention(attentions[-1], model.num_prefix_tokens).mean(1), size)  # (B, H, W)
            out[f"{name}: last-block attention"] = last / last.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
            out[f"{name}: attention rollout"] = rollout_map(attentions, size, model.num_prefix_tokens)
        out[f"{name}: gradient saliency"] = gradient_saliency(model, images)
    return out


def plot_where_models_look(looks: dict[str, torch.Tensor], pixels: torch.Tensor, labels: torch.Tensor | None = None):
    """One row per image: the image, then each map of :func:`where_models_look` laid over it."""
    import matplotlib.pyplot as plt

    B = pixels.shape[0]
    cols = 1 + len(looks)
    fig, axes = plt.subplots(B, cols, figsize=(1.9 * cols, 1.9 * B), squeeze=False)
    grey = pixels[:, 0].cpu()  # (B, H, W)
    for b in range(B):
        axes[b, 0].imshow(grey[b], cmap="gray")
        axes[b, 0].set_title("image" if labels is None else f"image ({int(labels[b])})", fontsize=8)
        for c, (title, maps) in enumerate(looks.items(), start=1):
            axes[b, c].imshow(grey[b], cmap="gray")
            axes[b, c].imshow(maps[b], cmap="inferno", alpha=0.6, vmin=0, vmax=1)
            if b == 0:
                axes[b, c].set_title(title.replace(": ", "\n"), fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- `vitkit tutorial`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``vitkit tutorial``."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the quick budget (VITKIT_QUICK=1): checks that everything runs, in about a minute",
    )
    parser.add_argument(
        "--out",
        default="build/tutorial",
        help="folder for the executed notebook, HTML report, figures and table (default build/tutorial)",
    )
    parser.add_argument(
        "--notebook", default=str(NOTEBOOK), help="the tutorial notebook (default lectures/04_vit_vs_cnn.ipynb)"
    )
    parser.add_argument("--timeout", type=int, default=3600, help="seconds any one cell may run (default 3600)")


def execute_notebook(nb, folder: Path, env: dict, timeout: int, on_cell_start=None) -> None:
    """Run notebook ``nb`` top to bottom, in place, in a fresh python3 kernel of this environment started in ``folder``.

    ``on_cell_start(cell, cell_index)``, if given, is called as each cell starts.
    """
    from nbclient import NotebookClient

    env = {
        **env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    }  # the kernel is this environment's Python
    hooks = {"on_cell_start": on_cell_start} if on_cell_start is not None else {}
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(folder)}}, **hooks
    )
    client.execute(env=env, cwd=str(folder))


def section_titles(nb) -> dict[int, str]:
    """{cell index: the title of the section ("## ..." heading) that cell belongs to}, for the cells after the first heading."""
    titles, current = {}, None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            heading = next((line[3:].strip() for line in cell.source.splitlines() if line.startswith("## ")), None)
            current = heading or current
        if current is not None:
            titles[i] = current
    return titles


class _ProgressPrinter:
    """While a headless run lasts: print each new section as its first cell starts, and every line the notebook
    appends to the progress file (:func:`report_progress`), with the time since the run started."""

    def __init__(self, nb, progress_file: Path, started: float, stream=None):
        import threading

        self.titles, self.file, self.started, self.stream = (
            section_titles(nb),
            progress_file,
            started,
            stream or sys.stdout,
        )
        self.cells, self.section, self.offset = len(nb.cells), None, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=5)
        self._drain()
        return False

    def on_cell_start(self, cell, cell_index: int, **_) -> None:
        title = self.titles.get(cell_index, "setting up")
        if title != self.section:
            self.section = title
            print(
                f"[{_clock(time.perf_counter() - self.started)}] section: {title} (cell {cell_index + 1}/{self.cells})",
                file=self.stream,
                flush=True,
            )

    def _drain(self) -> None:
        if self.file.is_file():
            with open(self.file, encoding="utf-8") as f:
                f.seek(self.offset)
                text = f.read()
            complete = text[: text.rfind("\n") + 1]  # whole lines only
            self.offset += len(complete.encode("utf-8"))
            for line in complete.splitlines():
                print(f"  {line}", file=self.stream, flush=True)

    def _follow(self) -> None:
        while not self.stop.wait(1.0):
            self._drain()


def run_tutorial(notebook: Path, out: Path, quick_mode: bool, timeout: int = 3600) -> tuple[Path, Path, str]:
    """Execute ``notebook`` headless into ``out``; return (executed notebook, HTML report, closing table as markdown)."""
    import nbformat
    from nbconvert import HTMLExporter

    notebook, out = Path(notebook).resolve(), Path(out).resolve()
    if not notebook.is_file():
        raise FileNotFoundError(
            f"no tutorial notebook at {notebook}; run from a clone of the kit or pass --notebook PATH"
        )
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("results.json", "table.md"):
        (out / stale).unlink(missing_ok=True)
    env = dict(os.environ)
    env[OUT_ENV] = str(out)
    progress_file = out / "progress.log"
    progress_file.unlink(missing_ok=True)
    env[PROGRESS_ENV] = str(progress_file)
    env.setdefault("MPLBACKEND", "Agg")
    env["VITKIT_QUICK"] = "1" if quick_mode else "0"
    nb = nbformat.read(notebook, as_version=4)
    error = None
    try:
        with _ProgressPrinter(nb, progress_file, time.perf_counter()) as printer:
            execute_notebook(nb, notebook.parent, env, timeout, on_cell_start=printer.on_cell_start)
    except Exception as err:  # keep what ran: the partial notebook and report help to see what failed
        error = err
    executed = out / notebook.name
    nbformat.write(nb, executed)
    html, _ = HTMLExporter().from_notebook_node(nb)
    report = executed.with_suffix(".html")
    report.write_text(html, encoding="utf-8")
    if error is not None:
        raise RuntimeError(f"the tutorial notebook failed; see {executed} and {report}:\n{error}") from None
    table_path = out / "table.md"
    if not table_path.is_file():
        raise RuntimeError(f"the notebook ran but wrote no {table_path}; its last cell must call tutorial.save_results")
    return executed, report, table_path.read_text()


def main(args: argparse.Namespace) -> int:
    """``vitkit tutorial``: run the ViT-vs-CNN notebook headless, write its report under --out, print the table."""
    started = time.perf_counter()
    print(f"running {args.notebook} ({'quick' if args.quick else 'full'} budget) into {args.out} ...", flush=True)
    executed, report, table = run_tutorial(Path(args.notebook), Path(args.out), args.quick, args.timeout)
    figures = sorted((Path(args.out) / "figures").glob("*.png"))
    print(f"\n{table}\n")
    results = Results.from_json((Path(args.out) / "results.json").read_text())
    print(f"device {results.device}, precision {results.precision}")
    for sentence in findings(results):
        print("-", sentence)
    print()
    print(
        f"executed notebook: {executed}\nHTML report:       {report}\nfigures:           {len(figures)} in {Path(args.out) / 'figures'}"
    )
    print(f"finished in {time.perf_counter() - started:.0f} s", flush=True)
    return 0
