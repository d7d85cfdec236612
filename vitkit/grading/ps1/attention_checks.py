"""Problem set 1's checks of single-head self-attention: the lecture's example, then random sequences and
batches in float32 and float64, each wrong result compared with the classic wrong versions (no scale, the
wrong scale, softmax over the wrong axis, transposed scores or weights, ...)."""

from __future__ import annotations

import math
import types

import torch
import torch.nn.functional as F

from vitkit.grading import Mistake, as_tensor, check_shape, close, largest_difference, seal, uses
from vitkit.grading.ps1.reference import (
    _attention,
    _call,
    _div,
    _first,
    _float64,
    _Generator,
    _isinstance,
    _len,
    _matmul,
    _randn,
    _softmax,
    _sum,
    _t,
    _Tensor,
    _tol,
    _transpose,
    _tuple,
)
from vitkit.worked_example import W_K, W_Q, W_V, X


def _attention_case(self_attention, x, wq, wk, wv, label: str) -> None:
    result, names = _call(self_attention, "self_attention", x, wq, wk, wv)
    if not _isinstance(result, (_tuple, list)) or _len(result) != 2:
        raise Mistake("ps1.self_attention.not_a_pair", f"on {label} it returned {type(result).__name__}")
    out, w = as_tensor(result[0], "output"), as_tensor(result[1], "weights")
    x64, wq64, wk64, wv64 = (t.to(_float64) for t in (x, wq, wk, wv))
    ref_out, ref_w, _, _, value = _attention(x64, wq64, wk64, wv64)
    n, d_in, d_k, d_v = x.shape[-2], x.shape[-1], wk.shape[-1], wv.shape[-1]
    out_shape, w_shape = (*x.shape[:-1], d_v), (*x.shape[:-2], n, n)
    swapped = tuple(out.shape) == w_shape and tuple(w.shape) == out_shape
    if swapped and (w_shape != out_shape or (close(out, ref_w, 1e-4, 1e-6) and close(w, ref_out, 1e-4, 1e-6))):
        raise Mistake("ps1.self_attention.return_order", f"on {label}")
    if tuple(out.shape) == (*x.shape[:-1], d_in) and d_in != d_v and close(out, _matmul(ref_w, x64), 1e-4, 1e-6):
        raise Mistake(
            "ps1.self_attention.no_value_projection",
            f"on {label}, output has shape {tuple(out.shape)}, expected {out_shape}",
        )
    check_shape(w, w_shape, f"weights on {label}", code="ps1.self_attention.wrong_shape")
    check_shape(out, out_shape, f"output on {label}", code="ps1.self_attention.wrong_shape")
    rtol, atol = _tol(x, *result)
    if not close(w, ref_w, rtol, atol):
        wrong = lambda **kw: _attention(x64, wq64, wk64, wv64, **kw)[1]  # noqa: E731
        found = _first(
            [
                ("ps1.self_attention.no_scale", f"on {label}, d_k = {d_k}", lambda: wrong(scale=1.0)),
                (
                    "ps1.self_attention.wrong_scale",
                    f"on {label} you divided by d_k = {d_k}, not by √d_k",
                    lambda: wrong(scale=float(d_k)),
                ),
                (
                    "ps1.self_attention.wrong_scale",
                    f"on {label} you divided by √D = √{d_in} (the size of a token), not by √d_k = √{d_k}",
                    lambda: wrong(scale=math.sqrt(d_in)),
                ),
                (
                    "ps1.self_attention.wrong_scale",
                    f"on {label} you divided by √d_v = √{d_v}, not by √d_k = √{d_k}",
                    lambda: wrong(scale=math.sqrt(d_v)),
                ),
                (
                    "ps1.self_attention.wrong_scale",
                    f"on {label} you multiplied by √d_k instead of dividing",
                    lambda: wrong(scale=1 / math.sqrt(d_k)),
                ),
                ("ps1.self_attention.weights_wrong_axis", f"on {label}", lambda: wrong(axis=-2)),
                ("ps1.self_attention.scores_transposed", f"on {label}", lambda: wrong(transposed=True)),
                ("ps1.self_attention.scores_transposed", f"on {label}", lambda: _transpose(wrong(axis=-2), -2, -1)),
                (
                    "ps1.self_attention.scaled_after_softmax",
                    f"on {label}",
                    lambda: _div(wrong(scale=1.0), math.sqrt(d_k)),
                ),
            ],
            w,
        )
        if found:
            raise Mistake(*found)
        sums = _sum(w, -1)
        if not close(sums, torch.ones_like(sums), 1e-4, 1e-5):
            raise Mistake(
                "ps1.self_attention.weights_not_normalised", f"on {label} the rows sum to {sums.flatten()[:4].tolist()}"
            )
        raise Mistake("ps1.self_attention.wrong_weights", f"on {label}: {largest_difference(w, ref_w)}")
    if not close(out, ref_out, rtol, atol):
        found = _first(
            [
                (
                    "ps1.self_attention.transposed_weights",
                    f"on {label}",
                    lambda: _matmul(_transpose(ref_w, -2, -1), value),
                ),
            ],
            out,
        )
        raise Mistake(
            *(
                found
                or (
                    "ps1.self_attention.wrong_output",
                    f"on {label}: {largest_difference(out, ref_out)}",
                )
            )
        )
    for got in result:
        if _isinstance(got, _Tensor) and got.dtype != x.dtype:
            raise Mistake("ps1.self_attention.dtype", f"on {label}: {x.dtype} in, {got.dtype} out")
    if names & {"scaled_dot_product_attention", "multi_head_attention_forward"}:
        raise Mistake(
            "ps1.self_attention.used_library",
            f"it called {sorted(names & {'scaled_dot_product_attention', 'multi_head_attention_forward'})}",
        )


