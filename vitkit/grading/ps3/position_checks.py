"""Problem set 3's checks of position embeddings: 2-D sin-cos embeddings, the whole input stage (patches, CLS,
a position for every token) and resampling the position grid."""

from __future__ import annotations

import torch
from torch import nn

from vitkit.embedding import patchify as _patchify_ref
from vitkit.embedding import sincos_pos_embed_2d as _sincos_ref
from vitkit.grading import Mistake, as_tensor, close, largest_difference, position_grid_check, seal, uses
from vitkit.grading.ps3.reference import _cat, _Generator, _images, _linear, _match, _randn

# ----------------------------------------------------------------------------- 2-D sin-cos position embeddings


def _sincos_variants(h: int, w: int, dim: int) -> dict:
    def half(pos, omega, sin_first=True):
        out = pos.reshape(-1, 1).double() * omega
        return [out.sin(), out.cos()] if sin_first else [out.cos(), out.sin()]

    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    k = torch.arange(dim // 4, dtype=torch.float64)
    omega = 1.0 / 10000 ** (k / (dim // 4))

    def interleaved(pos):
        out = pos.reshape(-1, 1).double() * omega
        return torch.stack([out.sin(), out.cos()], dim=-1).reshape(out.shape[0], -1)  # sin ω₀, cos ω₀, sin ω₁, ...

    return {
        "sin_cos_interleaved": _cat([interleaved(rows), interleaved(cols)], dim=1),
        "rows_cols_swapped": _cat(half(cols, omega) + half(rows, omega), dim=1),
        "sin_cos_swapped": _cat(half(rows, omega, False) + half(cols, omega, False), dim=1),
        "frequencies_wrong": _cat(
            half(rows, 1.0 / 10000 ** (k / (dim // 2))) + half(cols, 1.0 / 10000 ** (k / (dim // 2))), dim=1
        ),
        "frequencies_wrong_dim": _cat(
            half(rows, 1.0 / 10000 ** (k / dim)) + half(cols, 1.0 / 10000 ** (k / dim)), dim=1
        ),
        "one_dimensional": _cat(
            half(torch.arange(h * w), 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim // 2))), dim=1
        ),
    }


def check_sincos(student_fn) -> None:
    """The student's ``sincos_position_embedding(grid_h, grid_w, dim)`` -> (grid_h·grid_w, dim), as the notebook defines it."""
    for h, w, dim in [(2, 3, 8), (4, 4, 16), (14, 14, 64), (3, 5, 12)]:
        got = as_tensor(student_fn(h, w, dim), "your position embeddings")
        expected = _sincos_ref((h, w), dim).double()
        where = f"grid {h}×{w}, dim {dim}"
        if tuple(got.shape) != tuple(expected.shape):
            raise Mistake(
                "ps3.sincos.wrong_shape", f"{where}: got {tuple(got.shape)}, expected {tuple(expected.shape)}"
            )
        if not close(got, expected, rtol=1e-4, atol=1e-5):
            wrong = _match(got, _sincos_variants(h, w, dim), dict(rtol=1e-4, atol=1e-5))
            if wrong:
                raise Mistake(
                    "ps3.sincos." + ("frequencies_wrong" if wrong.startswith("frequencies") else wrong), where
                )
            raise Mistake("ps3.sincos.not_close", f"{where}: {largest_difference(got, expected)}")
    print("2-D sin-cos position embeddings match.")


# ----------------------------------------------------------------------------- the whole input stage


class _ReferenceEmbedding(nn.Module):
    """A fixed patch embedding handed to the student's ``embed_image`` (so its own mistakes stay out)."""

    def __init__(self, p: int, c: int, d: int, seed: int):
        super().__init__()
        g = _Generator().manual_seed(seed)
        self.p, self.weight, self.bias = p, _randn(d, p * p * c, generator=g), _randn(d, generator=g)

    def forward(self, images):
        return _linear(_patchify_ref(images, self.p), self.weight, self.bias)


def _reference_prepend_cls(tokens, cls_token):
    """The reference prepend_cls: the notebook's ``prepend_cls`` while embed_image is graded."""
    return _cat([cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)


@uses(prepend_cls=_reference_prepend_cls)
def check_embed_image(student_fn) -> None:
    """The student's ``embed_image(images, patch_embedding, cls_token, pos_embed)`` -> (B, 1 + N, D)."""
    for i, (B, C, H, W, p, D) in enumerate([(2, 3, 8, 8, 4, 6), (1, 1, 6, 9, 3, 4), (3, 2, 4, 4, 2, 8)]):
        g = _Generator().manual_seed(70 + i)
        embedding = _ReferenceEmbedding(p, C, D, seed=71 + i)
        N = (H // p) * (W // p)
        cls, pos = _randn(1, 1, D, generator=g), _randn(1, N + 1, D, generator=g)
        x = _images(B, C, H, W, seed=72 + i)
        got = as_tensor(student_fn(x.clone(), embedding, cls.clone(), pos.clone()), "your tokens")
        tokens = embedding(x)
        with_cls = _cat([cls.expand(B, 1, D), tokens], dim=1)
        expected = with_cls + pos
        where = f"images {(B, C, H, W)}, {p}×{p} patches, D={D}"
        if tuple(got.shape) != tuple(expected.shape):
            raise Mistake(
                "ps3.pos_embed.wrong_shape", f"{where}: got {tuple(got.shape)}, expected {tuple(expected.shape)}"
            )
        if close(got, expected, rtol=1e-4, atol=1e-4):
            continue
        variants = {
            "wrong_tokens": _cat([cls.expand(B, 1, D) + pos[:, N:], tokens + pos[:, :N]], dim=1),
            "wrong_tokens_cls_bare": _cat([cls.expand(B, 1, D), tokens + pos[:, :N]], dim=1),
            "cls_without_position": _cat([cls.expand(B, 1, D), tokens + pos[:, 1:]], dim=1),
            "missing": with_cls,
            "cls_appended": _cat([tokens, cls.expand(B, 1, D)], dim=1) + pos,
        }
        wrong = _match(got, variants, dict(rtol=1e-4, atol=1e-4))
        if wrong:
            raise Mistake(f"ps3.pos_embed.{wrong.replace('_cls_bare', '')}", where)
        raise Mistake("ps3.pos_embed.not_close", f"{where}: {largest_difference(got, expected)}")
    print("embed_image: patches, then CLS in front, then a position for every token.")


# ----------------------------------------------------------------------------- resampling the grid


def check_resample(student_fn) -> None:
    """The student's ``resample_position_grid(pos_embed (1, 1 + h·w, D), new_grid)`` -> (1, 1 + H·W, D), bicubic.

    The same check as problem set 5's (one skill, one reference: vitkit.embedding.resample_pos_embed).
    """
    position_grid_check(student_fn, "ps3", "resample_position_grid")
    print("The position grid is resampled in 2-D, the CLS entry kept.")


seal(__name__)
