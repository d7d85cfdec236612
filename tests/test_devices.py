"""The GPU paths, proven on a CPU with faked hardware: patched CUDA capabilities and counts, the ``meta``
device standing in for a GPU, a counter of host-device synchronisations, a counting torch.compile backend.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import vitkit.data as data_module
import vitkit.data.formats  # noqa: F401 (patched below)
import vitkit.data.loaders  # noqa: F401
import vitkit.train as train_module
from vitkit import create_model
from vitkit.data import Split, TensorLoader, load_dataset
from vitkit.train import devices, fit, loop, resolve_device, resolve_precision
from vitkit.train import state as train_state
from vitkit.vit import ViT

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(img_size=8, patch_size=2, in_chans=1, num_classes=10, dim=32, depth=2, num_heads=2, mlp_ratio=2.0)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def tiny_vit(**overrides) -> ViT:
    torch.manual_seed(0)
    return ViT(**{**TINY, **overrides})


def fake_cuda(monkeypatch, capability=(8, 0), gpus=1, bf16_emulated=True):
    """A machine whose torch.cuda reports ``gpus`` GPUs of ``capability`` (nothing runs on them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(
        torch.cuda, "get_device_name", lambda device=None: f"Fake GPU sm_{capability[0]}{capability[1]}"
    )
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_emulated
    )  # True on a T4: emulation counts


def torchrun_env(monkeypatch, world, local_rank=0, local_world=None):
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("RANK", str(local_rank))
    monkeypatch.setenv("LOCAL_RANK", str(local_rank))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(world if local_world is None else local_world))


# ----------------------------------------------------------------------------- precision and device choice


@pytest.mark.parametrize(
    "capability, expected",
    [
        ((6, 1), "fp32"),  # GTX 10xx: fp16 at 1/64 of the fp32 rate
        ((6, 0), "fp16"),  # P100
        ((7, 0), "fp16"),  # V100
        ((7, 5), "fp16"),  # T4, RTX 20xx: is_bf16_supported() says True (emulated)
        ((8, 0), "bf16"),  # A100
        ((8, 6), "bf16"),  # RTX 30xx
        ((9, 0), "bf16"),  # H100
    ],
)
def test_auto_precision_follows_the_compute_capability_not_emulated_bf16(monkeypatch, capability, expected):
    fake_cuda(monkeypatch, capability)
    assert resolve_precision("auto", torch.device("cuda", 0)) == expected
    assert resolve_precision("fp32", torch.device("cuda", 0)) == "fp32"  # an explicit choice stands


def test_auto_precision_on_mps_is_fp32_and_on_a_cpu_follows_its_bf16_instructions_and_the_model(monkeypatch):
    assert resolve_precision("auto", torch.device("mps")) == "fp32"
    cnn, vit, hybrid = create_model("resnet_mnist"), create_model("vit_mnist"), create_model("hybrid_mnist")
    assert devices._has_convolutions(cnn) and devices._has_convolutions(hybrid)
    assert not devices._has_convolutions(vit)  # its one convolution is the patchify: P×P kernel, stride P
    assert not devices._has_convolutions(create_model("convmixer_mnist"))  # depthwise and 1×1: slower in bf16
    monkeypatch.setattr(devices, "_cpu_runs_bf16", lambda: False)
    assert resolve_precision("auto", torch.device("cpu"), cnn) == "fp32"
    monkeypatch.setattr(devices, "_cpu_runs_bf16", lambda: True)  # avx512_bf16 or AMX
    assert devices._is_cnn(cnn) and not devices._is_cnn(hybrid) and not devices._is_cnn(vit)
    assert resolve_precision("auto", torch.device("cpu"), cnn) == "bf16"  # a CNN: whole-model autocast
    assert resolve_precision("auto", torch.device("cpu"), hybrid) == "bf16-conv"  # its attention and MLPs stay fp32
    assert resolve_precision("auto", torch.device("cpu"), vit) == "fp32"
    assert resolve_precision("auto", torch.device("cpu")) == "bf16-conv"  # no model: the choice safe for both
    assert resolve_precision("fp32", torch.device("cpu"), cnn) == "fp32"  # an explicit choice stands
    assert resolve_precision("auto", torch.device("cpu"), cnn, compile=True) == "fp32"  # hooks are not compiled
    assert resolve_precision("bf16-conv", torch.device("cpu"), cnn, compile=True) == "bf16-conv"
    assert "precision:  fp32  (CPU with bf16 instructions, compiled" in "\n".join(devices.describe("cpu", compile=True))
    assert "convolutions in bf16" in "\n".join(devices.describe("cpu"))


