"""vitkit.embedding: patches, patch embedding and position embeddings."""

import einops
import pytest
import torch

from vitkit.embedding import PatchEmbed, patchify, resample_pos_embed, sincos_pos_embed_2d, unpatchify


def test_patchify_shape_and_order_match_einops():
    images = torch.randn(2, 3, 32, 48)
    patches = patchify(images, 8)
    assert patches.shape == (2, 4 * 6, 8 * 8 * 3)
    expected = einops.rearrange(images, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=8, p2=8)
    assert torch.equal(patches, expected)


def test_patchify_first_patch_is_the_top_left_corner():
    images = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert patchify(images, 2)[0, 0].tolist() == [0, 1, 4, 5]
    assert patchify(images, 2)[0, 1].tolist() == [2, 3, 6, 7]


def test_unpatchify_inverts_patchify():
    images = torch.randn(3, 3, 16, 16)
    assert torch.equal(unpatchify(patchify(images, 4), 4, 16, 3), images)
    with pytest.raises(ValueError, match="do not fit"):
        unpatchify(torch.randn(1, 15, 48), 4, 16, 3)


def test_224_image_in_16px_patches_is_196_tokens_of_768_values():
    assert patchify(torch.zeros(1, 3, 224, 224), 16).shape == (1, 196, 768)


def test_patch_embed_equals_linear_on_patches():
    torch.manual_seed(0)
    embed = PatchEmbed(img_size=32, patch_size=8, in_chans=3, embed_dim=24)
    images = torch.randn(2, 3, 32, 32)
    linear = embed.as_linear()
    assert torch.allclose(embed(images), linear(patchify(images, 8)), atol=1e-5)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: PatchEmbed(30, 16), "image size 30 is not divisible by patch size 16"),
        (lambda: patchify(torch.zeros(1, 3, 30, 32), 16), "height 30 is not divisible"),
        (lambda: patchify(torch.zeros(3, 32, 32), 16), r"\(B, C, H, W\)"),
        (lambda: PatchEmbed(32, 8, in_chans=3)(torch.zeros(1, 1, 32, 32)), "3 channel"),
        (lambda: PatchEmbed(32, 8)(torch.zeros(1, 3, 64, 64)), "resample_pos_embed"),
    ],
)
def test_bad_images_get_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_sincos_embedding_rows_and_columns():
    emb = sincos_pos_embed_2d(4, 16)
    assert emb.shape == (16, 16)
    # position (0, 0): sin 0 = 0 and cos 0 = 1 in every frequency
    assert torch.equal(emb[0], torch.tensor([0.0] * 4 + [1.0] * 4 + [0.0] * 4 + [1.0] * 4))
    # patches in the same row share the row half; in the same column, the column half
    assert torch.equal(emb[1, :8], emb[2, :8]) and torch.equal(emb[4, 8:], emb[8, 8:])
    assert len({tuple(r.tolist()) for r in emb}) == 16  # every position differs
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_pos_embed_2d(4, 10)


def test_resample_pos_embed_keeps_cls_and_interpolates_grid():
    pos = torch.randn(1, 1 + 4 * 4, 8)
    new = resample_pos_embed(pos, 8)
    assert new.shape == (1, 1 + 64, 8)
    assert torch.equal(new[:, 0], pos[:, 0])
    assert resample_pos_embed(pos, 4) is pos
    # a constant grid stays constant
    const = torch.cat([torch.zeros(1, 1, 8), torch.ones(1, 16, 8)], dim=1)
    assert torch.allclose(resample_pos_embed(const, 6)[:, 1:], torch.ones(1, 36, 8))
    with pytest.raises(ValueError, match="not a square grid"):
        resample_pos_embed(torch.randn(1, 16, 8), 8)
