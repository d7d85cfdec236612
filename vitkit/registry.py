"""The model registry: every preset by name (``create_model("vit_mnist")``), as timm names its models.

A module defining presets decorates each builder with :func:`register_model`; the builder takes keyword
overrides of its config and returns the model. The preset modules are imported on first use, so
``create_model`` knows every preset without ``vitkit`` importing them all up front.
"""

from __future__ import annotations

import importlib
from typing import Callable

from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
# Modules whose presets register themselves on import; create_model imports them on first use.
_PRESET_MODULES = ("vitkit.vit", "vitkit.cnn", "vitkit.hybrid", "vitkit.deit", "vitkit.convmixer")


def _import_presets() -> None:
    for module in _PRESET_MODULES:
        importlib.import_module(module)


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: make ``fn(**overrides)`` available as ``create_model(fn.__name__)``."""
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """The names ``create_model`` knows, sorted."""
    _import_presets()
    return sorted(_REGISTRY)


def create_model(name: str, **overrides) -> nn.Module:
    """Build a registered model by name; keyword arguments override its config (e.g. ``num_classes=10``)."""
    if name not in _REGISTRY:
        _import_presets()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _REGISTRY[name](**overrides)
