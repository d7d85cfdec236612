"""Where a training run's settings come from: :class:`TrainConfig`, and each model preset's recipe (:data:`RECIPES`).

``fit(model, data, config)`` trains with a ``TrainConfig`` (keyword overrides on top: ``fit(model, data, epochs=3)``),
``vitkit train`` builds one from the preset's recipe and its flags, the tutorial's ``Plan`` builds one for every model,
and every checkpoint keeps it (``asdict``) beside the model's config, so ``vitkit eval`` and ``--resume`` read it back.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, fields

from vitkit.data import Augment

__all__ = ["RECIPES", "TrainConfig", "recipe"]


@dataclass
class TrainConfig:
    """Every setting of a training run (what it learns from, how, for how long); not the data, the model, the
    device or where files go, which are ``fit``'s own arguments.

    The defaults are ``fit``'s. ``augment``: True (the data set's standard shifts and flips), False, "randaugment",
    or an :class:`vitkit.data.Augment`. ``compile``: True (torch.compile with inductor) or a backend name.
    The ``distill_*`` settings apply when ``fit`` gets a ``teacher`` (DeiT, :func:`vitkit.train.distillation_loss`).
    """

    epochs: int = 10
    batch_size: int = 128  # the global batch: torchrun's processes split it
    lr: float = 1e-3  # AdamW's peak learning rate
    weight_decay: float = 0.05  # on 2-D weights only (not biases, norms, cls_token, pos_embed)
    warmup: float = 1  # epochs of linear warm-up (may be fractional), then cosine decay per step
    label_smoothing: float = 0.0
    augment: bool | str | Augment = True
    clip_grad: float | None = 1.0  # the largest gradient norm; None: no clipping
    precision: str = "auto"  # "auto" (bf16 or fp16 on a GPU that runs it fast; on a CPU with bf16 instructions
    # "bf16-conv" for models with convolutions; else fp32), "fp32", "bf16", "fp16", "bf16-conv" (convolutions only)
    compile: bool | str = False
    seed: int = 0  # batch order, augmentation, dropout (the initial weights are the caller's)
    max_steps: int | None = None  # cap on the steps per epoch (quick checks)
    distillation: str = "hard"  # with a teacher: its top class ("hard") or its softened probabilities ("soft")
    distill_alpha: float = 0.5  # weight of the teacher's term
    distill_tau: float = 3.0  # temperature of the soft targets

    def replace(self, **changes) -> TrainConfig:
        """A copy with ``changes`` (setting names as keywords); an unknown name is an error that lists the known ones."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise TypeError(
                f"unknown training setting(s) {', '.join(unknown)}; TrainConfig has {', '.join(f.name for f in fields(self))}"
            )
        return dataclasses.replace(copy.deepcopy(self), **changes)  # deep: an Augment inside is the copy's own

    def as_record(self) -> dict:
        """``asdict`` of the settings for a checkpoint (plain values; a compile backend given as a function by name)."""
        record = dataclasses.asdict(self)
        if callable(self.compile):
            record["compile"] = getattr(self.compile, "__name__", repr(self.compile))
        return record

    @classmethod
    def from_record(cls, record: dict) -> TrainConfig:
        """The settings :meth:`as_record` wrote (an ``augment`` dict becomes an :class:`Augment` again)."""
        record = dict(record)
        if isinstance(record.get("augment"), dict):
            record["augment"] = Augment(**record["augment"])
        return cls().replace(**record)


def checkpoint_config(record: dict) -> TrainConfig | None:
    """The settings a checkpoint record was trained with, or None when it has none (e.g. a converted model).

    Checkpoints written before ``TrainConfig`` kept some of them under ``"fit"``; those are read over the defaults.
    """
    if "train_config" in record:
        return TrainConfig.from_record(record["train_config"])
    if "fit" in record:
        return TrainConfig.from_record({k: v for k, v in record["fit"].items() if k != "precision"})
    return None


# Default recipes per preset: `vitkit train --model NAME --data mnist5k` uses these unless flags say otherwise.
# 28×28 digits shift by at most 1 pixel: with the 3-pixel default (1/8 of the image) vit_mnist reached 56%
# instead of 91% test accuracy after 10 epochs on mnist5k (94.8% vs 96.4% after 30); the CNN does not care.
# vit_mnist's recipe (issue 16's sweep, docs/benchmarks.md): rotation ±20° and zoom ±20 % on top of the shifts gave
# the plain ViT 0.5-1 point more than shifts alone; batch 128 trains as many images per second as 64 on a CPU, and
# 52 epochs of the 96-wide, 4-block preset take about 81 s on a 2-core CPU (the limit: 90 s of training).
_DIGITS_VIT = TrainConfig(
    epochs=52,
    batch_size=128,
    lr=2e-3,
    weight_decay=0.05,
    warmup=2,
    label_smoothing=0.1,
    augment=Augment(translate=1, rotate=20, scale=0.2),
)
_DIGITS_CNN = TrainConfig(
    epochs=10, batch_size=64, lr=3e-3, weight_decay=0.05, warmup=0.5, label_smoothing=0.0, augment=Augment(translate=1)
)
RECIPES: dict[str, TrainConfig] = {
    "vit_mnist": _DIGITS_VIT,
    "resnet_mnist": _DIGITS_CNN,
    # The debate's arms start from their family's recipe (not tuned on their own): deit_mnist and hybrid_mnist
    # from vit_mnist's, convmixer_mnist from the CNN's. deit_mnist learns a teacher with `--teacher CHECKPOINT`.
    "deit_mnist": _DIGITS_VIT.replace(),
    "hybrid_mnist": _DIGITS_VIT.replace(),
    "convmixer_mnist": _DIGITS_CNN.replace(),
    "vit_cifar": TrainConfig(
        epochs=50, batch_size=128, lr=1e-3, weight_decay=0.05, warmup=5, label_smoothing=0.1, augment=True
    ),
    "resnet_cifar": TrainConfig(
        epochs=30, batch_size=128, lr=2e-3, weight_decay=0.05, warmup=2, label_smoothing=0.0, augment=True
    ),
}


_GENERIC = TrainConfig()  # epochs=10, batch_size=128, lr=1e-3, weight_decay=0.05, warmup=1, augment=True


def recipe(name: str) -> TrainConfig:
    """The default training settings of preset ``name`` (a copy; unknown presets get the generic ``TrainConfig()``)."""
    return copy.deepcopy(RECIPES.get(name, _GENERIC))  # deep: the Augment inside is the caller's to change
