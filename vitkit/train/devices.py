"""Where and how ``fit`` runs: the device, the precision, the processes under torchrun (and their synchronised
BatchNorm), CUDA's fast paths and ``torch.compile``; :func:`describe` says it all for ``vitkit doctor``."""

from __future__ import annotations

import atexit
import os
from contextlib import contextmanager, nullcontext
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["describe", "resolve_device", "resolve_precision"]


def _torchrun() -> tuple[int, int, int]:
    """(world size, local rank, processes on this machine) as torchrun sets them; (1, 0, 1) outside torchrun."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    return world, local_rank, int(os.environ.get("LOCAL_WORLD_SIZE", world))


def _pick_device(device="auto") -> tuple[torch.device, str]:
    """The device ``device`` stands for and why (a sentence for ``vitkit doctor``)."""
    world, local_rank, local_world = _torchrun()
    if str(device) != "auto":
        chosen = torch.device(device)
        if world > 1 and chosen.type == "mps":
            raise ValueError(
                f"device={str(device)!r} under torchrun: gloo, the only backend on a Mac, cannot carry MPS tensors; "
                "use device='cpu' (or train in one process on MPS)"
            )
        if world > 1 and chosen.type == "cuda":
            gpus = torch.cuda.device_count()
            if local_world > gpus:
                raise ValueError(
                    f"device={str(device)!r} under torchrun with {local_world} processes on a machine with {gpus} GPU(s): "
                    f"NCCL needs one GPU per process; use --nproc_per_node {gpus} (or device='cpu' / 'auto')"
                )
            if chosen.index is None:
                chosen = torch.device("cuda", local_rank)
        return chosen, f"asked for {chosen}"
    if torch.cuda.is_available():
        gpus = torch.cuda.device_count()
        if world > 1 and local_world > gpus:
            # NCCL refuses two ranks on one GPU; every rank sees the same counts, so all of them fall back together
            return torch.device("cpu"), (
                f"torchrun started {local_world} processes on this machine but it has {gpus} GPU(s): "
                f"all processes train on the CPU with gloo (use --nproc_per_node {gpus} for the GPUs)"
            )
        index = local_rank if world > 1 else 0
        name = torch.cuda.get_device_name(index)
        return torch.device("cuda", index), f"CUDA is available ({gpus} GPU(s), this process uses GPU {index}: {name})"
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if mps and world > 1:
        return torch.device(
            "cpu"
        ), "Apple's MPS is available, but torchrun's gloo backend cannot carry MPS tensors: CPU"
    if mps:
        return torch.device("mps"), "no CUDA; Apple's MPS is available"
    return torch.device("cpu"), "no CUDA or MPS device"


def resolve_device(device="auto") -> torch.device:
    """ "auto" -> cuda (this rank's GPU under torchrun), then mps, then cpu; anything else as given.

    Under torchrun: more processes than GPUs -> every process on the CPU (gloo); never MPS (gloo cannot carry it).
    """
    return _pick_device(device)[0]


# CUDA compute capability from which bf16 runs natively (Ampere); before it cuDNN has no bf16 convolutions and
# matrix products emulate it, so fp16 with a gradient scaler is the fast choice from Volta (7.0) and P100 (6.0) on;
# consumer Pascal (6.1, GTX 10xx) runs fp16 at a small fraction of its fp32 rate.
_BF16_FROM = (8, 0)


_FP16_CAPABILITIES = lambda cc: cc >= (7, 0) or cc == (6, 0)  # noqa: E731


PRECISIONS = ("auto", "fp32", "bf16", "fp16", "bf16-conv")


def _cpu_runs_bf16() -> bool:
    """True when this CPU has bf16 arithmetic in hardware (x86 avx512_bf16 or AMX, read from /proc/cpuinfo on Linux).

    Not ``torch.ops.mkldnn._is_mkldnn_bf16_supported()``: that is also True on AVX-512 CPUs that emulate bf16.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            flags = set(f.read().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def _has_convolutions(model: nn.Module) -> bool:
    """True when ``model`` has a convolution that mixes channels over overlapping windows (kernel larger than
    stride, one group): a CNN's or a convolutional stem's. Not a ViT's patchify (a P×P kernel with stride P, one
    matrix product per patch), nor ConvMixer's depthwise convolutions, which bf16 made slower here (55 s against
    36 s for the tutorial's run)."""
    return any(
        isinstance(m, nn.Conv2d) and m.groups == 1 and any(k > s for k, s in zip(m.kernel_size, m.stride))
        for m in model.modules()
    )


def _is_cnn(model: nn.Module) -> bool:
    """True for a CNN: convolutions as :func:`_has_convolutions` counts them, and no matrix product but the
    classifier head (at most one ``Linear``), so no attention or MLP that bf16 would slow down."""
    return _has_convolutions(model) and sum(isinstance(m, nn.Linear) for m in model.modules()) <= 1


def _pick_precision(
    precision: str, device: torch.device, model: nn.Module | None = None, compile=False
) -> tuple[str, str]:
    """The precision ``precision`` stands for on ``device`` (for ``model``, where given; compiled or not) and why."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}")
    if precision != "auto":
        return precision, f"asked for {precision}"
    device = torch.device(device)
    if device.type == "cuda":
        # by compute capability, not torch.cuda.is_bf16_supported(): that is True on a T4 or V100, where bf16 is emulated
        cc = tuple(torch.cuda.get_device_capability(device))
        if cc >= _BF16_FROM:
            return "bf16", f"compute capability {cc[0]}.{cc[1]} (Ampere or newer) runs bf16 natively"
        if _FP16_CAPABILITIES(cc):
            return "fp16", f"compute capability {cc[0]}.{cc[1]} has no native bf16: fp16 with a gradient scaler"
        return "fp32", f"compute capability {cc[0]}.{cc[1]} runs fp16 slowly and bf16 not at all"
    if device.type == "mps":
        return "fp32", "MPS: fp32 (the kit does not use autocast on MPS unless asked: precision='fp16')"
    if not _cpu_runs_bf16():
        return "fp32", "CPU without bf16 instructions (avx512_bf16, AMX): fp32"
    if model is not None and not _has_convolutions(model):
        return (
            "fp32",
            "CPU with bf16 instructions, but this model has no convolutions (bf16 matrix products are slower here)",
        )
    if compile:
        return "fp32", "CPU with bf16 instructions, compiled: bf16-conv's per-convolution autocast is left out"
    if model is not None and _is_cnn(model):
        return "bf16", (
            "CPU with bf16 instructions and a CNN (no matrix product but its head): whole-model bf16 autocast, in "
            "channels_last (resnet_mnist trained about 12 % faster than with bf16-conv, one thread)"
        )
    return "bf16-conv", (
        "CPU with bf16 instructions: convolutions in bf16 (resnet_mnist trained 1.3–1.9× faster), matrix products in "
        "fp32 (bf16 autocast made the small ViTs slower); `vitkit bench --only cpu_bf16`"
    )


def resolve_precision(precision: str, device: torch.device, model: nn.Module | None = None, compile=False) -> str:
    """ "auto" -> "bf16" on CUDA of compute capability 8.0+ (Ampere), "fp16" (with a gradient scaler) on older CUDA
    (Volta, Turing, P100); on a CPU with bf16 instructions (avx512_bf16, AMX), for a model that is not compiled:
    "bf16" for a CNN (convolutions and a linear head only), "bf16-conv" for a model with convolutions and transformer
    layers (a hybrid; also when no model is given), else "fp32". An explicit "fp32", "bf16", "fp16" or "bf16-conv"
    is kept.

    "bf16-conv" runs each convolution under bf16 autocast and hands fp32 on, so attention, MLPs and heads stay fp32.
    Measured on the course's CPU (avx512_bf16, no AMX; docs/benchmarks.md): bf16 convolutions trained resnet_mnist
    1.3× (two threads) to 1.9× (one thread) as fast at the same accuracy, while whole-model bf16 autocast made
    vit_mnist slower (0.6–0.7×): its matrix products are small, and the casts around them cost more than they save.
    For a CNN, whose only matrix product is its head, whole-model bf16 is faster still (no cast back to fp32 after
    each convolution).
    With ``compile`` (``fit``'s setting) "auto" keeps fp32: the hooks that switch autocast per convolution are not
    part of a compiled graph.
    """
    return _pick_precision(precision, device, model, compile)[0]


def _autocast(device: torch.device, precision: str):
    """The autocast context of one step at ``precision`` ("bf16-conv" has none: see :func:`_bf16_convolutions`)."""
    if precision in ("fp32", "bf16-conv"):
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


@contextmanager
def _bf16_convolutions(*models: nn.Module | None, on: bool = True):
    """While it lasts, every ``Conv2d`` of ``models`` computes under bf16 autocast and returns fp32 (precision
    "bf16-conv"); hooks, removed on exit, so the models leave as they came."""
    if not on:
        yield
        return
    opened: list = []

    def enter(module, args):
        context = torch.autocast(args[0].device.type, dtype=torch.bfloat16)
        context.__enter__()
        opened.append(context)

    def leave(module, args, output):
        opened.pop().__exit__(None, None, None)
        return output.float()

    handles = []
    for model in models:
        for m in model.modules() if model is not None else ():
            if isinstance(m, nn.Conv2d):
                handles += [m.register_forward_pre_hook(enter), m.register_forward_hook(leave)]
    try:
        yield
    finally:
        while opened:  # a convolution that raised never reached its forward hook: close its autocast here
            opened.pop().__exit__(None, None, None)
        for handle in handles:
            handle.remove()


def _distributed(device: torch.device, timeout_s: float = 300) -> tuple[int, int]:
    """(rank, world_size): joins the torchrun process group on first use (gloo on CPU, NCCL on CUDA)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1:
        return 0, 1
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))  # a rank that never arrives fails, not hangs
    atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    return dist.get_rank(), dist.get_world_size()


def _all_sum(values: torch.Tensor, world_size: int) -> torch.Tensor:
    if world_size > 1:
        values = values.clone()
        dist.all_reduce(values)
    return values


def _sync_batchnorm(model: nn.Module, device: torch.device):
    """Under DDP, BatchNorm layers normalise with the statistics of the global batch, as one process would.

    Swaps each BatchNorm for a synchronised one sharing its parameters and running buffers (torch's SyncBatchNorm
    on CUDA; on the CPU, where torch's needs a GPU, :class:`_GlooSyncBatchNorm`); returns a function that puts
    the originals back, so the caller's model leaves ``fit`` with the classes it came with.
    """
    swapped = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(
                child, (nn.SyncBatchNorm, _GlooSyncBatchNorm)
            ):
                sync = (nn.SyncBatchNorm if device.type == "cuda" else _GlooSyncBatchNorm)(
                    child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
                ).to(device)
                if child.affine:
                    sync.weight, sync.bias = child.weight, child.bias  # the same Parameters: the optimizer's
                sync.running_mean, sync.running_var, sync.num_batches_tracked = (
                    child.running_mean,
                    child.running_var,
                    child.num_batches_tracked,
                )
                sync.train(child.training)
                setattr(parent, name, sync)
                swapped.append((parent, name, child))

    def restore():
        for parent, name, child in swapped:
            child.train(getattr(parent, name).training)
            setattr(parent, name, child)

    return restore


class _GlooSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch of all ranks, for CPU processes (gloo); (B, C, ...) -> (B, C, ...).

    Two autograd-aware all-reduces per layer: the per-channel sums and counts give the global mean, then the
    squared deviations from it give the global (biased) variance, exactly as one process computes them.
    """

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (B, C, ...), got {tuple(input.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = [0] + list(range(2, x.dim()))  # every axis but the channels
        local = torch.cat([x.sum(dims), x.new_full((1,), x.numel() // x.shape[1])])  # (C + 1,): sums, count
        total = all_reduce(local)
        count = total[-1]
        mean = total[:-1] / count  # (C,)
        shape = [1, -1] + [1] * (x.dim() - 2)
        centred = x - mean.view(shape)
        var = all_reduce(centred.pow(2).sum(dims)) / count  # (C,), biased, as BatchNorm normalises
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), factor)
                self.running_var.lerp_(var.detach() * count / (count - 1), factor)  # unbiased, as BatchNorm keeps it
        return out


@contextmanager
def _device_tuning(model: nn.Module, device: torch.device, precision: str = "fp32"):
    """For the length of a ``fit`` on CUDA: TF32 matrix products and convolutions, cuDNN's autotuner, and a CNN in
    ``channels_last`` (the layout tensor cores read); the process's TF32 and autotuner settings are restored after.
    On a CPU at precision "bf16-conv" or "bf16", a model with convolutions goes ``channels_last`` too (oneDNN's bf16
    convolutions run fastest in it: resnet_mnist's bf16-conv step 105 ms against 133 ms, its bf16 step 95 ms against
    108 ms, one thread).
    """
    if device.type != "cuda":
        if precision in ("bf16", "bf16-conv") and _has_convolutions(model):
            model.to(memory_format=torch.channels_last)
        yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True  # fixed image sizes: pick the fastest convolution once per shape
    if any(isinstance(m, nn.Conv2d) for m in model.modules()):
        model.to(memory_format=torch.channels_last)  # convolutions then run NHWC without layout transposes
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved


def _compiler(compile):
    """``compile`` (False, True for inductor, or a torch.compile backend name or callable) -> a function wrapping a module, or None."""
    if compile is False or compile is None:
        return None
    backend = "inductor" if compile is True else compile
    return lambda module: torch.compile(module, backend=backend)


def describe(device="auto", precision: str = "auto", compile: bool = False) -> list[str]:
    """What ``fit`` will use on this machine, and why: device, precision, compile, processes per GPU (lines of text)."""
    world, local_rank, local_world = _torchrun()
    chosen, why_device = _pick_device(device)
    # for a model with convolutions and attention (no model given): what the hybrid gets
    chosen_precision, why_precision = _pick_precision(precision, chosen, compile=compile)
    lines = [
        f"torch {torch.__version__}",
        f"device:     {chosen}  ({why_device})",
        f"precision:  {chosen_precision}  ({why_precision})",
    ]
    if chosen.type == "cuda":
        lines.append(
            "cuda:       TF32 matrix products and cuDNN autotuning during fit (restored after); CNNs in channels_last"
        )
    if compile:
        import importlib.util

        inductor = importlib.util.find_spec("triton") is not None or chosen.type == "cpu"
        lines.append(
            f"compile:    torch.compile, batch axis dynamic (one graph for every batch size), validation compiled too"
            f"{'' if inductor else '; inductor needs triton on a GPU: pip install triton, or leave --compile off'}"
        )
    else:
        lines.append("compile:    off (--compile to turn it on: slower first epoch, faster after on a GPU)")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if world > 1:
        per_gpu = "none (CPU, gloo)" if chosen.type != "cuda" else "1 (NCCL)"
        lines.append(
            f"processes:  {world} under torchrun, {local_world} on this machine (this is local rank {local_rank}); "
            f"{gpus} GPU(s) here; processes per GPU: {per_gpu}"
        )
    else:
        hint = f"; torchrun --nproc_per_node {gpus} uses them all" if gpus > 1 else ""
        lines.append(f"processes:  1 (not under torchrun); {gpus} GPU(s) here{hint}")
    return lines
