"""Problem set 3 (patch embeddings): classic wrong answers and differently written right ones."""

from __future__ import annotations

import textwrap

from tests.injections import Injection, changed


def _patchify(body: str) -> str:
    return (
        "def patchify(images, patch_size):\n    B, C, H, W = images.shape\n    P = patch_size\n"
        "    if H % P or W % P:\n        raise ValueError('bad size')\n"
        + "".join(f"    {line}\n" for line in textwrap.dedent(body).strip().splitlines())
    )


def _conv(weight: str, stride: str = "P", bias: bool = True) -> str:
    return f"""
        def patch_embedding_as_conv(linear, patch_size, in_chans):
            D, P = linear.out_features, patch_size
            conv = nn.Conv2d(in_chans, D, kernel_size=P, stride={stride})
            with torch.no_grad():
                conv.weight.copy_({weight})
                {"conv.bias.copy_(linear.bias)" if bias else "conv.bias.zero_()"}
            return conv
    """


def _resample(body: str) -> str:
    return (
        "def resample_position_grid(pos_embed, new_grid):\n    cls, grid = pos_embed[:, :1], pos_embed[:, 1:]\n"
        "    h, D = math.isqrt(grid.shape[1]), grid.shape[2]\n"
        + "".join(f"    {line}\n" for line in textwrap.dedent(body).strip().splitlines())
    )


# Right answers that the mistakes below change (tests.injections.changed): each mistake reads as its difference.
LINEAR = "nn.Linear(patch_size * patch_size * in_chans, embed_dim)"
_EMBED = f"""
class PatchEmbedding(nn.Module):
    def __init__(self, patch_size, in_chans, embed_dim):
        super().__init__()
        self.patch_size = patch_size
        self.proj = {LINEAR}

    def forward(self, images):
        return self.proj(patchify(images, self.patch_size))
"""
_SINCOS = """
def sincos_position_embedding(grid_h, grid_w, dim):
    omega = 1.0 / 10000 ** (torch.arange(dim // 4) / (dim // 4))
    rows, cols = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")
    r, c = rows.reshape(-1, 1) * omega, cols.reshape(-1, 1) * omega
    return torch.cat([r.sin(), r.cos(), c.sin(), c.cos()], dim=1)
"""
_PAD = """
def pad_or_truncate(tokens, length):
    B, N, D = tokens.shape
    keep = min(N, length)
    out = torch.cat([tokens[:, :keep], tokens.new_zeros(B, length - keep, D)], dim=1)
    return out, torch.arange(length).expand(B, length) < keep
"""
_GRID_OK = "g = grid.reshape(1, h, h, D).permute(0, 3, 1, 2)"
_BACK_OK = "g = g.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, D)"

