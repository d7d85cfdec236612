"""Problem set 1's checks of softmax: the lecture's scores, random shapes, axes and dtypes, and huge inputs."""

from __future__ import annotations

import torch

from vitkit.grading import Mistake, as_tensor, check_shape, close, largest_difference, seal
from vitkit.grading.ps1.reference import (
    _add,
    _amax,
    _arange,
    _call,
    _div,
    _exp,
    _first,
    _float64,
    _Generator,
    _isfinite,
    _isinstance,
    _randn,
    _softmax,
    _sub,
    _sum,
    _t,
    _Tensor,
    _tol,
)
from vitkit.worked_example import SCORES


def _softmax_case(softmax, x: torch.Tensor, dim: int | None, label: str) -> None:
    axis = -1 if dim is None else dim
    result, names = _call(softmax, "softmax", x) if dim is None else _call(softmax, "softmax", x, dim)
    out = as_tensor(result, f"softmax({label})")
    check_shape(out, x.shape, f"softmax({label})", code="ps1.softmax.wrong_shape")
    ref = _softmax(x.to(_float64), axis)
    rtol, atol = _tol(x, result)
    if not close(out, ref, rtol, atol):
        x64 = x.to(_float64)
        e = _exp(x64)
        stable = _exp(_sub(x64, _amax(x64, axis, keepdim=True)))
        others = [d for d in range(x.dim()) if d != axis % x.dim()]
        candidates = [
            (
                "ps1.softmax.wrong_axis",
                f"softmax({label}) normalised over axis {d} instead of {axis}",
                (lambda d=d: _softmax(x64, d)),
            )
            for d in others
        ]
        candidates += [
            ("ps1.softmax.not_normalised", f"softmax({label}) returned exp(x) without dividing by its sum", e),
            (
                "ps1.softmax.not_normalised",
                f"softmax({label}) returned exp(x - max) without dividing by its sum",
                stable,
            ),
            ("ps1.softmax.global_sum", f"softmax({label})", lambda: _div(e, _sum(e))),
            (
                "ps1.softmax.sum_not_keepdim",
                f"softmax({label})",
                lambda: _div(e, _sum(e, axis)),  # the same with any one number subtracted from every entry
            ),
            (
                "ps1.softmax.max_not_keepdim",
                f"softmax({label})",
                lambda: (lambda s: _div(s, _sum(s, axis, keepdim=True)))(_exp(_sub(x64, _amax(x64, axis)))),
            ),
        ]
        found = _first(candidates, out)
        if found and found[0] == "ps1.softmax.wrong_axis" and _first(candidates[-2:-1], out):
            # a symmetric input (the lecture's scores) cannot tell the two apart: ask an asymmetric one
            probe = _add(x64, _arange(x64.numel(), dtype=_float64).reshape(x64.shape))
            got = as_tensor(_call(softmax, "softmax", probe.to(x.dtype), axis)[0], f"softmax({label})")
            e_probe = _exp(probe)
            if _first([("", "", lambda: _div(e_probe, _sum(e_probe, axis)))], got):
                found = ("ps1.softmax.sum_not_keepdim", f"softmax({label}) divided each slice by another slice's sum")
        if found:
            raise Mistake(*found)
        if not _isfinite(out).all():
            raise Mistake("ps1.softmax.wrong_values", f"softmax({label}) contains nan or inf")
        sums = _sum(out, axis)
        if not close(sums, torch.ones_like(sums), 1e-4, 1e-5):
            raise Mistake(
                "ps1.softmax.not_normalised", f"softmax({label}) sums to {sums.flatten()[:4].tolist()} over axis {axis}"
            )
        raise Mistake("ps1.softmax.wrong_values", f"softmax({label}): {largest_difference(out, ref)}")
    if _isinstance(result, _Tensor) and result.dtype != x.dtype:
        raise Mistake("ps1.softmax.dtype", f"softmax of a {x.dtype} tensor returned {result.dtype}")
    if names & {"softmax", "special_softmax", "log_softmax", "_softmax"}:
        raise Mistake(
            "ps1.softmax.used_builtin",
            f"it called {sorted(names & {'softmax', 'special_softmax', 'log_softmax', '_softmax'})}",
        )


def check_softmax_example(softmax) -> None:
    """Visible test: the lecture's scores, [2, 4, 4] for input 1, and the 3×3 score matrix along each axis."""
    _softmax_case(softmax, _t(SCORES[0]), None, "[2, 4, 4]")
    _softmax_case(softmax, _t(SCORES), None, "the lecture's 3×3 scores")
    _softmax_case(softmax, _t(SCORES), 0, "the lecture's 3×3 scores, dim=0")


def check_softmax(softmax) -> None:
    """Hidden test: the lecture's numbers, random inputs of several shapes, axes and dtypes, and huge inputs."""
    check_softmax_example(softmax)
    g = _Generator().manual_seed(1)
    for shape, dims in (((7,), (None, 0)), ((4, 5), (None, 0, 1, -2)), ((2, 3, 6), (None, 1, 0, -1))):
        for dtype in (torch.float32, _float64):
            x = _randn(shape, generator=g, dtype=_float64).mul(3).to(dtype)
            for dim in dims:
                _softmax_case(
                    softmax, x, dim, f"random {dtype} {tuple(shape)}" + ("" if dim is None else f", dim={dim}")
                )
    # Numerical stability: exp(1000) overflows in float32 and float64 alike.
    for dtype in (torch.float32, _float64):
        big = _t([[1000.0, 1001.0, 1002.0]], dtype)
        out = as_tensor(_call(softmax, "softmax", big, -1)[0], "softmax([1000, 1001, 1002])")
        if not _isfinite(out).all():
            raise Mistake(
                "ps1.softmax.unstable", f"softmax([1000, 1001, 1002]) in {dtype} gave {out.flatten().tolist()}"
            )
        apart = _t([[1000.0, 1001.0, 1002.0], [-1000.0, -999.0, -998.0]], dtype)
        out = as_tensor(_call(softmax, "softmax", apart, -1)[0], "softmax of rows far apart")
        if not _isfinite(out).all():
            raise Mistake(
                "ps1.softmax.global_max",
                f"rows [1000, 1001, 1002] and [-1000, -999, -998] in {dtype} gave {out.tolist()}",
            )
        _softmax_case(softmax, apart, -1, f"rows far apart, {dtype}")


seal(__name__)
