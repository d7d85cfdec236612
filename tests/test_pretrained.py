"""vitkit.pretrained: torchvision's and timm's ViTs convert to vitkit with equal logits; checkpoints."""

import pytest
import timm
import torch
import torchvision

from vitkit import count_params
from vitkit.pretrained import from_timm, from_torchvision, load, save


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))


def test_torchvision_vit_b_16_converts_with_equal_logits(images):
    torch.manual_seed(0)
    theirs = torchvision.models.vit_b_16().eval()  # random weights: nothing is downloaded
    with torch.no_grad():  # torchvision zero-initialises the head; give it weights that matter
        theirs.heads.head.weight.normal_(0, 0.02)
    ours = from_torchvision(theirs).eval()
    assert count_params(ours) == count_params(theirs) == 86_567_656
    with torch.no_grad():
        assert torch.allclose(ours(images), theirs(images), atol=1e-4)
    # from a bare state dict too
    again = from_torchvision(theirs.state_dict()).eval()
    with torch.no_grad():
        assert torch.allclose(again(images), theirs(images), atol=1e-4)


@pytest.mark.parametrize("name", ["vit_small_patch16_224", "vit_tiny_patch16_224"])
def test_timm_vits_convert_with_equal_logits(name, images):
    torch.manual_seed(0)
    theirs = timm.create_model(name, pretrained=False).eval()
    ours = from_timm(theirs).eval()
    assert ours.config.num_heads == theirs.blocks[0].attn.num_heads
    with torch.no_grad():
        assert torch.allclose(ours(images), theirs(images), atol=1e-4)


def test_converters_fail_loudly_on_foreign_weights():
    state = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=5).state_dict()
    state["blocks.0.attn.extra"] = torch.zeros(3)
    with pytest.raises(ValueError, match="unexpected.*blocks.0.attn.extra"):
        from_timm(state)
    del state["blocks.0.attn.extra"]
    state["blocks.0.mlp.fc2.bias"] = torch.zeros(7)
    with pytest.raises(ValueError, match="fc2.bias has shape"):
        from_timm(state)
    with pytest.raises(TypeError, match="nn.Module or a state dict"):
        from_timm("weights.pth")


def test_load_reports_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load(tmp_path / "missing.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a vitkit checkpoint"):
        load(tmp_path / "foreign.pt")
    with pytest.raises(TypeError, match="only vitkit models"):
        save(torch.nn.Linear(2, 2), tmp_path / "x.pt")
