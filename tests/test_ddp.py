"""fit under torchrun: 2 CPU processes with gloo, compared with one process on the same global batch.

This file is also the worker that torchrun starts: ``torchrun --standalone --nproc_per_node 2 tests/test_ddp.py OUT EPOCHS RESUME STALL``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")
TINY = dict(img_size=8, patch_size=2, in_chans=1, num_classes=10, dim=32, depth=2, num_heads=2, mlp_ratio=2.0)
# no augmentation randomness, 128 training images = 4 global batches of 32 per epoch
SETTINGS = dict(
    epochs=3,
    batch_size=32,
    lr=2e-3,
    warmup=0.5,
    label_smoothing=0.1,
    augment=False,
    device="cpu",
    progress=False,
    precision="fp32",  # one process against two to 1e-4: bf16 convolutions (auto on CPUs with bf16) round differently
)


def _data():
    from vitkit.data import load_dataset

    return load_dataset("digits", subset=128, val_size=100)


def _model():
    from vitkit.vit import ViT

    torch.manual_seed(0)
    return ViT(**TINY)


def _cnn(**overrides):
    from vitkit import create_model

    torch.manual_seed(0)
    return create_model("resnet_mnist", img_size=8, widths=(8, 16), **overrides)


def worker(out: str, epochs: int, resume: bool, stall: bool) -> None:
    """One torchrun rank: train, record parameters, sampler shards and figures for the test to check."""
    import torch.distributed as dist

    from vitkit.data import TensorLoader
    from vitkit.train import evaluate, fit

    torch.set_num_threads(1)
    out = Path(out)
    data, model = _data(), _model()

    def log(history):
        if stall and len(history) >= 2:
            time.sleep(120)  # rank 0 stalls in epoch 2 before its checkpoint; the test kills the run

    history = fit(
        model, data, **{**SETTINGS, "epochs": epochs}, checkpoint=out / "ckpt" / "checkpoint.pt", resume=resume, log=log
    )
    rank, world = dist.get_rank(), dist.get_world_size()
    shards = {}
    for epoch in (0, 1):
        loader = TensorLoader(data.train, 16, shuffle=True, rank=rank, world_size=world, seed=0)
        loader.set_epoch(epoch)
        index, real = loader.indices()
        gathered = [None] * world
        dist.all_gather_object(gathered, index[real].tolist())
        shards[epoch] = gathered
    torch.save(model.state_dict(), out / f"rank{rank}.pt")
    masks = None
    if not (resume or stall):
        # a ResNet with BatchNorm: synchronised statistics make two processes train as one on the global batch
        cnn = _cnn()
        fit(cnn, data, **{**SETTINGS, "lr": 3e-3})
        torch.save(cnn.state_dict(), out / f"cnn{rank}.pt")
        # dropout: each rank draws its own masks
        dropped = _cnn(drop_rate=0.5)
        seen = []
        dropped.drop.register_forward_hook(lambda m, i, o: seen.append(((o == 0) & (i[0] != 0)).flatten().tolist()))
        fit(dropped, data, **{**SETTINGS, "epochs": 1}, max_steps=1)
        masks = seen[0]
    (out / f"rank{rank}.json").write_text(
        json.dumps(
            {
                "world": world,
                "history": history.as_dict(),
                "shards": shards,
                "test": evaluate(model, data.test, batch_size=50),
                "masks": masks,
            }
        )
    )


def _torchrun(out: Path, epochs: int, resume: bool = False, stall: bool = False, wait: bool = True):
    cmd = [
        str(TORCHRUN),
        "--standalone",
        "--nproc_per_node",
        "2",
        str(Path(__file__).resolve()),
        str(out),
        str(epochs),
        str(int(resume)),
        str(int(stall)),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    if wait:
        output, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, output[-3000:]
    return proc


def _params(path):
    return torch.load(path, weights_only=True)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted 2-process run of 3 epochs."""
    if not TORCHRUN.exists():
        pytest.skip(f"torchrun not found next to {sys.executable}")
    out = tmp_path_factory.mktemp("ddp")
    _torchrun(out, epochs=3)
    return out