def test_bf16_convolutions_close_their_autocast_when_a_convolution_raises():
    conv = torch.nn.Conv2d(3, 4, 3)
    with pytest.raises(RuntimeError):
        with devices._bf16_convolutions(conv):
            conv(torch.randn(1, 1, 8, 8))  # 1 channel for a 3-channel convolution
    assert not torch.is_autocast_enabled("cpu")  # nothing after it runs in bf16 by accident
    assert not conv._forward_hooks and not conv._forward_pre_hooks


def test_cpu_bf16_flags_come_from_cpuinfo(monkeypatch, tmp_path):
    import builtins

    real_open = builtins.open
    for flags, expected in (("fpu avx512f avx512_bf16", True), ("fpu amx_bf16 amx_tile", True), ("fpu avx512f", False)):
        info = tmp_path / "cpuinfo"
        info.write_text(f"processor : 0\nflags : {flags}\n")
        monkeypatch.setattr(
            builtins, "open", lambda f, *a, _i=info, **k: real_open(_i if f == "/proc/cpuinfo" else f, *a, **k)
        )
        assert devices._cpu_runs_bf16() is expected


def test_bf16_conv_runs_convolutions_in_bfloat16_and_the_rest_in_fp32(digits):
    torch.manual_seed(0)
    model = create_model("hybrid_mnist", img_size=8, patch_size=2)  # digits: 8×8
    conv, block = model.patch_embed.convs[0], model.blocks[0]
    seen = {"conv": set(), "block in": set(), "head": set()}
    conv.register_forward_hook(lambda m, i, o: seen["conv"].add(o.dtype))  # runs before fit's hook casts back
    block.register_forward_pre_hook(lambda m, args: seen["block in"].add(args[0].dtype))
    model.head.register_forward_hook(lambda m, i, o: seen["head"].add(o.dtype))
    hooks_before = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    history = fit(
        model,
        digits,
        epochs=2,
        batch_size=64,
        max_steps=8,
        lr=2e-3,
        device="cpu",
        precision="bf16-conv",
        progress=False,
    )
    assert seen == {"conv": {torch.bfloat16}, "block in": {torch.float32}, "head": {torch.float32}}
    assert history.train_loss[1] < history.train_loss[0]  # it learns
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert (
        sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == hooks_before
    )  # fit's hooks are gone
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)  # oneDNN's fastest layout for bf16
    assert model(digits.test.images[:4]).dtype == torch.float32


