"""The mistake catalogue, as data: every named mistake a check can report, with its message and hint.

Imports no torch (nor anything of vitkit): the checks (:mod:`vitkit.grading`), the sandbox, the
feedback and the class-wide report all read this one table. A code is ``<ps>.<question>.<what>``
(``ps1.softmax.wrong_axis``) or a general one shared by every problem set (``not_close``); its
question is the graded function it belongs to. Adding a problem set adds its rows here and its
checks in ``grading/psN.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class MistakeInfo:
    code: str  # stable, short: "<ps>.<question>.<what>"
    question: str  # the graded function or answer it belongs to, e.g. "ps1.softmax"
    message: str  # what is wrong, addressed to the student
    hint: str  # how to fix it


_ROWS = (
    # --- general
    (
        "not_written",
        "general",
        "this answer is not written yet (it raises NotImplementedError)",
        "replace `raise NotImplementedError()` with your code",
    ),
    # --- integrity
    (
        "tampering",
        "integrity",
        "the testing functions were replaced or patched in this notebook",
        "remove the code that assigns to torch.testing, numpy.testing, builtins or vitkit.grading; tests only pass with the real checks",
    ),
    # --- general
    (
        "not_a_tensor",
        "general",
        "the function returned something that is not a tensor or an array of numbers",
        "return a torch.Tensor (or a numpy array); did you forget a return statement?",
    ),
    (
        "wrong_shape",
        "general",
        "the result has the wrong shape",
        "compare the shapes after each step with the shapes the docstring asks for",
    ),
    (
        "not_close",
        "general",
        "the result differs from the correct values",
        "check each step against the lecture's worked example",
    ),
    # --- ps1.softmax
    (
        "ps1.softmax.not_written",
        "ps1.softmax",
        "softmax is not written yet (it raises NotImplementedError)",
        "replace `raise NotImplementedError()` with your code",
    ),
    (
        "ps1.softmax.wrong_axis",
        "ps1.softmax",
        "your softmax normalises over the wrong axis: the weights must sum to 1 over axis `dim`",
        "reduce with dim=dim (and keepdim=True), not over a fixed axis",
    ),
    (
        "ps1.softmax.not_normalised",
        "ps1.softmax",
        "your softmax weights do not sum to 1 over axis `dim`",
        "divide exp(x) by its sum over `dim`, taken with keepdim=True",
    ),
    (
        "ps1.softmax.global_sum",
        "ps1.softmax",
        "you divide by the sum over the whole tensor, so each slice along `dim` does not sum to 1",
        "sum over `dim` only: e.sum(dim=dim, keepdim=True)",
    ),
    (
        "ps1.softmax.max_not_keepdim",
        "ps1.softmax",
        "you subtract the maximum without keepdim=True, so it broadcasts along the wrong axis",
        "x.amax(dim=dim, keepdim=True) keeps the reduced axis so each slice loses its own maximum",
    ),
    (
        "ps1.softmax.sum_not_keepdim",
        "ps1.softmax",
        "you divide by the sum without keepdim=True, so the sums broadcast along the wrong axis",
        "e.sum(dim=dim, keepdim=True) keeps the reduced axis so each slice is divided by its own sum",
    ),
    (
        "ps1.softmax.unstable",
        "ps1.softmax",
        "your softmax overflows for large inputs (exp(1000) is inf, inf/inf is nan): it is not numerically stable",
        "subtract the maximum over `dim` before exp: softmax(x) = softmax(x - max(x)), and exp(≤0) never overflows",
    ),
    (
        "ps1.softmax.global_max",
        "ps1.softmax",
        "you subtract one maximum for the whole tensor: slices far below it underflow to 0/0 = nan",
        "subtract each slice's own maximum: x.amax(dim=dim, keepdim=True)",
    ),
    (
        "ps1.softmax.wrong_shape",
        "ps1.softmax",
        "your softmax changes the shape of its input",
        "return one weight per input value: keep the reduced axes with keepdim=True",
    ),
    (
        "ps1.softmax.dtype",
        "ps1.softmax",
        "your softmax changes the dtype of its input",
        "compute with the input's own dtype; do not build new tensors with a fixed dtype",
    ),
    (
        "ps1.softmax.used_builtin",
        "ps1.softmax",
        "your softmax calls torch's softmax: this exercise asks you to write it yourself",
        "use torch.exp, a maximum and a sum; not torch.softmax, F.softmax or Tensor.softmax",
    ),
    (
        "ps1.softmax.wrong_values",
        "ps1.softmax",
        "your softmax gives wrong values",
        "softmax(x)_i = exp(x_i - m) / Σ_j exp(x_j - m) along `dim`, with m the maximum along `dim`",
    ),
    # --- ps1.worked_example
    (
        "ps1.worked_example.not_written",
        "ps1.worked_example",
        "the worked example is not written yet (queries, keys, values, scores or output_1 is still None)",
        "replace `raise NotImplementedError()` in the worked example's cell with your code",
    ),
    (
        "ps1.worked_example.queries_keys_swapped",
        "ps1.worked_example",
        "your queries and keys are swapped",
        "queries = X @ W_q and keys = X @ W_k",
    ),
    (
        "ps1.worked_example.wrong_projection",
        "ps1.worked_example",
        "your queries, keys or values differ from the lecture's",
        "stack the inputs as rows of X (3×4) and multiply on the right: X @ W (3×3)",
    ),
    (
        "ps1.worked_example.keys_not_transposed",
        "ps1.worked_example",
        "queries @ keys multiplies each query with the *columns* of keys, not with each key",
        "scores = queries @ keys.T: row i holds query i's dot products with every key",
    ),
    (
        "ps1.worked_example.scores_scaled",
        "ps1.worked_example",
        "your scores are already divided by √d_k; the slide's scores are the raw dot products",
        "scores = queries @ keys.T; the scaling comes later",
    ),
    (
        "ps1.worked_example.wrong_scores",
        "ps1.worked_example",
        "your scores differ from the lecture's",
        "scores[i, j] = query_i · key_j",
    ),
    (
        "ps1.worked_example.exact_softmax",
        "ps1.worked_example",
        "you used the exact softmax; this question asks for the slide's rounded weights [0, 0.5, 0.5]",
        "output_1 = 0 * value_1 + 0.5 * value_2 + 0.5 * value_3; the next cells show what the exact softmax changes",
    ),
    (
        "ps1.worked_example.output_not_values",
        "ps1.worked_example",
        "input 1's new representation must be a weighted sum of the *values*",
        "weight the values (X @ W_v), not the keys, queries or inputs",
    ),
    (
        "ps1.worked_example.wrong_output",
        "ps1.worked_example",
        "input 1's new representation differs from the slide's",
        "weighted sum of the values with the weights [0, 0.5, 0.5]",
    ),
    # --- ps1.self_attention
    (
        "ps1.self_attention.not_written",
        "ps1.self_attention",
        "self_attention is not written yet (it raises NotImplementedError)",
        "replace `raise NotImplementedError()` with your code",
    ),
    (
        "ps1.self_attention.not_a_pair",
        "ps1.self_attention",
        "self_attention must return a pair (output, weights)",
        "end with `return output, weights`",
    ),
    (
        "ps1.self_attention.return_order",
        "ps1.self_attention",
        "you return (weights, output): the order is (output, weights)",
        "end with `return output, weights`",
    ),
    (
        "ps1.self_attention.wrong_shape",
        "ps1.self_attention",
        "a result of self_attention has the wrong shape",
        "output is (…, N, d_v), one new representation per token; weights are (…, N, N), one row per query",
    ),
    (
        "ps1.self_attention.no_scale",
        "ps1.self_attention",
        "your scores are √d_k too large: did you forget the scaling?",
        "divide the scores by math.sqrt(d_k) before the softmax (d_k = the size of a key)",
    ),
    (
        "ps1.self_attention.wrong_scale",
        "ps1.self_attention",
        "you scale the scores by the wrong amount",
        "divide by √d_k, the square root of the size of a key (w_k.shape[1])",
    ),
    (
        "ps1.self_attention.scaled_after_softmax",
        "ps1.self_attention",
        "you divide by √d_k after the softmax: your attention weights no longer sum to 1",
        "scale the scores, then take the softmax",
    ),
    (
        "ps1.self_attention.weights_wrong_axis",
        "ps1.self_attention",
        "your attention weights sum to 1 over the queries (axis -2), not over the keys (axis -1)",
        "take the softmax over the last axis: each query distributes one unit of attention over the keys",
    ),
    (
        "ps1.self_attention.scores_transposed",
        "ps1.self_attention",
        "your scores are transposed: row i must hold query i's dot products with every key",
        "scores = query @ key.transpose(-2, -1)",
    ),
    (
        "ps1.self_attention.weights_not_normalised",
        "ps1.self_attention",
        "your attention weights do not sum to 1 over the keys (axis -1)",
        "apply your softmax over the last axis to the scaled scores",
    ),
    (
        "ps1.self_attention.wrong_weights",
        "ps1.self_attention",
        "your attention weights differ from softmax(QKᵀ/√d_k)",
        "check each step against the worked example",
    ),
    (
        "ps1.self_attention.transposed_weights",
        "ps1.self_attention",
        "your output uses the transposed weights: token i must get Σ_j weights[i, j] · value_j",
        "output = weights @ value",
    ),
    (
        "ps1.self_attention.no_value_projection",
        "ps1.self_attention",
        "your output is a weighted sum of the inputs x, not of the values",
        "value = x @ w_v; output = weights @ value",
    ),
    (
        "ps1.self_attention.wrong_output",
        "ps1.self_attention",
        "your output differs from weights @ values",
        "output = weights @ (x @ w_v)",
    ),
    (
        "ps1.self_attention.batch",
        "ps1.self_attention",
        "self_attention works for one sequence (N, D) but not for a batch (B, N, D)",
        "`.T` reverses every dimension of a 3-D tensor; use .transpose(-2, -1) and reduce over dim=-1",
    ),
    (
        "ps1.self_attention.dtype",
        "ps1.self_attention",
        "self_attention changes the dtype of its input",
        "compute in the input's dtype; do not create new tensors with a fixed dtype",
    ),
    (
        "ps1.self_attention.used_library",
        "ps1.self_attention",
        "self_attention calls a library's attention: this exercise asks you to write it yourself",
        "do not call F.scaled_dot_product_attention, nn.MultiheadAttention or vitkit's self_attention; use matrix products and your softmax",
    ),
    # --- ps1.pixels_to_tokens
    (
        "ps1.pixels_to_tokens.not_written",
        "ps1.pixels_to_tokens",
        "pixels_to_tokens is not written yet (it raises NotImplementedError)",
        "replace `raise NotImplementedError()` with your code",
    ),
    (
        "ps1.pixels_to_tokens.no_permute",
        "ps1.pixels_to_tokens",
        "you reshape (C, H, W) to (H·W, C) without moving the channels last: the numbers of different pixels get mixed",
        "image.permute(1, 2, 0).reshape(H * W, C), or image.flatten(1).T",
    ),
    (
        "ps1.pixels_to_tokens.column_major",
        "ps1.pixels_to_tokens",
        "your pixels are in column order; tokens must follow the reading order (row by row)",
        "flatten (H, W) with H first: image.permute(1, 2, 0), not image.permute(2, 1, 0)",
    ),
    (
        "ps1.pixels_to_tokens.channels_first",
        "ps1.pixels_to_tokens",
        "you return (C, H·W): one row per channel instead of one row per pixel",
        "transpose it: each token (row) is one pixel with its C channel values",
    ),
    (
        "ps1.pixels_to_tokens.wrong_shape",
        "ps1.pixels_to_tokens",
        "your tokens have the wrong shape",
        "an image (C, H, W) gives H·W tokens of C values: shape (H·W, C)",
    ),
    (
        "ps1.pixels_to_tokens.wrong",
        "ps1.pixels_to_tokens",
        "your tokens differ from the image's pixels in reading order",
        "token k = pixel (k // W, k % W), its C channel values",
    ),
    # --- ps1.attention_pairs
    (
        "ps1.attention_pairs.not_written",
        "ps1.attention_pairs",
        "attention_pairs is not written yet (it raises NotImplementedError)",
        "replace `raise NotImplementedError()` with your code",
    ),
    (
        "ps1.attention_pairs.tokens_not_pairs",
        "ps1.attention_pairs",
        "you count the tokens, not the pairs of tokens that attention scores",
        "every token's query meets every token's key: N tokens make N² pairs",
    ),
    (
        "ps1.attention_pairs.patch_area",
        "ps1.attention_pairs",
        "a P×P patch holds P² pixels: you divided by P",
        "the number of patches is (H / P) · (W / P)",
    ),
    (
        "ps1.attention_pairs.unordered_pairs",
        "ps1.attention_pairs",
        "attention scores every ordered pair (query i, key j), including each token with itself: N², not about N²/2",
        "scores[i, j] and scores[j, i] are different numbers: count N · N",
    ),
    (
        "ps1.attention_pairs.no_self_pairs",
        "ps1.attention_pairs",
        "each token also attends to itself: N², not N(N−1)",
        "the scores matrix is N × N, its diagonal included",
    ),
    (
        "ps1.attention_pairs.wrong",
        "ps1.attention_pairs",
        "your number of attention pairs is wrong",
        "tokens N = (H / P) · (W / P); pairs = N²",
    ),
    # --- ps1.weight_matrices
    (
        "ps1.weight_matrices.per_input",
        "ps1.weight_matrices",
        "the inputs do not get their own weight matrices: all of them share the same W_q, W_k, W_v",
        "count the learned matrices of the worked example: W_q, W_k, W_v",
    ),
    (
        "ps1.weight_matrices.wrong",
        "ps1.weight_matrices",
        "that is not the number of weight matrices self-attention learns",
        "queries, keys and values each come from one learned matrix",
    ),
    # --- ps1.related
    (
        "ps1.related.swapped",
        "ps1.related",
        "you swapped most and least related",
        "input 1's scores are [2, 4, 4]: higher scores mean more related",
    ),
    (
        "ps1.related.tie",
        "ps1.related",
        "inputs 2 and 3 tie: both have score 4 with input 1",
        "give every input with the highest score, as a set: {2, 3}",
    ),
    (
        "ps1.related.zero_based",
        "ps1.related",
        "inputs are numbered 1, 2, 3 as on the slides, not from 0",
        "input 1 is x1 = [1, 0, 1, 0]",
    ),
    (
        "ps1.related.wrong",
        "ps1.related",
        "that is not what input 1's scores [2, 4, 4] say",
        "the larger query_1 · key_j, the more input 1 is related to input j",
    ),
    # --- ps1.why_dot_product
    (
        "ps1.why_dot_product.not_an_option",
        "ps1.why_dot_product",
        "your answer is not one of the options",
        "set the variable to one letter: 'a', 'b', 'c' or 'd'",
    ),
    (
        "ps1.why_dot_product.normalises",
        "ps1.why_dot_product",
        "the dot product does not make the weights sum to 1",
        "that is the softmax's job; what does a dot product of two similar vectors give?",
    ),
    (
        "ps1.why_dot_product.positive",
        "ps1.why_dot_product",
        "dot products can be negative ([1, 0] · [-1, 0] = -1)",
        "the softmax's exponential makes the weights positive; what does the dot product measure?",
    ),
    (
        "ps1.why_dot_product.position",
        "ps1.why_dot_product",
        "the dot product compares contents (a query and a key), not positions",
        "positions enter through position embeddings (lecture 2)",
    ),
    # --- ps1.why_scaling
    (
        "ps1.why_scaling.not_an_option",
        "ps1.why_scaling",
        "your answer is not one of the options",
        "set the variable to one letter: 'a', 'b', 'c' or 'd'",
    ),
    (
        "ps1.why_scaling.normalises",
        "ps1.why_scaling",
        "dividing by √d_k does not make the weights sum to 1 (the softmax does)",
        "look at how the size of a dot product grows with d_k",
    ),
    (
        "ps1.why_scaling.speed",
        "ps1.why_scaling",
        "the scaling is one more division: it does not make anything faster",
        "look at how the size of a dot product grows with d_k",
    ),
    (
        "ps1.why_scaling.averages",
        "ps1.why_scaling",
        "the scaling does not average the values",
        "it acts on the scores, before the softmax: what happens to softmax of large scores?",
    ),
    # --- ps2.mhsa
    (
        "ps2.mhsa.layers_missing",
        "ps2.mhsa",
        "your module does not have the layers the tests load weights into",
        "create self.query, self.key, self.value and self.proj as nn.Linear(dim, dim) in __init__ (or one fused self.qkv = nn.Linear(dim, 3 * dim) and self.proj)",
    ),
    (
        "ps2.mhsa.no_weights_returned",
        "ps2.mhsa",
        "forward must return two things: the output tokens and the attention weights",
        "end forward with `return out, weights`, weights of shape (B, num_heads, N, N)",
    ),
    (
        "ps2.mhsa.wrong_shape",
        "ps2.mhsa",
        "the output tokens have the wrong shape",
        "the output has the input's shape (B, N, dim): merge the heads back into dim channels",
    ),
    (
        "ps2.mhsa.weights_not_per_head",
        "ps2.mhsa",
        "the attention weights do not have one N×N matrix per head",
        "return the weights before merging heads, shape (B, num_heads, N, N); do not average or sum them over the heads",
    ),
    (
        "ps2.mhsa.no_scale",
        "ps2.mhsa",
        "the scores are not scaled: the output is what softmax(q·kᵀ)·v gives, without 1/√d",
        "divide the scores q·kᵀ by √head_dim before the softmax",
    ),
    (
        "ps2.mhsa.scale_by_dim",
        "ps2.mhsa",
        "the scores are scaled by 1/√dim instead of 1/√head_dim",
        "each head takes dot products of head_dim = dim // num_heads numbers: scale by head_dim ** -0.5",
    ),
    (
        "ps2.mhsa.softmax_wrong_axis",
        "ps2.mhsa",
        "the softmax runs over the queries instead of over the keys: weights do not sum to 1 over the keys",
        "use softmax(dim=-1) on scores of shape (B, H, N_queries, N_keys), so each query spreads one unit of attention over the keys",
    ),
    (
        "ps2.mhsa.query_key_swapped",
        "ps2.mhsa",
        "the scores are k·qᵀ instead of q·kᵀ: row i should hold query i's scores against every key",
        "compute scores = query @ key.transpose(-2, -1)",
    ),
    (
        "ps2.mhsa.heads_split_wrong_order",
        "ps2.mhsa",
        "the heads are split in the wrong order: a head does not get a contiguous block of head_dim channels of every token",
        "split with .reshape(B, N, num_heads, head_dim).transpose(1, 2), not .reshape(B, num_heads, N, head_dim)",
    ),
    (
        "ps2.mhsa.heads_merged_wrong_order",
        "ps2.mhsa",
        "the heads are merged in the wrong order: tokens and heads are mixed up in the output",
        "merge (B, H, N, head_dim) with .transpose(1, 2).reshape(B, N, dim); a plain .reshape(B, N, dim) without the transpose mixes tokens",
    ),
    (
        "ps2.mhsa.heads_merged_interleaved",
        "ps2.mhsa",
        "the heads are merged with their channels interleaved: (head_dim, heads) instead of (heads, head_dim)",
        "move the heads next to the tokens and keep each head's channels together: out.transpose(1, 2).reshape(B, N, dim)",
    ),
    (
        "ps2.mhsa.softmax_across_heads",
        "ps2.mhsa",
        "the softmax runs across the heads: each head's weights must sum to 1 over the keys on their own",
        "take the softmax of the (B, H, N, N) scores over the last axis only: scores.softmax(dim=-1)",
    ),
    (
        "ps2.mhsa.no_output_projection",
        "ps2.mhsa",
        "the output projection self.proj is not applied after merging the heads",
        "return self.proj(merged), the layer that mixes the heads' results",
    ),
    (
        "ps2.mhsa.weights_wrong",
        "ps2.mhsa",
        "the attention weights you return differ from the correct softmax(q·kᵀ/√head_dim)",
        "return the weights you multiply the values with, shape (B, num_heads, N, N), each row summing to 1",
    ),
    (
        "ps2.mhsa.not_close",
        "ps2.mhsa",
        "the output differs from correct multi-head attention",
        "check each step: project, split into heads, scores, scale, softmax over the keys, weighted sum of values, merge, project",
    ),
    (
        "ps2.mhsa.no_divisibility_check",
        "ps2.mhsa",
        "MultiHeadSelfAttention(dim, num_heads) accepted a dim that num_heads does not divide",
        "in __init__, raise ValueError when dim % num_heads != 0, naming both numbers",
    ),
    (
        "ps2.mhsa.wrong_error",
        "ps2.mhsa",
        "MultiHeadSelfAttention(dim, num_heads) rejected a dim that num_heads does not divide, but not with ValueError",
        "raise ValueError(...) naming both numbers: an assert raises AssertionError, which is not what a caller "
        "expects for a bad argument (and disappears under python -O)",
    ),
    # --- ps2.params
    (
        "ps2.params.no_bias",
        "ps2.params",
        "the count leaves out the biases",
        "each nn.Linear(dim, dim) has dim × dim weights plus dim biases",
    ),
    (
        "ps2.params.bias_ignored",
        "ps2.params",
        "the count includes biases even when bias=False",
        "add the 4 × dim biases only when bias is True",
    ),
    (
        "ps2.params.no_output_projection",
        "ps2.params",
        "the count leaves out the output projection",
        "there are four dim × dim matrices: query, key, value and the output projection",
    ),
    (
        "ps2.params.per_head",
        "ps2.params",
        "the count grows with the number of heads, but splitting into heads adds no parameters",
        "the heads share the dim × dim projections: each head uses head_dim of their dim output channels",
    ),
    (
        "ps2.params.head_dim",
        "ps2.params",
        "the count uses head_dim where dim belongs",
        "the query, key and value projections map dim channels to dim channels (all heads together)",
    ),
    (
        "ps2.params.wrong",
        "ps2.params",
        "the parameter count is wrong",
        "count the weights and biases of the four nn.Linear(dim, dim) layers",
    ),
    # --- ps2.shapes
    (
        "ps2.shapes.value_dim_rejected",
        "ps2.shapes",
        "you rejected values whose size differs from the keys' size, but that is allowed",
        "the values are only averaged with the weights; their size d_v can be anything",
    ),
    (
        "ps2.shapes.query_key_mismatch_accepted",
        "ps2.shapes",
        "queries and keys of different sizes were accepted",
        "a score is a dot product query·key: raise ValueError unless d_q == d_k",
    ),
    (
        "ps2.shapes.key_value_count_accepted",
        "ps2.shapes",
        "a different number of keys and values was accepted",
        "each key belongs to one value (weight j multiplies value j): raise ValueError unless n_k == n_v",
    ),
    (
        "ps2.shapes.wrong_error",
        "ps2.shapes",
        "attention_output_shape rejected impossible shapes, but not with ValueError",
        "raise ValueError(...) saying which sizes do not match: an assert raises AssertionError, which is not what "
        "a caller expects for a bad argument (and disappears under python -O)",
    ),
    (
        "ps2.shapes.query_count_rejected",
        "ps2.shapes",
        "you rejected a number of queries different from the number of keys, but that is allowed",
        "each query gets its own row of weights over the keys; n_q can be anything (cross-attention, a CLS-only query)",
    ),
    (
        "ps2.shapes.output_wrong",
        "ps2.shapes",
        "the output shape is wrong",
        "one output per query, each a weighted sum of values: (n_q, d_v)",
    ),
    # --- ps3.patchify
    (
        "ps3.patchify.wrong_shape",
        "ps3.patchify",
        "the patches have the wrong shape",
        "(B, C, H, W) becomes (B, N, P·P·C) with N = (H/P)·(W/P) patches",
    ),
    (
        "ps3.patchify.wrong_order",
        "ps3.patchify",
        "each patch is flattened channel first, (c p1 p2), instead of (p1 p2 c)",
        "move the channel axis last before flattening a patch: (B, h, w, p1, p2, C) -> (B, h·w, p1·p2·C)",
    ),
    (
        "ps3.patchify.rows_cols_swapped",
        "ps3.patchify",
        "inside each patch, columns come before rows: (p2 p1 c) instead of (p1 p2 c)",
        "flatten a patch row by row: the row inside the patch (p1) before the column (p2)",
    ),
    (
        "ps3.patchify.no_permute",
        "ps3.patchify",
        "a plain reshape cuts the image into strips of pixels, not into P×P squares",
        "reshape to (B, C, H/P, P, W/P, P), permute to (B, H/P, W/P, P, P, C), then reshape to (B, N, P·P·C)",
    ),
    (
        "ps3.patchify.grid_column_major",
        "ps3.patchify",
        "the patches are listed column by column; the lecture numbers them row by row",
        "order the grid axes (row of patches, column of patches), i.e. (B, h, w, ...) before flattening to N = h·w",
    ),
    (
        "ps3.patchify.python_loop",
        "ps3.patchify",
        "patchify uses a Python loop over patches (it ran one tensor operation per patch)",
        "cut all patches at once with reshape and permute (or einops.rearrange); loops are slow on large images",
    ),
    (
        "ps3.patchify.no_divisibility_check",
        "ps3.patchify",
        "an image whose side the patch size does not divide was accepted",
        "raise ValueError naming the image size and the patch size when H % P or W % P is not 0",
    ),
    (
        "ps3.patchify.not_close",
        "ps3.patchify",
        "the patches differ from the correct ones",
        "patch n is the P×P square in patch-row n // (W/P), patch-column n % (W/P), flattened in (p1 p2 c) order",
    ),
    # --- ps3.tokens
    (
        "ps3.tokens.dim_without_channels",
        "ps3.tokens",
        "the token dimensionality leaves out the colour channels",
        "a token holds every value of its patch: P·P pixels × C channels",
    ),
    (
        "ps3.tokens.count_one_side",
        "ps3.tokens",
        "the token count is the number of patches along one side only",
        "the patches form a (H/P) × (W/P) grid: N = (H/P)·(W/P)",
    ),
    (
        "ps3.tokens.square_assumed",
        "ps3.tokens",
        "the token count assumes a square image",
        "use both sides: N = (H/P)·(W/P)",
    ),
    (
        "ps3.tokens.cls_counted",
        "ps3.tokens",
        "the count includes a CLS token; the question asks for the patch tokens",
        "count patches only: N = (H/P)·(W/P); the CLS token comes later",
    ),
    (
        "ps3.tokens.no_divisibility_check",
        "ps3.tokens",
        "a patch size that does not divide the image was accepted",
        "raise ValueError when height or width is not a multiple of the patch size",
    ),
    (
        "ps3.tokens.wrong",
        "ps3.tokens",
        "the token count or dimensionality is wrong",
        "N = (H/P)·(W/P) tokens, each P·P·C values; 224×224×3 with 16×16 patches gives 196 tokens of 768 values",
    ),
    # --- ps3.embed
    (
        "ps3.embed.proj_missing",
        "ps3.embed",
        "PatchEmbedding has no self.proj = nn.Linear(P·P·C, embed_dim) for the tests to load weights into",
        "in __init__, create self.proj = nn.Linear(patch_size * patch_size * in_chans, embed_dim)",
    ),
    (
        "ps3.embed.proj_wrong_size",
        "ps3.embed",
        "self.proj has the wrong size: each patch has P·P·C values (every channel), and each token embed_dim",
        "self.proj = nn.Linear(patch_size * patch_size * in_chans, embed_dim)",
    ),
    (
        "ps3.embed.wrong_shape",
        "ps3.embed",
        "the patch embedding has the wrong shape",
        "PatchEmbedding maps (B, C, H, W) to (B, N, embed_dim)",
    ),
    (
        "ps3.embed.transposed",
        "ps3.embed",
        "the tokens come out as (B, embed_dim, N) instead of (B, N, embed_dim)",
        "apply self.proj to patchify(images) of shape (B, N, P·P·C): nn.Linear works on the last axis",
    ),
    (
        "ps3.embed.patch_order",
        "ps3.embed",
        "the linear layer sees patches flattened in another order than patchify's (p1 p2 c)",
        "embed exactly patchify(images, patch_size): the weights the tests load expect that order",
    ),
    (
        "ps3.embed.not_close",
        "ps3.embed",
        "the patch embedding differs from self.proj(patchify(images))",
        "forward should be: patches = patchify(images, P) (B, N, P·P·C); return self.proj(patches)",
    ),
    # --- ps3.conv
    (
        "ps3.conv.not_a_conv",
        "ps3.conv",
        "the function did not return an nn.Conv2d",
        "build and return nn.Conv2d(in_chans, embed_dim, kernel_size=P, stride=P)",
    ),
    (
        "ps3.conv.no_stride",
        "ps3.conv",
        "the convolution slides one pixel at a time: it makes overlapping patches",
        "use stride=patch_size so the kernel jumps from one patch to the next",
    ),
    (
        "ps3.conv.weight_order",
        "ps3.conv",
        "the linear weights were reshaped to (D, C, P, P) directly, but their columns are in (p1 p2 c) order",
        "reshape to (D, P, P, C) first, then permute to (D, C, P, P)",
    ),
    (
        "ps3.conv.kernel_transposed",
        "ps3.conv",
        "the kernel is transposed: rows and columns of the patch are swapped",
        "after reshaping to (D, P, P, C), permute with (0, 3, 1, 2): channels, then rows (p1), then columns (p2)",
    ),
    (
        "ps3.conv.bias_missing",
        "ps3.conv",
        "the convolution does not carry the linear layer's bias",
        "copy linear.bias into conv.bias",
    ),
    (
        "ps3.conv.wrong_shape",
        "ps3.conv",
        "the convolution's output has the wrong shape",
        "nn.Conv2d(in_chans, embed_dim, kernel_size=P, stride=P) maps (B, C, H, W) to (B, D, H/P, W/P)",
    ),
    (
        "ps3.conv.not_close",
        "ps3.conv",
        "the convolution does not compute the same tokens as the linear patch embedding",
        "copy linear.weight reshaped to (D, P, P, C) and permuted to (D, C, P, P), and linear.bias",
    ),
    # --- ps3.cls
    (
        "ps3.cls.appended",
        "ps3.cls",
        "the CLS token is appended at the end; it goes first",
        "torch.cat([cls, tokens], dim=1): the classifier reads token 0",
    ),
    (
        "ps3.cls.replaced_first",
        "ps3.cls",
        "the CLS token overwrote the first patch token instead of being added as a new token",
        "prepend: the result has N + 1 tokens",
    ),
    (
        "ps3.cls.added_to_tokens",
        "ps3.cls",
        "the CLS token was added to every token instead of being prepended as its own token",
        "concatenate along the token axis (dim=1), do not sum",
    ),
    (
        "ps3.cls.wrong_shape",
        "ps3.cls",
        "the tokens with CLS have the wrong shape",
        "tokens (B, N, D) and cls_token (1, 1, D) give (B, N + 1, D): expand the CLS token to the batch",
    ),
    (
        "ps3.cls.not_expanded",
        "ps3.cls",
        "the one CLS token was not given to every image of the batch",
        "cls_token has shape (1, 1, D): expand it to (B, 1, D) with cls_token.expand(B, -1, -1) before concatenating",
    ),
    (
        "ps3.cls.not_close",
        "ps3.cls",
        "the tokens with CLS differ from the correct ones",
        "token 0 is the CLS token, tokens 1..N the patches unchanged",
    ),
    # --- ps3.sincos
    (
        "ps3.sincos.wrong_shape",
        "ps3.sincos",
        "the position embeddings have the wrong shape",
        "one row per patch: (grid_h · grid_w, dim)",
    ),
    (
        "ps3.sincos.rows_cols_swapped",
        "ps3.sincos",
        "the first half of the channels encodes the column and the second the row; it is the other way round",
        "channels [0, dim/2) encode the patch's row, [dim/2, dim) its column",
    ),
    (
        "ps3.sincos.sin_cos_swapped",
        "ps3.sincos",
        "cosines come before sines",
        "within each half: sin(position·ω) first, then cos(position·ω)",
    ),
    (
        "ps3.sincos.frequencies_wrong",
        "ps3.sincos",
        "the frequencies are wrong: each half uses dim/4 frequencies ω_k = 1 / 10000^(k / (dim/4))",
        "use k = 0 … dim/4 − 1 and the exponent k / (dim/4), not k / (dim/2) or k / dim",
    ),
    (
        "ps3.sincos.sin_cos_interleaved",
        "ps3.sincos",
        "sines and cosines are interleaved (sin ω₀, cos ω₀, sin ω₁, ...); the notebook puts all sines first, then all cosines",
        "within each half: torch.cat([sin(position·ω), cos(position·ω)]) over all dim/4 frequencies, not one pair per frequency",
    ),
    (
        "ps3.sincos.one_dimensional",
        "ps3.sincos",
        "the embedding encodes the patch's index in the flattened sequence, not its row and column",
        "compute the row and the column of each patch (row-major grid) and encode each in half of the channels",
    ),
    (
        "ps3.sincos.not_close",
        "ps3.sincos",
        "the position embeddings differ from the 2-D sine-cosine ones",
        "rows: [sin(r·ω), cos(r·ω)], columns: [sin(c·ω), cos(c·ω)], concatenated: (h·w, dim)",
    ),
    # --- ps3.pos_embed
    (
        "ps3.pos_embed.wrong_tokens",
        "ps3.pos_embed",
        "the position embeddings are added to the wrong tokens: shifted by one",
        "pos_embed[:, 0] belongs to the CLS token and pos_embed[:, 1:] to the patches: prepend CLS first, then add pos_embed",
    ),
    (
        "ps3.pos_embed.cls_without_position",
        "ps3.pos_embed",
        "the CLS token got no position embedding",
        "add the whole pos_embed (1, N + 1, D) after prepending the CLS token",
    ),
    (
        "ps3.pos_embed.missing",
        "ps3.pos_embed",
        "no position embeddings were added",
        "add pos_embed to the tokens: without it, attention cannot tell where a patch is",
    ),
    (
        "ps3.pos_embed.cls_appended",
        "ps3.pos_embed",
        "the CLS token is appended at the end; it goes first",
        "prepend it, as in prepend_cls",
    ),
    (
        "ps3.pos_embed.wrong_shape",
        "ps3.pos_embed",
        "the embedded image has the wrong shape",
        "(B, C, H, W) -> (B, N + 1, D)",
    ),
    (
        "ps3.pos_embed.not_close",
        "ps3.pos_embed",
        "the embedded tokens differ from the correct ones",
        "patch_embedding(images), then CLS prepended, then pos_embed added",
    ),
    # --- ps3.pad
    (
        "ps3.pad.not_a_pair",
        "ps3.pad",
        "pad_or_truncate must return two things: the tokens and the mask",
        "return tokens, mask",
    ),
    (
        "ps3.pad.wrong_shape",
        "ps3.pad",
        "the padded or truncated tokens or mask have the wrong shape",
        "tokens (B, length, D) and mask (B, length)",
    ),
    (
        "ps3.pad.front",
        "ps3.pad",
        "the padding went in front of the tokens; it goes at the end",
        "keep the real tokens first (CLS at position 0) and append zeros",
    ),
    (
        "ps3.pad.kept_last",
        "ps3.pad",
        "truncating kept the last tokens and dropped the first ones, the CLS token among them",
        "keep tokens[:, :length]",
    ),
    (
        "ps3.pad.mask_inverted",
        "ps3.pad",
        "the mask is inverted: it must be True for real tokens and False for padding",
        "mask[:, i] = i < number of real tokens",
    ),
    ("ps3.pad.nonzero_padding", "ps3.pad", "the padding tokens are not zeros", "pad with torch.zeros"),
    (
        "ps3.pad.mask_not_bool",
        "ps3.pad",
        "the mask is not boolean",
        "build it with a comparison, e.g. torch.arange(length) < n, so its dtype is torch.bool",
    ),
    (
        "ps3.pad.not_close",
        "ps3.pad",
        "the padded or truncated tokens differ from the correct ones",
        "longer: keep tokens[:, :length]; shorter: append zero tokens; mask True where a real token is",
    ),
    # --- ps3.resample
    (
        "ps3.resample.wrong_shape",
        "ps3.resample",
        "the resampled position embeddings have the wrong shape",
        "(1, 1 + h·w, D) -> (1, 1 + H·W, D): the CLS entry stays in front",
    ),
    (
        "ps3.resample.cls_dropped",
        "ps3.resample",
        "the CLS token's position embedding was dropped",
        "keep pos_embed[:, :1] and put it back in front",
    ),
    (
        "ps3.resample.not_2d",
        "ps3.resample",
        "the sequence was stretched in 1-D; the positions form a 2-D grid",
        "reshape the grid tokens to (1, D, h, w) and interpolate in 2-D",
    ),
    (
        "ps3.resample.wrong_layout",
        "ps3.resample",
        "the tokens were reshaped to (1, D, h, w) without moving the channel axis: the grid is scrambled",
        "reshape (1, h·w, D) to (1, h, w, D), then permute(0, 3, 1, 2); undo it the same way after interpolating",
    ),
    (
        "ps3.resample.wrong_mode",
        "ps3.resample",
        "the interpolation is not bicubic with align_corners=False",
        "F.interpolate(grid, size=(H, W), mode='bicubic', align_corners=False)",
    ),
    (
        "ps3.resample.not_a_tensor",
        "ps3.resample",
        "resample_position_grid did not return a tensor",
        "return the new (1, 1 + H·W, D) tensor",
    ),
    (
        "ps3.resample.cls_changed",
        "ps3.resample",
        "the CLS entry changed: it has no position on the grid and must be kept as it is",
        "resample only pos_embed[:, 1:] and put pos_embed[:, :1] back in front unchanged",
    ),
    (
        "ps3.resample.align_corners",
        "ps3.resample",
        "the interpolation used align_corners=True",
        "use F.interpolate(..., align_corners=False), as timm and vitkit do",
    ),
    (
        "ps3.resample.nearest",
        "ps3.resample",
        "nearest-neighbour resampling copies embeddings in blocks",
        "use mode='bicubic', align_corners=False, as the question asks",
    ),
    (
        "ps3.resample.not_close",
        "ps3.resample",
        "the resampled position embeddings differ from the correct ones",
        "split off the CLS entry, reshape the grid to (1, D, h, w), interpolate bicubically to (H, W), flatten back, prepend CLS",
    ),
    # --- ps4.mlp
    (
        "ps4.mlp.names",
        "ps4.mlp",
        "your MLP does not have the layers the tests load weights into",
        "create self.fc1 = nn.Linear(dim, hidden), self.act = nn.GELU() and self.fc2 = nn.Linear(hidden, dim), with exactly these names",
    ),
    (
        "ps4.mlp.wrong_shape",
        "ps4.mlp",
        "the MLP changes the shape of the tokens",
        "the MLP maps (B, N, dim) to (B, N, dim): fc1 widens to hidden, fc2 narrows back to dim",
    ),
    (
        "ps4.mlp.no_activation",
        "ps4.mlp",
        "the MLP has no non-linearity between fc1 and fc2: two linear layers are just one linear layer",
        "apply self.act (GELU) to fc1's output before fc2",
    ),
    (
        "ps4.mlp.relu",
        "ps4.mlp",
        "the MLP uses ReLU; ViT's MLP uses GELU",
        "use nn.GELU() (the exact one, approximate='none')",
    ),
    (
        "ps4.mlp.activation_after_fc2",
        "ps4.mlp",
        "the GELU is applied after fc2 instead of between fc1 and fc2",
        "compute fc2(act(fc1(x))): the output of the MLP is not passed through the activation",
    ),
    (
        "ps4.mlp.not_close",
        "ps4.mlp",
        "the MLP's output differs from fc2(GELU(fc1(x)))",
        "compute self.fc2(self.act(self.fc1(x)))",
    ),
    # --- ps4.block
    (
        "ps4.block.names",
        "ps4.block",
        "your Block does not have the layers the tests load weights into",
        "create self.norm1, self.attn, self.norm2 and self.mlp with exactly these names (timm's), as the skeleton says",
    ),
    (
        "ps4.block.wrong_shape",
        "ps4.block",
        "the block changes the shape of the tokens",
        "a block maps tokens (B, N, dim) to tokens (B, N, dim)",
    ),
    (
        "ps4.block.post_norm",
        "ps4.block",
        "the block is post-norm (LayerNorm after adding the residual, as in the original Transformer); ViT is pre-norm",
        "normalise the input of each sub-layer and add the sub-layer's output to the un-normalised x: x = x + self.attn(self.norm1(x))",
    ),
    (
        "ps4.block.no_residual",
        "ps4.block",
        "a residual connection is missing: the sub-layer's output replaces x instead of being added to it",
        "write x = x + self.attn(self.norm1(x)) and x = x + self.mlp(self.norm2(x))",
    ),
    (
        "ps4.block.residual_normalised",
        "ps4.block",
        "the residual adds the sub-layer's output to the normalised x instead of to x itself",
        "keep x un-normalised on the residual path: x = x + self.attn(self.norm1(x)), not h = self.norm1(x); x = h + self.attn(h)",
    ),
    (
        "ps4.block.no_norm",
        "ps4.block",
        "the sub-layers get x without LayerNorm",
        "normalise before each sub-layer: self.attn(self.norm1(x)), self.mlp(self.norm2(x))",
    ),
    (
        "ps4.block.norm_swapped",
        "ps4.block",
        "the two LayerNorms are swapped or one is used twice",
        "norm1 belongs to the attention, norm2 to the MLP: each has its own learned scale and shift",
    ),
    (
        "ps4.block.mlp_first",
        "ps4.block",
        "the MLP runs before the attention",
        "attention first (tokens exchange information), then the MLP (each token alone)",
    ),
    (
        "ps4.block.parallel",
        "ps4.block",
        "attention and MLP both read the block's input (in parallel); ViT runs them one after the other",
        "the MLP reads the x that already includes the attention's residual: x = x + attn(...); x = x + mlp(norm2(x))",
    ),
    (
        "ps4.block.not_close",
        "ps4.block",
        "the block's output differs from the pre-norm block",
        "x = x + self.attn(self.norm1(x)); x = x + self.mlp(self.norm2(x))",
    ),
    # --- ps4.vit
    (
        "ps4.vit.names",
        "ps4.vit",
        "your VisionTransformer does not have the parameters the tests load weights into",
        "use timm's names: self.patch_embed (with .proj, a Conv2d), self.cls_token, self.pos_embed, self.blocks (nn.ModuleList of Block), self.norm, self.head",
    ),
    (
        "ps4.vit.cls_shape",
        "ps4.vit",
        "the CLS token or the position embeddings have the wrong shape",
        "cls_token is nn.Parameter of shape (1, 1, dim); pos_embed (1, 1 + num_patches, dim): one position for the CLS token and one per patch",
    ),
    (
        "ps4.vit.wrong_shape",
        "ps4.vit",
        "the output has the wrong shape",
        "embed gives (B, 1 + num_patches, dim); forward gives logits (B, num_classes)",
    ),
    (
        "ps4.vit.cls_appended",
        "ps4.vit",
        "the CLS token is appended after the patch tokens instead of prepended",
        "put it first: torch.cat([cls, tokens], dim=1), so that token 0 is the CLS token",
    ),
    (
        "ps4.vit.no_cls",
        "ps4.vit",
        "the sequence has no CLS token",
        "prepend self.cls_token (expanded to the batch) to the patch tokens",
    ),
    (
        "ps4.vit.cls_not_shared",
        "ps4.vit",
        "the CLS token differs between images of the batch",
        "expand the one learned cls_token to (B, 1, dim): cls_token.expand(B, -1, -1)",
    ),
    (
        "ps4.vit.pos_embed_wrong_tokens",
        "ps4.vit",
        "the position embeddings are added to the wrong tokens",
        "prepend the CLS token first, then add all of pos_embed: entry 0 to the CLS token, entries 1..N to patches 1..N",
    ),
    (
        "ps4.vit.no_pos_embed",
        "ps4.vit",
        "the position embeddings are not added",
        "add self.pos_embed to the tokens (after prepending the CLS token)",
    ),
    (
        "ps4.vit.patches_wrong",
        "ps4.vit",
        "the patch tokens are wrong",
        "embed with self.patch_embed(images): (B, C, H, W) -> (B, num_patches, dim), patches in row-major order",
    ),
    (
        "ps4.vit.no_final_norm",
        "ps4.vit",
        "the final LayerNorm (self.norm) is not applied",
        "after the last block: tokens = self.norm(tokens), then classify",
    ),
    (
        "ps4.vit.mean_pool",
        "ps4.vit",
        "the head classifies the mean of the tokens instead of the CLS token",
        "classify the CLS token: self.head(tokens[:, 0])",
    ),
    (
        "ps4.vit.wrong_token_classified",
        "ps4.vit",
        "the head classifies a token that is not the CLS token",
        "the CLS token is token 0: self.head(tokens[:, 0])",
    ),
    (
        "ps4.vit.blocks_skipped",
        "ps4.vit",
        "not every block runs (or a block runs twice)",
        "run the tokens through each block of self.blocks once, in order",
    ),
    (
        "ps4.vit.not_close",
        "ps4.vit",
        "the logits differ from the Vision Transformer's",
        "patch_embed -> prepend CLS -> + pos_embed -> blocks -> norm -> head(token 0)",
    ),
    (
        "ps4.vit.vit_b_count",
        "ps4.vit",
        "your VisionTransformer at ViT-B/16's settings does not have ViT-B/16's 86,567,656 parameters",
        "check each part against vitkit.create_model('vit_base'): biases, both LayerNorms per block, the final norm, CLS token, pos_embed",
    ),
    # --- ps4.param_count
    (
        "ps4.param_count.no_cls",
        "ps4.param_count",
        "the count leaves out the CLS token (or its position embedding)",
        "the CLS token adds dim parameters, and its position another dim: pos_embed has (1 + num_patches) · dim",
    ),
    (
        "ps4.param_count.no_pos_embed",
        "ps4.param_count",
        "the count leaves out the position embeddings",
        "pos_embed holds (1 + num_patches) · dim learned numbers",
    ),
    (
        "ps4.param_count.no_bias",
        "ps4.param_count",
        "the count leaves out biases",
        "every nn.Linear and the patch projection have a bias of out_features numbers",
    ),
    (
        "ps4.param_count.no_norms",
        "ps4.param_count",
        "the count leaves out the LayerNorms",
        "each LayerNorm has 2 · dim parameters (scale and shift): two per block plus the final one",
    ),
    (
        "ps4.param_count.no_final_norm",
        "ps4.param_count",
        "the count is 2 · dim short: the final LayerNorm is missing (or the CLS token together with its position)",
        "after the blocks comes one more LayerNorm of 2 · dim; and the CLS token has dim parameters plus dim in pos_embed",
    ),
    (
        "ps4.param_count.no_head",
        "ps4.param_count",
        "the count leaves out the classification head",
        "the head is nn.Linear(dim, num_classes): dim · num_classes + num_classes",
    ),
    (
        "ps4.param_count.mlp_ratio",
        "ps4.param_count",
        "the MLP's hidden width is wrong in the count",
        "the MLP has hidden = int(mlp_ratio · dim) units: dim·hidden + hidden + hidden·dim + dim",
    ),
    (
        "ps4.param_count.patch_embed",
        "ps4.param_count",
        "the patch embedding is counted wrong",
        "it maps P·P·C pixel values to dim: P·P·C·dim weights plus dim biases",
    ),
    (
        "ps4.param_count.attention",
        "ps4.param_count",
        "the attention layer is counted wrong",
        "qkv is nn.Linear(dim, 3·dim) and proj nn.Linear(dim, dim): 4·dim² + 4·dim",
    ),
    (
        "ps4.param_count.wrong",
        "ps4.param_count",
        "the parameter count is wrong",
        "add up patch embedding, CLS token, pos_embed, depth × block, final norm and head",
    ),
    # --- ps4.train_step
    (
        "ps4.train_step.not_a_number",
        "ps4.train_step",
        "train_step did not return the loss as a number",
        "return loss.item() (a Python float)",
    ),
    (
        "ps4.train_step.loss_wrong",
        "ps4.train_step",
        "the returned loss is not the cross-entropy of the model's logits before the update",
        "loss = F.cross_entropy(model(images), labels) on the raw logits (cross_entropy applies the softmax itself); return loss.item()",
    ),
    (
        "ps4.train_step.softmax_before_loss",
        "ps4.train_step",
        "softmax was applied before the cross-entropy: F.cross_entropy takes raw logits",
        "pass model(images) straight to F.cross_entropy; it applies log-softmax itself",
    ),
    (
        "ps4.train_step.no_step",
        "ps4.train_step",
        "the parameters did not change: optimizer.step() is missing (or runs before backward, or the gradients are zeroed before it)",
        "optimizer.zero_grad(); loss.backward(); optimizer.step(), in this order",
    ),
    (
        "ps4.train_step.no_zero_grad",
        "ps4.train_step",
        "gradients pile up across steps: optimizer.zero_grad() is missing",
        "call optimizer.zero_grad() before loss.backward() in every step",
    ),
    (
        "ps4.train_step.not_close",
        "ps4.train_step",
        "the update differs from one optimizer step on the cross-entropy's gradient",
        "optimizer.zero_grad(); loss = F.cross_entropy(model(images), labels); loss.backward(); optimizer.step()",
    ),
    # --- ps4.training
    (
        "ps4.training.loss_did_not_fall",
        "ps4.training",
        "the training loss did not fall",
        "check train_step first; then the learning rate (1e-3 for AdamW is a good start)",
    ),
    # --- ps5.new_head
    (
        "ps5.new_head.no_model",
        "ps5.new_head",
        "new_head did not return the model",
        "end with `return model` (the same model, its head replaced)",
    ),
    (
        "ps5.new_head.not_linear",
        "ps5.new_head",
        "model.head is not an nn.Linear layer",
        "model.head = nn.Linear(model.config.dim, num_classes)",
    ),
    (
        "ps5.new_head.old_head_kept",
        "ps5.new_head",
        "the head still has the pre-training classes: it was not replaced",
        "create a new nn.Linear(dim, num_classes) for the new task's classes and assign it to model.head",
    ),
    (
        "ps5.new_head.wrong_size",
        "ps5.new_head",
        "the new head has the wrong size",
        "it maps the dim-wide CLS token to num_classes scores: nn.Linear(dim, num_classes)",
    ),
    (
        "ps5.new_head.not_zero_init",
        "ps5.new_head",
        "the new head's weights are not zero: the paper's recipe starts the new head at zero",
        "nn.init.zeros_(head.weight) (and the bias): every class starts with the same score, and no random head disturbs the pre-trained features",
    ),
    (
        "ps5.new_head.bias_not_zero",
        "ps5.new_head",
        "the new head's bias is not zero",
        "nn.init.zeros_(head.bias) as well",
    ),
    (
        "ps5.new_head.no_bias",
        "ps5.new_head",
        "the new head has no bias (nn.Linear(..., bias=False)); the question asks for a zero weight and a zero bias",
        "keep nn.Linear's bias (the default bias=True) and set it to zero: nn.init.zeros_(head.bias)",
    ),
    (
        "ps5.new_head.body_changed",
        "ps5.new_head",
        "the pre-trained weights outside the head changed: fine-tuning must start from them",
        "replace only model.head; do not rebuild the model or re-initialise other layers",
    ),
    (
        "ps5.new_head.frozen",
        "ps5.new_head",
        "the new head's parameters do not require gradients, so it cannot learn",
        "leave requires_grad=True on the new head",
    ),
    # --- ps5.linear_probe
    (
        "ps5.linear_probe.no_model",
        "ps5.linear_probe",
        "linear_probe did not return the model",
        "end with `return model`",
    ),
    (
        "ps5.linear_probe.head_frozen",
        "ps5.linear_probe",
        "the head is frozen too: nothing can learn",
        "freeze every parameter, then set requires_grad=True on model.head's",
    ),
    (
        "ps5.linear_probe.nothing_frozen",
        "ps5.linear_probe",
        "nothing is frozen: every parameter of the model still learns",
        "set requires_grad = False on every parameter of the model, then True on model.head's",
    ),
    (
        "ps5.linear_probe.embeddings_trainable",
        "ps5.linear_probe",
        "the CLS token, position embeddings or patch embedding still learn",
        "cls_token and pos_embed are parameters of the model itself, not of a sub-module: loop over model.parameters() (or named_parameters())",
    ),
    (
        "ps5.linear_probe.body_trainable",
        "ps5.linear_probe",
        "some pre-trained layers still learn: a linear probe trains only the head",
        "for p in model.parameters(): p.requires_grad = False; then for p in model.head.parameters(): p.requires_grad = True",
    ),
    # --- ps5.resample
    (
        "ps5.resample.not_a_tensor",
        "ps5.resample",
        "resample_pos_embed did not return a tensor",
        "return the new (1, 1 + H·W, D) tensor",
    ),
    (
        "ps5.resample.cls_dropped",
        "ps5.resample",
        "the CLS entry is missing from the result",
        "split off pos_embed[:, :1], resample the rest, concatenate the CLS entry back in front",
    ),
    (
        "ps5.resample.wrong_shape",
        "ps5.resample",
        "the result has the wrong shape",
        "(1, 1 + h·w, D) -> (1, 1 + new_grid², D)",
    ),
    (
        "ps5.resample.cls_changed",
        "ps5.resample",
        "the CLS entry changed: it has no position on the grid and must be kept as it is",
        "resample only pos_embed[:, 1:] and put pos_embed[:, :1] back in front unchanged",
    ),
    (
        "ps5.resample.not_2d",
        "ps5.resample",
        "the sequence was stretched in 1-D: neighbours on the image grid are not neighbours in the sequence",
        "reshape the patch entries to their (h, w) grid, interpolate in 2-D, flatten back",
    ),
    (
        "ps5.resample.wrong_layout",
        "ps5.resample",
        "the grid was reshaped in the wrong order: channels and positions got mixed",
        "(1, h·w, D) -> .reshape(1, h, w, D).permute(0, 3, 1, 2) gives (1, D, h, w), the layout F.interpolate expects",
    ),
    (
        "ps5.resample.wrong_mode",
        "ps5.resample",
        "the interpolation is bilinear; the question asks for bicubic, as timm and vitkit.resample_pos_embed do",
        "F.interpolate(grid, size=(H, W), mode='bicubic', align_corners=False)",
    ),
    (
        "ps5.resample.align_corners",
        "ps5.resample",
        "the interpolation used align_corners=True",
        "use F.interpolate(..., align_corners=False), as timm and vitkit do",
    ),
    (
        "ps5.resample.nearest",
        "ps5.resample",
        "nearest-neighbour resampling copies embeddings in blocks",
        "use mode='bicubic', align_corners=False, as the question asks",
    ),
    (
        "ps5.resample.not_close",
        "ps5.resample",
        "the resampled position embeddings differ from 2-D bicubic interpolation of the grid",
        "keep the CLS entry; (1, h·w, D) -> (1, D, h, w); F.interpolate(size=(H, W), mode='bicubic', align_corners=False); back to (1, H·W, D)",
    ),
    # --- ps5.gain
    (
        "ps5.gain.no_gain",
        "ps5.gain",
        "the pre-trained model did not beat the model trained from scratch",
        "run the notebook from the top with the recipe as given (same epochs, learning rates and seeds); the fine-tuned model should lead by 5 points or more",
    ),
)


def _table(rows) -> MappingProxyType:
    table = {}
    for row in rows:
        if row[0] in table:
            raise ValueError(f"mistake code {row[0]!r} is defined twice")
        table[row[0]] = MistakeInfo(*row)
    return MappingProxyType(table)


CATALOGUE: Mapping[str, MistakeInfo] = _table(_ROWS)  # read-only: code -> MistakeInfo

# The problem sets with checks, read from the codes: grading/<ps>.py holds each one's checks.
PROBLEM_SETS: tuple[str, ...] = tuple(sorted({code.split(".", 1)[0] for code in CATALOGUE if "." in code}))
