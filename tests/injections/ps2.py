"""Problem set 2 (multi-head attention): classic wrong answers and differently written right ones."""

from __future__ import annotations

from tests.injections import Injection

# The solution's class with the forward pass's steps as slots, so each wrong answer changes one step.
_MHSA = """
class MultiHeadSelfAttention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        if dim % num_heads:
            raise ValueError("dim must be divisible by num_heads")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, dim = x.shape
        H, hd = self.num_heads, self.head_dim
        q, k, v = self.query(x), self.key(x), self.value(x)
        q, k, v = [{split} for t in (q, k, v)]
        scores = {scores}
        weights = scores.softmax(dim={axis})
        out = weights @ v
        out = {merge}
        return {proj}, weights
"""
_RIGHT = dict(
    split="t.reshape(B, N, H, hd).transpose(1, 2)",
    scores="q @ k.transpose(-2, -1) / math.sqrt(hd)",
    axis="-1",
    merge="out.transpose(1, 2).reshape(B, N, dim)",
    proj="self.proj(out)",
)


def _mhsa(**change) -> str:
    return _MHSA.format(**{**_RIGHT, **change})


WRONG = [
    # the issue 14 trial: split by reshape(B, H, N, hd) and merged back by reshape got only "not close"
    Injection(
        "mhsa",
        "ps2.mhsa.heads_split_wrong_order",
        _mhsa(split="t.reshape(B, H, N, hd)", merge="out.reshape(B, N, dim)"),
        name="mhsa/heads_split_wrong_order/reshaped_both_ways",
    ),
    # the issue 14 trial: an assert instead of ValueError was reported as "other: AssertionError"
    Injection(
        "mhsa",
        "ps2.mhsa.wrong_error",
        _mhsa().replace(
            'if dim % num_heads:\n            raise ValueError("dim must be divisible by num_heads")',
            'assert dim % num_heads == 0, "num_heads must divide dim"',
        ),
        name="mhsa/wrong_error/assert",
    ),
    Injection(
        "shapes",
        "ps2.shapes.wrong_error",
        """
        def attention_output_shape(query_shape, key_shape, value_shape):
            (n_q, d_q), (n_k, d_k), (n_v, d_v) = query_shape, key_shape, value_shape
            assert d_q == d_k and n_k == n_v, "shapes do not fit"
            return (n_q, d_v)
    """,
    ),
    # issue 14: mistakes that were only "not close" or named wrongly
    Injection("mhsa", "ps2.mhsa.heads_merged_interleaved", _mhsa(merge="out.permute(0, 2, 3, 1).reshape(B, N, dim)")),
    Injection(
        "mhsa",
        "ps2.mhsa.softmax_across_heads",
        _mhsa().replace(
            "weights = scores.softmax(dim=-1)",
            "weights = scores.transpose(1, 2).reshape(B, N, H * N).softmax(dim=-1).reshape(B, N, H, N).transpose(1, 2)",
        ),
        name="mhsa/ps2.mhsa.softmax_across_heads/flattened",
    ),
    Injection("mhsa", "ps2.mhsa.no_scale", _mhsa(scores="q @ k.transpose(-2, -1)")),
    Injection("mhsa", "ps2.mhsa.scale_by_dim", _mhsa(scores="q @ k.transpose(-2, -1) / math.sqrt(dim)")),
    Injection("mhsa", "ps2.mhsa.softmax_wrong_axis", _mhsa(axis="-2")),
    Injection(
        "mhsa", "ps2.mhsa.softmax_across_heads", _mhsa(axis="1"), name="mhsa/softmax over heads"
    ),  # was "over the queries"
    Injection("mhsa", "ps2.mhsa.query_key_swapped", _mhsa(scores="k @ q.transpose(-2, -1) / math.sqrt(hd)")),
    Injection("mhsa", "ps2.mhsa.heads_split_wrong_order", _mhsa(split="t.reshape(B, H, N, hd)")),
    Injection("mhsa", "ps2.mhsa.heads_merged_wrong_order", _mhsa(merge="out.reshape(B, N, dim)")),
    Injection("mhsa", "ps2.mhsa.no_output_projection", _mhsa(proj="out")),
    Injection(
        "mhsa",
        "ps2.mhsa.weights_not_per_head",
        _mhsa().replace("return self.proj(out), weights", "return self.proj(out), weights.mean(dim=1)"),
    ),
    Injection(
        "mhsa",
        "ps2.mhsa.no_weights_returned",
        _mhsa().replace("return self.proj(out), weights", "return self.proj(out)"),
    ),
    Injection(
        "mhsa",
        "ps2.mhsa.layers_missing",
        _mhsa()
        .replace("self.proj = nn.Linear(dim, dim)", "self.out = nn.Linear(dim, dim)")
        .replace("self.proj(out)", "self.out(out)"),
    ),
    Injection(
        "mhsa",
        "ps2.mhsa.no_divisibility_check",
        _mhsa().replace('raise ValueError("dim must be divisible by num_heads")', "pass"),
    ),
    Injection(
        "params",
        "ps2.params.no_bias",
        "def mhsa_parameter_count(dim, num_heads, bias=True):\n    return 4 * dim * dim\n",
    ),
    Injection(
        "params",
        "ps2.params.bias_ignored",
        "def mhsa_parameter_count(dim, num_heads, bias=True):\n    return 4 * (dim * dim + dim)\n",
    ),
    Injection(
        "params",
        "ps2.params.no_output_projection",
        "def mhsa_parameter_count(dim, num_heads, bias=True):\n    return 3 * (dim * dim + (dim if bias else 0))\n",
    ),
    Injection(
        "params",
        "ps2.params.per_head",
        "def mhsa_parameter_count(dim, num_heads, bias=True):\n    return num_heads * 4 * (dim * dim + (dim if bias else 0))\n",
    ),
    Injection(
        "params",
        "ps2.params.head_dim",
        """
        def mhsa_parameter_count(dim, num_heads, bias=True):
            hd = dim // num_heads
            return 3 * (dim * hd + (hd if bias else 0)) + dim * dim + (dim if bias else 0)
    """,
    ),
    Injection(
        "shapes",
        "ps2.shapes.value_dim_rejected",
        """
        def attention_output_shape(query_shape, key_shape, value_shape):
            if not (query_shape[1] == key_shape[1] == value_shape[1]) or key_shape[0] != value_shape[0]:
                raise ValueError("all sizes must match")
            return (query_shape[0], value_shape[1])
    """,
    ),
    Injection(
        "shapes",
        "ps2.shapes.query_key_mismatch_accepted",
        """
        def attention_output_shape(query_shape, key_shape, value_shape):
            if key_shape[0] != value_shape[0]:
                raise ValueError("keys and values differ in number")
            return (query_shape[0], value_shape[1])
    """,
    ),
    Injection(
        "shapes",
        "ps2.shapes.key_value_count_accepted",
        """
        def attention_output_shape(query_shape, key_shape, value_shape):
            if query_shape[1] != key_shape[1]:
                raise ValueError("queries and keys differ in size")
            return (query_shape[0], value_shape[1])
    """,
    ),
    Injection(
        "shapes",
        "ps2.shapes.query_count_rejected",
        """
        def attention_output_shape(query_shape, key_shape, value_shape):
            if query_shape[1] != key_shape[1] or not (query_shape[0] == key_shape[0] == value_shape[0]):
                raise ValueError("mismatch")
            return (query_shape[0], value_shape[1])
    """,
    ),
    Injection(
        "shapes",
        "ps2.shapes.output_wrong",
        """
        def attention_output_shape(query_shape, key_shape, value_shape):
            if query_shape[1] != key_shape[1] or key_shape[0] != value_shape[0]:
                raise ValueError("mismatch")
            return (query_shape[0], key_shape[1])
    """,
    ),
]

