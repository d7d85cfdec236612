"""Problem set 4 (the whole Vision Transformer): classic mistakes and differently written correct answers."""

from tests.injections import Injection

_MLP_INIT = """
class MLP(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return {}
"""

_BLOCK = """
class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(self, x):
{}
"""

_VIT = """
class VisionTransformer(nn.Module):
    def __init__(self, img_size=28, patch_size=7, in_chans=1, num_classes=10, dim=64, depth=2, num_heads=4, mlp_ratio=4.0):
        super().__init__()
        self.patch_embed = PatchEmbedding(img_size, patch_size, in_chans, dim)
        n = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + n, dim) * 0.02)
        self.blocks = nn.ModuleList([Block(dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def embed(self, images):
        tokens = self.patch_embed(images)
        B = tokens.shape[0]
{embed}

    def forward(self, images):
{forward}
"""

_EMBED = """        return torch.cat([self.cls_token.expand(B, -1, -1), tokens], dim=1) + self.pos_embed"""
_FORWARD = """        x = self.embed(images)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])"""


_REPLACE_CHECK = """
import vitkit.grading.ps4 as checks
try:
    checks.check_vit = lambda cls: None
except AttributeError:
    pass
"""


def _block(body: str) -> str:
    return _BLOCK.format("\n".join("        " + line for line in body.strip().splitlines()))


def _vit(embed: str = _EMBED, forward: str = _FORWARD) -> str:
    return _VIT.format(embed=embed, forward=forward)


def _train_step(body: str) -> str:
    return "def train_step(model, images, labels, optimizer):\n" + "\n".join(
        "    " + line for line in body.strip().splitlines()
    )


def _count(body: str) -> str:
    return (
        "def vit_parameter_count(img_size, patch_size, in_chans, num_classes, dim, depth, mlp_ratio=4.0):\n"
        "    n = (img_size // patch_size) ** 2\n    h = int(mlp_ratio * dim)\n"
        + "\n".join("    " + line for line in body.strip().splitlines())
    )


_COUNT_PARTS = dict(
    patch="patch_size * patch_size * in_chans * dim + dim",
    cls="dim",
    pos="(1 + n) * dim",
    block="4 * dim + 4 * dim * dim + 4 * dim + 2 * dim * h + h + dim",
    final="2 * dim",
    head="dim * num_classes + num_classes",
)


def _count_with(**changes) -> str:
    parts = {**_COUNT_PARTS, **changes}
    return _count(
        f"return {parts['patch']} + {parts['cls']} + {parts['pos']} + depth * ({parts['block']}) + {parts['final']} + {parts['head']}"
    )


