"""vitkit.attention: the didactic self_attention and the multi-head Attention module."""

import math

import pytest
import torch
import torch.nn.functional as F

from vitkit import worked_example
from vitkit.attention import Attention, self_attention

# The lecture's worked example: three 4-d inputs, 3-d queries, keys and values.
X, W_K, W_Q, W_V = (
    torch.tensor(m) for m in (worked_example.X, worked_example.W_K, worked_example.W_Q, worked_example.W_V)
)


def test_worked_example_queries_keys_values_and_scores():
    assert torch.equal(X @ W_K, torch.tensor([[0.0, 1, 1], [4, 4, 0], [2, 3, 1]]))
    assert torch.equal(X @ W_Q, torch.tensor([[1.0, 0, 2], [2, 2, 2], [2, 1, 3]]))
    assert torch.equal(X @ W_V, torch.tensor([[1.0, 2, 3], [2, 8, 0], [2, 6, 3]]))
    _, weights = self_attention(X, W_Q, W_K, W_V, scale=False)
    scores = (X @ W_Q) @ (X @ W_K).T
    assert torch.equal(scores[0], torch.tensor([2.0, 4, 4]))
    assert torch.allclose(weights[0], torch.softmax(torch.tensor([2.0, 4, 4]), 0))
    # What vitkit.worked_example says the slides compute is what its inputs give.
    assert torch.equal(X @ W_K, torch.tensor(worked_example.KEYS))
    assert torch.equal(X @ W_Q, torch.tensor(worked_example.QUERIES))
    assert torch.equal(X @ W_V, torch.tensor(worked_example.VALUES))
    assert torch.equal(scores, torch.tensor(worked_example.SCORES))


def test_worked_example_output_with_slide_weights():
    # The slide rounds input 1's weights to [0, 0.5, 0.5]: its new representation is [2.0, 7.0, 1.5].
    values = X @ W_V
    assert torch.equal(torch.tensor([0.0, 0.5, 0.5]) @ values, torch.tensor([2.0, 7.0, 1.5]))
    slide_weights, slide_output = (
        torch.tensor(worked_example.SLIDE_WEIGHTS_1),
        torch.tensor(worked_example.SLIDE_OUTPUT_1),
    )
    assert torch.equal(slide_weights @ values, slide_output)
    out, _ = self_attention(X, W_Q, W_K, W_V, scale=False)
    assert torch.allclose(out[0], torch.tensor([1.9366, 6.6831, 1.5950]), atol=1e-4)


@pytest.mark.parametrize("shape", [(5, 8), (3, 7, 8)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_self_attention_matches_the_formula_and_sdpa(shape, dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g, dtype=dtype)
    w_q, w_k, w_v = (torch.randn(8, d, generator=g, dtype=dtype) for d in (4, 4, 6))
    out, weights = self_attention(x, w_q, w_k, w_v)
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    expected_weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(4), dim=-1)
    assert torch.allclose(weights, expected_weights)
    assert torch.allclose(weights.sum(-1), torch.ones(weights.shape[:-1], dtype=dtype))
    assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v), atol=1e-5)
    assert out.dtype == dtype and out.shape == (*shape[:-1], 6)


def test_self_attention_mask_blocks_keys():
    x = torch.randn(4, 8)
    w = torch.randn(8, 8)
    causal = torch.ones(4, 4).tril().bool()
    _, weights = self_attention(x, w, w, w, mask=causal)
    assert torch.all(weights[~causal] == 0)
    assert torch.allclose(weights.sum(-1), torch.ones(4))


def test_self_attention_accepts_nested_lists():
    out, weights = self_attention(X.tolist(), W_Q.tolist(), W_K.tolist(), W_V.tolist())
    assert out.shape == (3, 3) and weights.shape == (3, 3)


@pytest.mark.parametrize(
    "x, w_q, w_k, message",
    [
        (torch.randn(4), torch.randn(4, 3), torch.randn(4, 3), "shape"),
        (torch.randn(3, 4), torch.randn(5, 3), torch.randn(4, 3), "w_q must have shape"),
        (torch.randn(3, 4), torch.randn(4, 3), torch.randn(4, 2), "same size"),
    ],
)
def test_self_attention_rejects_bad_shapes(x, w_q, w_k, message):
    with pytest.raises(ValueError, match=message):
        self_attention(x, w_q, w_k, torch.randn(4, 3))


def test_attention_fast_path_equals_explicit_path():
    torch.manual_seed(0)
    attn = Attention(48, num_heads=6).eval()
    x = torch.randn(2, 11, 48)
    fast = attn(x)
    explicit, weights = attn(x, return_weights=True)
    assert torch.allclose(fast, explicit, atol=1e-5)
    assert weights.shape == (2, 6, 11, 11)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 6, 11))


def test_attention_equals_torch_multihead_attention():
    torch.manual_seed(0)
    ours = Attention(32, num_heads=4).eval()
    theirs = torch.nn.MultiheadAttention(32, 4, batch_first=True).eval()
    with torch.no_grad():
        theirs.in_proj_weight.copy_(ours.qkv.weight)
        theirs.in_proj_bias.copy_(ours.qkv.bias)
        theirs.out_proj.weight.copy_(ours.proj.weight)
        theirs.out_proj.bias.copy_(ours.proj.bias)
    x = torch.randn(3, 9, 32)
    expected, expected_weights = theirs(x, x, x, average_attn_weights=False)
    out, weights = ours(x, return_weights=True)
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.allclose(weights, expected_weights, atol=1e-6)


def test_attention_rejects_bad_sizes():
    with pytest.raises(ValueError, match="not divisible by num_heads 5"):
        Attention(32, num_heads=5)
    with pytest.raises(ValueError, match=r"\(B, N, dim\)"):
        Attention(32, num_heads=4)(torch.randn(9, 32))
