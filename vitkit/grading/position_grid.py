"""One skill, one check: resampling a position grid, the check problem sets 3 and 5 share.

:func:`position_grid_check` compares a student's resampling with :func:`vitkit.embedding.resample_pos_embed`
and names the classic mistakes (bilinear, nearest, not 2-D, the CLS entry dropped or changed, ...), computed
here with torch functions captured when :mod:`vitkit.grading` is imported. ``vitkit.grading`` imports it back.
"""

from __future__ import annotations

import numpy as np
import torch

from vitkit.grading import Mistake, as_tensor, close, largest_difference, seal

_interpolate = torch.nn.functional.interpolate
_cat = torch.cat


def _resampled(pos: torch.Tensor, new: int, mode: str = "bicubic", variant: str = "correct") -> torch.Tensor:
    """pos (1, 1 + h·h, D) -> (1, 1 + new², D) the way the question asks (bicubic, align_corners=False), or one classic mistake."""
    D, cls, grid = pos.shape[-1], pos[:, :1], pos[:, 1:]
    old = int(round(grid.shape[1] ** 0.5))
    if variant == "not_2d":
        return _interpolate(pos.transpose(1, 2), size=1 + new * new, mode="linear", align_corners=False).transpose(1, 2)
    if variant == "not_2d_grid":
        return _cat(
            [
                cls,
                _interpolate(grid.transpose(1, 2), size=new * new, mode="linear", align_corners=False).transpose(1, 2),
            ],
            1,
        )
    if variant == "wrong_layout":
        return _cat(
            [
                cls,
                _interpolate(grid.reshape(1, D, old, old), size=(new, new), mode=mode, align_corners=False).reshape(
                    1, new * new, D
                ),
            ],
            1,
        )
    g = grid.reshape(1, old, old, D).permute(0, 3, 1, 2)  # (1, D, h, w)
    if variant == "nearest":
        g = _interpolate(g, size=(new, new), mode="nearest")
    else:
        g = _interpolate(g, size=(new, new), mode=mode, align_corners=variant == "align_corners")
    return _cat([cls, g.permute(0, 2, 3, 1).reshape(1, new * new, D)], 1)


def position_grid_check(
    student_fn, ps: str, call: str, cases=((4, 6, 8), (3, 5, 6), (6, 4, 4), (2, 7, 3), (7, 4, 6))
) -> None:
    """The one check of "resample a position grid" (problem sets 3 and 5): the student's ``fn(pos_embed, new_grid)``
    against :func:`vitkit.embedding.resample_pos_embed` (bicubic, align_corners=False, the CLS entry kept).

    Both notebooks ask for bicubic interpolation, as timm and vitkit do: bilinear is the named mistake
    ``<ps>.resample.wrong_mode`` in both. Raises ``<ps>.resample.<what>`` naming the mistake.
    """
    from vitkit.embedding import resample_pos_embed

    g = torch.Generator().manual_seed(510)
    tol = dict(rtol=1e-4, atol=1e-5)
    for old, new, D in cases:
        pos = torch.randn(1, 1 + old * old, D, generator=g)
        where = f"{call}(pos_embed of shape {(1, 1 + old * old, D)}, new_grid={new})"
        out = student_fn(pos.clone(), new)
        if not isinstance(out, (torch.Tensor, np.ndarray)):
            raise Mistake(f"{ps}.resample.not_a_tensor", f"{where} returned {type(out).__name__}")
        out = as_tensor(out)
        if tuple(out.shape) == (1, new * new, D) and new != old:
            raise Mistake(f"{ps}.resample.cls_dropped", f"{where} gave shape {tuple(out.shape)}")
        if tuple(out.shape) != (1, 1 + new * new, D):
            raise Mistake(
                f"{ps}.resample.wrong_shape", f"{where} gave shape {tuple(out.shape)}, expected {(1, 1 + new * new, D)}"
            )
        expected = resample_pos_embed(pos, new)
        if close(out, expected, **tol):
            continue
        if not close(out[:, :1], pos[:, :1], **tol):
            code = "not_2d" if close(out, _resampled(pos, new, variant="not_2d"), **tol) else "cls_changed"
            raise Mistake(f"{ps}.resample.{code}", where)
        if close(out, _resampled(pos, new, "bilinear"), **tol):
            raise Mistake(f"{ps}.resample.wrong_mode", f"{where}: bilinear")
        for variant in ("not_2d", "not_2d_grid", "wrong_layout", "align_corners", "nearest"):
            for mode in ("bicubic", "bilinear"):
                if close(out, _resampled(pos, new, mode, variant), **tol):
                    raise Mistake(f"{ps}.resample.{variant.replace('_grid', '')}", where)
        raise Mistake(f"{ps}.resample.not_close", f"{where}: {largest_difference(out, expected)}")


seal(__name__)
