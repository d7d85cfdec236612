"""Training: ``fit`` / ``evaluate`` / ``predict``, the same call on a laptop CPU, a GPU, or under torchrun.

fit: AdamW (2-D weights decay; biases, norms, cls_token and pos_embed don't), linear warm-up then
cosine decay per step, gradient clipping, label smoothing, mixed precision where it pays, optional
``torch.compile``, a checkpoint written atomically after every epoch (``resume=True`` continues it,
bit-for-bit on CPU), and a :class:`History` of per-epoch losses and accuracies.

Under ``torchrun`` (``WORLD_SIZE`` set) the same call joins the process group (NCCL on CUDA, gloo on
CPU), wraps the model in DistributedDataParallel, synchronises BatchNorm, seeds each rank's dropout
on its own, gives each rank its shard of every batch (``batch_size`` stays the global batch), sums
metrics over ranks and writes files on rank 0 only. ``vitkit doctor`` says what a machine will use.

The modules, by idea:

- ``config``: :class:`TrainConfig`, every setting of a run, and the presets' recipes (:data:`RECIPES`, :func:`recipe`);
- ``loop``: :func:`fit` and its epochs (optimizer groups, warm-up and cosine schedule, checkpoints);
- ``evaluate``: :func:`evaluate` and :func:`predict`;
- ``distillation``: DeiT's :func:`distillation_loss`;
- ``state``: the :class:`History` and the random-number state a checkpoint resumes;
- ``devices``: device, precision, processes under torchrun, synchronised BatchNorm, ``vitkit doctor``'s report.

The ``vitkit train`` / ``eval`` / ``doctor`` commands live in :mod:`vitkit.cli_train`.
"""

from vitkit.train.config import RECIPES, TrainConfig, recipe
from vitkit.train.devices import describe, resolve_device, resolve_precision
from vitkit.train.distillation import distillation_loss
from vitkit.train.evaluate import evaluate, predict
from vitkit.train.loop import fit
from vitkit.train.state import History

__all__ = [
    "History",
    "RECIPES",
    "TrainConfig",
    "describe",
    "distillation_loss",
    "evaluate",
    "fit",
    "predict",
    "recipe",
    "resolve_device",
    "resolve_precision",
]
