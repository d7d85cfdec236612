"""Checks for problem set 3, from an image to tokens: patches, patch embeddings, CLS token, positions.

The test cells of ``ps3_patch_embeddings`` call only these functions. Each check computes the
correct answer and the answers of the classic wrong implementations (patches flattened in the wrong
order, CLS appended instead of prepended, position embeddings added to the wrong tokens, ...); when
a student's result matches a wrong one, the error names that mistake.

The references (vitkit's own ``patchify`` and ``sincos_pos_embed_2d``, torch functions) are
captured when this module is imported, which the notebook's first cell does before any answer runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from vitkit.embedding import patchify as _patchify_ref
from vitkit.embedding import sincos_pos_embed_2d as _sincos_ref
from vitkit.grading import Mistake, as_tensor, close, largest_difference, position_grid_check, seal, uses

_randn = torch.randn
_Generator = torch.Generator
_cat = torch.cat
_linear = F.linear
_conv2d = F.conv2d
_interpolate = F.interpolate

# The mistakes these checks name, with their messages and hints, are rows of vitkit/grading/catalogue.py.

# ----------------------------------------------------------------------------- helpers


def _images(batch, chans, h, w, seed):
    return _randn(batch, chans, h, w, generator=_Generator().manual_seed(seed))


def _match(actual: torch.Tensor, candidates: dict, tol=dict(rtol=1e-5, atol=1e-6)):
    """The name of the first candidate tensor ``actual`` equals, or None."""
    for name, value in candidates.items():
        if value is not None and close(actual, value, **tol):
            return name
    return None


class _CountOps(TorchFunctionMode):
    """Counts torch operations (to tell a loop over patches from a vectorised patchify)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def _patchify_variants(x: torch.Tensor, p: int) -> dict:
    B, C, H, W = x.shape
    h, w = H // p, W // p
    six = x.reshape(B, C, h, p, w, p)
    return {
        "wrong_order": six.permute(0, 2, 4, 1, 3, 5).reshape(B, h * w, C * p * p),
        "rows_cols_swapped": six.permute(0, 2, 4, 5, 3, 1).reshape(B, h * w, p * p * C),
        "grid_column_major": six.permute(0, 4, 2, 3, 5, 1).reshape(B, h * w, p * p * C),
        "no_permute": x.reshape(B, h * w, p * p * C),
    }


# ----------------------------------------------------------------------------- patchify


