"""Problem set 1 (self-attention): classic wrong answers and correct answers written differently.

Each ``source`` replaces the solution cell named by ``cell`` (its nbgrader grade_id) in
solutions/ps1_self_attention; the namespace holds the notebook's imports (``math``, ``torch``),
the lecture's ``X``, ``W_q``, ``W_k``, ``W_v`` and the solution's other answers (``softmax``...).
"""

from . import Injection, changed

# The right self_attention, which most of its mistakes below change in one place (tests.injections.changed).
_SELF_ATTENTION = """
def self_attention(x, w_q, w_k, w_v):
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    weights = softmax(q @ k.transpose(-2, -1) / math.sqrt(k.shape[-1]), dim=-1)
    return weights @ v, weights
"""

# ----------------------------------------------------------------------------- softmax


WRONG = [
    # the issue 14 trial: the sum without keepdim was told "normalised over axis 0" (the lecture's scores are symmetric)
    Injection(
        "softmax",
        "ps1.softmax.sum_not_keepdim",
        """
        def softmax(x, dim=-1):
            e = torch.exp(x - x.max())
            return e / e.sum(dim=dim)
    """,
    ),
    Injection(
        "softmax",
        "ps1.softmax.wrong_axis",
        """
        def softmax(x, dim=-1):
            e = torch.exp(x - x.amax(dim=0, keepdim=True))
            return e / e.sum(dim=0, keepdim=True)  # always the first axis
        """,
    ),
    Injection(
        "softmax",
        "ps1.softmax.unstable",
        """
        def softmax(x, dim=-1):
            e = torch.exp(x)  # no maximum subtracted
            return e / e.sum(dim=dim, keepdim=True)
        """,
    ),
    Injection(
        "softmax",
        "ps1.softmax.not_normalised",
        """
        def softmax(x, dim=-1):
            return torch.exp(x - x.amax(dim=dim, keepdim=True))
        """,
    ),
    Injection(
        "softmax",
        "ps1.softmax.global_sum",
        """
        def softmax(x, dim=-1):
            e = torch.exp(x - x.max())
            return e / e.sum()
        """,
    ),
    Injection(
        "softmax",
        "ps1.softmax.max_not_keepdim",
        """
        def softmax(x, dim=-1):
            e = torch.exp(x - x.amax(dim=dim))
            return e / e.sum(dim=dim, keepdim=True)
        """,
    ),
    Injection(
        "softmax",
        "ps1.softmax.global_max",
        """
        def softmax(x, dim=-1):
            e = torch.exp(x - x.max())  # one maximum for the whole tensor
            return e / e.sum(dim=dim, keepdim=True)
        """,
    ),
    Injection(
        "softmax",
        "ps1.softmax.used_builtin",
        """
        def softmax(x, dim=-1):
            return torch.softmax(x, dim=dim)
        """,
    ),
    Injection(
        "softmax",
        "ps1.softmax.dtype",
        """
        def softmax(x, dim=-1):
            x = x.float()
            e = torch.exp(x - x.amax(dim=dim, keepdim=True))
            return e / e.sum(dim=dim, keepdim=True)
        """,
    ),
    Injection(
        "softmax",
        "ps1.softmax.not_written",
        """
        def softmax(x, dim=-1):
            # YOUR CODE HERE
            raise NotImplementedError()
        """,
    ),
    # ------------------------------------------------------------------------- the worked example
    Injection(
        "worked_example",
        "ps1.worked_example.queries_keys_swapped",
        """
        queries, keys, values = X @ W_k, X @ W_q, X @ W_v
        scores = queries @ keys.T
        output_1 = 0.5 * values[1] + 0.5 * values[2]
        """,
    ),
    Injection(
        "worked_example",
        "ps1.worked_example.keys_not_transposed",
        """
        queries, keys, values = X @ W_q, X @ W_k, X @ W_v
        scores = queries @ keys
        output_1 = 0.5 * values[1] + 0.5 * values[2]
        """,
    ),
    Injection(
        "worked_example",
        "ps1.worked_example.scores_scaled",
        """
        queries, keys, values = X @ W_q, X @ W_k, X @ W_v
        scores = queries @ keys.T / math.sqrt(3)
        output_1 = 0.5 * values[1] + 0.5 * values[2]
        """,
    ),
    Injection(
        "worked_example",
        "ps1.worked_example.exact_softmax",
        """
        queries, keys, values = X @ W_q, X @ W_k, X @ W_v
        scores = queries @ keys.T
        output_1 = softmax(scores[0]) @ values
        """,
    ),
    Injection(
        "worked_example",
        "ps1.worked_example.output_not_values",
        """
        queries, keys, values = X @ W_q, X @ W_k, X @ W_v
        scores = queries @ keys.T
        output_1 = 0.5 * keys[1] + 0.5 * keys[2]
        """,
    ),
    Injection(
        "worked_example",
        "ps1.worked_example.wrong_projection",
        """
        queries, keys, values = X @ W_q, X @ W_k, X @ W_k
        scores = queries @ keys.T
        output_1 = 0.5 * values[1] + 0.5 * values[2]
        """,
    ),
    # ------------------------------------------------------------------------- self-attention
    Injection(
        "self_attention",
        "ps1.self_attention.no_scale",
        changed(_SELF_ATTENTION, (" / math.sqrt(k.shape[-1])", "")),
    ),
    Injection(
        "self_attention",
        "ps1.self_attention.wrong_scale",
        changed(_SELF_ATTENTION, ("math.sqrt(k.shape[-1]), dim=-1)", "k.shape[-1], dim=-1)  # d_k, not its root")),
        name="self_attention/wrong_scale/d_k",
    ),
    Injection(
        "self_attention",
        "ps1.self_attention.wrong_scale",
        changed(
            _SELF_ATTENTION, ("math.sqrt(k.shape[-1]), dim=-1)", "math.sqrt(x.shape[-1]), dim=-1)  # the token size D")
        ),
        name="self_attention/wrong_scale/sqrt_D",
    ),
    Injection(
        "self_attention",
        "ps1.self_attention.weights_wrong_axis",
        changed(_SELF_ATTENTION, ("dim=-1", "dim=-2")),
    ),
    Injection(
        "self_attention",
        "ps1.self_attention.scores_transposed",
        changed(_SELF_ATTENTION, ("q @ k", "k @ q")),
    ),
    Injection(
        "self_attention",
        "ps1.self_attention.scaled_after_softmax",
        changed(_SELF_ATTENTION, (" / math.sqrt(k.shape[-1]), dim=-1", ", dim=-1) / math.sqrt(k.shape[-1]")),
    ),
    Injection(
        "self_attention",
        "ps1.self_attention.weights_not_normalised",
        changed(
            _SELF_ATTENTION,
            (
                "softmax(q @ k.transpose(-2, -1) / math.sqrt(k.shape[-1]), dim=-1)",
                "torch.exp(q @ k.transpose(-2, -1) / math.sqrt(k.shape[-1]))  # no division by the sum",
            ),
        ),
    ),
    Injection(
        "self_attention",
        "ps1.self_attention.transposed_weights",
        changed(_SELF_ATTENTION, ("return weights @", "return weights.transpose(-2, -1) @")),
    ),
    Injection(
        "self_attention",
        "ps1.self_attention.no_value_projection",
        """
        def self_attention(x, w_q, w_k, w_v):
            q, k = x @ w_q, x @ w_k
            weights = softmax(q @ k.transpose(-2, -1) / math.sqrt(k.shape[-1]), dim=-1)
            return weights @ x, weights
        """,
    ),
    Injection(
        "self_attention",
        "ps1.self_attention.return_order",
        changed(_SELF_ATTENTION, ("weights @ v, weights", "weights, weights @ v")),
    ),
    Injection(
        "self_attention",
        "ps1.self_attention.batch",
        changed(
            _SELF_ATTENTION,
            (
                "k.transpose(-2, -1) / math.sqrt(k.shape[-1]), dim=-1)",
                "k.T / math.sqrt(k.shape[-1]), dim=-1)  # .T: fine for (N, D) only",
            ),
        ),
    ),
    Injection(
        "self_attention",
        "ps1.self_attention.used_library",
        """
        import torch.nn.functional as F

        def self_attention(x, w_q, w_k, w_v):
            q, k, v = x @ w_q, x @ w_k, x @ w_v
            weights = softmax(q @ k.transpose(-2, -1) / math.sqrt(k.shape[-1]), dim=-1)
            return F.scaled_dot_product_attention(q, k, v), weights
        """,
        name="self_attention/used_library/sdpa",
    ),
    Injection(
        "self_attention",
        "ps1.self_attention.used_library",
        """
        from vitkit.attention import self_attention
        """,
        name="self_attention/used_library/vitkit",
    ),
    # ------------------------------------------------------------------------- pixels as tokens
    Injection(
        "pixels_to_tokens",
        "ps1.pixels_to_tokens.no_permute",
        """
        def pixels_to_tokens(image):
            c, h, w = image.shape
            return image.reshape(h * w, c)
        """,
    ),
    Injection(
        "pixels_to_tokens",
        "ps1.pixels_to_tokens.column_major",
        """
        def pixels_to_tokens(image):
            c, h, w = image.shape
            return image.permute(2, 1, 0).reshape(h * w, c)
        """,
    ),
    Injection(
        "pixels_to_tokens",
        "ps1.pixels_to_tokens.channels_first",
        """
        def pixels_to_tokens(image):
            return image.flatten(1)
        """,
    ),
    Injection(
        "pixels_to_tokens",
        "ps1.pixels_to_tokens.wrong_shape",
        """
        def pixels_to_tokens(image):
            return image.permute(1, 2, 0)  # (H, W, C): not flattened
        """,
    ),
    # ------------------------------------------------------------------------- the quadratic cost
    Injection(
        "attention_pairs",
        "ps1.attention_pairs.tokens_not_pairs",
        """
        def attention_pairs(height, width, patch_size=1):
            return (height // patch_size) * (width // patch_size)
        """,
    ),
    Injection(
        "attention_pairs",
        "ps1.attention_pairs.patch_area",
        """
        def attention_pairs(height, width, patch_size=1):
            return (height * width // patch_size) ** 2
        """,
    ),
    Injection(
        "attention_pairs",
        "ps1.attention_pairs.unordered_pairs",
        """
        def attention_pairs(height, width, patch_size=1):
            n = (height // patch_size) * (width // patch_size)
            return n * (n - 1) // 2
        """,
    ),
    Injection(
        "attention_pairs",
        "ps1.attention_pairs.no_self_pairs",
        """
        def attention_pairs(height, width, patch_size=1):
            n = (height // patch_size) * (width // patch_size)
            return n * (n - 1)
        """,
    ),
    # ------------------------------------------------------------------------- the questions
    Injection("answer_weight_matrices", "ps1.weight_matrices.per_input", "n_weight_matrices = 9"),
    Injection("answer_weight_matrices", "ps1.weight_matrices.wrong", "n_weight_matrices = 2"),
    Injection("answer_related", "ps1.related.swapped", "most_related, least_related = {1}, {2, 3}"),
    Injection("answer_related", "ps1.related.tie", "most_related, least_related = {2}, {1}"),
    Injection("answer_related", "ps1.related.zero_based", "most_related, least_related = {1, 2}, {0}"),
    Injection("answer_why_dot_product", "ps1.why_dot_product.normalises", "why_dot_product = 'a'"),
    Injection("answer_why_dot_product", "ps1.why_dot_product.positive", "why_dot_product = 'c'"),
    Injection("answer_why_dot_product", "ps1.why_dot_product.position", "why_dot_product = 'd'"),
    Injection("answer_why_dot_product", "ps1.why_dot_product.not_an_option", "why_dot_product = None"),
    Injection("answer_why_scaling", "ps1.why_scaling.normalises", "why_scaling = 'a'"),
    Injection("answer_why_scaling", "ps1.why_scaling.speed", "why_scaling = 'b'"),
    Injection("answer_why_scaling", "ps1.why_scaling.averages", "why_scaling = 'd'"),
]

