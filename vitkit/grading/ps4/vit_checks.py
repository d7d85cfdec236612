"""Problem set 4's checks of the whole VisionTransformer: embedding and logits, names, the ViT-B/16 count."""

from __future__ import annotations

import torch
from torch import nn

from vitkit.grading import Mistake, as_tensor, close, largest_difference, seal, uses
from vitkit.grading.ps4.reference import (
    _EMBED_VARIANTS,
    _VIT_VARIANTS,
    TOL,
    _embed,
    _gen,
    _load,
    _parameters,
    _rand,
    _run,
    _state_dict,
    _vit,
    _vit_weights,
)
from vitkit.vit import Block as _ReferenceBlock

_SMALL = dict(img_size=16, patch_size=4, in_chans=3, num_classes=5, dim=32, depth=2, num_heads=4, mlp_ratio=2.0)
_OTHER = dict(img_size=12, patch_size=6, in_chans=1, num_classes=3, dim=12, depth=3, num_heads=3, mlp_ratio=1.0)


def _build(student_cls, cfg):
    return student_cls(
        img_size=cfg["img_size"],
        patch_size=cfg["patch_size"],
        in_chans=cfg["in_chans"],
        num_classes=cfg["num_classes"],
        dim=cfg["dim"],
        depth=cfg["depth"],
        num_heads=cfg["num_heads"],
        mlp_ratio=cfg["mlp_ratio"],
    )


