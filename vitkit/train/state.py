"""What a training run carries from epoch to epoch besides the weights: the :class:`History` of its figures and the
random-number state of every process, both saved in the checkpoint so that a resumed run continues bit-for-bit."""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

__all__ = ["History"]


@dataclass
class History:
    """Per-epoch figures of a ``fit``: losses and accuracies (validation ones are NaN without a validation split)."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # wall time of the epoch (training and validation)
    images_per_s: list[float] = field(default_factory=list)  # training throughput, all ranks together

    def append(self, **row) -> None:
        for key, value in row.items():
            getattr(self, key).append(value)

    def __len__(self) -> int:
        return len(self.epoch)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(**{k: list(v) for k, v in d.items()})

    def table(self) -> str:
        """The history as a text table, one line per epoch."""
        lines = ["epoch  train_loss  train_acc  val_loss  val_acc        lr   seconds  images/s"]
        for i in range(len(self)):
            lines.append(
                f"{self.epoch[i]:5d}  {self.train_loss[i]:10.4f}  {self.train_accuracy[i]:9.4f}  {self.val_loss[i]:8.4f}  "
                f"{self.val_accuracy[i]:7.4f}  {self.lr[i]:8.2e}  {self.seconds[i]:8.1f}  {self.images_per_s[i]:8.0f}"
            )
        return "\n".join(lines)

    def plot(self, axes=None):
        """Loss and accuracy curves (train and validation) on two matplotlib axes; returns the axes."""
        import matplotlib.pyplot as plt

        if axes is None:
            _, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        for ax, key in zip(axes, ("loss", "accuracy")):
            ax.plot(self.epoch, getattr(self, f"train_{key}"), "o-", label="train")
            if any(math.isfinite(v) for v in getattr(self, f"val_{key}")):
                ax.plot(self.epoch, getattr(self, f"val_{key}"), "o-", label="validation")
            ax.set_xlabel("epoch")
            ax.set_ylabel(key)
            ax.legend()
        return axes


def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": [list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    random.setstate((3, tuple(state["python"][0]), state["python"][1]))
    if "cuda" in state and torch.cuda.is_available():
        # a machine with fewer GPUs than the one that saved: restore the GPUs this one has (each rank uses one)
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)


def _restore_rngs(rngs: list, rank: int, world_size: int, seed: int, epoch: int) -> None:
    """Each rank continues its own random streams; ranks the saving run did not have get fresh streams of their own."""
    if rank < len(rngs):
        _set_rng_state(rngs[rank])
    else:
        _set_rng_state(rngs[0])  # numpy and Python as rank 0; torch (dropout, drop-path) distinct per rank
        torch.manual_seed(_rank_seed(seed, rank) + 7_919 * epoch)


def _rank_seed(seed: int, rank: int) -> int:
    """The seed of dropout and stochastic depth on ``rank``: distinct masks on every rank, rank 0 as one process."""
    return seed + 1_000_003 * rank
