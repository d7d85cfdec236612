"""Benchmarks that print ratios measured side by side in one process (``vitkit bench`` / ``make bench``).

Absolute times on a shared machine are noise; ratios of two things timed alternately in the same
run are not. Each section is a function registered in ``SECTIONS``; ``vitkit bench --only NAME``
runs some of them.

The sections live by family in :mod:`vitkit.bench.speed` (``model``, ``train``, ``ddp``),
:mod:`vitkit.bench.training` (``accuracy``, ``cpu_bf16``) and :mod:`vitkit.bench.course` (``grading``,
``notebooks``); the timing tools in :mod:`vitkit.bench.timing`.
"""

from __future__ import annotations

from typing import Callable

import torch

from vitkit.bench.course import grading, notebooks
from vitkit.bench.speed import ddp, model, timm_twin, train, training_step
from vitkit.bench.timing import alternate, matmul_flops_per_s, timer
from vitkit.bench.training import accuracy, cpu_bf16

__all__ = [
    "SECTIONS",
    "accuracy",
    "add_arguments",
    "alternate",
    "cpu_bf16",
    "ddp",
    "grading",
    "main",
    "matmul_flops_per_s",
    "model",
    "notebooks",
    "timer",
    "timm_twin",
    "train",
    "training_step",
]

# The sections in the order ``vitkit bench`` runs them: each ``fn(args) -> list of printed lines``, named after it.
SECTIONS: dict[str, Callable[..., list[str]]] = {
    fn.__name__: fn for fn in (model, train, ddp, accuracy, cpu_bf16, grading, notebooks)
}


def add_arguments(parser) -> None:
    parser.add_argument("--only", help=f"comma-separated sections to run (default: all of {', '.join(SECTIONS)})")
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds per measurement (default 10)")
    parser.add_argument("--quick", action="store_true", help="small cases only, to check that the benchmarks run")


def main(args) -> int:
    """Run the selected sections and print their lines."""
    names = args.only.split(",") if args.only else list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown benchmark section(s) {unknown}; known: {', '.join(SECTIONS)}")
    print(f"vitkit bench on {torch.get_num_threads()} threads, torch {torch.__version__}", flush=True)
    for name in names:
        print(f"\n== {name}: {SECTIONS[name].__doc__.splitlines()[0]}", flush=True)
        for line in SECTIONS[name](args):
            print(line, flush=True)
    return 0
