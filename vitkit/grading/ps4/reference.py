"""Problem set 4's references: torch's functions captured at import, known random weights, the functional
ViT (MLP, attention, block, embedding, whole model) and its classic wrong versions, and loading weights into
the student's modules. The other modules of :mod:`vitkit.grading.ps4` import these.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from vitkit.grading import Mistake, as_tensor, seal

# Captured before any student code runs in this process.
_linear = F.linear
_layer_norm = F.layer_norm
_gelu = F.gelu
_relu = F.relu
_conv2d = F.conv2d
_softmax = torch.softmax
_matmul = torch.matmul
_cat = torch.cat
_randn = torch.randn
_Generator = torch.Generator
_cross_entropy = F.cross_entropy
_load_state_dict = nn.Module.load_state_dict
_state_dict = nn.Module.state_dict
_parameters = nn.Module.parameters
_deepcopy = copy.deepcopy

EPS = 1e-6  # LayerNorm eps of ViT (timm, vitkit); nn.LayerNorm's default 1e-5 differs by far less than the tolerance
TOL = dict(rtol=1e-4, atol=1e-4)

# The mistakes these checks name, with their messages and hints, are rows of vitkit/grading/catalogue.py.

# ----------------------------------------------------------------------------- random weights and a functional reference


def _gen(seed: int) -> torch.Generator:
    return _Generator().manual_seed(seed)


def _rand(shape, g, scale=1.0, shift=0.0) -> torch.Tensor:
    return _randn(*shape, generator=g, dtype=torch.float64) * scale + shift


def _linear_weights(sd, prefix, fan_out, fan_in, g):
    sd[f"{prefix}.weight"] = _rand((fan_out, fan_in), g, 1 / math.sqrt(fan_in))
    sd[f"{prefix}.bias"] = _rand((fan_out,), g, 0.1)


def _norm_weights(sd, prefix, dim, g):
    sd[f"{prefix}.weight"] = _rand((dim,), g, 0.2, 1.0)  # not all ones, so swapped norms show
    sd[f"{prefix}.bias"] = _rand((dim,), g, 0.2)


def _mlp_weights(dim, hidden, g, prefix="") -> dict:
    sd = {}
    _linear_weights(sd, f"{prefix}fc1", hidden, dim, g)
    _linear_weights(sd, f"{prefix}fc2", dim, hidden, g)
    return sd


def _block_weights(dim, hidden, g, prefix="") -> dict:
    sd = {}
    _norm_weights(sd, f"{prefix}norm1", dim, g)
    _linear_weights(sd, f"{prefix}attn.qkv", 3 * dim, dim, g)
    _linear_weights(sd, f"{prefix}attn.proj", dim, dim, g)
    _norm_weights(sd, f"{prefix}norm2", dim, g)
    sd.update(_mlp_weights(dim, hidden, g, f"{prefix}mlp."))
    return sd


def _vit_weights(cfg: dict, g) -> dict:
    dim, p, c = cfg["dim"], cfg["patch_size"], cfg["in_chans"]
    n = (cfg["img_size"] // p) ** 2
    hidden = int(dim * cfg["mlp_ratio"])
    sd = {
        "patch_embed.proj.weight": _rand((dim, c, p, p), g, 1 / math.sqrt(c * p * p)),
        "patch_embed.proj.bias": _rand((dim,), g, 0.1),
        "cls_token": _rand((1, 1, dim), g),
        "pos_embed": _rand((1, 1 + n, dim), g),
    }
    for i in range(cfg["depth"]):
        sd.update(_block_weights(dim, hidden, g, f"blocks.{i}."))
    _norm_weights(sd, "norm", dim, g)
    _linear_weights(sd, "head", cfg["num_classes"], dim, g)
    return sd


def _ln(x, sd, prefix):
    return _layer_norm(x, (x.shape[-1],), sd[f"{prefix}.weight"], sd[f"{prefix}.bias"], EPS)


def _mlp(x, sd, prefix="", variant="correct"):
    h = _linear(x, sd[f"{prefix}fc1.weight"], sd[f"{prefix}fc1.bias"])
    if variant == "relu":
        h = _relu(h)
    elif variant != "no_activation" and variant != "activation_after_fc2":
        h = _gelu(h)
    out = _linear(h, sd[f"{prefix}fc2.weight"], sd[f"{prefix}fc2.bias"])
    return _gelu(out) if variant == "activation_after_fc2" else out


def _attn(x, sd, prefix, num_heads):
    B, N, D = x.shape
    hd = D // num_heads
    qkv = (
        _linear(x, sd[f"{prefix}qkv.weight"], sd[f"{prefix}qkv.bias"])
        .reshape(B, N, 3, num_heads, hd)
        .permute(2, 0, 3, 1, 4)
    )
    q, k, v = qkv[0], qkv[1], qkv[2]  # (B, H, N, hd)
    weights = _softmax(_matmul(q, k.transpose(-2, -1)) * hd**-0.5, dim=-1)
    return _linear(
        _matmul(weights, v).transpose(1, 2).reshape(B, N, D), sd[f"{prefix}proj.weight"], sd[f"{prefix}proj.bias"]
    )


def _block(x, sd, num_heads, prefix="", variant="correct"):
    attn = lambda t: _attn(t, sd, f"{prefix}attn.", num_heads)  # noqa: E731
    mlp = lambda t: _mlp(t, sd, f"{prefix}mlp.")  # noqa: E731
    n1 = lambda t: _ln(t, sd, f"{prefix}norm1")  # noqa: E731
    n2 = lambda t: _ln(t, sd, f"{prefix}norm2")  # noqa: E731
    if variant == "post_norm":
        x = n1(x + attn(x))
        return n2(x + mlp(x))
    if variant == "no_residual_attn":
        x = attn(n1(x))
        return x + mlp(n2(x))
    if variant == "no_residual_mlp":
        x = x + attn(n1(x))
        return mlp(n2(x))
    if variant == "no_residual_both":
        return mlp(n2(attn(n1(x))))
    if variant == "residual_normalised":
        h = n1(x)
        x = h + attn(h)
        h = n2(x)
        return h + mlp(h)
    if variant == "no_norm":
        x = x + attn(x)
        return x + mlp(x)
    if variant == "norm1_twice":
        x = x + attn(n1(x))
        return x + mlp(n1(x))
    if variant == "norm2_twice":
        x = x + attn(n2(x))
        return x + mlp(n2(x))
    if variant == "norms_swapped":
        x = x + attn(n2(x))
        return x + mlp(n1(x))
    if variant == "mlp_first":
        x = x + mlp(n2(x))
        return x + attn(n1(x))
    if variant == "parallel":
        return x + attn(n1(x)) + mlp(n2(x))
    x = x + attn(n1(x))
    return x + mlp(n2(x))


_BLOCK_VARIANTS = {
    "residual_normalised": "residual_normalised",
    "post_norm": "post_norm",
    "no_residual_attn": "no_residual",
    "no_residual_mlp": "no_residual",
    "no_residual_both": "no_residual",
    "no_norm": "no_norm",
    "norm1_twice": "norm_swapped",
    "norm2_twice": "norm_swapped",
    "norms_swapped": "norm_swapped",
    "mlp_first": "mlp_first",
    "parallel": "parallel",
}


def _embed(images, sd, variant="correct"):
    """(B, C, H, W) -> (B, 1 + N, D) with the reference weights, or one classic mistake."""
    w = sd["patch_embed.proj.weight"]
    p = w.shape[-1]
    tokens = _conv2d(images, w, sd["patch_embed.proj.bias"], stride=p).flatten(2).transpose(1, 2)  # (B, N, D)
    B, N, D = tokens.shape
    cls = sd["cls_token"].expand(B, -1, -1)
    pos = sd["pos_embed"]
    if variant == "cls_appended":
        return _cat([tokens, cls], 1) + pos
    if variant == "cls_appended_pos_first":
        return _cat([tokens + pos[:, 1:], cls + pos[:, :1]], 1)
    if variant == "cls_no_pos":
        return _cat([cls, tokens + pos[:, 1:]], 1)
    if variant == "pos_shifted":
        return _cat([cls, tokens + pos[:, :N]], 1)
    if variant == "no_pos_embed":
        return _cat([cls, tokens], 1)
    return _cat([cls, tokens], 1) + pos


_EMBED_VARIANTS = {
    "cls_appended": "cls_appended",
    "cls_appended_pos_first": "cls_appended",
    "cls_no_pos": "pos_embed_wrong_tokens",
    "pos_shifted": "pos_embed_wrong_tokens",
    "no_pos_embed": "no_pos_embed",
}


def _vit(images, sd, num_heads, depth, variant="correct", embed_variant="correct"):
    x = _embed(images, sd, embed_variant)
    order = list(range(depth))
    if variant == "first_block_only":
        order = order[:1]
    elif variant == "last_block_only":
        order = order[-1:]
    for i in order:
        x = _block(x, sd, num_heads, f"blocks.{i}.")
    if variant != "no_final_norm":
        x = _ln(x, sd, "norm")
    if variant == "mean_pool":
        pooled = x.mean(1)
    elif variant == "mean_pool_patches":
        pooled = x[:, 1:].mean(1)
    elif variant == "last_token":
        pooled = x[:, -1]
    else:
        pooled = x[:, 0]
    return _linear(pooled, sd["head.weight"], sd["head.bias"])


_VIT_VARIANTS = {
    "no_final_norm": "no_final_norm",
    "mean_pool": "mean_pool",
    "mean_pool_patches": "mean_pool",
    "last_token": "wrong_token_classified",
    "first_block_only": "blocks_skipped",
    "last_block_only": "blocks_skipped",
}


# ----------------------------------------------------------------------------- loading weights into the student's modules


def _load(module: nn.Module, sd: dict, code: str, what: str) -> None:
    """Load the float32 copy of ``sd`` into ``module`` by name, or raise ``code`` listing the names that differ."""
    own = _state_dict(module)
    missing, extra = sorted(set(sd) - set(own)), sorted(set(own) - set(sd))
    if missing or extra:
        raise Mistake(
            code,
            f"{what}: missing {missing[:6]}{' ...' if len(missing) > 6 else ''}, unexpected {extra[:6]}{' ...' if len(extra) > 6 else ''}",
        )
    for key, value in sd.items():
        if tuple(own[key].shape) != tuple(value.shape):
            shape_code = "ps4.vit.cls_shape" if key in ("cls_token", "pos_embed") else code
            raise Mistake(shape_code, f"{what}: {key} has shape {tuple(own[key].shape)}, expected {tuple(value.shape)}")
    _load_state_dict(module, {k: v.float() for k, v in sd.items()}, strict=True)


def _run(module, x, code_shape, expected_shape, what):
    module.eval()
    with torch.no_grad():
        out = module(x.float())
    out = as_tensor(out, f"the output of {what}")
    if tuple(out.shape) != tuple(expected_shape):
        raise Mistake(code_shape, f"{what} gave shape {tuple(out.shape)}, expected {tuple(expected_shape)}")
    return out


seal(__name__)
