"""The pre-trained glyph ViT: the shipped checkpoint loads, and `vitkit pretrain` reproduces a model of its config."""

from __future__ import annotations

import dataclasses

import torch

from vitkit.cli import run
from vitkit.pretrain import CHARACTERS, CHECKPOINT, glyph_config, load_pretrained, make_glyphs, replace_head
from vitkit.pretrained import load


def test_shipped_checkpoint_is_small_and_loads_as_the_glyph_vit():
    assert CHECKPOINT.is_file(), f"{CHECKPOINT} is missing: run `vitkit pretrain`"
    assert CHECKPOINT.stat().st_size < 5_000_000
    model = load_pretrained()
    assert dataclasses.asdict(model.config) == dataclasses.asdict(glyph_config())
    record = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)["pretrain"]
    assert record["data"] == "glyphs" and record["characters"] == CHARACTERS
    assert record["val_accuracy"] > 0.8, record["val_accuracy"]  # it learned its pre-training task
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, len(CHARACTERS))


def test_new_head_is_zero_and_leaves_the_body_alone():
    model = load_pretrained()
    body = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("head.")}
    replace_head(model, 10)
    assert (
        model.head.weight.shape == (10, model.config.dim) and not model.head.weight.any() and not model.head.bias.any()
    )
    assert all(torch.equal(model.state_dict()[k], v) for k, v in body.items())
    assert torch.equal(model(torch.randn(3, 1, 28, 28)), torch.zeros(3, 10))


def test_glyphs_are_reproducible_images_of_every_character():
    images, labels = make_glyphs(600, seed=7)
    again, _ = make_glyphs(600, seed=7)
    assert images.shape == (600, 1, 28, 28) and torch.equal(images, again)
    assert 0 <= images.min() and images.max() <= 1 and images.mean() > 0.05  # ink on a black background, like MNIST
    assert set(labels.tolist()) == set(range(len(CHARACTERS)))
    assert not torch.equal(images, make_glyphs(600, seed=8)[0])


def test_vitkit_pretrain_reproduces_a_model_of_the_shipped_config(tmp_path, capsys):
    out = tmp_path / "glyphs.pt"
    args = [
        "pretrain",
        "--out",
        str(out),
        "--images",
        "256",
        "--epochs",
        "1",
        "--steps",
        "2",
        "--batch-size",
        "64",
        "--quiet",
    ]
    assert run(args) == 0
    quick, shipped = load(out), load(CHECKPOINT)
    assert dataclasses.asdict(quick.config) == dataclasses.asdict(shipped.config)
    assert {k: v.shape for k, v in quick.state_dict().items()} == {k: v.shape for k, v in shipped.state_dict().items()}
    assert torch.load(out, weights_only=True)["pretrain"]["max_steps"] == 2
    twin = tmp_path / "twin.pt"
    assert run([*args[:2], str(twin), *args[3:]]) == 0  # the same command, the same weights
    assert all(torch.equal(a, b) for a, b in zip(quick.state_dict().values(), load(twin).state_dict().values()))
