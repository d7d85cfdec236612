"""Checks for problem set 4, the whole Vision Transformer.

The test cells of ``ps4_vision_transformer`` call only these functions. The student's modules carry
timm's parameter names (``norm1``, ``attn.qkv``, ``mlp.fc1``, ``cls_token``, ``pos_embed``, ...), so
a check loads known weights into them and compares their outputs with a reference computed here,
from the same weights, with torch functions captured when this module is imported. When an output
differs, the check computes the classic wrong versions (post-norm, a missing residual, the CLS token
appended, position embeddings added to the wrong tokens, ...) from the same weights and names the
one the student's output matches.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from vitkit.grading import Mistake, as_tensor, close, largest_difference, seal, uses
from vitkit.vit import Block as _ReferenceBlock
from vitkit.vit import Mlp as _ReferenceMLP

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


# ----------------------------------------------------------------------------- the checks the notebook calls


def check_mlp(student_cls, cases=((8, 16, (2, 5)), (12, 24, (1, 3)), (6, 4, (3, 7)))) -> None:
    """The student's ``MLP(dim, hidden)`` with known weights on tokens (B, N, dim): fc2(GELU(fc1(x)))."""
    for i, (dim, hidden, (B, N)) in enumerate(cases):
        g = _gen(400 + i)
        sd = _mlp_weights(dim, hidden, g)
        mlp = student_cls(dim, hidden)
        _load(mlp, sd, "ps4.mlp.names", f"MLP({dim}, {hidden})")
        x = _rand((B, N, dim), g)
        where = f"MLP({dim}, {hidden}) on tokens of shape {(B, N, dim)}"
        out = _run(mlp, x, "ps4.mlp.wrong_shape", (B, N, dim), where)
        if close(out, _mlp(x, sd), **TOL):
            continue
        for variant in ("no_activation", "relu", "activation_after_fc2"):
            if close(out, _mlp(x, sd, variant=variant), **TOL):
                raise Mistake(f"ps4.mlp.{variant}", where)
        raise Mistake("ps4.mlp.not_close", f"{where}: {largest_difference(out, _mlp(x, sd))}")
    print("MLP: fc1 -> GELU -> fc2, right on every shape.")


@uses(MLP=_ReferenceMLP)
def check_block(student_cls, cases=((16, 4, 2.0, (2, 5)), (12, 3, 4.0, (1, 9)), (8, 1, 1.0, (3, 2)))) -> None:
    """The student's ``Block(dim, num_heads, mlp_ratio)`` with known weights against the pre-norm block."""
    for i, (dim, heads, ratio, (B, N)) in enumerate(cases):
        g = _gen(410 + i)
        sd = _block_weights(dim, int(dim * ratio), g)
        block = student_cls(dim, heads, mlp_ratio=ratio)
        _load(block, sd, "ps4.block.names", f"Block({dim}, {heads}, mlp_ratio={ratio})")
        x = _rand((B, N, dim), g)
        where = f"Block({dim}, {heads}, mlp_ratio={ratio}) on tokens of shape {(B, N, dim)}"
        out = _run(block, x, "ps4.block.wrong_shape", (B, N, dim), where)
        ref = _block(x, sd, heads)
        if close(out, ref, **TOL):
            continue
        for variant, name in _BLOCK_VARIANTS.items():
            if close(out, _block(x, sd, heads, variant=variant), **TOL):
                raise Mistake(f"ps4.block.{name}", where)
        raise Mistake("ps4.block.not_close", f"{where}: {largest_difference(out, ref)}")
    print("Block: pre-norm attention and MLP, each with its residual.")


_SMALL = dict(img_size=16, patch_size=4, in_chans=3, num_classes=5, dim=32, depth=2, num_heads=4, mlp_ratio=2.0)
_OTHER = dict(img_size=12, patch_size=6, in_chans=1, num_classes=3, dim=12, depth=3, num_heads=3, mlp_ratio=1.0)


def _build(student_cls, cfg):
    return student_cls(
        img_size=cfg["img_size"],
        patch_size=cfg["patch_size"],
        in_chans=cfg["in_chans"],
        num_classes=cfg["num_classes"],
        dim=cfg["dim"],
        depth=cfg["depth"],
        num_heads=cfg["num_heads"],
        mlp_ratio=cfg["mlp_ratio"],
    )