def test_a_cnn_in_bf16_on_the_cpu_trains_in_channels_last(digits):
    # what precision="auto" runs for resnet_mnist on a CPU with bf16 instructions: whole-model autocast
    torch.manual_seed(0)
    model = create_model("resnet_mnist")
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    seen = set()
    conv.register_forward_hook(lambda m, i, o: seen.add(o.dtype))
    history = fit(model, digits, epochs=2, batch_size=64, max_steps=6, device="cpu", precision="bf16", progress=False)
    assert seen == {torch.bfloat16} and history.train_loss[1] < history.train_loss[0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast computes in bf16, keeps fp32 weights


def test_fp16_precision_trains_with_an_enabled_gradient_scaler(monkeypatch, digits):
    # the pre-Ampere path end to end on the CPU: fp16 autocast and a GradScaler that is really on
    scalers = []
    real = torch.amp.GradScaler

    def recording(*args, **kwargs):
        scalers.append(real(*args, **kwargs))
        return scalers[-1]

    monkeypatch.setattr(torch.amp, "GradScaler", recording)
    history = fit(
        tiny_vit(), digits, epochs=1, batch_size=64, max_steps=3, device="cpu", precision="fp16", progress=False
    )
    assert math.isfinite(history.train_loss[0]) and scalers[0].is_enabled()


def test_auto_device_under_torchrun_with_more_processes_than_gpus_is_the_cpu(monkeypatch):
    fake_cuda(monkeypatch, gpus=1)
    torchrun_env(monkeypatch, world=2, local_rank=1)
    assert resolve_device("auto") == torch.device("cpu")  # every rank, so that all of them use gloo
    with pytest.raises(ValueError, match="nproc_per_node 1"):
        resolve_device("cuda")
    torchrun_env(monkeypatch, world=2, local_rank=0, local_world=1)  # two machines with one GPU and one process each
    assert resolve_device("auto") == torch.device("cuda", 0)


def test_auto_device_under_torchrun_with_enough_gpus_is_this_ranks_gpu(monkeypatch):
    fake_cuda(monkeypatch, gpus=2)
    torchrun_env(monkeypatch, world=2, local_rank=1)
    assert resolve_device("auto") == torch.device("cuda", 1)
    assert resolve_device("cuda") == torch.device("cuda", 1)


def test_gloo_never_gets_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")  # one process on a Mac: MPS
    torchrun_env(monkeypatch, world=2)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="gloo.*MPS"):
        resolve_device("mps")


# ----------------------------------------------------------------------------- host-device synchronisations


class SyncCounter(TorchDispatchMode):
    """Counts what makes the host wait for (or feed) a GPU: reading a value (item, bool, int), data-dependent
    shapes (nonzero), tensors made from Python data (a host-to-device copy on a GPU), and ``tolist``."""

    WAITS = {
        "aten._local_scalar_dense",
        "aten.nonzero",
        "aten.masked_select",
        "aten.lift_fresh",
        "aten.lift_fresh_copy",
        "aten._assert_async",
        "aten.equal",
    }

    def __init__(self):
        super().__init__()
        self.count = 0
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket)
        if name in self.WAITS:
            self.count += 1
            self.names.append(name)
        return func(*args, **(kwargs or {}))


def count_syncs(monkeypatch, run) -> SyncCounter:
    counter = SyncCounter()
    tolist = torch.Tensor.tolist

    def counted_tolist(self):
        counter.count += 1
        counter.names.append("tolist")
        return tolist(self)

    monkeypatch.setattr(torch.Tensor, "tolist", counted_tolist)
    with counter:
        run()
    monkeypatch.setattr(torch.Tensor, "tolist", tolist)
    return counter


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_host_device_waits_per_epoch_do_not_grow_with_the_steps(monkeypatch, digits, precision, capsys):
    def waits(steps):
        # the progress bar on, augmentation on (shifts): every per-step wait there is counted
        return count_syncs(
            monkeypatch,
            lambda: fit(
                tiny_vit(),
                digits,
                epochs=1,
                batch_size=32,
                max_steps=steps,
                device="cpu",
                precision=precision,
                progress=True,
            ),
        ).names

    few, many = waits(2), waits(8)
    assert len(few) == len(many), (
        f"{len(few)} waits in 2 steps, {len(many)} in 8: per-step waits {sorted(set(many) - set(few)) or many}"
    )


def test_evaluate_waits_once_whatever_the_number_of_batches(monkeypatch, digits):
    model = tiny_vit()
    few = count_syncs(monkeypatch, lambda: train_module.evaluate(model, digits.test, batch_size=180)).count
    many = count_syncs(monkeypatch, lambda: train_module.evaluate(model, digits.test, batch_size=20)).count
    assert few == many


