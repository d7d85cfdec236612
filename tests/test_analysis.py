"""vitkit.analysis: attention maps, rollout, attention distance, position-embedding similarity, plots."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from vitkit import ViT, sincos_pos_embed_2d
from vitkit.analysis import (
    attention_map,
    attention_rollout,
    cls_attention,
    load_photo,
    mean_attention_distance,
    mean_attention_distances,
    patch_distances,
    plot_attention_maps,
    plot_mean_attention_distance,
    plot_pos_embed_similarity,
    pos_embed_similarity,
    rollout_map,
    upsample_map,
)


def _uniform(batch, heads, tokens):
    return torch.full((batch, heads, tokens, tokens), 1.0 / tokens)


def _random_attention(batch, heads, tokens, seed=0):
    return torch.randn(batch, heads, tokens, tokens, generator=torch.Generator().manual_seed(seed)).softmax(-1)


@pytest.fixture(scope="module")
def tiny_vit():
    torch.manual_seed(0)
    return ViT(img_size=32, patch_size=8, in_chans=3, num_classes=5, dim=32, depth=2, num_heads=4).eval()


def test_rollout_of_identity_attention_is_identity():
    eye = torch.eye(5).expand(2, 3, 5, 5)
    for residual in (True, False):
        assert torch.allclose(attention_rollout([eye, eye, eye], residual=residual), torch.eye(5).expand(2, 5, 5))


def test_rollout_of_one_layer_without_residual_is_the_head_mean():
    a = _random_attention(2, 4, 6)
    assert torch.allclose(attention_rollout([a], residual=False), a.mean(1), atol=1e-6)


def test_rollout_multiplies_layers_later_layer_on_the_left():
    a, b = _random_attention(1, 1, 4, seed=1), _random_attention(1, 1, 4, seed=2)
    expected = b[:, 0] @ a[:, 0]
    assert torch.allclose(attention_rollout([a, b], residual=False), expected, atol=1e-6)


def test_rollout_rows_sum_to_one():
    layers = [_random_attention(2, 3, 10, seed=s) for s in range(4)]
    assert torch.allclose(attention_rollout(layers).sum(-1), torch.ones(2, 10), atol=1e-5)


def test_rollout_rejects_an_unknown_head_fusion():
    with pytest.raises(ValueError, match="head_fusion must be one of mean, max, min"):
        attention_rollout([_uniform(1, 1, 2)], head_fusion="median")


def test_mean_distance_of_attention_to_self_is_zero():
    tokens = 1 + 16
    assert torch.equal(
        mean_attention_distance(torch.eye(tokens).expand(2, 3, tokens, tokens), patch_size=16), torch.zeros(3)
    )


def test_mean_distance_of_uniform_attention_is_the_mean_pairwise_patch_distance():
    grid, patch = 4, 16
    got = mean_attention_distance(_uniform(2, 3, 1 + grid * grid).double(), patch_size=patch)
    expected = patch_distances(grid, patch).mean()
    assert torch.allclose(got, expected.expand(3))
    # 2×2 grid, unit patches: from each patch, distances 0, 1, 1, √2 -> mean (2 + √2) / 4
    assert math.isclose(patch_distances(2).mean().item(), (2 + math.sqrt(2)) / 4)


def test_mean_distance_of_attention_to_the_right_neighbour_is_one_patch():
    grid = 3
    weights = torch.zeros(grid * grid, grid * grid)
    for i in range(grid * grid):
        r, c = divmod(i, grid)
        weights[i, r * grid + (c + 1 if c + 1 < grid else c - 1)] = 1.0
    got = mean_attention_distance(weights.expand(1, 1, -1, -1), patch_size=8, num_prefix_tokens=0)
    assert torch.allclose(got, torch.tensor([8.0]))


def test_mean_attention_distances_stack_layers():
    layers = [_random_attention(1, 2, 17, seed=s) for s in range(3)]
    assert mean_attention_distances(layers).shape == (3, 2)


def test_sincos_embeddings_are_most_similar_to_themselves_and_to_neighbours():
    sim = pos_embed_similarity(sincos_pos_embed_2d(6, 32))
    assert sim.shape == (36, 36)
    assert torch.allclose(sim.diagonal(), torch.ones(36), atol=1e-5)
    centre = 2 * 6 + 2
    assert sim[centre, centre + 1] > sim[centre, centre + 3]  # a neighbour beats a patch three columns away


def test_pos_embed_similarity_drops_the_cls_entry():
    emb = torch.cat([torch.ones(1, 1, 8), torch.randn(1, 9, 8)], dim=1)
    assert pos_embed_similarity(emb, num_prefix_tokens=1).shape == (9, 9)
    with pytest.raises(ValueError, match=r"\(N, D\) or \(1, N, D\)"):
        pos_embed_similarity(torch.randn(2, 3, 4))


def test_cls_attention_is_the_cls_row_as_a_grid():
    weights = _random_attention(2, 3, 1 + 9)
    grid = cls_attention(weights)
    assert grid.shape == (2, 3, 3, 3)
    assert torch.equal(grid[1, 2, 0, 1], weights[1, 2, 0, 2])
    with pytest.raises(ValueError, match="not form a square grid"):
        cls_attention(_random_attention(1, 1, 9))


def test_upsample_map_keeps_leading_dimensions():
    assert upsample_map(torch.rand(2, 3, 4, 4), 32).shape == (2, 3, 32, 32)


def test_attention_map_of_a_vit_covers_the_image(tiny_vit):
    image = torch.rand(3, 32, 32)
    maps = attention_map(tiny_vit, image)
    assert maps.shape == (4, 32, 32)
    weights = tiny_vit.attention_maps(image[None])[-1]
    assert torch.allclose(cls_attention(weights).sum((-1, -2)), weights[:, :, 0, 1:].sum(-1))
    assert rollout_map(tiny_vit.attention_maps(image[None]), 32).shape == (1, 32, 32)


def test_load_photo_is_a_square_colour_image_in_unit_range():
    photo = load_photo("astronaut", size=64)
    assert photo.shape == (3, 64, 64) and photo.min() >= 0 and photo.max() <= 1 and photo.std() > 0.1
    with pytest.raises(ValueError, match="unknown photo 'lena'"):
        load_photo("lena")


def test_plots_draw_without_a_display():
    import matplotlib.pyplot as plt

    fig = plot_attention_maps(torch.rand(3, 16, 16), torch.rand(2, 16, 16))
    assert len(fig.axes) == 3
    fig2 = plot_pos_embed_similarity(pos_embed_similarity(sincos_pos_embed_2d(4, 16)), 4, step=2)
    assert len(fig2.axes) == 4 + 1  # 2×2 small grids and a colour bar
    fig3 = plot_mean_attention_distance(torch.rand(3, 2))
    assert fig3.axes[0].get_xlabel() == "network depth (layer)"
    plt.close("all")
