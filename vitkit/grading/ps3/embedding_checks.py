"""Problem set 3's checks of the linear patch embedding and of the strided convolution that computes the same."""

from __future__ import annotations

import torch
from torch import nn

from vitkit.embedding import patchify as _patchify_ref
from vitkit.grading import Mistake, as_tensor, close, largest_difference, seal, uses
from vitkit.grading.ps3.reference import (
    _conv2d,
    _Generator,
    _images,
    _linear,
    _match,
    _patchify_variants,
    _randn,
)

# ----------------------------------------------------------------------------- the linear patch embedding


def _reference_patchify(images, patch_size=None, **kwargs):
    """The reference patchify: the notebook's ``patchify`` while PatchEmbedding is graded (any name for the patch size)."""
    return _patchify_ref(images, patch_size if patch_size is not None else next(iter(kwargs.values())))


@uses(patchify=_reference_patchify)
def check_patch_embedding(student_cls, thorough: bool = False) -> None:
    """The student's ``PatchEmbedding(patch_size, in_chans, embed_dim)``: self.proj (a Linear) applied to patchify."""
    cases = [(4, 3, 8, (2, 8, 8))] + ([(2, 1, 5, (3, 6, 4)), (8, 3, 16, (1, 16, 24))] if thorough else [])
    for i, (p, C, D, (B, H, W)) in enumerate(cases):
        module = student_cls(p, C, D)
        proj = getattr(module, "proj", None)
        if not isinstance(proj, nn.Linear) or proj.in_features != p * p * C or proj.out_features != D:
            if isinstance(proj, nn.Linear):
                raise Mistake(
                    "ps3.embed.proj_wrong_size",
                    f"PatchEmbedding({p}, {C}, {D}) has self.proj = nn.Linear({proj.in_features}, {proj.out_features}), "
                    f"expected nn.Linear({p * p * C}, {D})",
                )
            found = f"self.proj is {proj!r}" if proj is not None else "no self.proj"
            raise Mistake("ps3.embed.proj_missing", f"PatchEmbedding({p}, {C}, {D}) has {found}")
        g = _Generator().manual_seed(20 + i)
        weight, bias = _randn(D, p * p * C, generator=g), _randn(D, generator=g)
        with torch.no_grad():
            proj.weight.copy_(weight)
            if proj.bias is not None:
                proj.bias.copy_(bias)
        x = _images(B, C, H, W, seed=30 + i)
        with torch.no_grad():
            got = as_tensor(module(x.clone()), "your tokens")
        expected = _linear(_patchify_ref(x, p), weight, bias if proj.bias is not None else None)
        where = f"PatchEmbedding({p}, {C}, {D}) on images of shape {(B, C, H, W)}"
        if tuple(got.shape) != tuple(expected.shape):
            if tuple(got.shape) == tuple(expected.transpose(1, 2).shape):
                raise Mistake("ps3.embed.transposed", f"{where}: got {tuple(got.shape)}")
            raise Mistake("ps3.embed.wrong_shape", f"{where}: got {tuple(got.shape)}, expected {tuple(expected.shape)}")
        if not close(got, expected, rtol=1e-4, atol=1e-4):
            variants = {
                k: _linear(v, weight, bias) for k, v in _patchify_variants(x, p).items() if k != "grid_column_major"
            }
            if _match(got, variants, dict(rtol=1e-4, atol=1e-4)):
                raise Mistake("ps3.embed.patch_order", where)
            raise Mistake("ps3.embed.not_close", f"{where}: {largest_difference(got, expected)}")
    print("PatchEmbedding is a linear map of the patches.")


def check_conv_equivalence(student_fn) -> None:
    """The student's ``patch_embedding_as_conv(linear, patch_size, in_chans)`` -> an nn.Conv2d computing the same tokens."""
    for i, (p, C, D, (B, H, W)) in enumerate([(4, 3, 6, (2, 8, 12)), (2, 1, 4, (1, 6, 6)), (3, 2, 5, (2, 9, 6))]):
        linear = nn.Linear(p * p * C, D)
        g = _Generator().manual_seed(40 + i)
        with torch.no_grad():
            linear.weight.copy_(_randn(D, p * p * C, generator=g))
            linear.bias.copy_(_randn(D, generator=g))
        weight, bias = linear.weight.detach().clone(), linear.bias.detach().clone()
        conv = student_fn(linear, p, C)
        where = f"nn.Linear({p * p * C}, {D}) for {p}×{p} patches of {C} channel(s), images {(B, C, H, W)}"
        if not isinstance(conv, nn.Conv2d):
            raise Mistake("ps3.conv.not_a_conv", f"{where}: got {type(conv).__name__}")
        x = _images(B, C, H, W, seed=50 + i)
        with torch.no_grad():
            out = as_tensor(conv(x.clone()), "the convolution's output")
        expected = _linear(_patchify_ref(x, p), weight, bias)  # (B, N, D)
        shape = (B, D, H // p, W // p)
        if tuple(out.shape) != shape:
            code = "ps3.conv.no_stride" if tuple(conv.stride) != (p, p) else "ps3.conv.wrong_shape"
            raise Mistake(code, f"{where}: output {tuple(out.shape)}, expected {shape}")
        got = out.flatten(2).transpose(1, 2)  # (B, N, D)
        if close(got, expected, rtol=1e-4, atol=1e-4):
            continue
        w = weight.reshape(D, p, p, C)
        variants = {
            "bias_missing": _linear(_patchify_ref(x, p), weight, None),
            "weight_order": _conv2d(x, weight.reshape(D, C, p, p), bias, stride=p).flatten(2).transpose(1, 2),
            "kernel_transposed": _conv2d(x, w.permute(0, 3, 2, 1), bias, stride=p).flatten(2).transpose(1, 2),
        }
        wrong = _match(got.to(torch.float32), variants, dict(rtol=1e-4, atol=1e-4))
        raise Mistake(
            f"ps3.conv.{wrong}" if wrong else "ps3.conv.not_close",
            where if wrong else f"{where}: {largest_difference(got, expected)}",
        )
    print("The strided convolution computes exactly the linear patch embedding.")


seal(__name__)
