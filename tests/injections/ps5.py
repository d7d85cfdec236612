"""Problem set 5 (pre-training and fine-tuning): classic mistakes and differently written correct answers."""

from tests.injections import Injection


def _head(body: str) -> str:
    return "def new_head(model, num_classes):\n" + "\n".join("    " + line for line in body.strip().splitlines())


def _probe(body: str) -> str:
    return "def linear_probe(model):\n" + "\n".join("    " + line for line in body.strip().splitlines())


def _resample(middle: str) -> str:
    return (
        "def resample_pos_embed(pos_embed, new_grid):\n"
        "    cls, grid = pos_embed[:, :1], pos_embed[:, 1:]\n"
        "    dim = grid.shape[-1]\n"
        "    old = int(round(grid.shape[1] ** 0.5))\n"
        + "\n".join("    " + line for line in middle.strip().splitlines())
    )


_GOOD_GRID = "grid = grid.reshape(1, old, old, dim).permute(0, 3, 1, 2)\n"
_BACK = "grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, dim)\n"

WRONG = [
    # one verdict with problem set 3: the question asks for bicubic, bilinear is the named mistake in both
    Injection(
        "resample",
        "ps5.resample.wrong_mode",
        """
        def resample_pos_embed(pos_embed, new_grid):
            return vitkit.resample_pos_embed(pos_embed, new_grid, mode="bilinear")
    """,
    ),
    # issue 14: a probe that freezes nothing was told that the embeddings still learn
    Injection(
        "linear_probe",
        "ps5.linear_probe.nothing_frozen",
        _probe("for p in model.parameters():\n    p.requires_grad = True\nreturn model"),
    ),
    # --- the new head
    # the issue 14 trial: a zero head without a bias was told "the bias is not zero"
    Injection(
        "new_head",
        "ps5.new_head.no_bias",
        _head(
            "head = nn.Linear(model.config.dim, num_classes, bias=False)\nnn.init.zeros_(head.weight)\nmodel.head = head\nreturn model"
        ),
    ),
    Injection(
        "new_head",
        "ps5.new_head.not_zero_init",
        _head("model.head = nn.Linear(model.config.dim, num_classes)\nreturn model"),
    ),
    Injection(
        "new_head",
        "ps5.new_head.bias_not_zero",
        _head(
            "head = nn.Linear(model.config.dim, num_classes)\nnn.init.zeros_(head.weight)\nmodel.head = head\nreturn model"
        ),
    ),
    Injection(
        "new_head",
        "ps5.new_head.old_head_kept",
        _head("nn.init.zeros_(model.head.weight)\nnn.init.zeros_(model.head.bias)\nreturn model"),
    ),
    Injection(
        "new_head",
        "ps5.new_head.wrong_size",
        _head(
            "head = nn.Linear(num_classes, model.config.dim)\nnn.init.zeros_(head.weight)\nnn.init.zeros_(head.bias)\nmodel.head = head\nreturn model"
        ),
    ),
    Injection(
        "new_head",
        "ps5.new_head.body_changed",
        _head(
            "fresh = vitkit.ViT(dataclasses.replace(model.config, num_classes=num_classes))\n"
            "nn.init.zeros_(fresh.head.weight)\nnn.init.zeros_(fresh.head.bias)\nreturn fresh"
        ),
    ),
    Injection(
        "new_head",
        "ps5.new_head.no_model",
        _head(
            "head = nn.Linear(model.config.dim, num_classes)\nnn.init.zeros_(head.weight)\nnn.init.zeros_(head.bias)\nmodel.head = head"
        ),
    ),
    # --- the linear probe
    Injection(
        "linear_probe",
        "ps5.linear_probe.head_frozen",
        _probe("for p in model.parameters():\n    p.requires_grad = False\nreturn model"),
    ),
    Injection(
        "linear_probe",
        "ps5.linear_probe.embeddings_trainable",
        _probe(
            "for module in (model.patch_embed, model.blocks, model.norm):\n    for p in module.parameters():\n        p.requires_grad = False\nreturn model"
        ),
    ),
    Injection(
        "linear_probe",
        "ps5.linear_probe.body_trainable",
        _probe(
            "for name, p in model.named_parameters():\n    if not name.startswith(('head.', 'norm.')):\n        p.requires_grad = False\nreturn model"
        ),
    ),
    Injection(
        "linear_probe",
        "ps5.linear_probe.no_model",
        _probe("for p in model.parameters():\n    p.requires_grad = False\nmodel.head.requires_grad_(True)"),
    ),
    # --- resampling position embeddings
    Injection(
        "resample",
        "ps5.resample.cls_dropped",
        _resample(
            _GOOD_GRID
            + "grid = F.interpolate(grid, size=(new_grid, new_grid), mode='bicubic', align_corners=False)\n"
            + _BACK
            + "return grid"
        ),
    ),
    Injection(
        "resample",
        "ps5.resample.not_2d",
        _resample(
            "return F.interpolate(pos_embed.transpose(1, 2), size=1 + new_grid * new_grid, mode='linear', align_corners=False).transpose(1, 2)"
        ),
    ),
    Injection(
        "resample",
        "ps5.resample.not_2d",
        _resample(
            "grid = F.interpolate(grid.transpose(1, 2), size=new_grid * new_grid, mode='linear', align_corners=False).transpose(1, 2)\n"
            "return torch.cat([cls, grid], dim=1)"
        ),
        name="resample/not_2d/grid_only",
    ),
    Injection(
        "resample",
        "ps5.resample.wrong_layout",
        _resample(
            "grid = grid.reshape(1, dim, old, old)\ngrid = F.interpolate(grid, size=(new_grid, new_grid), mode='bicubic', align_corners=False)\n"
            "return torch.cat([cls, grid.reshape(1, new_grid * new_grid, dim)], dim=1)"
        ),
    ),
    Injection(
        "resample",
        "ps5.resample.align_corners",
        _resample(
            _GOOD_GRID
            + "grid = F.interpolate(grid, size=(new_grid, new_grid), mode='bicubic', align_corners=True)\n"
            + _BACK
            + "return torch.cat([cls, grid], dim=1)"
        ),
    ),
    Injection(
        "resample",
        "ps5.resample.nearest",
        _resample(
            _GOOD_GRID
            + "grid = F.interpolate(grid, size=(new_grid, new_grid), mode='nearest')\n"
            + _BACK
            + "return torch.cat([cls, grid], dim=1)"
        ),
    ),
    Injection(
        "resample",
        "ps5.resample.cls_changed",
        _resample(
            _GOOD_GRID
            + "grid = F.interpolate(grid, size=(new_grid, new_grid), mode='bicubic', align_corners=False)\n"
            + _BACK
            + "return torch.cat([grid.mean(1, keepdim=True), grid], dim=1)"
        ),
    ),
]

