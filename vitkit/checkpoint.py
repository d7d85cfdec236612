"""vitkit's checkpoint files: one record holds the model's class, its config and weights, and (from ``fit``) the
training settings beside them, so that a file alone rebuilds the model and says how it was trained.

Written atomically (a temporary file, then a rename: a crash never leaves half a file) and read with
``weights_only=True`` (plain tensors and containers: no pickled code runs). ``fit`` adds its optimizer,
scheduler, history and random states to the same record to resume a run; :func:`load` ignores them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from vitkit.cnn import CNNConfig, ResNet
from vitkit.convmixer import ConvMixer, ConvMixerConfig
from vitkit.deit import DistilledViT
from vitkit.hybrid import HybridViT
from vitkit.vit import ViT, ViTConfig

__all__ = ["atomic_json", "atomic_save", "build_from_record", "load", "model_record", "read", "save", "unwrap"]

_MODEL_CLASSES = {
    "ViT": (ViT, ViTConfig),
    "ResNet": (ResNet, CNNConfig),
    "DistilledViT": (DistilledViT, ViTConfig),
    "HybridViT": (HybridViT, ViTConfig),
    "ConvMixer": (ConvMixer, ConvMixerConfig),
}


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel and/or torch.compile wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def atomic_save(obj, path: str | os.PathLike) -> None:
    """torch.save to a temporary file in the same folder, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_json(obj, path: str | os.PathLike) -> None:
    """Write JSON through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def model_record(model: nn.Module, train_config=None) -> dict:
    """What a checkpoint needs to rebuild ``model``: its class, its config and its weights (no wrapper prefixes);
    with ``train_config`` (a :class:`vitkit.train.TrainConfig`) also the settings it was trained with, as a dict.
    """
    model = unwrap(model)
    kind = type(model).__name__
    if kind not in _MODEL_CLASSES:
        raise TypeError(f"only vitkit models ({', '.join(_MODEL_CLASSES)}) can be saved with their config, got {kind}")
    record = {
        "format": "vitkit",
        "class": kind,
        "config": dataclasses.asdict(model.config),
        "state_dict": model.state_dict(),
    }
    if train_config is not None:
        record["train_config"] = train_config.as_record()  # asdict, plain values
    return record


def build_from_record(record: dict) -> nn.Module:
    """The model that ``model_record`` described, weights loaded."""
    if record.get("format") != "vitkit" or record.get("class") not in _MODEL_CLASSES:
        raise ValueError("not a vitkit checkpoint (no 'format': 'vitkit' entry with a known model class)")
    cls, config_cls = _MODEL_CLASSES[record["class"]]
    model = cls(config_cls(**record["config"]))
    model.load_state_dict(record["state_dict"])
    return model


def save(model: nn.Module, path: str | os.PathLike, train_config=None, **extra) -> None:
    """Save a vitkit model with its config (the training settings ``train_config`` and any ``extra`` entries
    beside them) so that :func:`load` rebuilds it."""
    atomic_save({**model_record(model, train_config), **extra}, path)


def read(path: str | os.PathLike, map_location="cpu") -> dict:
    """The whole record of a checkpoint file (model, settings, and a training run's state), tensors on ``map_location``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return torch.load(path, map_location=map_location, weights_only=True)  # plain tensors and containers only


def load(path: str | os.PathLike, map_location="cpu") -> nn.Module:
    """Rebuild the model saved by :func:`save` (or a training checkpoint of ``vitkit.train.fit``)."""
    return build_from_record(read(path, map_location))
