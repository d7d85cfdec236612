"""vitkit.train: fit / evaluate / predict on CPU, checkpoints and resume (also after killing a real process), the CLI."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import vitkit.pretrained as pretrained
from vitkit import create_model
from vitkit.data import Augment, load_dataset
from vitkit.train import RECIPES, History, TrainConfig, evaluate, fit, predict, recipe, resolve_precision
from vitkit.vit import ViT

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


ROOT = Path(__file__).resolve().parents[1]
TINY = dict(img_size=8, patch_size=2, in_chans=1, num_classes=10, dim=32, depth=2, num_heads=2, mlp_ratio=2.0)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def tiny_vit(seed: int = 0, **overrides) -> ViT:
    torch.manual_seed(seed)
    return ViT(**{**TINY, **overrides})


def tiny_cnn(seed: int = 0):
    torch.manual_seed(seed)
    return create_model("resnet_mnist", img_size=8, widths=(16, 32))


def test_fit_trains_a_cnn_on_digits_and_records_history(digits):
    model = tiny_cnn()
    history = fit(model, digits, epochs=3, batch_size=64, lr=3e-3, warmup=0.5, device="cpu", progress=False)
    assert isinstance(history, History) and history.epoch == [1, 2, 3]
    assert history.train_loss[-1] < history.train_loss[0] < 2.4
    assert history.val_accuracy[-1] > 0.4  # chance is 0.1
    assert history.lr[-1] == pytest.approx(0.0, abs=1e-9)  # cosine decay ends at zero
    assert all(s > 0 for s in history.seconds) and all(r > 0 for r in history.images_per_s)
    assert evaluate(model, digits.val)["accuracy"] == pytest.approx(history.val_accuracy[-1])


def test_history_table_dict_round_trip_and_plot(digits):
    import matplotlib

    matplotlib.use("Agg")
    history = fit(tiny_vit(), digits, epochs=2, batch_size=128, max_steps=2, device="cpu", progress=False)
    assert History.from_dict(history.as_dict()) == history
    assert len(history.table().splitlines()) == 3
    axes = history.plot()
    assert len(axes) == 2 and len(axes[0].lines) == 2  # train and validation


def test_progress_bar_runs(digits, capsys):
    fit(tiny_vit(), digits.train, epochs=1, batch_size=256, device="cpu", progress=True, augment=False)
    assert "epoch 1/1" in capsys.readouterr().out


def test_evaluate_counts_every_image_once_and_matches_a_direct_computation(digits):
    model = tiny_vit().eval()
    with torch.no_grad():
        logits = model(digits.test.images)
    expected_loss = torch.nn.functional.cross_entropy(logits, digits.test.labels).item()
    expected_acc = (logits.argmax(1) == digits.test.labels).float().mean().item()
    got = evaluate(model, digits, batch_size=7)  # a Dataset means its test split; 360 is not a multiple of 7
    assert got["loss"] == pytest.approx(expected_loss, rel=1e-5) and got["accuracy"] == pytest.approx(expected_acc)
    assert model.training is False


def test_predict_classes_and_probabilities(digits):
    model = tiny_vit()
    classes = predict(model, digits.test.images[:10], batch_size=4)
    probs = predict(model, digits.test, probabilities=True)
    assert classes.shape == (10,) and probs.shape == (360, 10)
    assert torch.allclose(probs.sum(1), torch.ones(360), atol=1e-5)
    assert torch.equal(probs[:10].argmax(1), classes)
    with pytest.raises(ValueError, match="unsqueeze"):
        predict(model, digits.test.images[0])


def test_bf16_autocast_on_cpu_runs_matrix_products_in_bfloat16(digits):
    model = tiny_vit()
    seen = []
    model.head.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    before = model.head.weight.detach().clone()
    history = fit(model, digits, epochs=1, batch_size=64, max_steps=3, device="cpu", precision="bf16", progress=False)
    assert torch.bfloat16 in seen and math.isfinite(history.train_loss[0])
    assert model.head.weight.dtype == torch.float32 and not torch.equal(before, model.head.weight)
    assert resolve_precision("auto", torch.device("cpu"), model) == "fp32"  # no convolutions but the patchify
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("int8", torch.device("cpu"))


def test_fp16_with_gradient_scaler_on_cpu(digits):
    history = fit(
        tiny_vit(), digits, epochs=1, batch_size=64, max_steps=3, device="cpu", precision="fp16", progress=False
    )
    assert math.isfinite(history.train_loss[0])


def test_divergence_names_epoch_and_step_and_suggests_a_lower_learning_rate(digits):
    with pytest.raises(FloatingPointError, match=r"epoch 1, step \d+.*lower learning rate than lr=10000"):
        fit(tiny_vit(), digits, epochs=2, batch_size=64, lr=1e4, warmup=0, clip_grad=None, device="cpu", progress=False)


def test_augmentation_options(digits):
    for augment in (True, False, "randaugment"):
        history = fit(
            tiny_vit(), digits, epochs=1, batch_size=64, max_steps=2, augment=augment, device="cpu", progress=False
        )
        assert math.isfinite(history.train_loss[0])
    with pytest.raises(ValueError, match="mean and std"):
        fit(tiny_vit(), digits.train, epochs=1, augment=Augment(translate=1), device="cpu", progress=False)


def test_label_smoothing_raises_the_loss_of_confident_predictions(digits):
    a = fit(tiny_cnn(), digits, epochs=2, batch_size=64, lr=3e-3, device="cpu", progress=False, augment=False)
    b = fit(
        tiny_cnn(),
        digits,
        epochs=2,
        batch_size=64,
        lr=3e-3,
        label_smoothing=0.2,
        device="cpu",
        progress=False,
        augment=False,
    )
    assert a.train_loss[0] != b.train_loss[0]


def test_checkpoint_loads_with_pretrained_load_and_holds_training_state(tmp_path, digits):
    model = tiny_vit()
    fit(
        model,
        digits,
        epochs=1,
        batch_size=128,
        max_steps=2,
        device="cpu",
        checkpoint=tmp_path / "run.pt",
        progress=False,
    )
    state = torch.load(tmp_path / "run.pt", weights_only=True)
    assert {"optimizer", "scheduler", "epoch", "history", "rng", "config", "state_dict", "train_config"} <= set(state)
    assert TrainConfig.from_record(state["train_config"]) == TrainConfig(epochs=1, batch_size=128, max_steps=2)
    assert state["epoch"] == 1 and not any(k.startswith(("module.", "_orig_mod.")) for k in state["state_dict"])
    loaded = pretrained.load(tmp_path / "run.pt")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]  # no temporary files left behind


def test_resume_continues_to_the_same_weights_as_an_uninterrupted_run(tmp_path, digits):
    settings = dict(
        epochs=3, batch_size=64, lr=2e-3, warmup=0.5, label_smoothing=0.1, device="cpu", progress=False, max_steps=5
    )
    straight = tiny_vit(drop_path_rate=0.2)  # stochastic depth: the RNG state must be restored too
    fit(straight, digits, **settings)
    first = tiny_vit(drop_path_rate=0.2)
    with pytest.raises(_Stop):
        fit(first, digits, **settings, checkpoint=tmp_path / "a.pt", log=lambda h: _stop_after(h, 1))
    resumed = tiny_vit(seed=123, drop_path_rate=0.2)  # different initial weights: everything comes from the checkpoint
    history = fit(resumed, digits, **settings, checkpoint=tmp_path / "a.pt", resume=True)
    assert history.epoch == [1, 2, 3]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


class _Stop(Exception):
    pass


def _stop_after(history, epochs):
    if len(history) > epochs:
        raise _Stop  # simulate a crash in epoch 2, before its checkpoint


def test_resume_without_a_checkpoint_says_which_file(tmp_path, digits):
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        fit(tiny_vit(), digits, epochs=1, checkpoint=tmp_path / "nothing.pt", resume=True, device="cpu", progress=False)


def test_dataloader_path_for_image_files(tmp_path):
    from test_data import _write_pngs

    _write_pngs(tmp_path / "pets", per_class=8, size=8)
    data = load_dataset(f"imagefolder:{tmp_path / 'pets'}", in_memory=False)
    model = create_model("resnet_mnist", img_size=8, in_chans=3, num_classes=2, widths=(8,))
    history = fit(model, data, epochs=2, batch_size=4, device="cpu", num_workers=0, progress=False)
    assert len(history) == 2 and math.isfinite(history.val_loss[-1])
    assert 0 <= evaluate(model, data)["accuracy"] <= 1


def test_every_small_image_preset_has_a_recipe():
    for name in ("vit_mnist", "resnet_mnist", "vit_cifar", "resnet_cifar"):
        assert name in RECIPES and isinstance(recipe(name), TrainConfig) and recipe(name).epochs > 0
    assert recipe("vit_tiny") == TrainConfig()  # no recipe of its own: fit's defaults
    assert recipe("vit_mnist") is not RECIPES["vit_mnist"]


def test_a_recipe_is_the_callers_copy_down_to_its_augmentation():
    mine = recipe("vit_mnist")
    mine.augment.translate = 5
    assert recipe("vit_mnist").augment.translate == RECIPES["vit_mnist"].augment.translate != 5


def test_fit_takes_a_config_with_keyword_overrides_and_names_an_unknown_setting(digits):
    config = TrainConfig(epochs=1, batch_size=128, max_steps=1, augment=False)
    history = fit(tiny_vit(), digits, config, lr=3e-3, device="cpu", progress=False)
    assert history.lr[-1] == pytest.approx(3e-3) and config.lr == 1e-3  # the override was used, the config kept
    with pytest.raises(TypeError, match="unknown training setting.* learning_rate; TrainConfig has epochs"):
        fit(tiny_vit(), digits, learning_rate=1e-3, device="cpu")
    with pytest.raises(TypeError, match="pass single settings as keywords"):
        fit(tiny_vit(), digits, 3, device="cpu")


def test_vitkit_train_resume_reads_the_settings_back_from_the_checkpoint(tmp_path):
    from vitkit.checkpoint import save
    from vitkit.cli import build_parser
    from vitkit.cli_train import train_config

    argv = ["train", "--model", "vit_mnist", "--out", str(tmp_path), "--resume", "--epochs", "7"]
    args = build_parser(argv).parse_args(argv)
    saved = TrainConfig(epochs=3, lr=2e-3, seed=4, augment=Augment(translate=2), precision="fp32")
    save(tiny_vit(), tmp_path / "checkpoint.pt", train_config=saved)
    assert train_config(args, tmp_path / "checkpoint.pt") == saved.replace(epochs=7)  # a flag given now wins
    save(tiny_vit(), tmp_path / "checkpoint.pt", fit={"epochs": 3, "lr": 2e-3, "seed": 4, "precision": "fp32"})
    old = train_config(args, tmp_path / "checkpoint.pt")  # a checkpoint from before TrainConfig: its "fit" record
    assert (old.lr, old.seed, old.epochs, old.precision) == (2e-3, 4, 7, "auto")
    fresh = build_parser(argv[:-3]).parse_args(argv[:-3])
    assert train_config(fresh, tmp_path / "checkpoint.pt") == recipe("vit_mnist")


# ----------------------------------------------------------------------------- real processes

_SCRIPT = r"""
import sys, time, torch
from vitkit.data import load_dataset
from vitkit.train import fit
from vitkit.vit import ViT
torch.set_num_threads(1)
out, resume, stall = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
data = load_dataset("mnist5k", subset=320)
torch.manual_seed(0)
model = ViT(img_size=28, patch_size=7, in_chans=1, num_classes=10, dim=32, depth=2, num_heads=2, mlp_ratio=2.0, drop_path_rate=0.1)
def log(history):
    print("epoch", len(history), flush=True)
    if stall and len(history) >= 2:
        time.sleep(120)  # stalls in epoch 2, before its checkpoint: the test kills it here at the latest
