"""Benchmarks that print ratios measured side by side in one process (``vitkit bench`` / ``make bench``).

Absolute times on a shared machine are noise; ratios of two things timed alternately in the same
run are not. Each section is a function registered in ``SECTIONS``; ``vitkit bench --only NAME``
runs some of them.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F

SECTIONS: dict[str, Callable[..., list[str]]] = {}


def section(fn):
    """Register ``fn(args) -> list of printed lines`` as a benchmark section named after it."""
    SECTIONS[fn.__name__] = fn
    return fn


def matmul_flops_per_s(n: int = 2048, repeats: int = 7) -> float:
    """This machine's fp32 matrix-multiply rate (FLOP/s), the median of ``repeats`` n×n products."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times)


def alternate(steps: dict[str, Callable[[], None]], rounds: int, warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each step, timing the steps in turn each round (so drift hits all alike)."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def training_step(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    """One AdamW step of cross-entropy training on a fixed batch, as a closure."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()

    return step


def timm_twin(model) -> torch.nn.Module:
    """timm's VisionTransformer with the same configuration as a vitkit ViT."""
    from timm.models.vision_transformer import VisionTransformer

    c = model.config
    return VisionTransformer(
        img_size=c.img_size, patch_size=c.patch_size, in_chans=c.in_chans, num_classes=c.num_classes, embed_dim=c.dim,
        depth=c.depth, num_heads=c.num_heads, mlp_ratio=c.mlp_ratio, qkv_bias=c.qkv_bias, global_pool="token",
    )


@section
def model(args) -> list[str]:
    """vitkit's ViT vs timm's: training-step time and achieved FLOP/s against the matmul rate."""
    from vitkit import count_flops, create_model

    cases = [("vit_tiny", 16), ("vit_mnist", 128)] if not args.quick else [("vit_mnist", 32)]
    rate = matmul_flops_per_s()
    lines = [f"fp32 matmul rate (2048×2048, {torch.get_num_threads()} threads): {rate / 1e9:.1f} GFLOP/s"]
    for name, batch in cases:
        torch.manual_seed(0)
        ours = create_model(name)
        theirs = timm_twin(ours)
        c = ours.config
        images = torch.randn(batch, c.in_chans, c.img_size, c.img_size)
        labels = torch.randint(0, c.num_classes, (batch,))
        flops = count_flops(ours, images.shape, backward=True)
        t = alternate({"vitkit": training_step(ours, images, labels), "timm": training_step(theirs, images, labels)}, rounds=args.rounds)
        lines += [
            f"{name} ({c.img_size}×{c.img_size}, batch {batch}): step vitkit {t['vitkit'] * 1e3:.0f} ms, timm {t['timm'] * 1e3:.0f} ms",
            f"  step time vitkit ÷ timm: {t['vitkit'] / t['timm']:.3f}   (target ≤ 1.00)",
            f"  training FLOP/s ÷ matmul FLOP/s: vitkit {flops / t['vitkit'] / rate:.2f}, timm {flops / t['timm'] / rate:.2f}"
            f"   (target ≥ {0.60 if name == 'vit_tiny' else 0.45:.2f})",
        ]
    return lines


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
