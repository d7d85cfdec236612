"""Self-attention, as the lecture explains it, and as a fast module.

``self_attention`` is the worked example of the lecture written out step by step: queries, keys
and values from three weight matrices, scores as dot products, scaled by 1/sqrt(d_k), a softmax
over the keys, and a weighted sum of the values. ``Attention`` is the multi-head layer of the ViT:
one fused ``qkv`` projection (timm's parameter names) and ``F.scaled_dot_product_attention``, with
an explicit path that also returns the per-head attention weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _as_tensor(name: str, value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    try:
        return torch.as_tensor(value, dtype=torch.get_default_dtype())
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a tensor or an array of numbers, got {type(value).__name__}") from err


def self_attention(x, w_q, w_k, w_v, mask=None, scale: bool = True):
    """Single-head self-attention over the tokens of ``x``.

    x: (N, D) or (B, N, D) tokens; w_q, w_k: (D, d_k); w_v: (D, d_v).
    mask: optional boolean (N, N) or (B, N, N), True where a query may attend to a key.
    Returns (output (…, N, d_v), weights (…, N, N)); each row of the weights sums to 1 over the keys.
    """
    x, w_q, w_k, w_v = (_as_tensor(n, v) for n, v in (("x", x), ("w_q", w_q), ("w_k", w_k), ("w_v", w_v)))
    if x.dim() not in (2, 3):
        raise ValueError(f"x must have shape (N, D) or (B, N, D), got {tuple(x.shape)}")
    for name, w in (("w_q", w_q), ("w_k", w_k), ("w_v", w_v)):
        if w.dim() != 2 or w.shape[0] != x.shape[-1]:
            raise ValueError(
                f"{name} must have shape ({x.shape[-1]}, d), matching x's last dimension; got {tuple(w.shape)}"
            )
    if w_q.shape[1] != w_k.shape[1]:
        raise ValueError(
            f"queries and keys must have the same size to take dot products: w_q gives {w_q.shape[1]}, w_k gives {w_k.shape[1]}"
        )

    query = x @ w_q  # (…, N, d_k)
    key = x @ w_k  # (…, N, d_k)
    value = x @ w_v  # (…, N, d_v)

    scores = query @ key.transpose(-2, -1)  # (…, N, N): scores[i, j] = query_i · key_j
    if scale:
        # Dot products of d_k-dimensional vectors grow like sqrt(d_k); unscaled, the softmax saturates.
        scores = scores / math.sqrt(key.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~_as_tensor("mask", mask).bool(), float("-inf"))
    weights = scores.softmax(dim=-1)  # over the keys: each query distributes one unit of attention
    return weights @ value, weights


class Attention(nn.Module):
    """Multi-head self-attention with a fused query/key/value projection.

    Input (B, N, dim) -> output (B, N, dim). ``forward(x, return_weights=True)`` takes the explicit
    path softmax(q·kᵀ/√d)·v and also returns the weights (B, num_heads, N, N).
    """

    def __init__(
        self, dim: int, num_heads: int = 8, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(
                f"dim {dim} is not divisible by num_heads {num_heads}; each head gets dim // num_heads channels"
            )
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, return_weights: bool = False):
        if x.dim() != 3:
            raise ValueError(f"Attention expects tokens of shape (B, N, dim), got {tuple(x.shape)}")
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (3, B, H, N, hd)
        query, key, value = qkv.unbind(0)  # each (B, H, N, hd)
        drop = self.attn_drop if self.training else 0.0
        if return_weights:
            weights = ((query * self.scale) @ key.transpose(-2, -1)).softmax(dim=-1)  # (B, H, N, N)
            out = F.dropout(weights, drop, self.training) @ value  # (B, H, N, hd)
        else:
            weights = None
            out = F.scaled_dot_product_attention(query, key, value, dropout_p=drop)
        out = out.transpose(1, 2).reshape(B, N, C)  # merge heads: (B, N, H*hd)
        out = self.proj_drop(self.proj(out))
        return (out, weights) if return_weights else out
