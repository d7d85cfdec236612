"""Checks for problem set 4, the whole Vision Transformer.

The test cells of ``ps4_vision_transformer`` call only these functions. The student's modules carry
timm's parameter names (``norm1``, ``attn.qkv``, ``mlp.fc1``, ``cls_token``, ``pos_embed``, ...), so
a check loads known weights into them and compares their outputs with a reference computed here,
from the same weights, with torch functions captured when this module is imported. When an output
differs, the check computes the classic wrong versions (post-norm, a missing residual, the CLS token
appended, position embeddings added to the wrong tokens, ...) from the same weights and names the
one the student's output matches.

The modules, by idea:

- ``reference``: torch's functions captured at import (before any student code runs), known random
  weights, the functional reference and its wrong versions, loading weights into the student's modules;
- ``block_checks``: :func:`check_mlp` and :func:`check_block`;
- ``vit_checks``: :func:`check_vit`, :func:`check_vit_hidden`, :func:`check_vit_names`, :func:`check_vit_base_count`;
- ``training_checks``: :func:`check_parameter_count`, :func:`check_train_step`, :func:`check_training`.
"""

from vitkit.grading import seal
from vitkit.grading.ps4.block_checks import check_block, check_mlp
from vitkit.grading.ps4.reference import EPS, TOL
from vitkit.grading.ps4.training_checks import check_parameter_count, check_train_step, check_training
from vitkit.grading.ps4.vit_checks import VIT_B16, check_vit, check_vit_base_count, check_vit_hidden, check_vit_names

__all__ = [
    "EPS",
    "TOL",
    "VIT_B16",
    "check_block",
    "check_mlp",
    "check_parameter_count",
    "check_train_step",
    "check_training",
    "check_vit",
    "check_vit_base_count",
    "check_vit_hidden",
    "check_vit_names",
]

seal(__name__)
