"""Checks for problem set 1, self-attention: what its test cells call, and the mistakes they name.

Each check starts with the lecture's worked example (:mod:`vitkit.worked_example`: x1, x2, x3 and
the three weight matrices), then tries random inputs of several shapes in float32 and float64. When a
result is wrong, the check compares it with the classic wrong answers (softmax over the wrong
axis, a missing 1/√d_k, transposed weights...) and raises :class:`~vitkit.grading.Mistake` with
that mistake's code, so the student reads *what* is wrong and the class report can count it.

References are computed with torch functions captured when this module is imported, never with
anything from the student's namespace.
"""

from __future__ import annotations

import math
import types

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from vitkit.grading import Mistake, as_tensor, check_shape, close, largest_difference, seal, uses
from vitkit.worked_example import KEYS, QUERIES, SCORES, SLIDE_OUTPUT_1, SLIDE_WEIGHTS_1, VALUES, W_K, W_Q, W_V, X

# Captured now, before student code runs: the references never call what a student could patch.
_exp, _amax, _sum, _matmul = torch.exp, torch.amax, torch.sum, torch.matmul
_sub, _div, _transpose, _isfinite = torch.sub, torch.div, torch.transpose, torch.isfinite
_add, _arange = torch.add, torch.arange
_tensor, _randn, _Generator, _float64 = torch.tensor, torch.randn, torch.Generator, torch.float64
_Tensor, _isinstance, _len, _tuple, _round = torch.Tensor, isinstance, len, tuple, round

# ----------------------------------------------------------------------------- the lecture's numbers

# The worked example (X, W_Q, W_K, W_V and what the slides compute from them) is imported above.
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


# ----------------------------------------------------------------------------- softmax


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


# ----------------------------------------------------------------------------- the worked example


def check_worked_example(queries, keys, values, scores, output_1) -> None:
    """Visible test: the lecture's queries, keys, values, input 1's... scores, and the slide's new representation of input 1."""
    blank = [
        name
        for name, value in zip(
            ("queries", "keys", "values", "scores", "output_1"), (queries, keys, values, scores, output_1)
        )
        if value is None
    ]
    if blank:
        raise Mistake(
            "ps1.worked_example.not_written", ", ".join(blank) + (" is" if len(blank) == 1 else " are") + " None"
        )
    q, k, v = as_tensor(queries, "queries"), as_tensor(keys, "keys"), as_tensor(values, "values")
    Qr, Kr, Vr = _t(QUERIES), _t(KEYS), _t(VALUES)
    if close(q, Kr) and close(k, Qr):
        raise Mistake("ps1.worked_example.queries_keys_swapped", f"queries = {q.tolist()}")
    for name, got, want in (("queries", q, Qr), ("keys", k, Kr), ("values", v, Vr)):
        if not close(got, want):
            raise Mistake(
                "ps1.worked_example.wrong_projection", f"{name} = {got.tolist()}, the lecture's are {want.tolist()}"
            )
    s, Sr = as_tensor(scores, "scores"), _t(SCORES)
    if not close(s, Sr):
        # (The lecture's scores happen to be symmetric, so keys @ queries.T cannot be told apart.)
        found = _first(
            [
                ("ps1.worked_example.keys_not_transposed", f"scores = {s.tolist()}", _matmul(Qr, Kr)),
                ("ps1.worked_example.scores_scaled", "", _div(Sr, math.sqrt(3))),
            ],
            s,
        )
        raise Mistake(
            *(found or ("ps1.worked_example.wrong_scores", f"scores = {s.tolist()}, the lecture's are {Sr.tolist()}"))
        )
    out = as_tensor(output_1, "output_1")
    if not close(out, _t(SLIDE_OUTPUT_1)):
        w = _t(SLIDE_WEIGHTS_1)
        exact = _softmax(Sr[0], -1)
        found = _first(
            [
                ("ps1.worked_example.exact_softmax", f"output_1 = {out.tolist()}", _matmul(exact, Vr)),
                (
                    "ps1.worked_example.exact_softmax",
                    f"output_1 = {out.tolist()} (with the scaling)",
                    _matmul(_softmax(_div(Sr[0], math.sqrt(3)), -1), Vr),
                ),
                ("ps1.worked_example.output_not_values", "you weighted the keys", _matmul(w, Kr)),
                ("ps1.worked_example.output_not_values", "you weighted the queries", _matmul(w, Qr)),
                ("ps1.worked_example.output_not_values", "you weighted the inputs", _matmul(w, _t(X))),
            ],
            out,
        )
        raise Mistake(
            *(
                found
                or (
                    "ps1.worked_example.wrong_output",
                    f"output_1 = {out.tolist()}, the slide's is {list(SLIDE_OUTPUT_1)}",
                )
            )
        )


# ----------------------------------------------------------------------------- self-attention


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


# ----------------------------------------------------------------------------- the lecture's questions


def check_weight_matrices(n_weight_matrices) -> None:
    """How many weight matrices does (single-head) self-attention learn? Three: W_q, W_k, W_v."""
    if n_weight_matrices == 3 and not _isinstance(n_weight_matrices, bool):
        return
    if n_weight_matrices == 9:
        raise Mistake("ps1.weight_matrices.per_input", "9 = 3 inputs × 3")
    raise Mistake("ps1.weight_matrices.wrong", f"you answered {n_weight_matrices!r}")


def _as_set(answer, name):
    if _isinstance(answer, (int,)) and not _isinstance(answer, bool):
        return {answer}
    if _isinstance(answer, (set, frozenset, list, _tuple)) and all(
        _isinstance(a, int) and not _isinstance(a, bool) for a in answer
    ):
        return set(answer)
    raise Mistake("ps1.related.wrong", f"{name} = {answer!r}: give input numbers, e.g. {{2}} or {{1, 3}}")


def check_related(most_related, least_related) -> None:
    """To which inputs is input 1 most and least related? Scores [2, 4, 4]: most {2, 3}, least {1}."""
    most, least = _as_set(most_related, "most_related"), _as_set(least_related, "least_related")
    if most == {2, 3} and least == {1}:
        return
    if most == {1} and least == {2, 3}:
        raise Mistake("ps1.related.swapped")
    if (most, least) in (({1, 2}, {0}),) or 0 in most | least:
        raise Mistake("ps1.related.zero_based", f"most={sorted(most)}, least={sorted(least)}")
    if most in ({2}, {3}) and least == {1}:
        raise Mistake("ps1.related.tie", f"you answered most={sorted(most)}")
    raise Mistake("ps1.related.wrong", f"most={sorted(most)}, least={sorted(least)}")


def _choice(answer, question, right, wrong_codes):
    letter = answer.strip().lower().strip("()").strip(".") if _isinstance(answer, str) else answer
    if letter == right:
        return
    if letter in wrong_codes:
        raise Mistake(f"ps1.{question}.{wrong_codes[letter]}", f"you answered {letter!r}")
    raise Mistake(f"ps1.{question}.not_an_option", f"you answered {answer!r}")


def check_why_dot_product(answer) -> None:
    """Multiple choice: why are the scores dot products? (b): a cheap similarity, all pairs in one matrix product."""
    _choice(answer, "why_dot_product", "b", {"a": "normalises", "c": "positive", "d": "position"})


def check_why_scaling(answer) -> None:
    """Multiple choice: why divide by √d_k? (c): dot products grow like √d_k and saturate the softmax."""
    _choice(answer, "why_scaling", "c", {"a": "normalises", "b": "speed", "d": "averages"})


seal(__name__)
