"""Checks for problem set 2, multi-head attention.

The test cells of ``ps2_multihead_attention`` call only these functions. Each check computes the
correct answer *and* the answers of the classic wrong implementations (no 1/√d scaling, softmax
over the queries, heads merged in the wrong order, ...) from the same weights; when a student's
result matches one of the wrong ones, the error names that mistake.

References are computed with torch functions captured when this module is imported, so a student
who reassigns ``torch.softmax`` or ``torch.matmul`` later does not change them.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vitkit.attention import Attention
from vitkit.grading import Mistake, as_tensor, close, largest_difference, seal

# Captured before any student code runs in this process.
_matmul = torch.matmul
_softmax = torch.softmax
_randn = torch.randn
_Generator = torch.Generator
_linear = torch.nn.functional.linear


# The mistakes these checks name, with their messages and hints, are rows of vitkit/grading/catalogue.py.

_REFUSED = object()  # what _refused returns when the student's code raised ValueError as asked


def _refused(call, what: str, wrong_error_code: str):
    """``call()``'s result, or :data:`_REFUSED` when it raised ValueError; an error of another kind (an assert, a
    TypeError...) is the named mistake ``wrong_error_code``, not "other"."""
    try:
        return call()
    except ValueError:
        return _REFUSED
    except Mistake:
        raise
    except Exception as err:
        raise Mistake(wrong_error_code, f"{what} raised {type(err).__name__}: {err}") from None


# ----------------------------------------------------------------------------- references


def _attend(x, wq, bq, wk, bk, wv, bv, wo, bo, num_heads, variant="correct"):
    """Multi-head self-attention with explicit weights; ``variant`` names a classic mistake to reproduce.

    x: (B, N, C); w*: (C, C) as in nn.Linear; returns (out (B, N, C), weights (B, H, N, N)).
    """
    B, N, C = x.shape
    hd = C // num_heads
    q, k, v = _linear(x, wq, bq), _linear(x, wk, bk), _linear(x, wv, bv)  # (B, N, C)
    if variant in ("heads_split_wrong_order", "heads_reshaped_both_ways"):
        q, k, v = (t.reshape(B, num_heads, N, hd) for t in (q, k, v))
    else:
        q, k, v = (t.reshape(B, N, num_heads, hd).transpose(1, 2) for t in (q, k, v))  # (B, H, N, hd)
    scores = _matmul(k, q.transpose(-2, -1)) if variant == "query_key_swapped" else _matmul(q, k.transpose(-2, -1))
    if variant == "scale_by_dim":
        scores = scores / math.sqrt(C)
    elif variant != "no_scale":
        scores = scores / math.sqrt(hd)
    if variant == "softmax_over_heads":
        weights = _softmax(scores, dim=1)
    elif variant == "softmax_across_heads":  # one softmax over every head's keys together
        weights = (
            _softmax(scores.transpose(1, 2).reshape(B, N, num_heads * N), dim=-1)
            .reshape(B, N, num_heads, N)
            .transpose(1, 2)
        )
    else:
        weights = _softmax(scores, dim=-2 if variant == "softmax_wrong_axis" else -1)  # (B, H, N, N)
    out = _matmul(weights, v)  # (B, H, N, hd)
    if variant in ("heads_merged_wrong_order", "heads_reshaped_both_ways"):
        out = out.reshape(B, N, C)
    elif variant == "heads_merged_interleaved":
        out = out.permute(0, 2, 3, 1).reshape(B, N, C)  # channels in (hd, H) order
    else:
        out = out.transpose(1, 2).reshape(B, N, C)
    if variant != "no_output_projection":
        out = _linear(out, wo, bo)
    return out, weights


_VARIANTS = (
    "no_scale",
    "scale_by_dim",
    "softmax_wrong_axis",
    "query_key_swapped",
    "heads_split_wrong_order",
    "heads_merged_wrong_order",
    "heads_reshaped_both_ways",
    "heads_merged_interleaved",
    "softmax_over_heads",
    "softmax_across_heads",
    "no_output_projection",
)
_CODES = {  # variants that are one mistake under another name
    "softmax_over_heads": "softmax_across_heads",
    "heads_reshaped_both_ways": "heads_split_wrong_order",  # split by reshape(B, H, N, hd), merged back by reshape
}


def _random_weights(dim: int, seed: int, dtype=torch.float32):
    g = _Generator().manual_seed(seed)
    mats = [_randn(dim, dim, generator=g, dtype=dtype) / math.sqrt(dim) * 1.5 for _ in range(4)]
    biases = [_randn(dim, generator=g, dtype=dtype) * 0.1 for _ in range(4)]
    return mats, biases


def _load_weights(student: nn.Module, mats, biases) -> None:
    """Copy query/key/value/output weights into the student's layers (separate or fused qkv)."""
    (wq, wk, wv, wo), (bq, bk, bv, bo) = mats, biases
    linears = {name: getattr(student, name, None) for name in ("query", "key", "value", "qkv", "proj")}
    have = {name for name, layer in linears.items() if isinstance(layer, nn.Linear)}
    if "proj" not in have or not ({"query", "key", "value"} <= have or "qkv" in have):
        found = ", ".join(f"{n}: {type(m).__name__}" for n, m in student.named_children()) or "no layers"
        raise Mistake("ps2.mhsa.layers_missing", f"found {found}")
    pairs = [(linears["proj"], wo, bo)]
    if {"query", "key", "value"} <= have:
        pairs += [(linears["query"], wq, bq), (linears["key"], wk, bk), (linears["value"], wv, bv)]
    else:
        pairs += [(linears["qkv"], torch.cat([wq, wk, wv]), torch.cat([bq, bk, bv]))]
    with torch.no_grad():
        for layer, w, b in pairs:
            if tuple(layer.weight.shape) != tuple(w.shape):
                raise Mistake(
                    "ps2.mhsa.layers_missing",
                    f"a layer has weight shape {tuple(layer.weight.shape)}, expected {tuple(w.shape)}",
                )
            layer.weight.copy_(w)
            if layer.bias is not None:
                layer.bias.copy_(b)
            else:
                raise Mistake(
                    "ps2.mhsa.layers_missing", "a layer was built with bias=False; keep the default bias=True"
                )