def test_fit_sends_the_validation_split_to_the_device_once(monkeypatch, digits):
    made = []
    real = loop.make_loader

    def counting(split, *args, **kwargs):
        made.append(split)
        return real(split, *args, **kwargs)

    monkeypatch.setattr(loop, "make_loader", counting)
    fit(tiny_vit(), digits, epochs=3, batch_size=128, max_steps=1, device="cpu", progress=False)
    assert sum(split is digits.val for split in made) == 1


def test_divergence_is_still_caught_with_its_epoch_and_step(digits):
    with pytest.raises(FloatingPointError, match=r"epoch 1, step \d+.*lower learning rate than lr=10000"):
        fit(tiny_vit(), digits, epochs=2, batch_size=64, lr=1e4, warmup=0, clip_grad=None, device="cpu", progress=False)


# ----------------------------------------------------------------------------- data on a device (meta stands in for a GPU)


def test_a_large_split_stays_in_host_memory_and_batches_reach_the_device(monkeypatch):
    split = Split(torch.randn(50, 1, 8, 8), torch.arange(50) % 10)
    monkeypatch.setattr(data_module.loaders, "DEVICE_SPLIT_BYTES", split.images.nbytes - 1)
    loader = TensorLoader(split, 16, shuffle=True, device="meta")
    assert loader.images.device.type == "cpu"  # not a copy of the whole split on every GPU
    batches = list(loader)
    assert [b[0].device.type for b in batches] == ["meta"] * 4 and sum(len(b[1]) for b in batches) == 50
    small = TensorLoader(split, 16, device="meta")
    monkeypatch.setattr(data_module.loaders, "DEVICE_SPLIT_BYTES", split.images.nbytes)
    assert TensorLoader(split, 16, device="meta").images.device.type == "meta" and small.images.device.type == "cpu"


def test_an_image_folder_is_kept_on_disk_by_its_size_not_its_count(monkeypatch, tmp_path):
    from test_data import _write_pngs

    _write_pngs(tmp_path / "pets", per_class=5, size=8)
    monkeypatch.setattr(
        data_module.formats, "IN_MEMORY_BYTES", 10 * 3 * 8 * 8 * 4 - 1
    )  # 10 images are one byte too many
    data = load_dataset(f"imagefolder:{tmp_path / 'pets'}", val_size=2)
    assert isinstance(data.train, data_module.FolderSplit)


def test_batches_and_augmentation_statistics_live_on_the_device_of_the_data(digits):
    loader = TensorLoader(
        digits.train,
        32,
        shuffle=True,
        augment=data_module.Augment(translate=1),
        mean=digits.mean,
        std=digits.std,
        device="meta",
    )
    assert loader.mean.device.type == loader.std.device.type == "meta"  # made once on the device, not per batch
    images, labels, real = next(iter(TensorLoader(digits.train, 32, shuffle=True, device="meta")))
    assert images.device.type == labels.device.type == real.device.type == "meta"


def test_only_local_rank_0_downloads(monkeypatch, tmp_path):
    import torch.distributed as dist
    import torchvision

    downloads, barriers = [], []

    class FakeMNIST(torchvision.datasets.MNIST):
        def __init__(self, root, train=True, download=False):
            downloads.append(int(__import__("os").environ["LOCAL_RANK"]))

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "barrier", lambda *a, **k: barriers.append(1))
    for rank in (1, 0):
        torchrun_env(monkeypatch, world=2, local_rank=rank)
        with pytest.raises(FileNotFoundError):  # the fake fetched nothing
            load_dataset("mnist", root=tmp_path, download=True)
    assert downloads == [0] and len(barriers) == 2


# ----------------------------------------------------------------------------- CUDA settings, resume, DDP pieces