WRONG = [
    # issue 14: mistakes that were only "not close"
    Injection(
        "block",
        "ps4.block.residual_normalised",
        _block("""
h = self.norm1(x)
x = h + self.attn(h)
h = self.norm2(x)
return h + self.mlp(h)
"""),
    ),
    # --- the MLP
    Injection("mlp", "ps4.mlp.relu", _MLP_INIT.format("self.fc2(torch.relu(self.fc1(x)))")),
    Injection("mlp", "ps4.mlp.no_activation", _MLP_INIT.format("self.fc2(self.fc1(x))")),
    Injection("mlp", "ps4.mlp.activation_after_fc2", _MLP_INIT.format("self.act(self.fc2(self.fc1(x)))")),
    Injection(
        "mlp",
        "ps4.mlp.names",
        """
        class MLP(nn.Module):
            def __init__(self, dim, hidden):
                super().__init__()
                self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

            def forward(self, x):
                return self.net(x)
    """,
    ),
    # --- the block
    Injection(
        "block",
        "ps4.block.post_norm",
        _block("x = self.norm1(x + self.attn(x))\nx = self.norm2(x + self.mlp(x))\nreturn x"),
    ),
    Injection(
        "block",
        "ps4.block.no_residual",
        _block("x = self.attn(self.norm1(x))\nx = x + self.mlp(self.norm2(x))\nreturn x"),
        name="block/no_residual/attention",
    ),
    Injection(
        "block",
        "ps4.block.no_residual",
        _block("x = x + self.attn(self.norm1(x))\nreturn self.mlp(self.norm2(x))"),
        name="block/no_residual/mlp",
    ),
    Injection("block", "ps4.block.no_norm", _block("x = x + self.attn(x)\nreturn x + self.mlp(x)")),
    Injection(
        "block",
        "ps4.block.norm_swapped",
        _block("x = x + self.attn(self.norm1(x))\nreturn x + self.mlp(self.norm1(x))"),
    ),
    Injection(
        "block", "ps4.block.mlp_first", _block("x = x + self.mlp(self.norm2(x))\nreturn x + self.attn(self.norm1(x))")
    ),
    Injection("block", "ps4.block.parallel", _block("return x + self.attn(self.norm1(x)) + self.mlp(self.norm2(x))")),
    Injection(
        "block",
        "ps4.block.names",
        """
        class Block(nn.Module):
            def __init__(self, dim, num_heads, mlp_ratio=4.0):
                super().__init__()
                self.ln1 = nn.LayerNorm(dim, eps=1e-6)
                self.attention = Attention(dim, num_heads)
                self.ln2 = nn.LayerNorm(dim, eps=1e-6)
                self.mlp = MLP(dim, int(dim * mlp_ratio))

            def forward(self, x):
                x = x + self.attention(self.ln1(x))
                return x + self.mlp(self.ln2(x))
    """,
    ),
    # --- the Vision Transformer
    Injection(
        "vit",
        "ps4.vit.cls_appended",
        _vit(embed="        return torch.cat([tokens, self.cls_token.expand(B, -1, -1)], dim=1) + self.pos_embed"),
    ),
    Injection(
        "vit",
        "ps4.vit.pos_embed_wrong_tokens",
        _vit(
            embed="        return torch.cat([self.cls_token.expand(B, -1, -1), tokens + self.pos_embed[:, 1:]], dim=1)"
        ),
        name="vit/pos_embed_wrong_tokens/cls_without_position",
    ),
    Injection(
        "vit",
        "ps4.vit.pos_embed_wrong_tokens",
        _vit(
            embed="        tokens = tokens + self.pos_embed[:, :tokens.shape[1]]\n        return torch.cat([self.cls_token.expand(B, -1, -1), tokens], dim=1)"
        ),
        name="vit/pos_embed_wrong_tokens/shifted",
    ),
    Injection(
        "vit",
        "ps4.vit.no_pos_embed",
        _vit(embed="        return torch.cat([self.cls_token.expand(B, -1, -1), tokens], dim=1)"),
    ),
    Injection(
        "vit",
        "ps4.vit.no_final_norm",
        _vit(
            forward="        x = self.embed(images)\n        for block in self.blocks:\n            x = block(x)\n        return self.head(x[:, 0])"
        ),
    ),
    Injection(
        "vit",
        "ps4.vit.mean_pool",
        _vit(
            forward="        x = self.embed(images)\n        for block in self.blocks:\n            x = block(x)\n        return self.head(self.norm(x).mean(dim=1))"
        ),
    ),
    Injection(
        "vit",
        "ps4.vit.wrong_token_classified",
        _vit(
            forward="        x = self.embed(images)\n        for block in self.blocks:\n            x = block(x)\n        return self.head(self.norm(x)[:, -1])"
        ),
    ),
    Injection(
        "vit",
        "ps4.vit.blocks_skipped",
        _vit(forward="        x = self.blocks[-1](self.embed(images))\n        return self.head(self.norm(x)[:, 0])"),
    ),
    Injection(
        "vit",
        "ps4.vit.cls_shape",
        _vit()
        .replace("torch.zeros(1, 1, dim)", "torch.zeros(1, dim)")
        .replace("self.cls_token.expand(B, -1, -1)", "self.cls_token.expand(B, 1, -1)"),
    ),
    # Replacing a check is refused (the grading modules are read-only), so the real check still runs.
    Injection(
        "vit",
        "ps4.vit.cls_appended",
        _REPLACE_CHECK
        + _vit(embed="        return torch.cat([tokens, self.cls_token.expand(B, -1, -1)], dim=1) + self.pos_embed"),
        name="vit/cls_appended/check_replaced",
    ),
    # --- the parameter count
    Injection("param_count", "ps4.param_count.no_cls", _count_with(cls="0")),
    Injection(
        "param_count", "ps4.param_count.no_cls", _count_with(pos="n * dim"), name="param_count/no_cls/no_cls_position"
    ),
    Injection("param_count", "ps4.param_count.no_pos_embed", _count_with(pos="0")),
    Injection(
        "param_count",
        "ps4.param_count.no_norms",
        _count_with(block="4 * dim * dim + 4 * dim + 2 * dim * h + h + dim", final="0"),
    ),
    Injection("param_count", "ps4.param_count.no_final_norm", _count_with(final="0")),
    Injection(
        "param_count",
        "ps4.param_count.no_bias",
        _count_with(
            patch="patch_size * patch_size * in_chans * dim",
            block="4 * dim + 4 * dim * dim + 2 * dim * h",
            head="dim * num_classes",
        ),
    ),
    Injection(
        "param_count",
        "ps4.param_count.mlp_ratio",
        _count_with(block="4 * dim + 4 * dim * dim + 4 * dim + 2 * dim * dim + dim + dim"),
    ),
    # --- the training step
    Injection(
        "train_step",
        "ps4.train_step.no_zero_grad",
        _train_step(
            "loss = F.cross_entropy(model(images), labels)\nloss.backward()\noptimizer.step()\nreturn loss.item()"
        ),
    ),
    Injection(
        "train_step",
        "ps4.train_step.no_step",
        _train_step(
            "optimizer.zero_grad()\nloss = F.cross_entropy(model(images), labels)\nloss.backward()\nreturn loss.item()"
        ),
    ),
    Injection(
        "train_step",
        "ps4.train_step.no_step",
        _train_step(
            "loss = F.cross_entropy(model(images), labels)\nloss.backward()\noptimizer.zero_grad()\noptimizer.step()\nreturn loss.item()"
        ),
        name="train_step/no_step/zero_grad_before_step",
    ),
    Injection(
        "train_step",
        "ps4.train_step.softmax_before_loss",
        _train_step(
            "optimizer.zero_grad()\nloss = F.cross_entropy(model(images).softmax(-1), labels)\nloss.backward()\noptimizer.step()\nreturn loss.item()"
        ),
    ),
    Injection(
        "train_step",
        "ps4.train_step.loss_wrong",
        _train_step(
            "optimizer.zero_grad()\nloss = F.cross_entropy(model(images), labels)\nloss.backward()\noptimizer.step()\nreturn F.cross_entropy(model(images), labels).item()"
        ),
        name="train_step/loss_wrong/loss_after_update",
    ),
]

