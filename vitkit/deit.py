"""DeiT's distilled ViT: "Training data-efficient image transformers & distillation through attention"
(Touvron et al., ICML 2021, arXiv:2012.12877).

The paper's ViT plus one more learned token, the distillation token. It enters beside the CLS
token, attends and is attended to like every patch, and has a head of its own, trained to agree
with a teacher's predictions (a CNN in the paper) while the CLS head learns the true labels:

image -> patches -> [CLS, DIST] + tokens -> + position embeddings -> blocks -> LayerNorm
      -> head(CLS) and head_dist(DIST) -> class scores (their mean at test time)

What the student borrows from the CNN is not its architecture but its answers: the teacher's
inductive bias reaches the transformer through the labels it produces. Train it with
``vitkit.train.fit(model, data, teacher=cnn)``; see :func:`vitkit.train.distillation_loss`.
"""

from __future__ import annotations

import torch
from torch import nn

from vitkit.registry import register_model
from vitkit.vit import ViT, ViTConfig, _vit_defaults


class DistilledViT(ViT):
    """A ViT with DeiT's distillation token. Images (B, C, H, W) -> logits (B, num_classes).

    In training with ``distilled_training = True`` (``fit(teacher=...)`` sets it) the forward pass
    returns both heads' logits ``(cls_logits, dist_logits)``, each (B, num_classes); otherwise the
    mean of the two, as the paper classifies at test time.
    """

    def __init__(self, config: ViTConfig | None = None, **kwargs):
        super().__init__(config, **kwargs)
        c = self.config
        if c.pool != "cls":
            raise ValueError(
                f"a distilled ViT classifies its CLS and distillation tokens, so pool must be 'cls', got {c.pool!r}"
            )
        self.num_prefix_tokens = 2  # CLS, then the distillation token
        self.dist_token = nn.Parameter(torch.zeros(1, 1, c.dim))
        nn.init.trunc_normal_(self.dist_token, std=0.02)
        num_tokens = 2 + self.patch_embed.num_patches
        if c.pos_embed == "learned":
            self.pos_embed = nn.Parameter(torch.randn(1, num_tokens, c.dim) * 0.02)
        else:  # the fixed sin-cos grid of the patches; zeros (no position) for both prefix tokens
            self.register_buffer(
                "pos_embed", torch.cat([torch.zeros(1, 1, c.dim), self.pos_embed], dim=1), persistent=False
            )
        self.head_dist = nn.Linear(c.dim, c.num_classes) if c.num_classes > 0 else nn.Identity()
        if c.num_classes > 0:
            nn.init.trunc_normal_(self.head_dist.weight, std=0.02)
            nn.init.zeros_(self.head_dist.bias)
        self.distilled_training = False

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 2 + N, D): CLS and distillation tokens, then the patch tokens, plus position embeddings."""
        if images.dim() != 4:
            raise ValueError(
                f"ViT expects images of shape (B, C, H, W), got {tuple(images.shape)}; add a batch dimension with images.unsqueeze(0)"
            )
        x = self.patch_embed(images)  # (B, N, D)
        B = x.shape[0]
        x = torch.cat([self.cls_token.expand(B, -1, -1), self.dist_token.expand(B, -1, -1), x], dim=1)  # (B, 2 + N, D)
        return self.pos_drop(x + self.pos_embed)

    def forward_heads(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) -> (cls_logits, dist_logits), each (B, num_classes)."""
        tokens = self.forward_features(images)  # (B, 2 + N, D)
        return self.head(tokens[:, 0]), self.head_dist(tokens[:, 1])

    def forward(self, images: torch.Tensor):
        cls_logits, dist_logits = self.forward_heads(images)
        if self.training and self.distilled_training:
            return cls_logits, dist_logits
        return (cls_logits + dist_logits) / 2


@register_model
def deit_mnist(**overrides) -> DistilledViT:
    """``vit_mnist``'s shape with DeiT's distillation token (one more token); train it with ``fit(..., teacher=cnn)``."""
    return DistilledViT(ViTConfig(**{**_vit_defaults("vit_mnist"), **overrides}))