@pytest.mark.slow
def test_ranks_end_with_identical_parameters(straight):
    a, b = _params(straight / "rank0.pt"), _params(straight / "rank1.pt")
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.slow
def test_two_processes_match_one_process_with_the_same_global_batch(straight):
    from vitkit.train import fit

    model = _model()
    history = fit(model, _data(), **SETTINGS)
    ddp = _params(straight / "rank0.pt")
    for name, value in model.state_dict().items():
        assert torch.allclose(value, ddp[name], atol=1e-4, rtol=0), (
            f"{name}: max difference {(value - ddp[name]).abs().max():.2e}"
        )
    record = json.loads((straight / "rank0.json").read_text())
    assert record["world"] == 2
    # metrics are summed over ranks: every training and validation image counted once, as in one process
    assert record["history"]["val_accuracy"] == pytest.approx(history.val_accuracy, abs=1e-6)
    assert record["history"]["train_loss"] == pytest.approx(history.train_loss, rel=1e-4)


@pytest.mark.slow
def test_a_resnet_with_batchnorm_in_two_processes_matches_one_process_with_the_global_batch(straight):
    from vitkit.train import fit

    cnn = _cnn()
    fit(cnn, _data(), **{**SETTINGS, "lr": 3e-3})
    a, b = _params(straight / "cnn0.pt"), _params(straight / "cnn1.pt")
    for name, value in cnn.state_dict().items():  # weights and BatchNorm's running statistics
        assert torch.equal(a[name], b[name]), name
        assert torch.allclose(value.float(), a[name].float(), atol=1e-4, rtol=0), (
            f"{name}: max difference {(value - a[name]).abs().max():.2e}"
        )


@pytest.mark.slow
def test_each_rank_draws_its_own_dropout_masks(straight):
    masks = [json.loads((straight / f"rank{rank}.json").read_text())["masks"] for rank in (0, 1)]
    assert len(masks[0]) == len(masks[1]) > 50 and masks[0] != masks[1]


@pytest.mark.slow
def test_sampler_shards_are_disjoint_covering_and_reshuffled(straight):
    shards = json.loads((straight / "rank0.json").read_text())["shards"]
    for epoch in ("0", "1"):
        rank0, rank1 = shards[epoch]
        assert not set(rank0) & set(rank1) and sorted(rank0 + rank1) == list(range(128))
    assert shards["0"][0] != shards["1"][0]


@pytest.mark.slow
def test_exactly_one_checkpoint_and_it_loads_in_one_process(straight):
    import vitkit.pretrained as pretrained

    assert [p.name for p in (straight / "ckpt").iterdir()] == ["checkpoint.pt"]
    model = pretrained.load(straight / "ckpt" / "checkpoint.pt")
    ddp = _params(straight / "rank0.pt")
    assert all(torch.equal(v, ddp[k]) for k, v in model.state_dict().items())


@pytest.mark.slow
def test_evaluate_under_torchrun_equals_the_single_process_figure(straight):
    import vitkit.pretrained as pretrained
    from vitkit.train import evaluate

    model = pretrained.load(straight / "ckpt" / "checkpoint.pt")
    single = evaluate(model, _data().test)
    for rank in (0, 1):
        got = json.loads((straight / f"rank{rank}.json").read_text())["test"]
        assert got["accuracy"] == pytest.approx(single["accuracy"], abs=1e-9)
        assert got["loss"] == pytest.approx(single["loss"], rel=1e-6)


@pytest.mark.slow
def test_killed_and_resumed_under_torchrun_ends_where_an_uninterrupted_run_ends(straight, tmp_path):
    victim = _torchrun(tmp_path, epochs=3, stall=True, wait=False)
    try:
        deadline = time.monotonic() + 180
        while not (tmp_path / "ckpt" / "checkpoint.pt").exists():
            assert victim.poll() is None, victim.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint after 180 s"
            time.sleep(0.05)
        os.killpg(victim.pid, signal.SIGKILL)  # torchrun and both ranks, mid-run
        victim.wait()
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
        victim.stdout.close()
    assert torch.load(tmp_path / "ckpt" / "checkpoint.pt", weights_only=True)["epoch"] < 3
    assert not (tmp_path / "rank0.pt").exists()
    _torchrun(tmp_path, epochs=3, resume=True)
    a, b = _params(straight / "rank0.pt"), _params(tmp_path / "rank0.pt")
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert json.loads((tmp_path / "rank0.json").read_text())["history"]["epoch"] == [1, 2, 3]


if __name__ == "__main__":
    worker(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4] == "1")
