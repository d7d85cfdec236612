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
import torch.utils.benchmark as benchmark

SECTIONS: dict[str, Callable[..., list[str]]] = {}


def section(fn):
    """Register ``fn(args) -> list of printed lines`` as a benchmark section named after it."""
    SECTIONS[fn.__name__] = fn
    return fn


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
        img_size=c.img_size,
        patch_size=c.patch_size,
        in_chans=c.in_chans,
        num_classes=c.num_classes,
        embed_dim=c.dim,
        depth=c.depth,
        num_heads=c.num_heads,
        mlp_ratio=c.mlp_ratio,
        qkv_bias=c.qkv_bias,
        global_pool="token",
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
        t = alternate(
            {"vitkit": training_step(ours, images, labels), "timm": training_step(theirs, images, labels)},
            rounds=args.rounds,
        )
        lines += [
            f"{name} ({c.img_size}×{c.img_size}, batch {batch}): step vitkit {t['vitkit'] * 1e3:.0f} ms, timm {t['timm'] * 1e3:.0f} ms",
            f"  step time vitkit ÷ timm: {t['vitkit'] / t['timm']:.3f}   (target ≤ 1.00)",
            f"  training FLOP/s ÷ matmul FLOP/s: vitkit {flops / t['vitkit'] / rate:.2f}, timm {flops / t['timm'] / rate:.2f}"
            f"   (target ≥ {0.60 if name == 'vit_tiny' else 0.45:.2f})",
        ]
    return lines


def _plain_timm_epoch(model, data, batch_size: int, translate: int):
    """One epoch of the usual recipe: a DataLoader over a per-image transforms pipeline, timm's ViT, AdamW."""
    from torch.utils.data import DataLoader
    from torchvision.transforms import v2

    pixels = (data.denormalize(data.train.images) * 255).round().to(torch.uint8)  # the stored digits, as uint8 images
    pipeline = v2.Compose(
        [
            v2.RandomCrop(data.image_size, padding=translate),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(data.mean, data.std),
        ]
    )

    class Digits(torch.utils.data.Dataset):
        def __len__(self):
            return len(pixels)

        def __getitem__(self, i):
            return pipeline(pixels[i]), data.train.labels[i]

    loader = DataLoader(Digits(), batch_size=batch_size, shuffle=True, num_workers=2, persistent_workers=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)

    def epoch():
        model.train()
        for images, labels in loader:
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()

    return epoch


@section
def train(args) -> list[str]:
    """End-to-end training images/s: vitkit's fit (the `vitkit train` path) vs a plain loop over timm's ViT + DataLoader."""
    from vitkit import create_model
    from vitkit.data import load_dataset
    from vitkit.train import fit, recipe

    data = load_dataset("mnist5k", val_size=0)  # training epochs only, on both sides: neither loop validates
    settings = recipe("vit_mnist").replace(epochs=1)
    if args.quick:
        data.train = data.train.__class__(data.train.images[:512], data.train.labels[:512])
    torch.manual_seed(0)
    ours, theirs = create_model("vit_mnist"), timm_twin(create_model("vit_mnist"))
    plain = _plain_timm_epoch(theirs, data, settings.batch_size, settings.augment.translate)  # the same shifts
    t = alternate(
        {"vitkit": lambda: fit(ours, data, settings, device="cpu", progress=False), "plain": plain},
        rounds=max(1, min(args.rounds, 3) if not args.quick else 1),
        warmup=1,
    )
    n = len(data.train)
    return [
        f"vit_mnist on mnist5k ({n} training images, batch {settings.batch_size}, one epoch per timing):",
        f"  vitkit fit (in-memory loader, augmentation on the device, set-up included): {n / t['vitkit']:.0f} images/s",
        f"  plain timm ViT + DataLoader (2 workers, transforms v2 per image):        {n / t['plain']:.0f} images/s",
        f"  vitkit ÷ plain: {t['plain'] / t['vitkit']:.2f}×   (target ≥ 1.20)",
    ]


