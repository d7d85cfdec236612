"""vitkit.vit and vitkit.cnn: every registered preset, the ViT's parts, and errors on bad input."""

import pytest
import torch

import vitkit
from vitkit import ViT, count_flops, count_params, create_model, list_models
from vitkit.pretrained import load, save

SMALL = ["vit_mnist", "vit_cifar", "resnet_mnist", "resnet_cifar"]


def _images(model, batch=2):
    c = model.config
    return torch.randn(batch, c.in_chans, c.img_size, c.img_size)


def test_registry_has_the_paper_models_and_small_presets():
    assert {"vit_tiny", "vit_small", "vit_base", "vit_mnist", "vit_cifar", "resnet_mnist", "resnet_cifar"} <= set(
        list_models()
    )
    with pytest.raises(ValueError, match="known models: .*vit_base"):
        create_model("vit_huge_typo")
    import vitkit.registry
    import vitkit.vit

    assert vitkit.vit.create_model is vitkit.registry.create_model is create_model  # one registry, three doors


def test_vit_base_has_the_papers_parameter_count():
    assert count_params(create_model("vit_base")) == 86_567_656


@pytest.mark.parametrize("name", SMALL)
def test_small_presets_forward_backward_and_checkpoint_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name)
    images = _images(model)
    logits = model(images)
    assert logits.shape == (2, 10)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    save(model, tmp_path / "m.pt")
    again = load(tmp_path / "m.pt")
    assert type(again) is type(model) and again.config == model.config
    model.eval(), again.eval()
    assert torch.equal(model(images), again(images))


@pytest.mark.parametrize("name", ["vit_tiny", "vit_small", "vit_base"])
def test_paper_presets_take_224_images(name):
    model = create_model(name, num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 7)


def test_overrides_and_variants():
    model = create_model("vit_mnist", pool="mean", pos_embed="sincos", drop_path_rate=0.1, num_classes=3)
    assert model.cls_token is None and "pos_embed" not in dict(model.named_parameters())
    assert model.forward_features(torch.randn(2, 1, 28, 28)).shape == (2, 16, 96)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 3)


def test_forward_features_has_cls_token_first():
    model = create_model("vit_mnist").eval()
    tokens = model.forward_features(torch.randn(2, 1, 28, 28))
    assert tokens.shape == (2, 17, 96)  # CLS + 16 patches, 96 wide
    assert torch.equal(
        model(torch.zeros(2, 1, 28, 28)), model.head(model.forward_features(torch.zeros(2, 1, 28, 28))[:, 0])
    )


def test_attention_maps_of_every_block():
    model = create_model("vit_mnist", depth=3).eval()
    maps = model.attention_maps(torch.randn(2, 1, 28, 28))
    assert len(maps) == 3
    for weights in maps:
        assert weights.shape == (2, 3, 17, 17)  # 3 heads
        assert torch.allclose(weights.sum(-1), torch.ones(2, 3, 17))


def test_block_is_pre_norm_with_residuals():
    block = vitkit.Block(16, 2).eval()
    x = torch.randn(2, 5, 16)
    attended = x + block.attn(block.norm1(x))
    assert torch.allclose(block(x), attended + block.mlp(block.norm2(attended)), atol=1e-6)


def test_stochastic_depth_only_in_training():
    model = create_model("vit_mnist", drop_path_rate=0.5, depth=2)
    x = torch.randn(4, 1, 28, 28)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(1)
    assert not torch.equal(a, model(x))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ViT(img_size=30, patch_size=16), "image size 30 is not divisible by patch size 16"),
        (lambda: ViT(dim=100, num_heads=3), "dim 100 is not divisible by num_heads 3; try num_heads=2"),
        (lambda: create_model("vit_mnist")(torch.randn(1, 28, 28)), "unsqueeze"),
        (lambda: create_model("vit_mnist")(torch.randn(1, 3, 28, 28)), "1 channel"),
        (lambda: create_model("vit_mnist")(torch.randn(1, 1, 35, 35)), "28×28"),
        (lambda: create_model("vit_mnist")(torch.randn(1, 1, 32, 32)), "height 32 is not divisible by patch size 7"),
        (lambda: create_model("resnet_mnist")(torch.randn(1, 3, 28, 28)), "1 channel"),
        (lambda: ViT(pool="max"), "pool must be"),
    ],
)
def test_bad_input_gets_clear_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_count_flops_uses_the_flop_counter():
    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 10))
    assert count_flops(linear, (3, 4, 4)) == 2 * 48 * 10
    assert count_flops(linear, (5, 3, 4, 4)) == 5 * 2 * 48 * 10
    model = create_model("vit_mnist")
    forward = count_flops(model, (1, 28, 28))
    c = model.config
    tokens = 17
    linear_flops = c.depth * tokens * 2 * (4 * c.dim * c.dim + 2 * c.dim * int(c.mlp_ratio * c.dim))
    assert linear_flops < forward < 1.5 * linear_flops
    assert 2.5 * forward < count_flops(model, (1, 28, 28), backward=True) < 3.5 * forward
    with pytest.raises(ValueError, match="input_size"):
        count_flops(model, (28, 28))