WRONG = [
    # the issue 14 trial: a Linear of the wrong size was told "PatchEmbedding has no self.proj"
    Injection(
        "embed",
        "ps3.embed.proj_wrong_size",
        """
        class PatchEmbedding(nn.Module):
            def __init__(self, patch_size, in_chans, embed_dim):
                super().__init__()
                self.patch_size = patch_size
                self.proj = nn.Linear(patch_size * patch_size, embed_dim)  # the channels forgotten

            def forward(self, images):
                return self.proj(patchify(images, self.patch_size))
    """,
    ),
    # issue 14: mistakes that were only "not close"
    Injection(
        "sincos",
        "ps3.sincos.sin_cos_interleaved",
        changed(
            _SINCOS,
            (
                "return torch.cat([r.sin(), r.cos(), c.sin(), c.cos()], dim=1)",
                "pairs = lambda t: torch.stack([t.sin(), t.cos()], dim=-1).flatten(1)\n"
                "    return torch.cat([pairs(r), pairs(c)], dim=1)",
            ),
        ),
    ),
    # patchify
    Injection(
        "patchify",
        "ps3.patchify.wrong_order",
        _patchify("""
        x = images.reshape(B, C, H // P, P, W // P, P).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(B, -1, C * P * P)"""),
    ),
    Injection(
        "patchify",
        "ps3.patchify.wrong_order",
        "def patchify(images, patch_size):\n"
        "    B, C = images.shape[:2]\n    return images.unfold(2, patch_size, patch_size).unfold(3, patch_size, patch_size)"
        ".reshape(B, C, -1, patch_size * patch_size).permute(0, 2, 1, 3).reshape(B, -1, C * patch_size * patch_size)\n",
        name="patchify/unfold keeps channels first",
    ),
    Injection(
        "patchify", "ps3.patchify.no_permute", _patchify("return images.reshape(B, (H // P) * (W // P), P * P * C)")
    ),
    Injection(
        "patchify",
        "ps3.patchify.grid_column_major",
        _patchify("""
        x = images.reshape(B, C, H // P, P, W // P, P).permute(0, 4, 2, 3, 5, 1)
        return x.reshape(B, -1, P * P * C)"""),
    ),
    Injection(
        "patchify",
        "ps3.patchify.rows_cols_swapped",
        _patchify("""
        x = images.reshape(B, C, H // P, P, W // P, P).permute(0, 2, 4, 5, 3, 1)
        return x.reshape(B, -1, P * P * C)"""),
    ),
    Injection(
        "patchify",
        "ps3.patchify.python_loop",
        _patchify("""
        out = []
        for r in range(0, H, P):
            for c in range(0, W, P):
                out.append(images[:, :, r:r + P, c:c + P].permute(0, 2, 3, 1).reshape(B, -1))
        return torch.stack(out, dim=1)"""),
    ),
    Injection(
        "patchify",
        "ps3.patchify.no_divisibility_check",
        """
        def patchify(images, patch_size):
            B, C, H, W = images.shape
            P = patch_size
            x = images[:, :, :H // P * P, :W // P * P].reshape(B, C, H // P, P, W // P, P).permute(0, 2, 4, 3, 5, 1)
            return x.reshape(B, -1, P * P * C)
    """,
    ),
    # count_tokens
    Injection(
        "tokens",
        "ps3.tokens.dim_without_channels",
        "def count_tokens(height, width, channels, patch_size):\n"
        "    assert height % patch_size == 0 and width % patch_size == 0 or (_ for _ in ()).throw(ValueError())\n"
        "    return (height // patch_size) * (width // patch_size), patch_size * patch_size\n",
    ),
    Injection(
        "tokens",
        "ps3.tokens.square_assumed",
        "def count_tokens(height, width, channels, patch_size):\n"
        "    return (height // patch_size) ** 2, patch_size * patch_size * channels\n",
    ),
    Injection(
        "tokens",
        "ps3.tokens.count_one_side",
        "def count_tokens(height, width, channels, patch_size):\n"
        "    return height // patch_size, patch_size * patch_size * channels\n",
    ),
    Injection(
        "tokens",
        "ps3.tokens.cls_counted",
        "def count_tokens(height, width, channels, patch_size):\n"
        "    return (height // patch_size) * (width // patch_size) + 1, patch_size * patch_size * channels\n",
    ),
    Injection(
        "tokens",
        "ps3.tokens.no_divisibility_check",
        "def count_tokens(height, width, channels, patch_size):\n"
        "    return (height // patch_size) * (width // patch_size), patch_size * patch_size * channels\n",
    ),
    # PatchEmbedding
    Injection(
        "embed",
        "ps3.embed.transposed",
        changed(
            _EMBED,
            (
                "self.proj(patchify(images, self.patch_size))",
                "self.proj(patchify(images, self.patch_size)).transpose(1, 2)",
            ),
        ),
    ),
    Injection(
        "embed",
        "ps3.embed.patch_order",
        """
        class PatchEmbedding(nn.Module):
            def __init__(self, patch_size, in_chans, embed_dim):
                super().__init__()
                self.p = patch_size
                self.proj = nn.Linear(patch_size * patch_size * in_chans, embed_dim)

            def forward(self, images):
                B, C, H, W = images.shape
                p = self.p
                patches = images.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5).reshape(B, -1, C * p * p)
                return self.proj(patches)
    """,
    ),
    Injection(
        "embed",
        "ps3.embed.proj_missing",
        changed(
            _EMBED,
            (LINEAR, "nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)"),
            ("self.proj(patchify(images, self.patch_size))", "self.proj(images).flatten(2).transpose(1, 2)"),
        ),
    ),
    Injection(
        "embed",
        "ps3.embed.not_close",
        changed(
            _EMBED,
            (
                "self.proj(patchify(images, self.patch_size))",
                "torch.relu(self.proj(patchify(images, self.patch_size)))",
            ),
        ),
    ),
    # patch_embedding_as_conv
    Injection("conv", "ps3.conv.weight_order", _conv("linear.weight.reshape(D, in_chans, P, P)")),
    Injection(
        "conv", "ps3.conv.kernel_transposed", _conv("linear.weight.reshape(D, P, P, in_chans).permute(0, 3, 2, 1)")
    ),
    Injection(
        "conv", "ps3.conv.no_stride", _conv("linear.weight.reshape(D, P, P, in_chans).permute(0, 3, 1, 2)", stride="1")
    ),
    Injection(
        "conv",
        "ps3.conv.bias_missing",
        _conv("linear.weight.reshape(D, P, P, in_chans).permute(0, 3, 1, 2)", bias=False),
    ),
    # prepend_cls
    Injection(
        "cls",
        "ps3.cls.appended",
        "def prepend_cls(tokens, cls_token):\n"
        "    return torch.cat([tokens, cls_token.expand(tokens.shape[0], -1, -1)], dim=1)\n",
    ),
    Injection(
        "cls",
        "ps3.cls.replaced_first",
        "def prepend_cls(tokens, cls_token):\n    out = tokens.clone()\n    out[:, :1] = cls_token\n    return out\n",
    ),
    Injection("cls", "ps3.cls.added_to_tokens", "def prepend_cls(tokens, cls_token):\n    return tokens + cls_token\n"),
    Injection(
        "cls",
        "ps3.cls.not_expanded",
        "def prepend_cls(tokens, cls_token):\n    return torch.cat([cls_token, tokens], dim=1)\n",
    ),
    # embed_image
    Injection(
        "pos_embed",
        "ps3.pos_embed.wrong_tokens",
        """
        def embed_image(images, patch_embedding, cls_token, pos_embed):
            tokens = patch_embedding(images)
            tokens = tokens + pos_embed[:, :tokens.shape[1]]
            return prepend_cls(tokens, cls_token)
    """,
    ),
    Injection(
        "pos_embed",
        "ps3.pos_embed.cls_without_position",
        """
        def embed_image(images, patch_embedding, cls_token, pos_embed):
            return prepend_cls(patch_embedding(images) + pos_embed[:, 1:], cls_token)
    """,
    ),
    Injection(
        "pos_embed",
        "ps3.pos_embed.missing",
        """
        def embed_image(images, patch_embedding, cls_token, pos_embed):
            return prepend_cls(patch_embedding(images), cls_token)
    """,
    ),
    Injection(
        "pos_embed",
        "ps3.pos_embed.cls_appended",
        """
        def embed_image(images, patch_embedding, cls_token, pos_embed):
            tokens = patch_embedding(images)
            return torch.cat([tokens, cls_token.expand(len(tokens), 1, -1)], dim=1) + pos_embed
    """,
    ),
    # sincos
    Injection(
        "sincos",
        "ps3.sincos.rows_cols_swapped",
        changed(_SINCOS, ("[r.sin(), r.cos(), c.sin(), c.cos()]", "[c.sin(), c.cos(), r.sin(), r.cos()]")),
    ),
    Injection(
        "sincos",
        "ps3.sincos.sin_cos_swapped",
        changed(_SINCOS, ("[r.sin(), r.cos(), c.sin(), c.cos()]", "[r.cos(), r.sin(), c.cos(), c.sin()]")),
    ),
    Injection(
        "sincos",
        "ps3.sincos.frequencies_wrong",
        changed(_SINCOS, ("/ (dim // 4))", "/ (dim // 2))")),
    ),
    Injection(
        "sincos",
        "ps3.sincos.one_dimensional",
        """
        def sincos_position_embedding(grid_h, grid_w, dim):
            omega = 1.0 / 10000 ** (torch.arange(dim // 2) / (dim // 2))
            pos = torch.arange(grid_h * grid_w).reshape(-1, 1) * omega
            return torch.cat([pos.sin(), pos.cos()], dim=1)
    """,
    ),
    # pad_or_truncate
    Injection(
        "pad",
        "ps3.pad.front",
        changed(
            _PAD,
            (
                "[tokens[:, :keep], tokens.new_zeros(B, length - keep, D)]",
                "[tokens.new_zeros(B, length - keep, D), tokens[:, :keep]]",
            ),
            ("< keep", ">= length - keep"),
        ),
    ),
    Injection(
        "pad",
        "ps3.pad.kept_last",
        """
        def pad_or_truncate(tokens, length):
            B, N, D = tokens.shape
            if N >= length:
                return tokens[:, N - length:], torch.ones(B, length, dtype=torch.bool)
            out = torch.cat([tokens, tokens.new_zeros(B, length - N, D)], dim=1)
            return out, torch.arange(length).expand(B, length) < N
    """,
    ),
    Injection(
        "pad",
        "ps3.pad.mask_inverted",
        changed(_PAD, ("< keep", ">= keep")),
    ),
    Injection(
        "pad",
        "ps3.pad.nonzero_padding",
        changed(_PAD, ("new_zeros", "new_ones")),
    ),
    Injection(
        "pad",
        "ps3.pad.mask_not_bool",
        changed(
            _PAD,
            (
                "torch.arange(length).expand(B, length) < keep",
                "(torch.arange(length).expand(B, length) < keep).float()",
            ),
        ),
    ),
    # resample_position_grid
    Injection(
        "resample",
        "ps3.resample.not_2d",
        """
        def resample_position_grid(pos_embed, new_grid):
            out = F.interpolate(pos_embed.transpose(1, 2), size=1 + new_grid * new_grid, mode="linear", align_corners=False)
            return out.transpose(1, 2)
    """,
    ),
    Injection(
        "resample",
        "ps3.resample.wrong_layout",
        _resample("""
        g = grid.reshape(1, D, h, h)
        g = F.interpolate(g, size=(new_grid, new_grid), mode="bicubic", align_corners=False)
        return torch.cat([cls, g.reshape(1, new_grid * new_grid, D)], dim=1)"""),
    ),
    Injection(
        "resample",
        "ps3.resample.wrong_mode",
        _resample(f"""
        {_GRID_OK}
        g = F.interpolate(g, size=(new_grid, new_grid), mode="bilinear", align_corners=False)
        {_BACK_OK}
        return torch.cat([cls, g], dim=1)"""),
    ),
    Injection(
        "resample",
        "ps3.resample.cls_dropped",
        _resample(f"""
        {_GRID_OK}
        g = F.interpolate(g, size=(new_grid, new_grid), mode="bicubic", align_corners=False)
        {_BACK_OK}
        return g"""),
    ),
]