# Students who replace the checks' tools must get no points. Run these on their own: the patch lasts for the whole process.
TAMPERING = [
    Injection(
        "block",
        "tampering",
        """
        import torch
        torch.allclose = lambda *args, **kwargs: True

        class Block(nn.Module):
            def __init__(self, dim, num_heads, mlp_ratio=4.0):
                super().__init__()
                self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, num_heads)
                self.norm2, self.mlp = nn.LayerNorm(dim), MLP(dim, int(dim * mlp_ratio))

            def forward(self, x):
                return x
    """,
        name="block/tampering/allclose",
    ),
    Injection(
        "vit",
        "tampering",
        """
        import numpy.testing
        numpy.testing.assert_allclose = lambda *args, **kwargs: None
    """,
        name="vit/tampering/numpy_testing",
    ),
]

CORRECT = [
    Injection(
        "mlp",
        None,
        """
        class MLP(nn.Module):
            def __init__(self, dim, hidden):
                super().__init__()
                self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

            def forward(self, x):
                return self.fc2(F.gelu(self.fc1(x)))
    """,
    ),
    # nn.LayerNorm's default eps (1e-5) instead of ViT's 1e-6, and the sub-layers written out in one expression each
    Injection(
        "block",
        None,
        """
        class Block(nn.Module):
            def __init__(self, dim, num_heads, mlp_ratio=4.0):
                super().__init__()
                self.norm1 = nn.LayerNorm(dim)
                self.attn = Attention(dim, num_heads, qkv_bias=True)
                self.norm2 = nn.LayerNorm(dim)
                self.mlp = MLP(dim, round(dim * mlp_ratio))

            def forward(self, tokens):
                attended = tokens + self.attn(self.norm1(tokens))
                return attended + self.mlp(self.norm2(attended))
    """,
    ),
    # einops for the CLS token, F.pad-free concatenation written differently, pooling via indexing before the norm
    Injection(
        "vit",
        None,
        """
        import einops

        class VisionTransformer(nn.Module):
            def __init__(self, img_size=28, patch_size=7, in_chans=1, num_classes=10, dim=64, depth=2, num_heads=4, mlp_ratio=4.0):
                super().__init__()
                self.patch_embed = PatchEmbedding(img_size, patch_size, in_chans, dim)
                self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 1e-6)
                self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, dim))
                nn.init.trunc_normal_(self.pos_embed, std=0.02)
                self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio=mlp_ratio) for _ in range(depth))
                self.norm = nn.LayerNorm(dim, eps=1e-6)
                self.head = nn.Linear(dim, num_classes)

            def embed(self, images):
                patches = self.patch_embed(images)
                cls = einops.repeat(self.cls_token, "1 1 d -> b 1 d", b=patches.shape[0])
                return torch.cat((cls, patches), 1) + self.pos_embed

            def forward(self, images):
                x = self.embed(images)
                for i in range(len(self.blocks)):
                    x = self.blocks[i](x)
                return self.head(self.norm(x[:, :1]).squeeze(1))  # LayerNorm acts per token: norm-then-pick equals pick-then-norm
    """,
    ),
    Injection(
        "param_count",
        None,
        """
        def vit_parameter_count(img_size, patch_size, in_chans, num_classes, dim, depth, mlp_ratio=4.0):
            linear = lambda i, o: i * o + o
            tokens = (img_size // patch_size) ** 2 + 1
            hidden = int(mlp_ratio * dim)
            block = 2 * 2 * dim + linear(dim, 3 * dim) + linear(dim, dim) + linear(dim, hidden) + linear(hidden, dim)
            return linear(patch_size ** 2 * in_chans, dim) + tokens * dim + dim + depth * block + 2 * dim + linear(dim, num_classes)
    """,
    ),
    Injection(
        "train_step",
        None,
        """
        def train_step(model, images, labels, optimizer):
            optimizer.zero_grad(set_to_none=True)
            logits = model(images)
            loss = -torch.log_softmax(logits, dim=-1).gather(1, labels[:, None]).mean()
            loss.backward()
            optimizer.step()
            return float(loss.detach())
    """,
    ),
    # the cases: nn.LayerNorm's default eps in the ViT's final norm; float(loss) (torch warns: a tensor that
    # requires grad); the 0-d loss tensor itself
    Injection(
        "vit",
        None,
        _vit().replace("self.norm = nn.LayerNorm(dim, eps=1e-6)", "self.norm = nn.LayerNorm(dim)"),
        name="vit/correct/default_eps",
    ),
    Injection(
        "train_step",
        None,
        """
        def train_step(model, images, labels, optimizer):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
            return float(loss)
    """,
        name="train_step/correct/float_of_a_tensor_that_requires_grad",
    ),
    Injection(
        "train_step",
        None,
        """
        def train_step(model, images, labels, optimizer):
            for p in model.parameters():
                p.grad = None
            loss = nn.CrossEntropyLoss()(model(images), labels)
            loss.backward()
            optimizer.step()
            return loss
    """,
        name="train_step/correct/zero_dim_tensor",
    ),
    # issue 14: at least three correct answers per graded function, written differently from the solution
    Injection(
        "mlp",
        None,
        """
        class MLP(nn.Module):
            def __init__(self, dim, hidden):
                super().__init__()
                self.fc1 = nn.Linear(dim, hidden)
                self.act = nn.GELU(approximate="none")
                self.fc2 = nn.Linear(hidden, dim)

            def forward(self, x):
                for layer in (self.fc1, self.act, self.fc2):
                    x = layer(x)
                return x
    """,
        name="mlp/correct/loop",
    ),
    Injection(
        "mlp",
        None,
        """
        class MLP(nn.Module):
            def __init__(self, dim, hidden):
                super().__init__()
                self.fc1 = nn.Linear(dim, hidden)
                self.act = nn.GELU()
                self.fc2 = nn.Linear(hidden, dim)

            def forward(self, x):
                h = x @ self.fc1.weight.T + self.fc1.bias
                h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))  # the exact GELU, written out
                return F.linear(h, self.fc2.weight, self.fc2.bias)
    """,
        name="mlp/correct/written_out",
    ),
    Injection(
        "block",
        None,
        _block("""
x = x + self.attn(self.norm1(x))
x += self.mlp(self.norm2(x))
return x
"""),
        name="block/correct/in_place_add",
    ),
    Injection(
        "block",
        None,
        """
        class Block(nn.Module):
            def __init__(self, dim, num_heads, mlp_ratio=4.0):
                super().__init__()
                self.norm1 = nn.LayerNorm(dim, eps=1e-6)
                self.attn = Attention(dim, num_heads)
                self.norm2 = nn.LayerNorm(dim, eps=1e-6)
                self.mlp = MLP(dim, int(dim * mlp_ratio))

            def forward(self, x):
                for norm, layer in ((self.norm1, self.attn), (self.norm2, self.mlp)):
                    x = x + layer(F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps))
                return x
    """,
        name="block/correct/functional_norm_loop",
    ),
    Injection(
        "param_count",
        None,
        """
        def vit_parameter_count(img_size, patch_size, in_chans, num_classes, dim, depth, mlp_ratio=4.0):
            model = VisionTransformer(img_size, patch_size, in_chans, num_classes, dim, depth, num_heads=1, mlp_ratio=mlp_ratio)
            return sum(p.numel() for p in model.parameters())
    """,
        name="param_count/correct/build_and_count",
    ),
    Injection(
        "param_count",
        None,
        """
        def vit_parameter_count(img_size, patch_size, in_chans, num_classes, dim, depth, mlp_ratio=4.0):
            n = (img_size // patch_size) ** 2
            h = int(mlp_ratio * dim)
            parts = {
                "patch_embed": (patch_size * patch_size * in_chans + 1) * dim,
                "cls_token": dim,
                "pos_embed": (n + 1) * dim,
                "blocks": depth * (2 * 2 * dim + (dim + 1) * 3 * dim + (dim + 1) * dim + (dim + 1) * h + (h + 1) * dim),
                "norm": 2 * dim,
                "head": (dim + 1) * num_classes,
            }
            return sum(parts.values())
    """,
        name="param_count/correct/parts",
    ),
]
