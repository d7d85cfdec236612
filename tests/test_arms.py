"""The debate's arms (vitkit.deit, vitkit.hybrid, vitkit.convmixer) and DeiT distillation in fit."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitkit import count_params, create_model
from vitkit.convmixer import ConvMixer
from vitkit.data import load_dataset
from vitkit.deit import DistilledViT
from vitkit.embedding import PatchEmbed
from vitkit.hybrid import ConvStem, HybridViT
from vitkit.pretrained import load, save
from vitkit.train import distillation_loss, fit
from vitkit.vit import ViT

ARMS = ["deit_mnist", "hybrid_mnist", "convmixer_mnist"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize("name", ARMS)
def test_arm_presets_map_digit_images_to_ten_logits_and_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name).eval()
    images, _ = _batch(3)
    with torch.no_grad():
        logits = model(images)
    assert logits.shape == (3, 10) and torch.isfinite(logits).all()
    save(model, tmp_path / "m.pt")
    again = load(tmp_path / "m.pt").eval()
    assert type(again) is type(model) and again.config == model.config
    with torch.no_grad():
        assert torch.equal(again(images), logits)


@pytest.mark.parametrize("name", ARMS)
def test_one_adam_step_lowers_the_loss_on_its_batch(name):
    torch.manual_seed(0)
    model = create_model(name, depth=2)
    if isinstance(model, DistilledViT):
        model.distilled_training = True  # both heads, as fit trains them
    images, labels = _batch(16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss():
        out = model(images)
        return (
            distillation_loss(out, F.one_hot(labels, 10).float(), labels)
            if isinstance(out, tuple)
            else F.cross_entropy(out, labels)
        )

    before = loss()
    optimizer.zero_grad()
    before.backward()
    assert all(p.grad is not None for p in model.parameters()), "every parameter takes part in the loss"
    optimizer.step()
    with torch.no_grad():
        after = loss()
    assert after < before - 1e-3, f"{name}: loss {before.item():.4f} -> {after.item():.4f} after one step"


def test_distilled_vit_has_two_prefix_tokens_and_two_heads():
    torch.manual_seed(0)
    model = create_model("deit_mnist")
    plain = create_model("vit_mnist")
    images, _ = _batch(2)
    assert model.forward_features(images).shape == (2, 2 + 16, 96)  # CLS, distillation token, 16 patches; 96 wide
    assert model.num_prefix_tokens == 2 and model.pos_embed.shape == (1, 18, 96)
    assert count_params(model) - count_params(plain) == 96 + 96 + (96 * 10 + 10)  # dist_token, its position, head_dist
    cls_logits, dist_logits = model.forward_heads(images)
    model.train()
    assert torch.is_tensor(model(images))  # not distilling: one output like any classifier
    model.distilled_training = True
    out = model(images)
    assert isinstance(out, tuple) and all(o.shape == (2, 10) for o in out)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(images), (cls_logits + dist_logits) / 2)
    assert len(model.attention_maps(images)) == 4 and model.attention_maps(images)[0].shape == (2, 3, 18, 18)
    sincos = DistilledViT(**{**model.config.__dict__, "pos_embed": "sincos"})
    assert sincos.pos_embed.shape == (1, 18, 96) and "pos_embed" not in dict(sincos.named_parameters())
    with pytest.raises(ValueError, match="pool must be 'cls'"):
        create_model("deit_mnist", pool="mean")


def test_conv_stem_makes_as_many_tokens_as_patches_and_the_rest_is_the_vit():
    stem, patches = ConvStem(28, 4, 1, 64), PatchEmbed(28, 4, 1, 64)
    images, _ = _batch(2)
    assert stem(images).shape == patches(images).shape == (2, 49, 64)
    strides = [m.stride[0] for m in stem.convs if isinstance(m, nn.Conv2d)]
    assert strides == [1, 2, 1, 2, 1]  # a look at each resolution before halving it, then one at the tokens' grid
    model = create_model("hybrid_mnist")
    assert isinstance(model, HybridViT) and isinstance(model, ViT)
    blocks = {k for k in model.state_dict() if not k.startswith("patch_embed")}
    twin = ViT(model.config)
    assert blocks == {k for k in twin.state_dict() if not k.startswith("patch_embed")}  # same transformer, same names
    with pytest.raises(ValueError, match="power of 2"):
        ConvStem(28, 7, 1, 64)
    with pytest.raises(ValueError, match="28×28"):
        model(torch.randn(1, 1, 32, 32))


def test_convmixer_keeps_the_patch_grid_and_has_no_attention():
    model = create_model("convmixer_mnist", dim=32, depth=3)
    images, _ = _batch(2)
    assert model.forward_features(images).shape == (2, 32, 7, 7)
    assert not any("attn" in name for name, _ in model.named_modules())
    depthwise = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups == 32]
    assert len(depthwise) == 3 and depthwise[0].kernel_size == (5, 5)
    with pytest.raises(ValueError, match="odd"):
        ConvMixer(kernel_size=4)


# ----------------------------------------------------------------------------- the distillation loss


def _ce(logits, target):
    return -logits[target] + math.log(sum(math.exp(v) for v in logits))


def test_hard_distillation_loss_equals_a_hand_computation():
    cls_logits = [[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]]
    dist_logits = [[0.0, 1.0, 0.0], [1.0, -1.0, 2.0]]
    teacher = [[0.1, 0.3, 0.2], [3.0, 0.0, 0.0]]  # top classes 1 and 0
    labels = [0, 2]
    hand = sum(0.5 * _ce(c, y) + 0.5 * _ce(d, t) for c, d, y, t in zip(cls_logits, dist_logits, labels, [1, 0])) / 2
    got = distillation_loss(
        (torch.tensor(cls_logits), torch.tensor(dist_logits)), torch.tensor(teacher), torch.tensor(labels)
    )
    assert got.item() == pytest.approx(hand, rel=1e-6)
    # alpha weighs the two terms; a plain model's one head plays both parts
    plain = distillation_loss(torch.tensor(cls_logits), torch.tensor(teacher), torch.tensor(labels), alpha=0.25)
    hand_plain = sum(0.75 * _ce(c, y) + 0.25 * _ce(c, t) for c, y, t in zip(cls_logits, labels, [1, 0])) / 2
    assert plain.item() == pytest.approx(hand_plain, rel=1e-6)


def test_soft_distillation_loss_equals_a_hand_computation():
    student, teacher, labels, tau, alpha = [[1.0, 0.0, -1.0]], [[0.0, 2.0, 1.0]], [2], 2.0, 0.1

    def softmax(v):
        e = [math.exp(x / tau) for x in v]
        return [x / sum(e) for x in e]

    p_t, p_s = softmax(teacher[0]), softmax(student[0])
    kl = sum(t * math.log(t / s) for t, s in zip(p_t, p_s))
    hand = (1 - alpha) * _ce(student[0], labels[0]) + alpha * tau**2 * kl
    got = distillation_loss(
        torch.tensor(student), torch.tensor(teacher), torch.tensor(labels), kind="soft", alpha=alpha, tau=tau
    )
    assert got.item() == pytest.approx(hand, rel=1e-6)
    with pytest.raises(ValueError, match="'hard' or 'soft'"):
        distillation_loss(torch.tensor(student), torch.tensor(teacher), torch.tensor(labels), kind="medium")


class _Always(nn.Module):
    """A teacher that answers ``label`` whatever it sees."""

    def __init__(self, label: int):
        super().__init__()
        self.label = label
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, images):
        logits = torch.zeros(images.shape[0], 10, device=images.device)
        logits[:, self.label] = 5.0
        return logits + 0 * self.anchor


@pytest.mark.slow
def test_fit_with_a_teacher_teaches_the_distillation_head_the_teachers_answers():
    data = load_dataset("digits")
    torch.manual_seed(0)
    model = create_model("deit_mnist", img_size=8, patch_size=2, dim=32, depth=2, num_heads=2)
    fit(
        model,
        data,
        epochs=8,
        batch_size=64,
        lr=3e-3,
        warmup=0,
        device="cpu",
        progress=False,
        teacher=_Always(3),
        augment=False,
    )
    assert model.distilled_training is False  # fit hands the model back as a plain classifier
    model.eval()
    with torch.no_grad():
        cls_logits, dist_logits = model.forward_heads(data.test.images)
    assert (dist_logits.argmax(1) == 3).float().mean() > 0.9  # the distillation token learned the teacher
    assert (cls_logits.argmax(1) == data.test.labels).float().mean() > 0.5, (
        "the CLS token learns the labels (chance 0.1)"
    )
    with pytest.raises(ValueError, match="'hard' or 'soft'"):
        fit(
            model,
            data,
            epochs=1,
            max_steps=1,
            device="cpu",
            progress=False,
            teacher=_Always(3),
            distillation="lukewarm",
        )
