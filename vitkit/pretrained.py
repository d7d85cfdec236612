"""Weights from elsewhere: torchvision's and timm's ViTs, and vitkit's own checkpoint files.

The converters map parameter names and check every shape; a missing, extra or misshapen tensor
is an error, never a silent partial load. Nothing here downloads anything: pass a model or a
state dict that you already have (e.g. ``torchvision.models.vit_b_16(weights=...)`` on a machine
with the weights cached, or ``timm.create_model(name, pretrained=True)``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tempfile
from pathlib import Path

import torch
from torch import nn

from vitkit.cnn import CNNConfig, ResNet
from vitkit.convmixer import ConvMixer, ConvMixerConfig
from vitkit.deit import DistilledViT
from vitkit.hybrid import HybridViT
from vitkit.vit import ViT, ViTConfig

_MODEL_CLASSES = {
    "ViT": (ViT, ViTConfig),
    "ResNet": (ResNet, CNNConfig),
    "DistilledViT": (DistilledViT, ViTConfig),
    "HybridViT": (HybridViT, ViTConfig),
    "ConvMixer": (ConvMixer, ConvMixerConfig),
}


def _state_dict(model_or_state_dict) -> dict[str, torch.Tensor]:
    if isinstance(model_or_state_dict, nn.Module):
        return model_or_state_dict.state_dict()
    if isinstance(model_or_state_dict, dict):
        return model_or_state_dict
    raise TypeError(f"expected an nn.Module or a state dict, got {type(model_or_state_dict).__name__}")


def _infer_config(
    state: dict[str, torch.Tensor],
    num_heads: int | None,
    patch_key: str,
    pos_key: str,
    fc1_key: str,
    layer_prefix: str,
    qkv_key: str,
    head_key: str,
) -> ViTConfig:
    patch = state[patch_key]  # (D, C, P, P)
    dim, in_chans, patch_size = patch.shape[0], patch.shape[1], patch.shape[2]
    num_tokens = state[pos_key].shape[1]
    grid = math.isqrt(num_tokens - 1)
    if grid * grid != num_tokens - 1:
        raise ValueError(f"position embeddings of {num_tokens} tokens are not a CLS token plus a square grid")
    depth = len({m.group(1) for k in state if (m := re.match(layer_prefix, k))})
    hidden = state[fc1_key.format(0)].shape[0]
    num_classes = state[head_key].shape[0] if head_key in state else 0
    has_bias = qkv_key.format(0) in state
    return ViTConfig(
        img_size=grid * patch_size,
        patch_size=patch_size,
        in_chans=in_chans,
        num_classes=num_classes,
        dim=dim,
        depth=depth,
        num_heads=num_heads or max(1, dim // 64),
        mlp_ratio=hidden / dim,
        qkv_bias=has_bias,
    )


def _load_exact(model: ViT, state: dict[str, torch.Tensor], source: str) -> ViT:
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or extra:
        raise ValueError(f"{source} weights do not match a vitkit ViT: missing {missing[:5]}, unexpected {extra[:5]}")
    for key, value in state.items():
        if own[key].shape != value.shape:
            raise ValueError(
                f"{source} weight {key} has shape {tuple(value.shape)}, vitkit expects {tuple(own[key].shape)}"
            )
    model.load_state_dict(state, strict=True)
    return model


def from_timm(model_or_state_dict, num_heads: int | None = None) -> ViT:
    """A vitkit ViT computing the same function as a timm ``VisionTransformer`` (class token, no register tokens).

    The names are the same as timm's, so the state dict loads as it is. ``num_heads`` is read from a
    model; for a bare state dict it defaults to dim // 64, as in every standard ViT.
    """
    if isinstance(model_or_state_dict, nn.Module) and num_heads is None:
        num_heads = model_or_state_dict.blocks[0].attn.num_heads
        if getattr(model_or_state_dict, "global_pool", "token") != "token":
            raise ValueError(
                f"only timm ViTs that classify the class token convert; this one pools {model_or_state_dict.global_pool!r}"
            )
    state = {k: v for k, v in _state_dict(model_or_state_dict).items()}
    config = _infer_config(
        state,
        num_heads,
        "patch_embed.proj.weight",
        "pos_embed",
        "blocks.{}.mlp.fc1.weight",
        r"blocks\.(\d+)\.",
        "blocks.{}.attn.qkv.bias",
        "head.weight",
    )
    return _load_exact(ViT(config), state, "timm")


def from_torchvision(model_or_state_dict, num_heads: int | None = None) -> ViT:
    """A vitkit ViT computing the same function as a torchvision ``VisionTransformer`` (e.g. ``vit_b_16()``)."""
    if isinstance(model_or_state_dict, nn.Module) and num_heads is None:
        num_heads = model_or_state_dict.encoder.layers[0].self_attention.num_heads
    source = _state_dict(model_or_state_dict)
    if "heads.pre_logits.weight" in source:
        raise ValueError("torchvision ViTs with a representation layer (heads.pre_logits) have no vitkit equivalent")
    rename = [
        (r"^class_token$", "cls_token"),
        (r"^conv_proj\.", "patch_embed.proj."),
        (r"^encoder\.pos_embedding$", "pos_embed"),
        (r"^encoder\.layers\.encoder_layer_(\d+)\.ln_1\.", r"blocks.\1.norm1."),
        (r"^encoder\.layers\.encoder_layer_(\d+)\.ln_2\.", r"blocks.\1.norm2."),
        (r"^encoder\.layers\.encoder_layer_(\d+)\.self_attention\.in_proj_weight$", r"blocks.\1.attn.qkv.weight"),
        (r"^encoder\.layers\.encoder_layer_(\d+)\.self_attention\.in_proj_bias$", r"blocks.\1.attn.qkv.bias"),
        (r"^encoder\.layers\.encoder_layer_(\d+)\.self_attention\.out_proj\.", r"blocks.\1.attn.proj."),
        (r"^encoder\.layers\.encoder_layer_(\d+)\.mlp\.0\.", r"blocks.\1.mlp.fc1."),
        (r"^encoder\.layers\.encoder_layer_(\d+)\.mlp\.3\.", r"blocks.\1.mlp.fc2."),
        (r"^encoder\.ln\.", "norm."),
        (r"^heads\.head\.", "head."),
    ]
    state = {}
    for key, value in source.items():
        new = key
        for pattern, repl in rename:
            new, hits = re.subn(pattern, repl, key)
            if hits:
                break
        state[new] = value  # an unmapped key stays as it is and is reported by _load_exact
    config = _infer_config(
        state,
        num_heads,
        "patch_embed.proj.weight",
        "pos_embed",
        "blocks.{}.mlp.fc1.weight",
        r"blocks\.(\d+)\.",
        "blocks.{}.attn.qkv.bias",
        "head.weight",
    )
    return _load_exact(ViT(config), state, "torchvision")


# ----------------------------------------------------------------------------- checkpoint files


def _unwrap(model: nn.Module) -> nn.Module:
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


def model_record(model: nn.Module) -> dict:
    """What a checkpoint needs to rebuild ``model``: its class, its config and its weights (no wrapper prefixes)."""
    model = _unwrap(model)
    kind = type(model).__name__
    if kind not in _MODEL_CLASSES:
        raise TypeError(f"only vitkit models ({', '.join(_MODEL_CLASSES)}) can be saved with their config, got {kind}")
    return {
        "format": "vitkit",
        "class": kind,
        "config": dataclasses.asdict(model.config),
        "state_dict": model.state_dict(),
    }


def build_from_record(record: dict) -> nn.Module:
    """The model that ``model_record`` described, weights loaded."""
    if record.get("format") != "vitkit" or record.get("class") not in _MODEL_CLASSES:
        raise ValueError("not a vitkit checkpoint (no 'format': 'vitkit' entry with a known model class)")
    cls, config_cls = _MODEL_CLASSES[record["class"]]
    model = cls(config_cls(**record["config"]))
    model.load_state_dict(record["state_dict"])
    return model


def save(model: nn.Module, path: str | os.PathLike, **extra) -> None:
    """Save a vitkit model with its config (and any ``extra`` entries) so that :func:`load` rebuilds it."""
    atomic_save({**model_record(model), **extra}, path)


def load(path: str | os.PathLike, map_location="cpu") -> nn.Module:
    """Rebuild the model saved by :func:`save` (or a training checkpoint of ``vitkit.train.fit``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    record = torch.load(
        path, map_location=map_location, weights_only=True
    )  # plain tensors and containers only: no pickled code runs
    return build_from_record(record)
