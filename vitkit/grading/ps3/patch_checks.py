"""Problem set 3's checks of cutting images into patches: ``patchify`` and the number and size of the tokens."""

from __future__ import annotations

from vitkit.embedding import patchify as _patchify_ref
from vitkit.grading import Mistake, as_tensor, close, largest_difference, seal
from vitkit.grading.ps3.reference import _CountOps, _images, _match, _patchify_variants

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


seal(__name__)