def _run(student: nn.Module, x: torch.Tensor):
    student.eval()
    with torch.no_grad():
        result = student(x)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise Mistake("ps2.mhsa.no_weights_returned", f"forward returned {type(result).__name__}")
    out, weights = result
    return as_tensor(out, "the output"), as_tensor(weights, "the weights")


def _diagnose(student_cls, dim: int, num_heads: int, batch: int, tokens: int, seed: int, dtype=torch.float32) -> None:
    """Build the student's module, load known weights, compare with the correct and the wrong references."""
    student = student_cls(dim, num_heads)
    mats, biases = _random_weights(dim, seed, dtype)
    student = student.to(dtype)
    _load_weights(student, mats, biases)
    g = _Generator().manual_seed(seed + 1)
    x = _randn(batch, tokens, dim, generator=g, dtype=dtype)
    out, weights = _run(student, x)
    args = (*[t for pair in zip(mats, biases) for t in pair], num_heads)
    ref_out, ref_weights = _attend(x.double(), *[a.double() if torch.is_tensor(a) else a for a in args])
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-10)
    where = f"dim={dim}, num_heads={num_heads}, x of shape {tuple(x.shape)}, {str(dtype).replace('torch.', '')}"
    if tuple(out.shape) != tuple(ref_out.shape):
        raise Mistake("ps2.mhsa.wrong_shape", f"{where}: got {tuple(out.shape)}, expected {tuple(ref_out.shape)}")
    if close(out, ref_out, **tol):
        if tuple(weights.shape) != tuple(ref_weights.shape):
            raise Mistake(
                "ps2.mhsa.weights_not_per_head",
                f"{where}: weights of shape {tuple(weights.shape)}, expected {tuple(ref_weights.shape)}",
            )
        if not close(weights, ref_weights, **tol):
            raise Mistake(
                "ps2.mhsa.weights_wrong",
                f"{where}: {largest_difference(weights, ref_weights)}",
            )
        return
    for variant in _VARIANTS:
        wrong_out, _ = _attend(x.double(), *[a.double() if torch.is_tensor(a) else a for a in args], variant=variant)
        if close(out, wrong_out, **tol):
            raise Mistake(f"ps2.mhsa.{_CODES.get(variant, variant)}", where)
    if tuple(weights.shape) == tuple(ref_weights.shape):
        sums = weights.sum(-1)
        if not close(sums, torch.ones_like(sums), rtol=1e-4, atol=1e-4):
            over_queries = weights.sum(-2)
            over_heads = weights.sum((1, -1))
            if close(over_queries, torch.ones_like(over_queries), rtol=1e-4, atol=1e-4):
                raise Mistake(
                    "ps2.mhsa.softmax_wrong_axis",
                    f"{where}: rows of your weights sum to {sums.flatten()[:3].tolist()}...",
                )
            if close(over_heads, torch.ones_like(over_heads), rtol=1e-4, atol=1e-4) or close(
                weights.sum(1), torch.ones_like(sums), rtol=1e-4, atol=1e-4
            ):
                raise Mistake(
                    "ps2.mhsa.softmax_across_heads",
                    f"{where}: rows of your weights sum to {sums.flatten()[:3].tolist()}...",
                )
    raise Mistake("ps2.mhsa.not_close", f"{where}: {largest_difference(out, ref_out)}")