CORRECT = [
    Injection(
        "softmax",
        None,
        """
        def softmax(x, dim=-1):
            return torch.exp(x - torch.logsumexp(x, dim=dim, keepdim=True))
        """,
        name="softmax/correct/logsumexp",
    ),
    Injection(
        "softmax",
        None,
        """
        def softmax(x, dim=-1):
            moved = x.movedim(dim, -1)
            e = (moved - moved.max(-1, keepdim=True).values).exp()
            return (e / e.sum(-1, keepdim=True)).movedim(-1, dim)
        """,
        name="softmax/correct/movedim",
    ),
    Injection(
        "worked_example",
        None,
        """
        import numpy as np
        queries = np.array(X) @ np.array(W_q)
        keys = np.array(X) @ np.array(W_k)
        values = np.array(X) @ np.array(W_v)
        scores = np.einsum('id,jd->ij', queries, keys)
        output_1 = np.array([0, 0.5, 0.5]) @ values
        """,
        name="worked_example/correct/numpy",
    ),
    Injection(
        "self_attention",
        None,
        """
        def self_attention(x, w_q, w_k, w_v):
            q = torch.einsum('...nd,dk->...nk', x, w_q)
            k = torch.einsum('...nd,dk->...nk', x, w_k)
            v = torch.einsum('...nd,dv->...nv', x, w_v)
            weights = softmax(torch.einsum('...ik,...jk->...ij', q, k) * k.shape[-1] ** -0.5)
            return torch.einsum('...ij,...jv->...iv', weights, v), weights
        """,
        name="self_attention/correct/einsum",
    ),
    Injection(
        "self_attention",
        None,
        """
        def self_attention(x, w_q, w_k, w_v):
            q = torch.matmul(x, w_q) / math.sqrt(w_k.shape[1])  # scale the queries instead of the scores
            weights = softmax(torch.matmul(q, torch.matmul(x, w_k).mT), dim=-1)
            return torch.matmul(weights, torch.matmul(x, w_v)), weights
        """,
        name="self_attention/correct/scaled_queries",
    ),
    Injection(
        "pixels_to_tokens",
        None,
        """
        def pixels_to_tokens(image):
            return image.flatten(1).T
        """,
        name="pixels_to_tokens/correct/flatten_T",
    ),
    Injection(
        "pixels_to_tokens",
        None,
        """
        import einops
        def pixels_to_tokens(image):
            return einops.rearrange(image, 'c h w -> (h w) c')
        """,
        name="pixels_to_tokens/correct/einops",
    ),
    Injection(
        "attention_pairs",
        None,
        """
        def attention_pairs(height, width, patch_size=1):
            return (height * width // patch_size ** 2) ** 2
        """,
        name="attention_pairs/correct/area",
    ),
    Injection("answer_weight_matrices", None, "n_weight_matrices = 3.0", name="answer_weight_matrices/correct/float"),
    Injection("answer_related", None, "most_related, least_related = [3, 2], 1", name="answer_related/correct/list"),
    Injection("answer_why_dot_product", None, "why_dot_product = ' B '", name="answer_why_dot_product/correct/upper"),
    Injection("answer_why_scaling", None, "why_scaling = '(c)'", name="answer_why_scaling/correct/paren"),
    # issue 14: at least three correct answers per graded function, written differently from the solution
    Injection(
        "softmax",
        None,
        """
        def softmax(x, dim=-1):
            e = (x - x.amax(dim, keepdim=True)).exp_()  # in place, on a new tensor
            e /= e.sum(dim, keepdim=True)
            return e
        """,
        name="softmax/correct/in_place",
    ),
    Injection(
        "worked_example",
        None,
        """
        queries = torch.stack([x @ W_q for x in (x1, x2, x3)])
        keys = torch.stack([x @ W_k for x in (x1, x2, x3)])
        values = torch.stack([x @ W_v for x in (x1, x2, x3)])
        scores = torch.tensor([[float(q @ k) for k in keys] for q in queries])
        output_1 = sum(w * v for w, v in zip((0.0, 0.5, 0.5), values))
        """,
        name="worked_example/correct/loops",
    ),
    Injection(
        "worked_example",
        None,
        """
        queries, keys, values = (torch.matmul(X, W) for W in (W_q, W_k, W_v))
        scores = torch.mm(queries, keys.t())
        output_1 = torch.tensor([0.0, 0.5, 0.5]) @ values
        """,
        name="worked_example/correct/matmul_mm",
    ),
    Injection(
        "self_attention",
        None,
        """
        def self_attention(x, w_q, w_k, w_v):
            q, k, v = x @ w_q, x @ w_k, x @ w_v
            scores = (q.unsqueeze(-2) * k.unsqueeze(-3)).sum(-1) / k.shape[-1] ** 0.5  # (…, N, N) by broadcasting
            weights = softmax(scores, dim=-1)
            return (weights.unsqueeze(-1) * v.unsqueeze(-3)).sum(-2), weights
        """,
        name="self_attention/correct/broadcast",
    ),
    Injection(
        "pixels_to_tokens",
        None,
        """
        def pixels_to_tokens(image):
            c, h, w = image.shape
            return torch.stack([image[:, r, col] for r in range(h) for col in range(w)])
        """,
        name="pixels_to_tokens/correct/loops",
    ),
    Injection(
        "attention_pairs",
        None,
        """
        def attention_pairs(height, width, patch_size=1):
            n = (height // patch_size) * (width // patch_size)
            return pow(n, 2)
        """,
        name="attention_pairs/correct/pow",
    ),
    Injection(
        "attention_pairs",
        None,
        """
        def attention_pairs(height, width, patch_size=1):
            rows = len(range(0, height - patch_size + 1, patch_size))
            cols = len(range(0, width - patch_size + 1, patch_size))
            return (rows * cols) * (rows * cols)
        """,
        name="attention_pairs/correct/ranges",
    ),
]

# Patching grading from a student's cell is caught or has no effect. They run after every other answer (a patch
# lasts for the whole process), in this order: the first one's patch of vitkit.grading does not take.
_VITKIT_PATCH = """
import vitkit.grading, vitkit.grading.ps1
for module, name in ((vitkit.grading.ps1, 'check_softmax'), (vitkit.grading.ps1, 'check_softmax_example'),
                     (vitkit.grading, 'verify_integrity'), (vitkit.grading, 'Mistake')):
    try:
        setattr(module, name, lambda *args, **kwargs: None)
    except AttributeError:
        pass
"""
TAMPERING = [
    Injection(
        "softmax",
        "ps1.softmax.wrong_axis",
        next(i for i in WRONG if i.code == "ps1.softmax.wrong_axis").source + _VITKIT_PATCH,
        name="wrong softmax, patches vitkit.grading",
    ),
    Injection(
        "softmax",
        "tampering",
        CORRECT[0].source + "import numpy.testing\nnumpy.testing.assert_allclose = lambda *a, **k: None\n",
        name="right softmax, patches numpy.testing",
    ),
]