def test_cuda_tuning_is_on_during_fit_and_restored_after():
    cnn = create_model("resnet_mnist", img_size=8, widths=(8,))
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    with devices._device_tuning(cnn, torch.device("cuda", 0)):
        assert (
            torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32 and torch.backends.cudnn.benchmark
        )
    assert (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    ) == before
    assert cnn.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    with devices._device_tuning(cnn, torch.device("cpu")):
        assert torch.backends.cuda.matmul.allow_tf32 == before[0]


def test_rng_states_from_more_gpus_restore_on_fewer(monkeypatch):
    fake_cuda(monkeypatch, gpus=1)
    restored = []

    def set_rng_state(state, device="cuda"):
        index = device if isinstance(device, int) else torch.device(device).index or 0
        if index >= 1:
            raise RuntimeError(f"CUDA error: invalid device ordinal {index}")
        restored.append(index)

    monkeypatch.setattr(torch.cuda, "set_rng_state", set_rng_state)
    monkeypatch.setattr(torch.cuda.random, "set_rng_state", set_rng_state)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [torch.zeros(16, dtype=torch.uint8)] * 2)
    state = train_state._rng_state()  # saved on a machine with two GPUs
    assert len(state["cuda"]) == 2
    train_state._set_rng_state(state)
    assert restored == [0]


def test_fit_resumes_a_checkpoint_saved_with_two_gpus_on_a_machine_with_one(monkeypatch, tmp_path, digits):
    settings = dict(epochs=2, batch_size=64, max_steps=2, device="cpu", progress=False, checkpoint=tmp_path / "run.pt")
    fit(tiny_vit(), digits, **{**settings, "epochs": 1})
    state = torch.load(tmp_path / "run.pt", weights_only=True)
    state["rng"][0]["cuda"] = [
        torch.zeros(16, dtype=torch.uint8),
        torch.ones(16, dtype=torch.uint8),
    ]  # as two GPUs saved it
    torch.save(state, tmp_path / "run.pt")
    restored = []

    def set_rng_state(new_state, device="cuda"):
        index = device if isinstance(device, int) else torch.device(device).index or 0
        if index >= torch.cuda.device_count():
            raise RuntimeError(f"CUDA error: invalid device ordinal {index}")
        restored.append((index, new_state.tolist()))

    real = train_state._set_rng_state

    def on_one_gpu(rng):  # the restore sees a machine with one GPU (training itself stays a CPU run)
        with monkeypatch.context() as patch:
            fake_cuda(patch, gpus=1)
            patch.setattr(torch.cuda, "set_rng_state", set_rng_state)
            patch.setattr(torch.cuda.random, "set_rng_state", set_rng_state)
            real(rng)

    monkeypatch.setattr(train_state, "_set_rng_state", on_one_gpu)
    history = fit(tiny_vit(), digits, **settings, resume=True)
    assert history.epoch == [1, 2] and restored == [(0, [0] * 16)]


def test_resuming_on_more_ranks_than_saved_gives_each_rank_its_own_stream():
    saved = [train_state._rng_state()]
    draws = []
    for rank in (0, 1):
        train_state._restore_rngs(saved, rank, world_size=2, seed=0, epoch=1)
        draws.append(torch.rand(4))
    assert not torch.equal(draws[0], draws[1])


def test_batchnorm_is_synchronised_under_ddp_and_given_back_after():
    cnn = create_model("resnet_mnist", img_size=8, widths=(8,))
    kinds = [type(m) for m in cnn.modules()]
    weight = cnn.stem[1].weight
    restore = devices._sync_batchnorm(cnn, torch.device("cpu"))
    assert isinstance(cnn.stem[1], devices._GlooSyncBatchNorm) and cnn.stem[1].weight is weight
    x = torch.randn(6, 1, 8, 8)
    plain = create_model("resnet_mnist", img_size=8, widths=(8,))
    plain.load_state_dict(cnn.state_dict())
    assert torch.allclose(cnn(x), plain(x), atol=1e-5)  # one process: the same as BatchNorm (training mode)
    assert torch.allclose(cnn.stem[1].running_var, plain.stem[1].running_var, atol=1e-6)
    restore()
    assert [type(m) for m in cnn.modules()] == kinds and cnn.stem[1].weight is weight


