"""Scoring a trained model: loss and accuracy over a split (summed over torchrun's ranks), and its predictions."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from vitkit.checkpoint import unwrap as _unwrap
from vitkit.data import Dataset, make_loader
from vitkit.train.devices import _all_sum, _autocast

__all__ = ["evaluate", "predict"]


@torch.no_grad()
def evaluate(model: nn.Module, data, batch_size: int = 512, device=None, precision: str = "fp32") -> dict:
    """{"loss", "accuracy"} of ``model`` on a split (or a Dataset's test split), every image counted once.

    Under torchrun each rank scores its share and the sums are combined, so every rank gets the whole-set figures.
    """
    split = data.test if isinstance(data, Dataset) else data
    model = _unwrap(model)  # no DDP hooks: ranks may hold different numbers of batches
    device = next(model.parameters()).device if device is None else torch.device(device)
    rank, world_size = (
        (dist.get_rank(), dist.get_world_size()) if dist.is_available() and dist.is_initialized() else (0, 1)
    )
    return _score(
        model,
        make_loader(split, batch_size, device=device, rank=rank, world_size=world_size),
        device,
        precision,
        world_size,
    )


@torch.no_grad()
def _score(
    model: nn.Module, loader, device: torch.device, precision: str, world_size: int, dynamic: bool = False
) -> dict:
    """{"loss", "accuracy"} over a loader's batches, summed over ranks; one wait for the device, at the end."""
    was_training = model.training
    model.eval()
    dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
    totals = torch.zeros(2, dtype=dtype, device=device)  # loss sum, correct
    count = 0  # counted on the host: no small tensor sent to the device per batch
    try:
        for images, labels, _ in loader:
            if dynamic:
                torch._dynamo.mark_dynamic(images, 0)  # the last batch is smaller: no second graph
            with _autocast(device, precision):
                logits = model(images).float()
            totals += torch.stack(
                [F.cross_entropy(logits, labels, reduction="sum"), (logits.argmax(1) == labels).sum()]
            ).to(dtype)
            count += len(labels)
    finally:
        model.train(was_training)
    loss, correct, count = _all_sum(torch.cat([totals, totals.new_tensor([count])]), world_size).tolist()
    if count == 0:
        raise ValueError("evaluate got an empty split; pass a split with images (e.g. dataset.test)")
    return {"loss": loss / count, "accuracy": correct / count}


@torch.no_grad()
def predict(model: nn.Module, data, batch_size: int = 512, probabilities: bool = False) -> torch.Tensor:
    """Predicted classes (N,) for normalised images (N, C, H, W), a split or a Dataset's test split.

    probabilities=True gives the softmax (N, num_classes) instead.
    """
    split = data.test if isinstance(data, Dataset) else data
    images = split if isinstance(split, torch.Tensor) else None
    model = _unwrap(model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        if images is not None:
            if images.dim() == 3:
                raise ValueError(
                    f"predict expects a batch (N, C, H, W), got {tuple(images.shape)}; use images.unsqueeze(0) for one image"
                )
            batches = (images[i : i + batch_size].to(device) for i in range(0, len(images), batch_size))
        else:
            batches = (x for x, _, _ in make_loader(split, batch_size, device=device))
        logits = torch.cat([model(x).float().cpu() for x in batches])  # (N, num_classes)
    finally:
        model.train(was_training)
    return logits.softmax(-1) if probabilities else logits.argmax(-1)
