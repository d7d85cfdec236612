"""The tutorial's plan: the models compared, one recipe and budget for all (:class:`Plan`), and the progress
of a headless run.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from vitkit.budget import budget
from vitkit.data import Augment
from vitkit.train.config import TrainConfig

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
NOTEBOOK = Path(__file__).resolve().parents[2] / "lectures" / "04_vit_vs_cnn.ipynb"

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
    # the share of the budget's steps the pre-trained tiny ViT fine-tunes for (the paper fine-tunes briefly after
    # pre-training); its baseline from scratch gets every step, so a short fine-tuning can only understate pre-training
    finetune: float = 0.5
    # beside the pre-trained tiny ViT, train its architecture from scratch once more; False: vit_mnist is that baseline
    # (the tiny ViT has vit_mnist's shape, vitkit.pretrain.glyph_config, and vit_mnist's runs use the same seeds)
    scratch_twin: bool = False
    seeds: tuple[int, ...] = (
        0,
        1,
        2,
    )  # data-efficiency runs per point: each seed draws its own data share and initial weights
    efficiency: tuple[str, ...] = COMPARED  # the models of the data-efficiency curve (beside the pre-trained arms)
    workers: int | None = (
        None  # CPU: training runs side by side in this many processes (None: the cores, at most 4; 1: here)
    )
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
        # three seeds each, for the ViT, the hybrid and the CNN beside the pre-trained tiny ViT (vit_mnist's shape, so
        # vit_mnist is its baseline from scratch; DeiT and ConvMixer in the full-split comparison only); runs side by
        # side in worker processes
        Plan(epochs=8, batch_size=64, fractions=(0.1, 1.0), efficiency=("vit_mnist", "hybrid_mnist", "resnet_mnist")),
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


def _steps_per_epoch(n: int, p: Plan) -> int:
    steps = math.ceil(n / p.batch_size)
    return steps if p.max_steps is None else min(steps, p.max_steps)


def _epochs_for(n: int, full_n: int, p: Plan) -> int:
    """Epochs that give ``n`` training images the same number of steps as ``p.epochs`` over ``full_n`` images."""
    return max(1, round(p.epochs * _steps_per_epoch(full_n, p) / _steps_per_epoch(n, p)))


# ----------------------------------------------------------------------------- progress of a headless run

_PROGRESS = {"steps_total": 0, "steps_done": 0, "started": 0.0}


def start_progress(p: Plan, full_train_images: int, extra_arms=0, names=COMPARED) -> int:
    """Start the clock of :func:`report_progress`; return the training steps the whole tutorial will take.

    Counts the full-split runs of ``names`` and the data-efficiency runs (``p.efficiency`` plus ``extra_arms``, every
    fraction and seed, less the full-split runs they reuse). ``extra_arms``: their labels (the pre-trained tiny ViT
    gets :attr:`Plan.finetune` of a run's steps, :func:`run_budget`), or how many there are (full runs each).
    """
    per_run = _epochs_for(full_train_images, full_train_images, p) * _steps_per_epoch(full_train_images, p)
    reused = len(set(names) & set(p.efficiency)) if 1.0 in p.fractions else 0
    runs = len(names) + len(p.efficiency) * len(p.fractions) * len(p.seeds) - reused
    extra = [None] * extra_arms if isinstance(extra_arms, int) else list(extra_arms)
    per_share = sum(round(per_run * run_budget(label, p)) for label in extra)  # their steps at one share and seed
    total = runs * per_run + per_share * len(p.fractions) * len(p.seeds)
    _PROGRESS.update(steps_total=total, steps_done=0, started=time.perf_counter())
    return total


def run_budget(label: str | None, p: Plan) -> float:
    """The share of the plan's steps the run labelled ``label`` trains for: :attr:`Plan.finetune` for the pre-trained
    tiny ViT, every step for the rest."""
    return p.finetune if label == PRETRAINED else 1.0


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