def _check_vit_case(student_cls, cfg, seed, B=2) -> None:
    g = _gen(seed)
    sd = _vit_weights(cfg, g)
    model = _build(student_cls, cfg)
    args = ", ".join(f"{k}={v}" for k, v in cfg.items())
    _load(model, sd, "ps4.vit.names", f"VisionTransformer({args})")
    images = _rand((B, cfg["in_chans"], cfg["img_size"], cfg["img_size"]), g)
    where = f"VisionTransformer({args}) on {B} images"
    n = (cfg["img_size"] // cfg["patch_size"]) ** 2
    # The embedding first: its mistakes are the easiest to name there.
    model.eval()
    with torch.no_grad():
        tokens = model.embed(images.float())
    tokens = as_tensor(tokens, "the output of embed")
    if tokens.shape[:2] == (B, n):
        raise Mistake("ps4.vit.no_cls", f"embed gave shape {tuple(tokens.shape)}: {n} patch tokens and no CLS token")
    if tuple(tokens.shape) != (B, 1 + n, cfg["dim"]):
        raise Mistake(
            "ps4.vit.wrong_shape", f"embed gave shape {tuple(tokens.shape)}, expected {(B, 1 + n, cfg['dim'])}"
        )
    ref = _embed(images, sd)
    if not close(tokens, ref, **TOL):
        for variant, name in _EMBED_VARIANTS.items():
            if close(tokens, _embed(images, sd, variant), **TOL):
                raise Mistake(f"ps4.vit.{name}", f"{where}, embed")
        if not close(tokens[:, 1:], ref[:, 1:], **TOL) and close(tokens[:, :1], ref[:, :1], **TOL):
            raise Mistake(
                "ps4.vit.patches_wrong",
                f"{where}, embed: the patch tokens differ ({largest_difference(tokens[:, 1:], ref[:, 1:])})",
            )
        if not close(tokens[:, :1], ref[:, :1], **TOL):
            first = tokens[:, 0]
            code = (
                "ps4.vit.cls_not_shared"
                if not close(first, first[:1].expand_as(first), **TOL)
                else "ps4.vit.pos_embed_wrong_tokens"
            )
            raise Mistake(code, f"{where}, embed: token 0 is not cls_token + pos_embed[:, 0]")
        raise Mistake("ps4.vit.not_close", f"{where}, embed: {largest_difference(tokens, ref)}")
    logits = _run(model, images, "ps4.vit.wrong_shape", (B, cfg["num_classes"]), where)
    ref = _vit(images, sd, cfg["num_heads"], cfg["depth"])
    if close(logits, ref, **TOL):
        return
    for variant, name in _VIT_VARIANTS.items():
        if close(logits, _vit(images, sd, cfg["num_heads"], cfg["depth"], variant), **TOL):
            raise Mistake(f"ps4.vit.{name}", where)
    for variant, name in _EMBED_VARIANTS.items():  # embed was right, but forward may not call it
        if close(logits, _vit(images, sd, cfg["num_heads"], cfg["depth"], embed_variant=variant), **TOL):
            raise Mistake(f"ps4.vit.{name}", f"{where} (forward does not use embed)")
    raise Mistake("ps4.vit.not_close", f"{where}: {largest_difference(logits, ref)}")


@uses(Block=_ReferenceBlock)
def check_vit(student_cls) -> None:
    """Visible test: known weights loaded into the student's ``VisionTransformer``; embed and logits against the reference."""
    _check_vit_case(student_cls, _SMALL, 420)
    print("VisionTransformer: with the reference weights loaded, tokens and logits match.")


@uses(Block=_ReferenceBlock)
def check_vit_hidden(student_cls) -> None:
    """Hidden test: another configuration, and the student's own weights loaded into vitkit's ViT give the same logits."""
    _check_vit_case(student_cls, _OTHER, 421, B=3)
    from vitkit.vit import ViT, ViTConfig  # vice versa: the student's initialised model, read by vitkit

    torch.manual_seed(0)
    model = _build(student_cls, _SMALL)
    reference = ViT(ViTConfig(**_SMALL))
    # A LayerNorm eps is not a mistake here (nn.LayerNorm's default 1e-5 or ViT's 1e-6): the reference takes the student's.
    theirs_by_name = dict(model.named_modules())
    for name, norm in reference.named_modules():
        if isinstance(norm, nn.LayerNorm) and isinstance(theirs_by_name.get(name), nn.LayerNorm):
            norm.eps = theirs_by_name[name].eps
    _load(
        reference,
        {k: v.double() for k, v in _state_dict(model).items()},
        "ps4.vit.names",
        "vitkit's ViT reading your state_dict",
    )
    images = _rand((2, 3, 16, 16), _gen(422))
    ours = _run(reference, images, "ps4.vit.wrong_shape", (2, _SMALL["num_classes"]), "vitkit's ViT")
    theirs = _run(model, images, "ps4.vit.wrong_shape", (2, _SMALL["num_classes"]), "your VisionTransformer")
    if not close(theirs, ours, **TOL):
        raise Mistake(
            "ps4.vit.not_close",
            f"your own weights in vitkit's ViT give other logits than your model: {largest_difference(theirs, ours)}",
        )
    print("VisionTransformer: vitkit's ViT with your weights computes what your model computes.")


@uses(Block=_ReferenceBlock)
def check_vit_names(student_cls) -> None:
    """Visible test: the student's ``VisionTransformer`` has timm's parameter names and shapes (those of vitkit's ViT)."""
    from vitkit.vit import ViT, ViTConfig

    model, reference = _build(student_cls, _SMALL), ViT(ViTConfig(**_SMALL))
    _load(
        model,
        {k: v.double() for k, v in _state_dict(reference).items()},
        "ps4.vit.names",
        "parameter names differ from timm's",
    )
    print("VisionTransformer: timm's parameter names, the shapes of vitkit's ViT.")


VIT_B16 = 86_567_656


@uses(Block=_ReferenceBlock)
def check_vit_base_count(student_cls) -> None:
    """The student's ``VisionTransformer`` at ViT-B/16's settings has 86,567,656 parameters (built on the meta device: no memory)."""
    cfg = dict(
        img_size=224, patch_size=16, in_chans=3, num_classes=1000, dim=768, depth=12, num_heads=12, mlp_ratio=4.0
    )
    with torch.device("meta"):
        model = _build(student_cls, cfg)
    count = sum(p.numel() for p in _parameters(model))
    if count != VIT_B16:
        raise Mistake("ps4.vit.vit_b_count", f"yours has {count:,} ({count - VIT_B16:+,})")
    print(f"ViT-B/16: {count:,} parameters, as in the paper's model.")


seal(__name__)