fit(model, data, epochs=3, batch_size=32, lr=2e-3, warmup=0.5, label_smoothing=0.1, device="cpu",
    checkpoint=out + "/checkpoint.pt", resume=resume, progress=False, log=log)
torch.save(model.state_dict(), out + "/final.pt")
"""


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


@pytest.mark.slow
def test_resume_after_killing_a_training_process_ends_with_identical_weights(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_SCRIPT)
    (tmp_path / "straight").mkdir()
    (tmp_path / "killed").mkdir()
    straight = subprocess.Popen([sys.executable, str(script), str(tmp_path / "straight"), "0", "0"], env=_env())
    victim = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "killed"), "0", "1"], env=_env(), start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "killed" / "checkpoint.pt").exists():
            assert victim.poll() is None, "the training process ended before writing a checkpoint"
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.05)
        os.killpg(victim.pid, signal.SIGKILL)  # mid-run: no clean-up code runs
        victim.wait()
        assert not (tmp_path / "killed" / "final.pt").exists()
        assert torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)["epoch"] < 3
        subprocess.run(
            [sys.executable, str(script), str(tmp_path / "killed"), "1", "0"], env=_env(), check=True, timeout=120
        )
        assert straight.wait(timeout=120) == 0
    finally:
        for p in (straight, victim):
            if p.poll() is None:
                p.kill()
    a = torch.load(tmp_path / "straight" / "final.pt")
    b = torch.load(tmp_path / "killed" / "final.pt")
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.slow
def test_cli_train_then_eval(tmp_path):
    out = tmp_path / "run"
    train = subprocess.run(
        [
            sys.executable,
            "-m",
            "vitkit.cli",
            "train",
            "--model",
            "vit_mnist",
            "--data",
            "mnist5k",
            "--subset",
            "64",
            "--epochs",
            "2",
            "--batch-size",
            "32",
            "--max-steps",
            "1",
            "--val-size",
            "0",
            "--out",
            str(out),
            "--no-progress",
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert train.returncode == 0, train.stderr
    assert "train_loss" in train.stdout and "test: loss" in train.stdout
    assert (out / "checkpoint.pt").is_file() and (out / "history.json").is_file()
    import json

    assert json.loads((out / "history.json").read_text())["epoch"] == [1, 2]
    evaluated = subprocess.run(
        [sys.executable, "-m", "vitkit.cli", "eval", "--checkpoint", str(out / "checkpoint.pt"), "--data", "mnist5k"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert train.stdout.split("test: loss ")[1].split(",")[0] in evaluated.stdout  # the same test loss
    lr = recipe("vit_mnist").lr  # the flags' settings, the rest the preset's recipe
    assert f"trained 2 of 2 epochs with TrainConfig(epochs=2, batch_size=32, lr={lr}" in evaluated.stdout


@pytest.mark.slow
def test_compile_trains(digits):
    pytest.importorskip("torch._inductor")
    history = fit(tiny_vit(), digits, epochs=1, batch_size=64, max_steps=2, device="cpu", compile=True, progress=False)
    assert math.isfinite(history.train_loss[0])
