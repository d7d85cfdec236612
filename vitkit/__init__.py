"""vitkit: the support package of the Vision Transformers course kit.

Models (``create_model``, ``ViT``, ``ResNet``), their building blocks (``vitkit.attention``,
``vitkit.embedding``), and the tools that notebooks, graders and the CLI share.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if (
    TYPE_CHECKING
):  # the names below are imported on first use: ``import vitkit.course`` (a grading worker) needs no torch
    from torch import nn

    from vitkit.attention import Attention, self_attention
    from vitkit.cnn import CNNConfig, ResNet
    from vitkit.embedding import PatchEmbed, patchify, resample_pos_embed, sincos_pos_embed_2d, unpatchify
    from vitkit.registry import create_model, list_models, register_model
    from vitkit.vit import Block, ViT, ViTConfig

_LAZY = {
    "Attention": "attention",
    "self_attention": "attention",
    "CNNConfig": "cnn",
    "ResNet": "cnn",
    "PatchEmbed": "embedding",
    "patchify": "embedding",
    "resample_pos_embed": "embedding",
    "sincos_pos_embed_2d": "embedding",
    "unpatchify": "embedding",
    "Block": "vit",
    "ViT": "vit",
    "ViTConfig": "vit",
    "create_model": "registry",
    "list_models": "registry",
    "register_model": "registry",
}

__version__ = "0.1.0"

__all__ = [
    "Attention",
    "Block",
    "CNNConfig",
    "PatchEmbed",
    "ResNet",
    "ViT",
    "ViTConfig",
    "count_flops",
    "count_params",
    "create_model",
    "list_models",
    "patchify",
    "register_model",
    "resample_pos_embed",
    "self_attention",
    "sincos_pos_embed_2d",
    "unpatchify",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"vitkit.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vitkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (only those with ``requires_grad`` if ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _cpu_attention_flops() -> dict:
    """The CPU's fused attention kernels, counted as their GPU counterparts are (torch's table lists only the GPU ones)."""
    import torch
    from torch.utils.flop_counter import sdpa_backward_flop, sdpa_flop

    aten = torch.ops.aten
    if not hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        return {}

    def raw(
        formula,
    ):  # torch's formulas already take tensors (wrapped when registered): FlopCounterMode must not wrap again
        def counted(*args, **kwargs):
            return formula(*args, **kwargs)

        counted._get_raw = True
        return counted

    return {
        aten._scaled_dot_product_flash_attention_for_cpu: raw(sdpa_flop),
        aten._scaled_dot_product_flash_attention_for_cpu_backward: raw(sdpa_backward_flop),
    }


def count_flops(model: nn.Module, input_size, backward: bool = False) -> int:
    """Floating-point operations of one forward pass (plus the backward pass if ``backward``).

    input_size: (C, H, W) for one image or (B, C, H, W). Counted by ``torch.utils.flop_counter``:
    a multiply-add is 2 FLOPs; matrix products and convolutions are counted, element-wise ops are not.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    size = tuple(input_size)
    if len(size) == 3:
        size = (1, *size)
    if len(size) != 4:
        raise ValueError(f"input_size must be (C, H, W) or (B, C, H, W), got {tuple(input_size)}")
    param = next(model.parameters(), None)
    x = torch.randn(size, device=param.device if param is not None else "cpu")
    was_training = model.training
    model.train(backward)
    try:
        with FlopCounterMode(display=False, custom_mapping=_cpu_attention_flops()) as counter:
            if backward:
                model(x).sum().backward()
            else:
                with torch.no_grad():
                    model(x)
    finally:
        model.train(was_training)
        if backward:
            model.zero_grad(set_to_none=True)
    return counter.get_total_flops()
