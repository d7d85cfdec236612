"""Problem set 1's references and helpers: torch's functions captured at import, the lecture's numbers, the
reference softmax and attention (and their classic wrong versions), and calling a student's function on copies
while recording which torch functions it calls. The other modules of :mod:`vitkit.grading.ps1` import these.
"""

from __future__ import annotations

import math

import torch
from torch.overrides import TorchFunctionMode

from vitkit.grading import Mistake, close, seal

# Captured now, before student code runs: the references never call what a student could patch.
_exp, _amax, _sum, _matmul = torch.exp, torch.amax, torch.sum, torch.matmul
_sub, _div, _transpose, _isfinite = torch.sub, torch.div, torch.transpose, torch.isfinite
_add, _arange = torch.add, torch.arange
_tensor, _randn, _Generator, _float64 = torch.tensor, torch.randn, torch.Generator, torch.float64
_Tensor, _isinstance, _len, _tuple, _round = torch.Tensor, isinstance, len, tuple, round

# ----------------------------------------------------------------------------- the lecture's numbers

# The worked example (X, W_Q, W_K, W_V and what the slides compute from them) is in vitkit.worked_example.
FULL_HD_PIXEL_PAIRS = 4_299_816_960_000  # (1920 * 1080) ** 2


def _t(rows, dtype=_float64) -> torch.Tensor:
    return _tensor(rows, dtype=dtype)


# The mistakes these checks name, with their messages and hints, are rows of vitkit/grading/catalogue.py.

# ----------------------------------------------------------------------------- references and helpers


def _softmax(x: torch.Tensor, dim: int) -> torch.Tensor:
    e = _exp(_sub(x, _amax(x, dim, keepdim=True)))
    return _div(e, _sum(e, dim, keepdim=True))


def _attention(x, wq, wk, wv, scale=None, axis=-1, transposed=False):
    """Reference (output, weights, query, key, value); the keyword arguments build wrong references."""
    query, key, value = _matmul(x, wq), _matmul(x, wk), _matmul(x, wv)
    scores = _matmul(key, _transpose(query, -2, -1)) if transposed else _matmul(query, _transpose(key, -2, -1))
    scores = _div(scores, math.sqrt(key.shape[-1]) if scale is None else scale)
    weights = _softmax(scores, axis)
    return _matmul(weights, value), weights, query, key, value


class _Calls(TorchFunctionMode):
    """Records the names of the torch functions a student's function calls."""

    def __init__(self):
        super().__init__()
        self.names = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.add(getattr(func, "__name__", ""))
        return func(*args, **(kwargs or {}))


def _clone(value):
    return value.clone() if _isinstance(value, _Tensor) else value


def _call(fn, question: str, *args, **kwargs):
    """Call the student's ``fn`` on copies of the arguments; returns (result, names of torch calls)."""
    if not callable(fn):
        raise Mistake(f"ps1.{question}.not_written", f"{question} is {type(fn).__name__}, not a function")
    recorder = _Calls()
    try:
        with recorder:
            result = fn(*(_clone(a) for a in args), **{k: _clone(v) for k, v in kwargs.items()})
    except NotImplementedError:
        raise Mistake(f"ps1.{question}.not_written") from None
    return result, recorder.names


def _first(candidates, actual):
    """The code and detail of the first wrong reference (code, detail, tensor or thunk) ``actual`` matches."""
    for code, detail, make in candidates:
        try:
            expected = make() if callable(make) else make
        except RuntimeError:  # a wrong reference that does not even broadcast for this shape
            continue
        if expected.shape == actual.shape and close(actual, expected, rtol=1e-4, atol=1e-6):
            return code, detail
    return None


def _tol(*values):
    """Tolerances for comparing with a float64 reference: float32 anywhere means float32's precision."""
    low = any(_isinstance(v, _Tensor) and v.dtype != _float64 for v in values)
    return (1e-4, 1e-6) if low else (1e-7, 1e-9)


seal(__name__)