# Passing by replacing the comparison functions is caught, never rewarded. It patches torch for the
# rest of the process, so it runs on its own, not with WRONG.
TAMPERING = [
    Injection(
        "patchify",
        "tampering",
        "torch.allclose = lambda *args, **kwargs: True\n" + _patchify("return images"),
        name="patchify/tampering/allclose",
    ),
]

CORRECT = [
    Injection(
        "patchify",
        None,
        """
        from einops import rearrange

        def patchify(images, patch_size):
            if images.shape[-1] % patch_size or images.shape[-2] % patch_size:
                raise ValueError(f"{tuple(images.shape[-2:])} not divisible by {patch_size}")
            return rearrange(images, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch_size, p2=patch_size)
    """,
    ),
    Injection(
        "patchify",
        None,
        """
        def patchify(images, patch_size):
            B, C, H, W = images.shape
            if H % patch_size or W % patch_size:
                raise ValueError("image size not divisible by patch size")
            cols = F.unfold(images, kernel_size=patch_size, stride=patch_size)  # (B, C*P*P, N), (c p1 p2)
            return cols.reshape(B, C, patch_size * patch_size, -1).permute(0, 3, 2, 1).reshape(B, -1, patch_size * patch_size * C)
    """,
    ),
    Injection(
        "tokens",
        None,
        """
        def count_tokens(height, width, channels, patch_size):
            rows, r = divmod(height, patch_size)
            cols, c = divmod(width, patch_size)
            if r or c:
                raise ValueError("patch size must divide the image")
            return [rows * cols, channels * patch_size ** 2]
    """,
    ),
    Injection(
        "embed",
        None,
        """
        class PatchEmbedding(nn.Module):
            def __init__(self, patch_size, in_chans, embed_dim):
                super().__init__()
                self.patch_size = patch_size
                self.proj = nn.Linear(patch_size ** 2 * in_chans, embed_dim)

            def forward(self, images):
                patches = patchify(images, self.patch_size)
                return torch.einsum("bnk,dk->bnd", patches, self.proj.weight) + self.proj.bias
    """,
    ),
    Injection(
        "conv",
        None,
        _conv("linear.weight.unflatten(1, (P, P, in_chans)).movedim(3, 1)").replace(
            "kernel_size=P, stride=P", "(P, P), (P, P)"
        ),
    ),
    Injection(
        "cls",
        None,
        "def prepend_cls(tokens, cls_token):\n"
        "    out = torch.empty(tokens.shape[0], tokens.shape[1] + 1, tokens.shape[2])\n"
        "    out[:, 0] = cls_token[0, 0]\n    out[:, 1:] = tokens\n    return out\n",
    ),
    Injection(
        "pos_embed",
        None,
        """
        def embed_image(images, patch_embedding, cls_token, pos_embed):
            tokens = patch_embedding(images) + pos_embed[:, 1:]
            cls = (cls_token + pos_embed[:, :1]).repeat(len(images), 1, 1)
            return torch.cat((cls, tokens), 1)
    """,
    ),
    Injection(
        "sincos",
        None,
        """
        import numpy as np

        def sincos_position_embedding(grid_h, grid_w, dim):
            k = np.arange(dim // 4)
            omega = 10000.0 ** (-k / (dim // 4))
            out = np.zeros((grid_h * grid_w, dim))
            for n in range(grid_h * grid_w):
                r, c = divmod(n, grid_w)
                out[n] = np.concatenate([np.sin(r * omega), np.cos(r * omega), np.sin(c * omega), np.cos(c * omega)])
            return out
    """,
    ),
    Injection(
        "pad",
        None,
        """
        def pad_or_truncate(tokens, length):
            n = tokens.shape[1]
            if n >= length:
                return tokens[:, :length], torch.ones(tokens.shape[0], length, dtype=torch.bool)
            padded = F.pad(tokens, (0, 0, 0, length - n))
            mask = torch.zeros(tokens.shape[0], length, dtype=torch.bool)
            mask[:, :n] = True
            return padded, mask
    """,
    ),
    Injection(
        "resample",
        None,
        """
        from einops import rearrange

        def resample_position_grid(pos_embed, new_grid):
            h = int(round((pos_embed.shape[1] - 1) ** 0.5))
            grid = rearrange(pos_embed[:, 1:], "b (h w) d -> b d h w", h=h)
            grid = F.interpolate(grid, size=(new_grid, new_grid), mode="bicubic", align_corners=False)
            return torch.cat([pos_embed[:, :1], rearrange(grid, "b d h w -> b (h w) d")], dim=1)
    """,
    ),
    # torch.meshgrid without indexing= (torch warns that it will need one): "ij" is its default, so the answer is right
    Injection(
        "sincos",
        None,
        """
        def sincos_position_embedding(grid_h, grid_w, dim):
            q = dim // 4
            omega = 1.0 / 10000 ** (torch.arange(q, dtype=torch.float64) / q)
            rows, cols = torch.meshgrid(torch.arange(grid_h, dtype=torch.float64), torch.arange(grid_w, dtype=torch.float64))
            r, c = rows.reshape(-1, 1) * omega, cols.reshape(-1, 1) * omega
            return torch.cat([r.sin(), r.cos(), c.sin(), c.cos()], dim=1)
    """,
        name="sincos/correct/meshgrid_without_indexing",
    ),
    # issue 14: at least three correct answers per graded function, written differently from the solution
    Injection(
        "patchify",
        None,
        """
        def patchify(images, patch_size):
            B, C, H, W = images.shape
            if H % patch_size != 0 or W % patch_size != 0:
                raise ValueError(f"{H}x{W} is not a multiple of {patch_size}")
            x = images.permute(0, 2, 3, 1)  # channels last: (B, H, W, C)
            x = x.unfold(1, patch_size, patch_size).unfold(2, patch_size, patch_size)  # (B, h, w, C, p1, p2)
            return x.permute(0, 1, 2, 4, 5, 3).reshape(B, -1, patch_size * patch_size * C)
    """,
        name="patchify/correct/unfold",
    ),
    Injection(
        "tokens",
        None,
        """
        def count_tokens(height, width, channels, patch_size):
            rows, rest_h = divmod(height, patch_size)
            cols, rest_w = divmod(width, patch_size)
            if rest_h or rest_w:
                raise ValueError("the patch size must divide the image")
            return rows * cols, channels * patch_size ** 2
    """,
        name="tokens/correct/divmod",
    ),
    Injection(
        "tokens",
        None,
        """
        def count_tokens(height, width, channels, patch_size):
            if height % patch_size or width % patch_size:
                raise ValueError(f"{patch_size} does not divide {height}x{width}")
            n = height * width // patch_size ** 2
            return [n, height * width * channels // n]
    """,
        name="tokens/correct/area_list",
    ),
    Injection(
        "embed",
        None,
        """
        class PatchEmbedding(nn.Module):
            def __init__(self, patch_size, in_chans, embed_dim):
                super().__init__()
                self.p = patch_size
                self.proj = nn.Linear(in_chans * patch_size ** 2, embed_dim)

            def forward(self, images):
                patches = patchify(images, self.p)
                return patches @ self.proj.weight.T + self.proj.bias
    """,
        name="embed/correct/matmul",
    ),
    Injection(
        "embed",
        None,
        """
        import einops

        class PatchEmbedding(nn.Module):
            def __init__(self, patch_size, in_chans, embed_dim):
                super().__init__()
                self.patch_size = patch_size
                self.proj = nn.Linear(patch_size * patch_size * in_chans, embed_dim)

            def forward(self, images):
                p = self.patch_size
                return self.proj(einops.rearrange(images, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=p, p2=p))
    """,
        name="embed/correct/einops",
    ),
    Injection(
        "conv",
        None,
        """
        def patch_embedding_as_conv(linear, patch_size, in_chans):
            conv = nn.Conv2d(in_chans, linear.out_features, patch_size, patch_size)
            weight = linear.weight.detach().view(linear.out_features, patch_size, patch_size, in_chans)
            conv.weight = nn.Parameter(weight.permute(0, 3, 1, 2).contiguous())
            conv.bias = nn.Parameter(linear.bias.detach().clone())
            return conv
    """,
        name="conv/correct/new_parameters",
    ),
    Injection(
        "conv",
        None,
        """
        import einops

        def patch_embedding_as_conv(linear, patch_size, in_chans):
            conv = nn.Conv2d(in_chans, linear.out_features, kernel_size=(patch_size, patch_size), stride=patch_size)
            state = {"weight": einops.rearrange(linear.weight, "d (p1 p2 c) -> d c p1 p2", p1=patch_size, p2=patch_size),
                     "bias": linear.bias}
            conv.load_state_dict(state)
            return conv
    """,
        name="conv/correct/load_state_dict",
    ),
    Injection(
        "cls",
        None,
        """
        def prepend_cls(tokens, cls_token):
            return torch.cat([cls_token.repeat(tokens.size(0), 1, 1), tokens], 1)
    """,
        name="cls/correct/repeat",
    ),
    Injection(
        "cls",
        None,
        """
        def prepend_cls(tokens, cls_token):
            B, N, D = tokens.shape
            out = tokens.new_empty(B, N + 1, D)
            out[:, 0] = cls_token[0, 0]
            out[:, 1:] = tokens
            return out
    """,
        name="cls/correct/filled",
    ),
    Injection(
        "pos_embed",
        None,
        """
        def embed_image(images, patch_embedding, cls_token, pos_embed):
            tokens = patch_embedding(images)
            cls = cls_token.expand(tokens.shape[0], 1, tokens.shape[2])
            return torch.cat((cls + pos_embed[:, :1], tokens + pos_embed[:, 1:]), dim=1)
    """,
        name="pos_embed/correct/split_positions",
    ),
    Injection(
        "pos_embed",
        None,
        """
        def embed_image(images, patch_embedding, cls_token, pos_embed):
            x = prepend_cls(patch_embedding(images), cls_token)
            x += pos_embed  # in place on the new tensor
            return x
    """,
        name="pos_embed/correct/in_place",
    ),
    Injection(
        "pad",
        None,
        """
        def pad_or_truncate(tokens, length):
            B, N, D = tokens.shape
            if N >= length:
                return tokens[:, :length].clone(), torch.ones(B, length, dtype=torch.bool)
            out = F.pad(tokens, (0, 0, 0, length - N))
            mask = torch.cat([torch.ones(B, N, dtype=torch.bool), torch.zeros(B, length - N, dtype=torch.bool)], dim=1)
            return out, mask
    """,
        name="pad/correct/F_pad",
    ),
    Injection(
        "pad",
        None,
        """
        def pad_or_truncate(tokens, length):
            B, N, D = tokens.shape
            out = torch.zeros(B, length, D, dtype=tokens.dtype)
            mask = torch.zeros(B, length, dtype=torch.bool)
            for i in range(min(N, length)):
                out[:, i] = tokens[:, i]
                mask[:, i] = True
            return out, mask
    """,
        name="pad/correct/loop",
    ),
    Injection(
        "resample",
        None,
        """
        from vitkit import resample_pos_embed

        def resample_position_grid(pos_embed, new_grid):
            return resample_pos_embed(pos_embed, (new_grid, new_grid))
    """,
        name="resample/correct/vitkit",
    ),
    Injection(
        "resample",
        None,
        """
        import einops

        def resample_position_grid(pos_embed, new_grid):
            h = int(round((pos_embed.shape[1] - 1) ** 0.5))
            grid = einops.rearrange(pos_embed[:, 1:], "1 (h w) d -> 1 d h w", h=h)
            grid = F.interpolate(grid, size=new_grid, mode="bicubic")
            return torch.cat([pos_embed[:, :1], einops.rearrange(grid, "1 d h w -> 1 (h w) d")], dim=1)
    """,
        name="resample/correct/einops",
    ),
]
