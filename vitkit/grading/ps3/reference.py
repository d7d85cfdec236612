"""Problem set 3's references and helpers: torch's functions captured at import, random images,
matching a result against named wrong versions, counting torch operations, the classic wrong patch orders.
The other modules of :mod:`vitkit.grading.ps3` import these.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from vitkit.grading import close, seal

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


seal(__name__)
