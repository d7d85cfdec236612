"""The timing tools every ``vitkit bench`` section uses: a ``torch.utils.benchmark`` Timer, steps timed in turn.

The sections and the command are in :mod:`vitkit.bench`.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.utils.benchmark as benchmark


def timer(fn: Callable[[], object], label: str = "") -> benchmark.Timer:
    """A ``torch.utils.benchmark.Timer`` of ``fn()`` on this process's threads (the Timer's own default is one).

    The Timer synchronises CUDA around each timing, so a step that launches GPU work is timed to its end.
    """
    return benchmark.Timer("fn()", globals={"fn": fn}, label=label, num_threads=torch.get_num_threads())


def matmul_flops_per_s(n: int = 2048, min_run_time: float = 2.0) -> float:
    """This machine's fp32 matrix-multiply rate (FLOP/s): the median n×n product of ``blocked_autorange``."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    measurement = timer(lambda: torch.mm(a, b), "matmul").blocked_autorange(min_run_time=min_run_time)
    return 2 * n**3 / measurement.median


def alternate(steps: dict[str, Callable[[], None]], rounds: int, warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each step, timing the steps in turn each round (so drift hits all alike).

    Each call is one ``Timer.timeit(1)``; a step's rounds are merged into one ``benchmark.Measurement``.
    """
    timers = {name: timer(step, name) for name, step in steps.items()}
    if warmup:
        for t in timers.values():
            t.timeit(warmup)
    runs: dict[str, list[benchmark.Measurement]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, t in timers.items():
            runs[name].append(t.timeit(1))
    return {name: benchmark.Measurement.merge(m)[0].median for name, m in runs.items()}
