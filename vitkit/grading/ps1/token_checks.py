"""Problem set 1's checks of pixels as tokens: an image's pixels in reading order, and the number of pairs of
tokens attention scores for an image cut into patches (the quadratic cost)."""

from __future__ import annotations

import torch

from vitkit.grading import Mistake, as_tensor, check_shape, close, seal
from vitkit.grading.ps1.reference import _call, _first, _float64, _Generator, _randn

# ----------------------------------------------------------------------------- pixels as tokens


def _image(c, h, w, g=None):
    return (
        _randn((c, h, w), generator=g, dtype=_float64)
        if g is not None
        else torch.arange(c * h * w, dtype=_float64).reshape(c, h, w)
    )


def _pixels_case(pixels_to_tokens, image, label):
    c, h, w = image.shape
    out = as_tensor(_call(pixels_to_tokens, "pixels_to_tokens", image)[0], f"tokens of {label}")
    ref = image.permute(1, 2, 0).reshape(h * w, c)
    if tuple(out.shape) == (c, h * w) and c != h * w:
        raise Mistake("ps1.pixels_to_tokens.channels_first", f"{label}: shape {tuple(out.shape)}")
    check_shape(out, (h * w, c), f"tokens of {label}", code="ps1.pixels_to_tokens.wrong_shape")
    if not close(out, ref):
        found = _first(
            [
                ("ps1.pixels_to_tokens.no_permute", label, image.reshape(h * w, c)),
                ("ps1.pixels_to_tokens.column_major", label, image.permute(2, 1, 0).reshape(h * w, c)),
            ],
            out,
        )
        raise Mistake(*(found or ("ps1.pixels_to_tokens.wrong", label)))


def check_pixels_to_tokens_example(pixels_to_tokens) -> None:
    """Visible test: a 3×3 image with 3 channels gives 9 tokens of 3 values, in reading order."""
    _pixels_case(pixels_to_tokens, _image(3, 3, 3), "a 3×3 image with 3 channels")


def check_pixels_to_tokens(pixels_to_tokens) -> None:
    """Hidden test: the example and random images of other shapes (not square, one channel, many)."""
    check_pixels_to_tokens_example(pixels_to_tokens)
    g = _Generator().manual_seed(3)
    for c, h, w in ((2, 3, 5), (1, 4, 4), (4, 2, 6), (5, 6, 2)):
        _pixels_case(pixels_to_tokens, _image(c, h, w, g), f"a {h}×{w} image with {c} channels")


# ----------------------------------------------------------------------------- the quadratic cost

_PAIRS_CASES = ((1920, 1080, 1), (224, 224, 16), (3, 3, 1), (28, 28, 7), (1920, 1080, 8), (32, 64, 4))


def check_attention_pairs(attention_pairs, visible_only: bool = False) -> None:
    """Pairs of tokens attention scores for an H×W image cut into P×P patches: ((H/P)·(W/P))²."""
    for h, w, p in _PAIRS_CASES[:2] if visible_only else _PAIRS_CASES:
        got = (
            _call(attention_pairs, "attention_pairs", h, w)
            if p == 1
            else _call(attention_pairs, "attention_pairs", h, w, p)
        )
        got = got[0]
        label = f"attention_pairs({h}, {w}{'' if p == 1 else f', {p}'})"
        try:
            value = float(got)
        except (TypeError, ValueError):
            raise Mistake("ps1.attention_pairs.wrong", f"{label} returned {type(got).__name__}, not a number") from None
        n = (h // p) * (w // p)
        if value == n * n:
            continue
        for code, wrong in (
            ("ps1.attention_pairs.tokens_not_pairs", n),
            ("ps1.attention_pairs.patch_area", (h * w / p) ** 2),
            ("ps1.attention_pairs.unordered_pairs", n * (n - 1) / 2),
            ("ps1.attention_pairs.unordered_pairs", n * (n + 1) / 2),
            ("ps1.attention_pairs.unordered_pairs", n * n / 2),
            ("ps1.attention_pairs.no_self_pairs", n * (n - 1)),
        ):
            if value == wrong and (code != "ps1.attention_pairs.patch_area" or p > 1):
                raise Mistake(code, f"{label} = {got}, expected {n * n:,}")
        raise Mistake("ps1.attention_pairs.wrong", f"{label} = {got}, expected {n * n:,}")


seal(__name__)
