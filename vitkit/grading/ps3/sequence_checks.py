"""Problem set 3's checks of the token sequence: the CLS token in front, and padding or truncating to a length
with a mask."""

from __future__ import annotations

import torch

from vitkit.grading import Mistake, as_tensor, close, largest_difference, seal
from vitkit.grading.ps3.reference import _cat, _Generator, _randn

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


seal(__name__)
