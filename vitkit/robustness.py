"""Robustness probes and gradient saliency: how a ViT and a CNN cope when the image is damaged, and where they look.

Three probes, each ``probe(images, severity, generator=None) -> images`` on normalised (B, C, H, W)
images, with ``severity`` 0 leaving the images unchanged:

- :func:`occlude_patches`: random patch occlusion, the "patch drop" of Naseer et al., *Intriguing
  Properties of Vision Transformers* (2021): a share ``severity`` of the patches is blanked;
- :func:`shuffle_patches`: a share ``severity`` of the patches swap places (the image keeps all its
  pixels, only their arrangement is lost);
- :func:`gaussian_noise`: additive Gaussian noise of standard deviation ``severity`` in pixel units.

:func:`robustness_curve` measures a model's accuracy against severity on identical corrupted images
for every model; :func:`gradient_saliency` is the vanilla gradient map of Simonyan et al. (2014),
|∂ class score / ∂ pixel|, the CNN's counterpart of a ViT's attention map.
"""

from __future__ import annotations

import torch
from torch import nn

from vitkit.embedding import patchify, unpatchify

__all__ = ["PROBES", "gaussian_noise", "gradient_saliency", "occlude_patches", "robustness_curve", "shuffle_patches"]


def _check_severity(severity: float, name: str) -> float:
    severity = float(severity)
    if not 0.0 <= severity <= 1.0:
        raise ValueError(
            f"{name}: severity {severity} is the share of patches affected and must lie in [0, 1]; e.g. severity=0.25"
        )
    return severity


def _chosen_patches(batch: int, num_patches: int, count: int, generator, device) -> torch.Tensor:
    """(B, count) distinct patch indices per image, drawn uniformly at random."""
    scores = torch.rand(
        batch, num_patches, generator=generator, device="cpu" if generator is None else generator.device
    )
    return scores.to(device).argsort(dim=1)[:, :count]


def occlude_patches(
    images: torch.Tensor,
    severity: float,
    patch_size: int = 4,
    fill: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Blank exactly round(severity · N) of the N patches of each image, chosen at random.

    images (B, C, H, W) -> (B, C, H, W); H and W must be multiples of ``patch_size``. ``fill`` is the
    value written into blanked patches (0 in normalised images is the data set's mean pixel).
    """
    severity = _check_severity(severity, "occlude_patches")
    patches = patchify(images, patch_size)  # (B, N, P*P*C)
    B, N, _ = patches.shape
    count = round(severity * N)
    if count == 0:
        return images.clone()
    chosen = _chosen_patches(B, N, count, generator, images.device)  # (B, count)
    patches = patches.clone()
    patches[torch.arange(B, device=images.device)[:, None], chosen] = fill
    return unpatchify(patches, patch_size, images.shape[-2:], images.shape[1])


def shuffle_patches(
    images: torch.Tensor, severity: float, patch_size: int = 4, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Let round(severity · N) of the N patches of each image swap places at random; the rest stay put.

    images (B, C, H, W) -> (B, C, H, W). Every image keeps exactly its multiset of patches (and pixels);
    severity 1 is a full random permutation of the patch grid.
    """
    severity = _check_severity(severity, "shuffle_patches")
    patches = patchify(images, patch_size)  # (B, N, P*P*C)
    B, N, _ = patches.shape
    count = round(severity * N)
    if count < 2:
        return images.clone()
    chosen = _chosen_patches(B, N, count, generator, images.device)  # (B, count): the patches that move
    mix = _chosen_patches(B, count, count, generator, images.device)  # (B, count): a random permutation of them
    rows = torch.arange(B, device=images.device)[:, None]
    shuffled = patches.clone()
    shuffled[rows, chosen] = patches[rows, chosen.gather(1, mix)]
    return unpatchify(shuffled, patch_size, images.shape[-2:], images.shape[1])


def gaussian_noise(
    images: torch.Tensor, severity: float, std=(1.0,), generator: torch.Generator | None = None
) -> torch.Tensor:
    """Add Gaussian noise of standard deviation ``severity`` in pixel units (pixels in [0, 1]).

    images (B, C, H, W), normalised with per-channel ``std`` (the data set's), so the noise added to
    the normalised values is severity / std. The result is not clipped to the pixel range.
    """
    severity = float(severity)
    if severity < 0:
        raise ValueError(
            f"gaussian_noise: severity {severity} is a standard deviation and must be ≥ 0; e.g. severity=0.3"
        )
    if severity == 0:
        return images.clone()
    scale = severity / torch.as_tensor(std, dtype=images.dtype, device=images.device).view(-1, 1, 1)  # (C, 1, 1)
    noise = torch.randn(images.shape, generator=generator, device="cpu" if generator is None else generator.device)
    return images + noise.to(images.device, images.dtype) * scale


# name -> (probe, what its severity means); the tutorial's default severities go with them
PROBES = {
    "occlusion": (occlude_patches, "share of 4×4 patches blanked"),
    "patch shuffle": (shuffle_patches, "share of 4×4 patches swapped"),
    "gaussian noise": (gaussian_noise, "noise std (pixels in [0, 1])"),
}


@torch.no_grad()
def robustness_curve(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    probe,
    severities,
    seed: int = 0,
    batch_size: int = 500,
    **probe_kwargs,
) -> list[float]:
    """Accuracy of ``model`` on ``probe(images, severity)`` for each severity: a list, one float in [0, 1] each.

    images (N, C, H, W) normalised, labels (N,). The random damage depends only on ``seed`` and the
    severity's position, so every model sees exactly the same corrupted images.
    """
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(
            f"robustness_curve needs as many labels as images (and some images), got {len(images)} images and {len(labels)} labels"
        )
    device = next(model.parameters()).device
    on_device = labels.to(device)
    was_training = model.training
    model.eval()
    accuracies = []
    try:
        for i, severity in enumerate(severities):
            generator = torch.Generator().manual_seed(seed * 1_000 + i)
            correct = torch.zeros((), dtype=torch.long, device=device)  # counted on the device: one wait per severity
            for start in range(0, len(images), batch_size):
                damaged = probe(images[start : start + batch_size], severity, generator=generator, **probe_kwargs)
                correct += (model(damaged.to(device)).argmax(1) == on_device[start : start + batch_size]).sum()
            accuracies.append(correct.item() / len(images))
    finally:
        model.train(was_training)
    return accuracies


def gradient_saliency(model: nn.Module, images: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Vanilla gradient saliency: |∂ score of the target class / ∂ pixel|, the maximum over channels.

    images (B, C, H, W) -> saliency (B, H, W), each map scaled to a maximum of 1 (all-zero maps stay 0).
    ``target`` (B,) class indices; default: the model's own prediction. The model's parameters get no gradient.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        x = images.detach().to(device).requires_grad_(True)
        logits = model(x)  # (B, num_classes)
        if target is None:
            target = logits.argmax(1)
        score = logits.gather(1, target.to(device).view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(score, x)  # only the input's gradient: the model's .grad stays untouched
    finally:
        model.train(was_training)
    saliency = grad.abs().amax(dim=1)  # (B, H, W)
    peak = saliency.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
    return (saliency / peak).cpu()