def _check_vit_case(student_cls, cfg, seed, B=2) -> None:
    g = _gen(seed)
    sd = _vit_weights(cfg, g)
    model = _build(student_cls, cfg)
    args = ", ".join(f"{k}={v}" for k, v in cfg.items())
    _load(model, sd, "ps4.vit.names", f"VisionTransformer({args})")
    images = _rand((B, cfg["in_chans"], cfg["img_size"], cfg["img_size"]), g)
    where = f"VisionTransformer({args}) on {B} images"
    n = (cfg["img_size"] // cfg["patch_size"]) ** 2
    # The embedding first: its mistakes are the easiest to name there.
    model.eval()
    with torch.no_grad():
        tokens = model.embed(images.float())
    tokens = as_tensor(tokens, "the output of embed")
    if tokens.shape[:2] == (B, n):
        raise Mistake("ps4.vit.no_cls", f"embed gave shape {tuple(tokens.shape)}: {n} patch tokens and no CLS token")
    if tuple(tokens.shape) != (B, 1 + n, cfg["dim"]):
        raise Mistake(
            "ps4.vit.wrong_shape", f"embed gave shape {tuple(tokens.shape)}, expected {(B, 1 + n, cfg['dim'])}"
        )
    ref = _embed(images, sd)
    if not close(tokens, ref, **TOL):
        for variant, name in _EMBED_VARIANTS.items():
            if close(tokens, _embed(images, sd, variant), **TOL):
                raise Mistake(f"ps4.vit.{name}", f"{where}, embed")
        if not close(tokens[:, 1:], ref[:, 1:], **TOL) and close(tokens[:, :1], ref[:, :1], **TOL):
            raise Mistake(
                "ps4.vit.patches_wrong",
                f"{where}, embed: the patch tokens differ ({largest_difference(tokens[:, 1:], ref[:, 1:])})",
            )
        if not close(tokens[:, :1], ref[:, :1], **TOL):
            first = tokens[:, 0]
            code = (
                "ps4.vit.cls_not_shared"
                if not close(first, first[:1].expand_as(first), **TOL)
                else "ps4.vit.pos_embed_wrong_tokens"
            )
            raise Mistake(code, f"{where}, embed: token 0 is not cls_token + pos_embed[:, 0]")
        raise Mistake("ps4.vit.not_close", f"{where}, embed: {largest_difference(tokens, ref)}")
    logits = _run(model, images, "ps4.vit.wrong_shape", (B, cfg["num_classes"]), where)
    ref = _vit(images, sd, cfg["num_heads"], cfg["depth"])
    if close(logits, ref, **TOL):
        return
    for variant, name in _VIT_VARIANTS.items():
        if close(logits, _vit(images, sd, cfg["num_heads"], cfg["depth"], variant), **TOL):
            raise Mistake(f"ps4.vit.{name}", where)
    for variant, name in _EMBED_VARIANTS.items():  # embed was right, but forward may not call it
        if close(logits, _vit(images, sd, cfg["num_heads"], cfg["depth"], embed_variant=variant), **TOL):
            raise Mistake(f"ps4.vit.{name}", f"{where} (forward does not use embed)")
    raise Mistake("ps4.vit.not_close", f"{where}: {largest_difference(logits, ref)}")


@uses(Block=_ReferenceBlock)
def check_vit(student_cls) -> None:
    """Visible test: known weights loaded into the student's ``VisionTransformer``; embed and logits against the reference."""
    _check_vit_case(student_cls, _SMALL, 420)
    print("VisionTransformer: with the reference weights loaded, tokens and logits match.")


@uses(Block=_ReferenceBlock)
def check_vit_hidden(student_cls) -> None:
    """Hidden test: another configuration, and the student's own weights loaded into vitkit's ViT give the same logits."""
    _check_vit_case(student_cls, _OTHER, 421, B=3)
    from vitkit.vit import ViT, ViTConfig  # vice versa: the student's initialised model, read by vitkit

    torch.manual_seed(0)
    model = _build(student_cls, _SMALL)
    reference = ViT(ViTConfig(**_SMALL))
    # A LayerNorm eps is not a mistake here (nn.LayerNorm's default 1e-5 or ViT's 1e-6): the reference takes the student's.
    theirs_by_name = dict(model.named_modules())
    for name, norm in reference.named_modules():
        if isinstance(norm, nn.LayerNorm) and isinstance(theirs_by_name.get(name), nn.LayerNorm):
            norm.eps = theirs_by_name[name].eps
    _load(
        reference,
        {k: v.double() for k, v in _state_dict(model).items()},
        "ps4.vit.names",
        "vitkit's ViT reading your state_dict",
    )
    images = _rand((2, 3, 16, 16), _gen(422))
    ours = _run(reference, images, "ps4.vit.wrong_shape", (2, _SMALL["num_classes"]), "vitkit's ViT")
    theirs = _run(model, images, "ps4.vit.wrong_shape", (2, _SMALL["num_classes"]), "your VisionTransformer")
    if not close(theirs, ours, **TOL):
        raise Mistake(
            "ps4.vit.not_close",
            f"your own weights in vitkit's ViT give other logits than your model: {largest_difference(theirs, ours)}",
        )
    print("VisionTransformer: vitkit's ViT with your weights computes what your model computes.")


@uses(Block=_ReferenceBlock)
def check_vit_names(student_cls) -> None:
    """Visible test: the student's ``VisionTransformer`` has timm's parameter names and shapes (those of vitkit's ViT)."""
    from vitkit.vit import ViT, ViTConfig

    model, reference = _build(student_cls, _SMALL), ViT(ViTConfig(**_SMALL))
    _load(
        model,
        {k: v.double() for k, v in _state_dict(reference).items()},
        "ps4.vit.names",
        "parameter names differ from timm's",
    )
    print("VisionTransformer: timm's parameter names, the shapes of vitkit's ViT.")


VIT_B16 = 86_567_656


@uses(Block=_ReferenceBlock)
def check_vit_base_count(student_cls) -> None:
    """The student's ``VisionTransformer`` at ViT-B/16's settings has 86,567,656 parameters (built on the meta device: no memory)."""
    cfg = dict(
        img_size=224, patch_size=16, in_chans=3, num_classes=1000, dim=768, depth=12, num_heads=12, mlp_ratio=4.0
    )
    with torch.device("meta"):
        model = _build(student_cls, cfg)
    count = sum(p.numel() for p in _parameters(model))
    if count != VIT_B16:
        raise Mistake("ps4.vit.vit_b_count", f"yours has {count:,} ({count - VIT_B16:+,})")
    print(f"ViT-B/16: {count:,} parameters, as in the paper's model.")


def _count(img_size, patch_size, in_chans, num_classes, dim, depth, mlp_ratio, leave_out=()):
    n = (img_size // patch_size) ** 2
    hidden = int(mlp_ratio * dim) if "mlp_ratio" not in leave_out else dim
    bias = "bias" not in leave_out
    patch = patch_size * patch_size * in_chans * dim + (dim if bias else 0)
    if "patch_embed" in leave_out:
        patch = patch_size * patch_size * dim + dim
    cls = 0 if "cls" in leave_out else dim
    pos = 0 if "pos" in leave_out else (n + (0 if "cls" in leave_out else 1)) * dim
    norms_per_block = 0 if "norms" in leave_out else 4 * dim
    attn = 4 * dim * dim + (4 * dim if bias else 0)
    if "attention" in leave_out:
        attn = 3 * dim * dim + (3 * dim if bias else 0)
    mlp = 2 * dim * hidden + ((hidden + dim) if bias else 0)
    final = 0 if ("norms" in leave_out or "final_norm" in leave_out) else 2 * dim
    head = 0 if "head" in leave_out else dim * num_classes + (num_classes if bias else 0)
    return patch + cls + pos + depth * (norms_per_block + attn + mlp) + final + head


# (forgetting the CLS token shows as −dim, its token and position together as −2·dim: checked after these)
_COUNT_MISTAKES = {
    ("pos",): "no_pos_embed",
    ("bias",): "no_bias",
    ("norms",): "no_norms",
    ("final_norm",): "no_final_norm",
    ("head",): "no_head",
    ("mlp_ratio",): "mlp_ratio",
    ("patch_embed",): "patch_embed",
    ("attention",): "attention",
}


def check_parameter_count(student_fn) -> None:
    """The student's ``vit_parameter_count(img_size, patch_size, in_chans, num_classes, dim, depth, mlp_ratio)``."""
    cases = [
        (224, 16, 3, 1000, 768, 12, 4.0),
        (28, 7, 1, 10, 64, 2, 2.0),
        (32, 4, 3, 100, 192, 6, 2.0),
        (224, 16, 3, 1000, 192, 12, 4.0),
        (64, 8, 3, 7, 48, 3, 3.0),
    ]
    for case in cases:
        expected = _count(*case)
        got = student_fn(*case)
        call = f"vit_parameter_count{case}"
        try:
            whole = not isinstance(got, bool) and float(got) == int(got)
        except (TypeError, ValueError, OverflowError):
            whole = False
        if not whole:
            raise Mistake("ps4.param_count.wrong", f"{call} returned {got!r}, not a whole number")
        got = int(got)
        if got == expected:
            continue
        for leave_out, name in _COUNT_MISTAKES.items():
            if _count(*case, leave_out=leave_out) == got:
                raise Mistake(f"ps4.param_count.{name}", f"{call} returned {got:,}, expected {expected:,}")
        if got == expected - case[4]:  # the CLS token alone, or the CLS token's position alone
            raise Mistake("ps4.param_count.no_cls", f"{call} returned {got:,}, expected {expected:,}")
        raise Mistake("ps4.param_count.wrong", f"{call} returned {got:,}, expected {expected:,} ({got - expected:+,})")
    print(f"Parameter counts are right: ViT-B/16 has {_count(*cases[0]):,}.")


def check_train_step(student_fn) -> None:
    """The student's ``train_step(model, images, labels, optimizer) -> float``: one SGD step, twice, against the reference."""
    g = _gen(430)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.Tanh(), nn.Linear(6, 4)).double()
    with torch.no_grad():
        for p in _parameters(model):
            p.copy_(_rand(p.shape, g, 0.5))
    reference = _deepcopy(model)
    ref_opt = torch.optim.SGD(_parameters(reference), lr=0.5)
    opt = torch.optim.SGD(_parameters(model), lr=0.5)
    start = [p.detach().clone() for p in _parameters(model)]
    for step in range(2):
        images, labels = _rand((5, 3, 2, 2), g), torch.randint(0, 4, (5,), generator=g)
        logits = reference(images)
        expected_loss = _cross_entropy(logits, labels)
        softmax_loss = _cross_entropy(_softmax(logits, -1), labels)
        ref_opt.zero_grad()
        expected_loss.backward()
        ref_opt.step()
        got = student_fn(model, images, labels, opt)
        try:
            got = float(got)
        except (TypeError, ValueError, RuntimeError):
            raise Mistake("ps4.train_step.not_a_number", f"step {step + 1} returned {type(got).__name__}") from None
        where = f"step {step + 1} of SGD(lr=0.5) on a small model"
        if abs(got - softmax_loss.item()) < 1e-6 and abs(got - expected_loss.item()) > 1e-6:
            raise Mistake("ps4.train_step.softmax_before_loss", where)
        if abs(got - expected_loss.item()) > 1e-6 * max(1.0, abs(expected_loss.item())):
            raise Mistake(
                "ps4.train_step.loss_wrong", f"{where}: returned {got:.6g}, expected {expected_loss.item():.6g}"
            )
        params, ref_params = list(_parameters(model)), list(_parameters(reference))
        if step == 0 and all(close(p.detach(), s) for p, s in zip(params, start)):
            raise Mistake("ps4.train_step.no_step", where)
        if not all(close(p.detach(), r.detach(), 1e-6, 1e-8) for p, r in zip(params, ref_params)):
            raise Mistake("ps4.train_step.no_zero_grad" if step == 1 else "ps4.train_step.not_close", where)
    print("train_step: the loss before the update, then one optimizer step on fresh gradients.")


def check_training(losses) -> None:
    """The training run's losses (one per step) fell: the last 10 steps' mean loss well below the first 10's."""
    losses = as_tensor(losses, "losses").flatten()
    if len(losses) < 20:
        raise Mistake(
            "ps4.training.loss_did_not_fall", f"only {len(losses)} losses were recorded; run the training cell above"
        )
    first, last = losses[:10].mean().item(), losses[-10:].mean().item()
    if not (last < 0.8 * first and last < math.log(10)):
        raise Mistake(
            "ps4.training.loss_did_not_fall",
            f"mean loss of the first 10 steps {first:.3f}, of the last 10 steps {last:.3f}",
        )
    print(f"The loss fell from {first:.3f} to {last:.3f}.")


seal(__name__)