def _cli_images_per_s(nproc: int, threads: int, steps: int, out: str) -> float:
    """Training images/s of `vitkit train --model vit_mnist` (global batch 128) in nproc processes of `threads` threads."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    args = [
        "train",
        "--model",
        "vit_mnist",
        "--data",
        "mnist5k",
        "--epochs",
        "2",
        "--max-steps",
        str(steps),
        "--val-size",
        "0",
        "--batch-size",
        "128",
        "--no-progress",
        "--out",
        out,
        "--device",
        "cpu",
    ]  # CPU scaling, on a GPU machine too
    if nproc == 1:
        cmd = [sys.executable, "-m", "vitkit.cli", *args]
    else:
        cmd = [
            str(Path(sys.executable).with_name("torchrun")),
            "--standalone",
            "--nproc_per_node",
            str(nproc),
            "-m",
            "vitkit.cli",
            *args,
        ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=900)
    return json.loads((Path(out) / "history.json").read_text())["images_per_s"][-1]  # epoch 2: warmed up


@section
def ddp(args) -> list[str]:
    """torchrun scaling on this machine: 2 processes × 1 thread vs 1 × 1 and 1 × 2, same global batch (vit_mnist)."""
    import statistics
    import tempfile

    steps = 4 if args.quick else 12
    runs = {"1×1": (1, 1), "2×1": (2, 1), "1×2": (1, 2)}
    rates: dict[str, list[float]] = {k: [] for k in runs}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(1 if args.quick else max(1, min(args.rounds, 3))):
            for name, (nproc, threads) in runs.items():
                rates[name].append(_cli_images_per_s(nproc, threads, steps, f"{tmp}/{name}"))
    r = {k: statistics.median(v) for k, v in rates.items()}
    return [
        f"vitkit train vit_mnist, global batch 128, {steps} steps/epoch, images/s of epoch 2 (median of {len(rates['1×1'])}):",
        f"  1 process × 1 thread {r['1×1']:.0f}, torchrun 2 processes × 1 thread {r['2×1']:.0f}, 1 process × 2 threads {r['1×2']:.0f}",
        f"  2×1 ÷ 1×1: {r['2×1'] / r['1×1']:.2f}×   (target ≥ 1.60)",
        f"  2×1 ÷ 1×2: {r['2×1'] / r['1×2']:.2f}×   (target ≥ 1.00)",
    ]


@section
def accuracy(args) -> list[str]:
    """Time to accuracy on mnist5k (train on its 4,000 training images, score its 1,000 test images), default recipes."""
    from vitkit import create_model
    from vitkit.data import load_dataset
    from vitkit.train import evaluate, fit, recipe

    data = load_dataset("mnist5k", val_size=0)
    n = len(data.train)
    lines = ["each run: the preset's recipe with as many epochs as its measured speed fits into the time limit"]
    for name, target, limit in (("resnet_mnist", 0.985, 45), ("vit_mnist", 0.97, 90)):
        settings = recipe(name)
        probe = fit(create_model(name), data, settings, epochs=2, max_steps=16, device="cpu", progress=False)
        rate = probe.images_per_s[-1]  # training images/s of this machine now, warmed up
        settings.epochs = 1 if args.quick else max(1, int(0.95 * limit * rate / n))  # 5% left for set-up
        torch.manual_seed(0)
        model = create_model(name)
        start = time.perf_counter()
        fit(model, data, settings, device="cpu", progress=False)
        seconds = time.perf_counter() - start
        acc = evaluate(model, data.test)["accuracy"]
        lines.append(
            f"{name:13s} {settings.epochs:3d} epochs: test accuracy {acc:.4f} after {seconds:5.1f} s   "
            f"(target ≥ {target:.3f} within {limit} s: {'met' if acc >= target and seconds <= limit else 'NOT met'})"
        )
    return lines


def _bf16_step(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, bf16: bool) -> Callable[[], None]:
    """One AdamW training step on a fixed batch, under CPU bf16 autocast when ``bf16``, as a closure."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(images).float(), labels)
        loss.backward()
        optimizer.step()

    return step


@section
def cpu_bf16(args) -> list[str]:
    """CPU training in fp32 vs bf16 autocast: step time side by side, and test accuracy after the same training."""
    from vitkit import create_model
    from vitkit.data import load_dataset
    from vitkit.train import evaluate, fit, recipe, resolve_precision

    flags = open("/proc/cpuinfo").read() if __import__("os").path.exists("/proc/cpuinfo") else ""
    lines = [
        f"CPU bf16 instructions: avx512_bf16 {'yes' if 'avx512_bf16' in flags else 'no'}, amx_bf16 {'yes' if 'amx_bf16' in flags else 'no'}; "
        f"precision='auto' on this CPU runs {resolve_precision('auto', torch.device('cpu'))}"
    ]
    data = load_dataset("mnist5k", val_size=0)
    images, labels = data.train.images[:64], data.train.labels[:64]
    epochs = 1 if args.quick else 3
    for name in ("vit_mnist", "resnet_mnist"):
        steps = {}
        for precision in ("fp32", "bf16"):
            torch.manual_seed(0)
            steps[precision] = _bf16_step(create_model(name), images, labels, precision == "bf16")
        t = alternate(steps, 3 if args.quick else args.rounds)
        accuracy = {}
        for precision in ("fp32", "bf16"):
            torch.manual_seed(0)
            model = create_model(name)
            settings = recipe(name).replace(epochs=epochs, max_steps=4 if args.quick else None)
            fit(model, data, settings, device="cpu", precision=precision, progress=False)
            accuracy[precision] = evaluate(model, data.test)["accuracy"]
        lines.append(
            f"{name:13s} step of 64: fp32 {1000 * t['fp32']:6.1f} ms, bf16 {1000 * t['bf16']:6.1f} ms "
            f"(bf16 {t['fp32'] / t['bf16']:.2f}× the speed); after {epochs} epochs of its recipe: test accuracy "
            f"fp32 {accuracy['fp32']:.4f}, bf16 {accuracy['bf16']:.4f}"
        )
    return lines


