"""The robustness probes (occlusion, patch shuffle, noise), the robustness curve and gradient saliency."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vitkit import create_model, patchify
from vitkit.robustness import (
    PROBES,
    gaussian_noise,
    gradient_saliency,
    occlude_patches,
    robustness_curve,
    shuffle_patches,
)


def images(b=3, c=1, size=28, seed=0):
    return torch.randn(b, c, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", list(PROBES))
def test_severity_zero_leaves_images_unchanged(name):
    probe, _ = PROBES[name]
    x = images()
    out = probe(x, 0.0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, x)
    assert out is not x  # a copy: corrupting it never touches the caller's images


@pytest.mark.parametrize("name", list(PROBES))
def test_probes_keep_shape_and_do_not_modify_their_input(name):
    probe, _ = PROBES[name]
    x = images(c=3)
    before = x.clone()
    out = probe(x, 0.5, generator=torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    assert torch.equal(x, before)
    assert not torch.equal(out, x)


@pytest.mark.parametrize("severity, patch_size", [(0.25, 4), (0.5, 7), (1.0, 4), (0.1, 2)])
def test_occlusion_blanks_exactly_the_requested_share_of_patches(severity, patch_size):
    x = images(b=4, c=2) + 10.0  # no patch of the input equals the fill value
    out = occlude_patches(x, severity, patch_size=patch_size, fill=-3.0, generator=torch.Generator().manual_seed(0))
    patches = patchify(out, patch_size)  # (B, N, P*P*C)
    blanked = (patches == -3.0).all(-1)  # (B, N)
    untouched = (patches == patchify(x, patch_size)).all(-1)
    n = patches.shape[1]
    assert blanked.sum(1).tolist() == [round(severity * n)] * 4
    assert (blanked ^ untouched).all()  # every patch is either blanked whole or left exactly as it was


def test_occlusion_differs_between_images_and_follows_the_generator():
    x = images(b=8) + 10.0
    a = occlude_patches(x, 0.3, generator=torch.Generator().manual_seed(5))
    b = occlude_patches(x, 0.3, generator=torch.Generator().manual_seed(5))
    c = occlude_patches(x, 0.3, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    masks = (patchify(a, 4) == 0).all(-1)  # (B, N)
    assert len({tuple(m.tolist()) for m in masks}) > 1  # each image gets its own random patches


@pytest.mark.parametrize("severity", [0.25, 0.5, 1.0])
def test_shuffling_keeps_the_multiset_of_patches(severity):
    x = images(b=4, c=3)
    out = shuffle_patches(x, severity, patch_size=7, generator=torch.Generator().manual_seed(0))
    before, after = patchify(x, 7), patchify(out, 7)  # (B, 16, 147)
    for b in range(len(x)):
        key = lambda p: tuple(p.tolist())  # noqa: E731
        assert sorted(map(key, before[b])) == sorted(map(key, after[b]))
    moved = (before != after).any(-1).sum(1)  # (B,): patches not in their place
    assert (moved <= round(severity * 16)).all()
    assert moved.sum() > 0


def test_full_shuffle_moves_most_patches():
    x = images(b=16, c=1)
    out = shuffle_patches(x, 1.0, patch_size=4, generator=torch.Generator().manual_seed(0))
    moved = (patchify(x, 4) != patchify(out, 4)).any(-1).float().mean()
    assert moved > 0.9  # a random permutation of 49 patches leaves about one fixed point


def test_probes_reject_out_of_range_severity_with_the_fix():
    with pytest.raises(ValueError, match="severity 1.5.*\\[0, 1\\]"):
        occlude_patches(images(), 1.5)
    with pytest.raises(ValueError, match="severity -0.1"):
        shuffle_patches(images(), -0.1)
    with pytest.raises(ValueError, match="standard deviation"):
        gaussian_noise(images(), -1.0)


def test_gaussian_noise_has_the_requested_pixel_std():
    x = torch.zeros(64, 2, 28, 28)
    out = gaussian_noise(x, 0.3, std=(0.5, 0.25), generator=torch.Generator().manual_seed(0))
    # normalised noise = pixel noise / std: 0.6 on channel 0, 1.2 on channel 1
    assert out[:, 0].std().item() == pytest.approx(0.6, rel=0.02)
    assert out[:, 1].std().item() == pytest.approx(1.2, rel=0.02)
    assert out.mean().abs().item() < 0.01


class LeftHalf(nn.Module):
    """A classifier that only looks at the left half of the image."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(28 * 14, 10)

    def forward(self, x):
        return self.fc(x[..., :14].flatten(1))


def test_saliency_is_zero_where_the_model_does_not_look():
    torch.manual_seed(0)
    model = LeftHalf()
    s = gradient_saliency(model, images(b=2))
    assert s.shape == (2, 28, 28)
    assert (s[..., 14:] == 0).all()
    assert (s[..., :14] > 0).any()
    assert s.flatten(1).amax(1).tolist() == pytest.approx([1.0, 1.0])
    assert all(p.grad is None for p in model.parameters())


def test_saliency_equals_the_input_gradient_of_a_linear_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    x = images(b=2, c=2, size=4)
    target = torch.tensor([2, 0])
    s = gradient_saliency(model, x, target)
    w = model[1].weight.detach().view(3, 2, 4, 4)[target]  # (B, C, H, W): the gradient of a linear score
    expected = w.abs().amax(1)
    expected = expected / expected.flatten(1).amax(1).view(-1, 1, 1)
    assert torch.allclose(s, expected)


@pytest.mark.parametrize("name", ["vit_mnist", "resnet_mnist"])
def test_saliency_runs_on_the_tutorial_models_and_keeps_train_mode(name):
    torch.manual_seed(0)
    model = create_model(name)
    model.train()
    s = gradient_saliency(model, images(b=2))
    assert s.shape == (2, 28, 28) and torch.isfinite(s).all()
    assert model.training


def test_robustness_curve_gives_identical_damage_to_every_model():
    torch.manual_seed(0)
    x, y = images(b=40), torch.randint(0, 10, (40,))
    seen = []

    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))

        def forward(self, inp):
            seen.append(inp.clone())
            return torch.zeros(len(inp), 10)

    severities = [0.0, 0.5, 1.0]
    acc = robustness_curve(Recorder(), x, y, occlude_patches, severities, seed=3, batch_size=16)
    first = torch.cat(seen)
    seen.clear()
    robustness_curve(Recorder(), x, y, occlude_patches, severities, seed=3, batch_size=16)
    assert torch.equal(first, torch.cat(seen))
    assert acc == [(y == 0).sum().item() / 40] * 3  # the constant model predicts class 0 whatever the damage
    assert torch.equal(first[:40], x)  # severity 0: the clean images


def test_robustness_curve_accuracy_falls_for_a_model_that_needs_the_image():
    torch.manual_seed(0)
    x = images(b=50, c=1) + 10.0
    y = (x[:, 0, :, :14].mean((1, 2)) > x[:, 0, :, 14:].mean((1, 2))).long()  # which half is brighter

    class Compare(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))

        def forward(self, inp):
            d = inp[:, 0, :, :14].mean((1, 2)) - inp[:, 0, :, 14:].mean((1, 2))
            return torch.stack([-d, d], 1)

    acc = robustness_curve(Compare(), x, y, gaussian_noise, [0.0, 50.0])
    assert acc[0] == 1.0 and acc[1] < 0.9
