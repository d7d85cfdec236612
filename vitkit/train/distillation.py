"""DeiT's distillation objective: a student learns the labels and a teacher's predictions at once."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["distillation_loss"]


def distillation_loss(
    outputs,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    kind: str = "hard",
    alpha: float = 0.5,
    tau: float = 3.0,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """DeiT's distillation objective (Touvron et al. 2021), a scalar.

    outputs: the student's logits (B, K), or ``(cls_logits, dist_logits)`` from a model with a distillation
    token (:class:`vitkit.deit.DistilledViT`); a plain model uses its one head for both terms.
    teacher_logits (B, K); labels (B,) true classes.

    - ``kind="hard"``: (1 - alpha)·CE(cls_logits, labels) + alpha·CE(dist_logits, teacher's argmax)
      (the paper's choice, alpha = 1/2).
    - ``kind="soft"``: (1 - alpha)·CE(cls_logits, labels) + alpha·tau²·KL(softmax(teacher/tau) ‖ softmax(dist/tau))
      (Hinton et al.'s knowledge distillation; DeiT tried alpha = 0.1, tau = 3).

    label_smoothing applies to the true-label term only.
    """
    cls_logits, dist_logits = outputs if isinstance(outputs, (tuple, list)) else (outputs, outputs)
    cls_logits, dist_logits, teacher_logits = cls_logits.float(), dist_logits.float(), teacher_logits.float()
    base = F.cross_entropy(cls_logits, labels, label_smoothing=label_smoothing)
    if kind == "hard":
        distill = F.cross_entropy(dist_logits, teacher_logits.argmax(-1))
    elif kind == "soft":
        distill = (
            F.kl_div(
                F.log_softmax(dist_logits / tau, -1),
                F.log_softmax(teacher_logits / tau, -1),
                reduction="batchmean",
                log_target=True,
            )
            * tau**2
        )
    else:
        raise ValueError(f"distillation must be 'hard' or 'soft', got {kind!r}")
    return (1 - alpha) * base + alpha * distill
