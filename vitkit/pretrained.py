"""Weights from elsewhere: torchvision's and timm's ViTs (vitkit's own files: :mod:`vitkit.checkpoint`).

The converters map parameter names and check every shape; a missing, extra or misshapen tensor
is an error, never a silent partial load. Nothing here downloads anything: pass a model or a
state dict that you already have (e.g. ``torchvision.models.vit_b_16(weights=...)`` on a machine
with the weights cached, or ``timm.create_model(name, pretrained=True)``).
"""

from __future__ import annotations

import math
import re

import torch
from torch import nn

# vitkit's own checkpoint files, importable from here as before
from vitkit.checkpoint import atomic_save, build_from_record, load, model_record, save  # noqa: F401
from vitkit.checkpoint import unwrap as _unwrap  # noqa: F401
from vitkit.vit import ViT, ViTConfig


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