def _uses_vitkit_attention(fn) -> bool:
    import vitkit.attention as va

    banned = (va.self_attention, va.Attention, va, F.scaled_dot_product_attention, torch.nn.MultiheadAttention)
    if any(fn is b for b in banned) or getattr(fn, "__module__", "") in ("vitkit.attention", "torch.nn.functional"):
        return True
    code, scope = getattr(fn, "__code__", None), getattr(fn, "__globals__", {})
    if code is None:
        return False
    names = set(code.co_names)
    for const in code.co_consts:  # nested functions and lambdas
        if isinstance(const, types.CodeType):
            names |= set(const.co_names)
    return any(scope.get(n) is b for n in names for b in banned) or "scaled_dot_product_attention" in names


def _reference_softmax(x, dim=-1, **kwargs):
    """The reference softmax: the notebook's ``softmax`` while self_attention is graded (``axis=`` understood too)."""
    return _softmax(x, kwargs.get("axis", dim))


@uses(softmax=_reference_softmax)
def check_self_attention_example(self_attention) -> None:
    """Visible test: the lecture's three inputs and weight matrices (d_k = 3), scaled by 1/√3, exact softmax."""
    _attention_case(self_attention, _t(X), _t(W_Q), _t(W_K), _t(W_V), "the lecture's example")


@uses(softmax=_reference_softmax)
def check_self_attention(self_attention) -> None:
    """Hidden test: the lecture's example, no library attention, random sequences and batches in float32/float64."""
    check_self_attention_example(self_attention)
    if _uses_vitkit_attention(self_attention):
        raise Mistake("ps1.self_attention.used_library", "it uses a library's attention")
    g = _Generator().manual_seed(2)

    def case(shape, d_k, d_v, dtype):
        d = shape[-1]
        x = _randn(shape, generator=g, dtype=_float64)
        ws = [_randn((d, m), generator=g, dtype=_float64).div(math.sqrt(d)).mul(2) for m in (d_k, d_k, d_v)]
        return [t.to(dtype) for t in (x, *ws)]

    for shape, d_k, d_v, dtype in (((5, 6), 4, 3, _float64), ((4, 8), 2, 5, torch.float32), ((7, 3), 9, 2, _float64)):
        _attention_case(
            self_attention, *case(shape, d_k, d_v, dtype), f"x {tuple(shape)} {dtype}, d_k={d_k}, d_v={d_v}"
        )
    for shape, d_k, d_v, dtype in (((2, 5, 6), 3, 7, _float64), ((3, 4, 4), 5, 2, torch.float32)):
        label = f"a batch x {tuple(shape)} {dtype}, d_k={d_k}, d_v={d_v}"
        try:
            _attention_case(self_attention, *case(shape, d_k, d_v, dtype), label)
        except Mistake as err:
            if err.code in (
                "ps1.self_attention.wrong_shape",
                "ps1.self_attention.wrong_output",
                "ps1.self_attention.wrong_weights",
            ):
                raise Mistake("ps1.self_attention.batch", f"{label}: {err.detail}") from None
            raise
        except Exception as err:  # a crash that only batches trigger
            raise Mistake("ps1.self_attention.batch", f"{label}: {type(err).__name__}: {err}") from None


seal(__name__)