# ----------------------------------------------------------------------------- torch.compile


def test_compile_makes_one_training_graph_and_compiles_validation(digits):
    torch._dynamo.reset()
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append("train" if torch.is_grad_enabled() else "eval")
        return gm.forward

    # 300 training images in batches of 64: the fifth batch has 44; the validation split (60) is one batch of 256
    train = Split(digits.train.images[:300], digits.train.labels[:300])
    history = fit(
        tiny_vit(),
        (train, digits.val),
        epochs=2,
        batch_size=64,
        device="cpu",
        compile=counting_backend,
        progress=False,
        augment=False,
    )
    torch._dynamo.reset()
    assert math.isfinite(history.val_loss[-1])
    assert sorted(graphs) == ["eval", "train"], graphs


# ----------------------------------------------------------------------------- FLOPs


def test_flops_on_cpu_count_the_fused_attention_kernel():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from vitkit import count_flops

    model = create_model("vit_cifar")
    fused = count_flops(model, (3, 32, 32))
    with sdpa_kernel(SDPBackend.MATH):  # attention as plain matrix products, which every counter sees
        explicit = count_flops(model, (3, 32, 32))
    assert fused == explicit
    assert count_flops(model, (3, 32, 32), backward=True) > 3 * fused * 0.99


# ----------------------------------------------------------------------------- vitkit doctor