@section
def grading(args) -> list[str]:
    """Autograding: one solution submission per problem set, and a class of 10 with --jobs 2 vs sequential nbgrader."""
    import shutil
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from vitkit.course import grade as course_grade
    from vitkit.course.confine import kernel_baseline_gb
    from vitkit.course.paths import Course, find_course
    from vitkit.course.sandbox import Limits, grade_submission

    repo = find_course(str(Path(__file__).parent))
    pss = repo.problem_sets()[:1] if args.quick else repo.problem_sets()
    lines = []
    with tempfile.TemporaryDirectory(prefix="vitkit-bench-") as tmp:
        root = Path(tmp) / "course"
        shutil.copytree(repo.source, root / "solutions")
        shutil.copy(repo.path("nbgrader_config.py"), root / "nbgrader_config.py")
        course = Course(str(root))

        def submit(ps: str, students: list[str]) -> None:  # each student hands in the solution notebook itself
            for s in students:
                shutil.rmtree(root / "submitted" / s, ignore_errors=True)
                shutil.copytree(root / "solutions" / ps, root / "submitted" / s / ps)

        for ps in pss:
            submit(ps, ["solo"])
            start = time.perf_counter()
            [r] = course_grade.autograde(course, [ps], students=["solo"], progress=False)
            lines.append(
                f"{ps}: one solution submission {time.perf_counter() - start:5.1f} s wall "
                f"({r.score:g}/{sum(t for c in r.scores.values() for _, t in c.values()):g} points, {r.status})   (target < 60 s)"
            )
        ps = pss[0]
        submit(ps, ["solo"])
        template, limits = course_grade.make_template(course, ps), Limits(baseline_gb=kernel_baseline_gb())
        course_grade._preload()
        times = []
        for _ in range(
            2 if args.quick else 5
        ):  # the task alone, as a worker runs it: the template is made once per class
            start = time.perf_counter()
            grade_submission(course, "solo", ps, limits, template)
            times.append(time.perf_counter() - start)
        lines.append(
            f"{ps}: one submission at a time, median of {len(times)}: {statistics.median(times):.2f} s "
            f"(min {min(times):.2f} s)   (was about 6 s before the kernel was confined apart from nbgrader)"
        )
        n = 4 if args.quick else 10
        students = [f"s{i:02d}" for i in range(n)]
        shutil.rmtree(root / "submitted", ignore_errors=True)
        submit(ps, students)
        bindir = str(Path(sys.executable).parent)
        env = dict(__import__("os").environ, PATH=bindir + ":" + __import__("os").environ["PATH"])
        course.gradebook.unlink(missing_ok=True)
        subprocess.run(
            [f"{bindir}/nbgrader", "generate_assignment", ps, "--force"],
            cwd=root,
            env=env,
            check=True,
            capture_output=True,
        )
        start = time.perf_counter()
        subprocess.run(
            [f"{bindir}/nbgrader", "autograde", ps, "--force"], cwd=root, env=env, check=True, capture_output=True
        )
        sequential = time.perf_counter() - start
        from nbgrader.api import Gradebook

        with Gradebook(course.db_url, "vitkit") as gb:
            plain = {s: gb.find_submission(ps, s).score for s in students}
        course.gradebook.unlink()
        start = time.perf_counter()
        results = course_grade.autograde(course, [ps], jobs=2, limits=Limits(), progress=False)
        parallel = time.perf_counter() - start
        ours = {r.student: r.score for r in results}
        lines += [
            f"{ps}, class of {n}: sequential `nbgrader autograde` {sequential:.1f} s, `vitkit course autograde --jobs 2` "
            f"{parallel:.1f} s (sandboxed, includes the LocalCluster start)",
            f"  speed-up {sequential / parallel:.2f}×   (target ≥ 1.6×); grades identical: {ours == plain}",
        ]
    return lines


def _execute_seconds(path, env: dict) -> float:
    """Wall seconds to run the notebook at ``path`` top to bottom in a fresh kernel (its own folder, outputs discarded)."""
    import nbformat

    from vitkit.tutorial import execute_notebook

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    execute_notebook(nb, path.parent, env, timeout=600)
    return time.perf_counter() - start


@section
def notebooks(args) -> list[str]:
    """Each solution notebook and lecture 1-3 run top to bottom as a student runs them (full budget, fresh kernel)."""
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if not (root / "solutions").is_dir():
        return ["no solutions/ beside the installed package (run from a clone of the kit)"]
    env = {k: v for k, v in os.environ.items() if k not in ("VITKIT_QUICK", "NBGRADER_EXECUTION")}  # the full budget
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    cases = [(p, 60) for p in sorted((root / "solutions").glob("*/*.ipynb"))]
    cases += [(p, 120) for p in sorted((root / "lectures").glob("0[123]_*.ipynb"))]
    if args.quick:
        cases = cases[:1]
    lines = []
    for path, limit in cases:
        seconds = _execute_seconds(path, env)
        lines.append(
            f"  {path.relative_to(root)}: {seconds:5.1f} s   (target < {limit} s: {'met' if seconds < limit else 'NOT met'})"
        )
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
