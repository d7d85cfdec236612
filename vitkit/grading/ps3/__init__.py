"""Checks for problem set 3, from an image to tokens: patches, patch embeddings, CLS token, positions.

The test cells of ``ps3_patch_embeddings`` call only these functions. Each check computes the
correct answer and the answers of the classic wrong implementations (patches flattened in the wrong
order, CLS appended instead of prepended, position embeddings added to the wrong tokens, ...); when
a student's result matches a wrong one, the error names that mistake.

The references (vitkit's own ``patchify`` and ``sincos_pos_embed_2d``, torch functions) are
captured when this module is imported, which the notebook's first cell does before any answer runs.

The modules, by idea:

- ``reference``: torch's functions captured at import, random images, the classic wrong patch orders;
- ``patch_checks``: :func:`check_patchify` and :func:`check_token_count`;
- ``embedding_checks``: :func:`check_patch_embedding` and :func:`check_conv_equivalence`;
- ``sequence_checks``: :func:`check_prepend_cls` and :func:`check_pad_or_truncate`;
- ``position_checks``: :func:`check_sincos`, :func:`check_embed_image` and :func:`check_resample`.
"""

from vitkit.grading import seal
from vitkit.grading.ps3.embedding_checks import check_conv_equivalence, check_patch_embedding
from vitkit.grading.ps3.patch_checks import check_patchify, check_token_count
from vitkit.grading.ps3.position_checks import check_embed_image, check_resample, check_sincos
from vitkit.grading.ps3.sequence_checks import check_pad_or_truncate, check_prepend_cls

__all__ = [
    "check_conv_equivalence",
    "check_embed_image",
    "check_pad_or_truncate",
    "check_patch_embedding",
    "check_patchify",
    "check_prepend_cls",
    "check_resample",
    "check_sincos",
    "check_token_count",
]

seal(__name__)