# ----------------------------------------------------------------------------- the checks the notebook calls


def check_multihead_attention(student_cls) -> None:
    """Visible test: the student's ``MultiHeadSelfAttention`` on known weights, against the reference.

    Raises a Mistake naming the error (no scaling, softmax over the queries, heads merged wrong...).
    """
    _diagnose(student_cls, dim=12, num_heads=3, batch=2, tokens=5, seed=0)
    print("MultiHeadSelfAttention matches the reference on (2, 5, 12) tokens with 3 heads.")


def check_multihead_attention_hidden(student_cls) -> None:
    """Hidden test: several shapes and float64, weights copied from ``nn.MultiheadAttention`` and
    from ``vitkit.attention.Attention``, per-head weights compared, and the dim % num_heads check."""
    for i, (dim, heads, batch, tokens, dtype) in enumerate(
        [
            (8, 1, 1, 4, torch.float32),
            (16, 4, 3, 7, torch.float32),
            (24, 6, 2, 9, torch.float64),
            (32, 8, 1, 17, torch.float32),
        ]
    ):
        _diagnose(student_cls, dim, heads, batch, tokens, seed=10 + i, dtype=dtype)
    _compare_with_torch(student_cls)
    _compare_with_vitkit(student_cls)
    if _refused(lambda: student_cls(10, 3), "MultiHeadSelfAttention(10, 3)", "ps2.mhsa.wrong_error") is not _REFUSED:
        raise Mistake("ps2.mhsa.no_divisibility_check", "MultiHeadSelfAttention(10, 3) did not raise ValueError")
    print("MultiHeadSelfAttention agrees with nn.MultiheadAttention and vitkit's Attention.")


def _compare_with_torch(student_cls, dim: int = 16, heads: int = 4) -> None:
    torch_mha = nn.MultiheadAttention(dim, heads, batch_first=True).double()
    with torch.no_grad():
        for p in torch_mha.parameters():
            p.copy_(_randn(p.shape, generator=_Generator().manual_seed(p.numel()), dtype=torch.float64) * 0.3)
    wq, wk, wv = torch_mha.in_proj_weight.detach().chunk(3)
    bq, bk, bv = torch_mha.in_proj_bias.detach().chunk(3)
    mats, biases = [wq, wk, wv, torch_mha.out_proj.weight.detach()], [bq, bk, bv, torch_mha.out_proj.bias.detach()]
    student = student_cls(dim, heads).double()
    _load_weights(student, mats, biases)
    x = _randn(2, 6, dim, generator=_Generator().manual_seed(5), dtype=torch.float64)
    out, weights = _run(student, x)
    with torch.no_grad():
        ref_out, ref_weights = torch_mha(x, x, x, need_weights=True, average_attn_weights=False)
    where = "weights copied from torch.nn.MultiheadAttention(16, 4)"
    if tuple(out.shape) != tuple(ref_out.shape):
        raise Mistake("ps2.mhsa.wrong_shape", f"{where}: got {tuple(out.shape)}, expected {tuple(ref_out.shape)}")
    if not close(out, ref_out, rtol=1e-7, atol=1e-9):
        raise Mistake("ps2.mhsa.not_close", f"{where}: {largest_difference(out, ref_out)}")
    if tuple(weights.shape) != tuple(ref_weights.shape):
        raise Mistake(
            "ps2.mhsa.weights_not_per_head",
            f"{where}: weights of shape {tuple(weights.shape)}, expected {tuple(ref_weights.shape)}",
        )
    if not close(weights, ref_weights, rtol=1e-7, atol=1e-9):
        raise Mistake("ps2.mhsa.weights_wrong", f"{where}: {largest_difference(weights, ref_weights)}")