def test_doctor_says_what_a_t4_will_use_and_why(monkeypatch, capsys):
    from vitkit.cli import run

    fake_cuda(monkeypatch, capability=(7, 5), gpus=1)
    assert run(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "device:     cuda:0" in out and "Fake GPU sm_75" in out
    assert "precision:  fp16" in out and "7.5" in out and "gradient scaler" in out
    assert "processes:  1" in out


def test_doctor_under_torchrun_with_more_processes_than_gpus(monkeypatch):
    fake_cuda(monkeypatch, capability=(8, 0), gpus=1)
    torchrun_env(monkeypatch, world=2, local_rank=1)
    monkeypatch.setattr(devices, "_cpu_runs_bf16", lambda: False)  # a CPU without bf16 instructions
    text = "\n".join(train_module.describe())
    assert "device:     cpu" in text and "--nproc_per_node 1" in text and "precision:  fp32" in text
    assert "processes per GPU: none (CPU, gloo)" in text


class NoFloat64(TorchDispatchMode):
    """What MPS does with float64, played by the meta device: refuse it (host tensors may hold float64)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor) and out.dtype == torch.float64 and out.device.type == "meta":
            raise TypeError(
                f"{func}: Cannot convert a MPS Tensor to float64 dtype as the MPS framework doesn't support float64"
            )
        return out


def test_attention_analysis_runs_on_a_device_without_float64(monkeypatch):
    import vitkit.analysis as analysis

    monkeypatch.setattr(analysis, "_NO_FLOAT64", {"meta"})  # meta plays MPS
    model = tiny_vit().eval()
    with torch.no_grad():
        attentions = [a.to("meta") for a in model.attention_maps(torch.randn(2, 1, 8, 8))]
    with NoFloat64():
        rollout = analysis.attention_rollout(attentions)
        distances = analysis.mean_attention_distances(attentions, patch_size=2)
        similarity = analysis.pos_embed_similarity(model.pos_embed.detach().to("meta"), num_prefix_tokens=1)
    assert rollout.shape == (2, 17, 17) and distances.shape == (2, 2) and similarity.shape == (16, 16)
    assert rollout.dtype == distances.dtype == similarity.dtype == torch.float32


# ----------------------------------------------------------------------------- the tutorial and the probes


def test_throughput_timing_waits_for_mps_and_cuda_work(monkeypatch):
    from vitkit import tutorial

    waited = []
    monkeypatch.setattr(torch.mps, "synchronize", lambda: waited.append("mps"))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: waited.append("cuda"))
    for device in ("mps", "cuda", "cpu"):
        tutorial._synchronize(torch.device(device))
    assert waited == ["mps", "cuda"]


def test_robustness_curve_waits_once_per_severity_not_per_batch(monkeypatch, digits):
    from vitkit.robustness import robustness_curve

    model = tiny_vit().eval()
    images, labels = digits.test.images[:120], digits.test.labels[:120]

    def probe(images, severity, generator=None):  # damage made on the host, as the real probes do
        return images + severity

    few = count_syncs(
        monkeypatch, lambda: robustness_curve(model, images, labels, probe, [0.0, 0.5], batch_size=120)
    ).count
    many = count_syncs(
        monkeypatch, lambda: robustness_curve(model, images, labels, probe, [0.0, 0.5], batch_size=20)
    ).count
    assert few == many


# ----------------------------------------------------------------------------- notebooks on a pretend GPU


def test_the_pretend_gpu_catches_a_cpu_tensor_meeting_a_gpu_model(digits):
    from fake_gpu import HandOffError, fake_gpu, from_fake_gpu, to_fake_gpu

    model = tiny_vit().eval()
    images = digits.test.images[:4]
    expected = model(images)
    with fake_gpu():
        to_fake_gpu(model)
        device = next(model.parameters()).device
        with pytest.raises(HandOffError, match="same device"):
            model(images)
        logits = model(images.to(device))
        with pytest.raises(TypeError, match="numpy"):
            __import__("numpy").asarray(logits)  # what matplotlib would do with it
        assert torch.allclose(logits.cpu(), expected, atol=1e-5) and type(logits.cpu()) is torch.Tensor
        assert train_module.evaluate(model, digits.test)["accuracy"] >= 0  # vitkit's own hand-offs
    from_fake_gpu(model)
    assert torch.allclose(model(images), expected, atol=1e-5)


# the lectures that train with fit or ask for a device; the others build their models on the CPU and stay there
ON_DEVICE = ["03_vit_training.ipynb", "04_vit_vs_cnn.ipynb", "05_vit_cnn_debate.ipynb"]


def test_lectures_not_run_on_the_pretend_gpu_never_ask_for_a_device():
    import nbformat

    for path in sorted(ROOT.glob("lectures/0*.ipynb")):
        if path.name in ON_DEVICE:
            continue
        code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        for word in ("fit(", "device", "tutorial.", ".cuda", "resolve_"):
            assert word not in code, (
                f"{path.name} uses {word!r}: add it to ON_DEVICE so that it runs on the pretend GPU"
            )


@pytest.mark.slow
@pytest.mark.parametrize("name", ON_DEVICE)
def test_lecture_hands_data_to_a_gpu_model_and_results_back(name, tmp_path):
    """The lecture (the tutorial is lecture 4) runs with "auto" meaning a pretend GPU (tests/fake_gpu.py): a CPU
    tensor meeting a model that fit left on the GPU fails, as it would on CUDA or MPS."""
    import nbformat

    from tests.nbtools import run_notebook

    path = ROOT / "lectures" / name
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(
        0,
        nbformat.v4.new_code_cell(
            f"import sys\nsys.path.insert(0, {str(ROOT / 'tests')!r})\nimport fake_gpu\nfake_gpu.install()"
        ),
    )
    copy = tmp_path / path.name
    nbformat.write(nb, copy)
    executed = run_notebook(copy)
    assert all(o.get("ename") is None for c in executed.cells if c.cell_type == "code" for o in c.outputs)