def check_patchify(student_fn, thorough: bool = False) -> None:
    """The student's ``patchify(images, patch_size)`` -> (B, N, P·P·C) against vitkit's, on colour and grey images.

    ``thorough`` (hidden tests): more shapes, non-square images, no loops, ValueError on bad sizes.
    """
    cases = [(2, 3, 8, 8, 4), (1, 1, 6, 6, 2)]
    if thorough:
        cases += [(3, 3, 12, 8, 4), (2, 2, 10, 15, 5), (1, 3, 16, 16, 16), (2, 3, 32, 32, 4)]
    for i, (B, C, H, W, p) in enumerate(cases):
        x = _images(B, C, H, W, seed=i)
        counter = _CountOps()
        with counter:
            got = student_fn(x.clone(), p)
        got = as_tensor(got, "your patches")
        where = f"images of shape {(B, C, H, W)}, patch size {p}"
        expected = _patchify_ref(x, p)
        if tuple(got.shape) != tuple(expected.shape):
            raise Mistake(
                "ps3.patchify.wrong_shape", f"{where}: got {tuple(got.shape)}, expected {tuple(expected.shape)}"
            )
        if not close(got, expected):
            wrong = _match(got, _patchify_variants(x, p))
            raise Mistake(
                f"ps3.patchify.{wrong}" if wrong else "ps3.patchify.not_close",
                where if wrong else f"{where}: {largest_difference(got, expected)}",
            )
        patches = (H // p) * (W // p)
        if thorough and patches >= 16 and counter.count > patches // 2:
            raise Mistake(
                "ps3.patchify.python_loop", f"{where}: {counter.count} tensor operations for {patches} patches"
            )
    if thorough:
        try:
            student_fn(_images(1, 3, 10, 10, seed=9), 4)
        except ValueError:
            pass
        except (
            Exception
        ) as err:  # reshape's own RuntimeError ("shape ... is invalid") is not the check the question asks for
            raise Mistake(
                "ps3.patchify.no_divisibility_check",
                f"patchify of a 10×10 image with patch size 4 raised {type(err).__name__} from inside torch, not ValueError",
            ) from None
        else:
            raise Mistake(
                "ps3.patchify.no_divisibility_check",
                "patchify of a 10×10 image with patch size 4 did not raise ValueError",
            )
    print("patchify cuts images into patches in (p1 p2 c) order, row by row.")


# ----------------------------------------------------------------------------- token counts


def check_token_count(student_fn) -> None:
    """The student's ``count_tokens(height, width, channels, patch_size)`` -> (num_tokens, token_dim)."""
    for H, W, C, P in [(224, 224, 3, 16), (28, 28, 1, 4), (32, 64, 3, 8), (96, 48, 2, 16), (384, 384, 3, 16)]:
        got = student_fn(H, W, C, P)
        try:
            n, d = (int(v) for v in got)
        except (TypeError, ValueError):
            raise Mistake(
                "ps3.tokens.wrong", f"count_tokens({H}, {W}, {C}, {P}) returned {got!r}, not two numbers"
            ) from None
        n_ok, d_ok = (H // P) * (W // P), P * P * C
        call = f"count_tokens({H}, {W}, {C}, {P}) returned ({n}, {d}), expected ({n_ok}, {d_ok})"
        if d != d_ok:
            raise Mistake("ps3.tokens.dim_without_channels" if d == P * P and C != 1 else "ps3.tokens.wrong", call)
        if n != n_ok:
            if n == n_ok + 1:
                raise Mistake("ps3.tokens.cls_counted", call)
            if H != W and n in ((H // P) ** 2, (W // P) ** 2):
                raise Mistake("ps3.tokens.square_assumed", call)
            if n in (H // P, W // P):
                raise Mistake("ps3.tokens.count_one_side", call)
            raise Mistake("ps3.tokens.wrong", call)
    try:
        student_fn(30, 32, 3, 16)
    except ValueError:
        pass
    else:
        raise Mistake("ps3.tokens.no_divisibility_check", "count_tokens(30, 32, 3, 16) did not raise ValueError")
    print("224×224×3 in 16×16 patches: 196 tokens of 768 values.")


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


# ----------------------------------------------------------------------------- CLS token


def check_prepend_cls(student_fn) -> None:
    """The student's ``prepend_cls(tokens (B, N, D), cls_token (1, 1, D))`` -> (B, N + 1, D), CLS first."""
    for i, (B, N, D) in enumerate([(2, 4, 3), (1, 9, 8), (5, 1, 2)]):
        g = _Generator().manual_seed(60 + i)
        tokens, cls = _randn(B, N, D, generator=g), _randn(1, 1, D, generator=g)
        where = f"tokens {(B, N, D)}, cls_token {(1, 1, D)}"
        try:
            got = as_tensor(student_fn(tokens.clone(), cls.clone()), "your tokens")
        except RuntimeError as err:
            if B > 1 and "must match" in str(err):
                raise Mistake("ps3.cls.not_expanded", f"{where}: {str(err).splitlines()[0]}") from None
            raise
        expected = _cat([cls.expand(B, 1, D), tokens], dim=1)
        if tuple(got.shape) != tuple(expected.shape):
            if tuple(got.shape) == (B, N, D):
                code = (
                    "ps3.cls.replaced_first"
                    if close(got[:, 0], cls.expand(B, 1, D)[:, 0])
                    else "ps3.cls.added_to_tokens"
                    if close(got, tokens + cls)
                    else "ps3.cls.wrong_shape"
                )
            else:
                code = "ps3.cls.wrong_shape"
            raise Mistake(code, f"{where}: got {tuple(got.shape)}, expected {tuple(expected.shape)}")
        if not close(got, expected):
            appended = _cat([tokens, cls.expand(B, 1, D)], dim=1)
            raise Mistake("ps3.cls.appended" if close(got, appended) else "ps3.cls.not_close", where)
    print("The CLS token comes first, one per image.")


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


# ----------------------------------------------------------------------------- padding and truncating


def check_pad_or_truncate(student_fn) -> None:
    """The student's ``pad_or_truncate(tokens (B, N, D), length)`` -> (tokens (B, length, D), mask (B, length))."""
    for i, (B, N, D, length) in enumerate([(2, 5, 3, 8), (2, 7, 4, 4), (1, 3, 2, 3), (3, 1, 2, 4)]):
        tokens = _randn(B, N, D, generator=_Generator().manual_seed(80 + i))
        result = student_fn(tokens.clone(), length)
        where = f"tokens {(B, N, D)} to length {length}"
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise Mistake("ps3.pad.not_a_pair", f"{where}: got {type(result).__name__}")
        got, mask = result
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise Mistake("ps3.pad.mask_not_bool", f"{where}: mask is {getattr(mask, 'dtype', type(mask).__name__)}")
        got = as_tensor(got, "your tokens")
        keep = min(N, length)
        expected = torch.zeros(B, length, D, dtype=torch.float64)
        expected[:, :keep] = tokens[:, :keep].double()
        expected_mask = torch.arange(length).expand(B, length) < keep
        if tuple(got.shape) != (B, length, D) or tuple(mask.shape) != (B, length):
            raise Mistake(
                "ps3.pad.wrong_shape",
                f"{where}: tokens {tuple(got.shape)}, mask {tuple(mask.shape)}; expected {(B, length, D)} and {(B, length)}",
            )
        if not close(got, expected):
            front = torch.zeros_like(expected)
            front[:, length - keep :] = tokens[:, :keep].double()
            last = tokens[:, N - keep :].double()
            if N < length and close(got, front):
                raise Mistake("ps3.pad.front", where)
            if N > length and close(got, last):
                raise Mistake("ps3.pad.kept_last", where)
            if N < length and close(got[:, :keep], expected[:, :keep]):
                raise Mistake(
                    "ps3.pad.nonzero_padding", f"{where}: padding values {got[0, keep:].flatten()[:3].tolist()}..."
                )
            raise Mistake("ps3.pad.not_close", f"{where}: {largest_difference(got, expected)}")
        if not bool((mask == expected_mask).all()):
            code = "ps3.pad.mask_inverted" if bool((mask == ~expected_mask).all()) else "ps3.pad.not_close"
            raise Mistake(code, f"{where}: mask {mask[0].tolist()}, expected {expected_mask[0].tolist()}")
    print("pad_or_truncate keeps the first tokens, pads with zeros at the end, and masks the padding.")


# ----------------------------------------------------------------------------- resampling the grid


def check_resample(student_fn) -> None:
    """The student's ``resample_position_grid(pos_embed (1, 1 + h·w, D), new_grid)`` -> (1, 1 + H·W, D), bicubic.

    The same check as problem set 5's (one skill, one reference: vitkit.embedding.resample_pos_embed).
    """
    position_grid_check(student_fn, "ps3", "resample_position_grid")
    print("The position grid is resampled in 2-D, the CLS entry kept.")


seal(__name__)