# Passing by replacing the comparison functions is caught, never rewarded. It patches torch for the
# rest of the process, so it runs on its own, not with WRONG.
TAMPERING = [
    Injection(
        "mhsa",
        "tampering",
        "torch.allclose = lambda *args, **kwargs: True\n" + _mhsa(axis="-2"),
        name="mhsa/tampering/allclose",
    )
]

CORRECT = [
    # einsum instead of matmul, a fused qkv layer, and the scale applied to the queries.
    Injection(
        "mhsa",
        None,
        """
        class MultiHeadSelfAttention(nn.Module):
            def __init__(self, dim, num_heads):
                super().__init__()
                if dim % num_heads != 0:
                    raise ValueError(f"{dim} % {num_heads} != 0")
                self.h = num_heads
                self.qkv = nn.Linear(dim, 3 * dim)
                self.proj = nn.Linear(dim, dim)

            def forward(self, x):
                B, N, D = x.shape
                d = D // self.h
                q, k, v = self.qkv(x).reshape(B, N, 3, self.h, d).unbind(2)  # each (B, N, H, d)
                w = torch.einsum("bnhd,bmhd->bhnm", q * d ** -0.5, k).softmax(-1)
                out = torch.einsum("bhnm,bmhd->bnhd", w, v).reshape(B, N, D)
                return self.proj(out), w
    """,
    ),
    # einops, the softmax written out, and a loop over heads.
    Injection(
        "mhsa",
        None,
        """
        from einops import rearrange

        class MultiHeadSelfAttention(nn.Module):
            def __init__(self, dim, num_heads):
                super().__init__()
                assert dim % num_heads == 0 or (_ for _ in ()).throw(ValueError("bad"))
                self.num_heads = num_heads
                self.query, self.key, self.value, self.proj = (nn.Linear(dim, dim) for _ in range(4))

            def forward(self, x):
                q, k, v = (rearrange(f(x), "b n (h d) -> b h n d", h=self.num_heads) for f in (self.query, self.key, self.value))
                heads, weights = [], []
                for h in range(self.num_heads):
                    s = q[:, h] @ k[:, h].transpose(1, 2) / q.shape[-1] ** 0.5
                    e = torch.exp(s - s.max(dim=-1, keepdim=True).values)
                    w = e / e.sum(dim=-1, keepdim=True)
                    heads.append(w @ v[:, h])
                    weights.append(w)
                out = rearrange(torch.stack(heads, 1), "b h n d -> b n (h d)")
                return self.proj(out), torch.stack(weights, 1)
    """,
    ),
    Injection(
        "params",
        None,
        """
        def mhsa_parameter_count(dim, num_heads, bias=True):
            layer = nn.MultiheadAttention(dim, num_heads, bias=bias)
            return sum(p.numel() for p in layer.parameters())
    """,
    ),
    Injection(
        "params", None, "def mhsa_parameter_count(dim, num_heads, bias=True):\n    return 4 * dim * (dim + int(bias))\n"
    ),
    Injection(
        "shapes",
        None,
        """
        def attention_output_shape(query_shape, key_shape, value_shape):
            q = torch.zeros(query_shape); k = torch.zeros(key_shape); v = torch.zeros(value_shape)
            try:
                return tuple(((q @ k.T).softmax(-1) @ v).shape)
            except RuntimeError as err:
                raise ValueError(str(err))
    """,
    ),
    # issue 14: at least three correct answers per graded function, written differently from the solution
    Injection(
        "mhsa",
        None,
        """
        import torch.nn.functional as F

        class MultiHeadSelfAttention(nn.Module):
            def __init__(self, dim, num_heads):
                super().__init__()
                if dim % num_heads:
                    raise ValueError(f"num_heads={num_heads} does not divide dim={dim}")
                self.heads = num_heads
                self.query = nn.Linear(dim, dim)
                self.key = nn.Linear(dim, dim)
                self.value = nn.Linear(dim, dim)
                self.proj = nn.Linear(dim, dim)

            def forward(self, x):
                B, N, D = x.shape
                split = lambda layer: F.linear(x, layer.weight, layer.bias).view(B, N, self.heads, -1).permute(0, 2, 1, 3)
                q, k, v = split(self.query), split(self.key), split(self.value)
                weights = F.softmax(torch.matmul(q, k.permute(0, 1, 3, 2)) / math.sqrt(q.size(-1)), dim=-1)
                out = torch.matmul(weights, v).permute(0, 2, 1, 3).contiguous().view(B, N, D)
                return self.proj(out), weights
    """,
        name="mhsa/correct/functional_permute",
    ),
    Injection(
        "params",
        None,
        """
        def mhsa_parameter_count(dim, num_heads, bias=True):
            return sum(dim * dim + (dim if bias else 0) for _ in ("query", "key", "value", "proj"))
    """,
        name="params/correct/sum_over_layers",
    ),
    Injection(
        "shapes",
        None,
        """
        def attention_output_shape(query_shape, key_shape, value_shape):
            n_q, d_q = query_shape
            n_k, d_k = key_shape
            n_v, d_v = value_shape
            if d_q == d_k and n_k == n_v:
                return n_q, d_v
            raise ValueError("incompatible shapes")
    """,
        name="shapes/correct/tuple",
    ),
    Injection(
        "shapes",
        None,
        """
        def attention_output_shape(query_shape, key_shape, value_shape):
            assert len(query_shape) == len(key_shape) == len(value_shape) == 2
            if query_shape[1] != key_shape[1] or key_shape[0] != value_shape[0]:
                raise ValueError(f"cannot attend: {query_shape}, {key_shape}, {value_shape}")
            return [query_shape[0], value_shape[1]]
    """,
        name="shapes/correct/list",
    ),
]