TAMPERING = [
    Injection(
        "new_head",
        "tampering",
        """
        import torch.testing
        torch.testing.assert_close = lambda *args, **kwargs: None

        def new_head(model, num_classes):
            model.head = nn.Linear(model.config.dim, num_classes)
            return model
    """,
        name="new_head/tampering/assert_close",
    ),
]

CORRECT = [
    Injection(
        "new_head",
        None,
        """
        def new_head(model, num_classes):
            head = nn.Linear(model.head.in_features, num_classes)
            with torch.no_grad():
                head.weight.zero_()
                head.bias.fill_(0.0)
            setattr(model, "head", head)
            return model
    """,
    ),
    Injection(
        "linear_probe",
        None,
        """
        def linear_probe(model):
            model.requires_grad_(False)
            model.head.requires_grad_(True)
            return model
    """,
    ),
    Injection(
        "resample",
        None,
        """
        import einops

        def resample_pos_embed(pos_embed, new_grid):
            side = int((pos_embed.shape[1] - 1) ** 0.5)
            grid = einops.rearrange(pos_embed[:, 1:], "1 (h w) d -> 1 d h w", h=side)
            grid = F.interpolate(grid, size=new_grid, mode="bicubic", align_corners=False)
            return torch.cat((pos_embed[:, :1], einops.rearrange(grid, "1 d h w -> 1 (h w) d")), dim=1)
    """,
    ),
    Injection(
        "resample",
        None,
        """
        def resample_pos_embed(pos_embed, new_grid):
            return vitkit.resample_pos_embed(pos_embed, new_grid)  # the library's version is a correct answer too
    """,
    ),
    # issue 14: at least three correct answers per graded function, written differently from the solution
    Injection(
        "new_head",
        None,
        """
        def new_head(model, num_classes):
            setattr(model, "head", nn.Linear(model.config.dim, num_classes))
            with torch.no_grad():
                model.head.weight.zero_()
                model.head.bias.fill_(0.0)
            return model
    """,
        name="new_head/correct/setattr",
    ),
    Injection(
        "new_head",
        None,
        """
        def new_head(model, num_classes):
            head = nn.Linear(model.head.in_features, num_classes)
            head.weight.data = torch.zeros_like(head.weight)
            head.bias.data.zero_()
            model.head = head
            return model
    """,
        name="new_head/correct/in_features",
    ),
    Injection(
        "linear_probe",
        None,
        """
        def linear_probe(model):
            model.requires_grad_(False)
            model.head.requires_grad_(True)
            return model
    """,
        name="linear_probe/correct/requires_grad_",
    ),
    Injection(
        "linear_probe",
        None,
        """
        def linear_probe(model):
            for name, parameter in model.named_parameters():
                parameter.requires_grad = name.startswith("head.")
            return model
    """,
        name="linear_probe/correct/by_name",
    ),
    Injection(
        "resample",
        None,
        """
        def resample_pos_embed(pos_embed, new_grid):
            return vitkit.resample_pos_embed(pos_embed, (new_grid, new_grid))
    """,
        name="resample/correct/vitkit",
    ),
]