def _compare_with_vitkit(student_cls, dim: int = 12, heads: int = 2) -> None:
    with torch.random.fork_rng():
        torch.manual_seed(3)
        reference = Attention(dim, heads).double().eval()
    wq, wk, wv = reference.qkv.weight.detach().chunk(3)
    bq, bk, bv = reference.qkv.bias.detach().chunk(3)
    mats, biases = [wq, wk, wv, reference.proj.weight.detach()], [bq, bk, bv, reference.proj.bias.detach()]
    student = student_cls(dim, heads).double()
    _load_weights(student, mats, biases)
    x = _randn(3, 5, dim, generator=_Generator().manual_seed(7), dtype=torch.float64) * 3
    out, weights = _run(student, x)
    ref_out, ref_weights = _attend(x, wq, bq, wk, bk, wv, bv, mats[3], biases[3], heads)
    where = "weights copied from vitkit.attention.Attention(12, num_heads=2)"
    if not (close(out, ref_out, rtol=1e-7, atol=1e-9) and close(weights, ref_weights, rtol=1e-7, atol=1e-9)):
        raise Mistake("ps2.mhsa.not_close", where)


def check_parameter_count(student_fn) -> None:
    """The student's ``mhsa_parameter_count(dim, num_heads, bias=True)`` on several sizes, ViT-B's included."""
    cases = [(768, 12, True), (12, 3, True), (64, 8, False), (192, 3, True)]
    formulas = {
        "no_bias": lambda d, h, b: 4 * d * d,
        "bias_ignored": lambda d, h, b: 4 * d * d + 4 * d,
        "no_output_projection": lambda d, h, b: 3 * d * d + (3 * d if b else 0),
        "per_head": lambda d, h, b: h * (3 * d * d + (3 * d if b else 0)) + d * d + (d if b else 0),
        "per_head_all": lambda d, h, b: h * (4 * d * d + (4 * d if b else 0)),
        "head_dim": lambda d, h, b: 3 * d * (d // h) + d * d + ((3 * (d // h) + d) if b else 0),
    }
    for d, h, b in cases:
        expected = 4 * d * d + (4 * d if b else 0)
        got = student_fn(d, h, bias=b)
        try:
            whole = not isinstance(got, bool) and float(got) == int(got)
        except (TypeError, ValueError):
            whole = False
        if not whole:
            raise Mistake(
                "ps2.params.wrong", f"mhsa_parameter_count({d}, {h}, bias={b}) returned {got!r}, not a whole number"
            )
        got = int(got)
        if got == expected:
            continue
        for name, formula in formulas.items():
            if formula(d, h, b) == got and formula(d, h, b) != expected:
                code = "ps2.params.per_head" if name == "per_head_all" else f"ps2.params.{name}"
                raise Mistake(code, f"mhsa_parameter_count({d}, {h}, bias={b}) returned {got:,}")
        raise Mistake("ps2.params.wrong", f"mhsa_parameter_count({d}, {h}, bias={b}) returned {got:,}")
    print("Parameter counts are right, ViT-B/16's 2,362,368 per attention layer included.")


def check_output_shape(student_fn) -> None:
    """The student's ``attention_output_shape(query_shape, key_shape, value_shape)``: (n_q, d_v) or ValueError."""
    valid = [
        ((3, 4), (3, 4), (3, 4), (3, 4)),
        ((5, 8), (5, 8), (5, 2), (5, 2)),
        ((1, 16), (197, 16), (197, 16), (1, 16)),
        ((2, 6), (7, 6), (7, 3), (2, 3)),
    ]
    for q, k, v, expected in valid:
        try:
            got = student_fn(q, k, v)
        except ValueError as err:
            code = (
                "ps2.shapes.value_dim_rejected"
                if v[1] != k[1]
                else "ps2.shapes.query_count_rejected"
                if q[0] != k[0]
                else "ps2.shapes.output_wrong"
            )
            raise Mistake(code, f"attention_output_shape({q}, {k}, {v}) raised ValueError: {err}") from None
        if tuple(int(s) for s in got) != expected:
            raise Mistake(
                "ps2.shapes.output_wrong",
                f"attention_output_shape({q}, {k}, {v}) returned {tuple(got)}, expected {expected}",
            )
    invalid = [
        ((3, 4), (3, 5), (3, 4), "ps2.shapes.query_key_mismatch_accepted"),
        ((4, 8), (4, 6), (4, 6), "ps2.shapes.query_key_mismatch_accepted"),
        ((3, 4), (3, 4), (5, 4), "ps2.shapes.key_value_count_accepted"),
        ((2, 4), (6, 4), (3, 2), "ps2.shapes.key_value_count_accepted"),
    ]
    for q, k, v, code in invalid:
        call = f"attention_output_shape({q}, {k}, {v})"
        got = _refused(lambda: student_fn(q, k, v), call, "ps2.shapes.wrong_error")
        if got is _REFUSED:
            continue
        raise Mistake(code, f"attention_output_shape({q}, {k}, {v}) returned {got} instead of raising ValueError")
    print("attention_output_shape knows which dimensions must match.")


seal(__name__)
