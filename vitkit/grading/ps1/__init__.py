"""Checks for problem set 1, self-attention: what its test cells call, and the mistakes they name.

Each check starts with the lecture's worked example (:mod:`vitkit.worked_example`: x1, x2, x3 and
the three weight matrices), then tries random inputs of several shapes in float32 and float64. When a
result is wrong, the check compares it with the classic wrong answers (softmax over the wrong
axis, a missing 1/√d_k, transposed weights...) and raises :class:`~vitkit.grading.Mistake` with
that mistake's code, so the student reads *what* is wrong and the class report can count it.

References are computed with torch functions captured when this module is imported, never with
anything from the student's namespace.

The modules, by idea:

- ``reference``: torch's functions captured at import (before any student code runs), the lecture's
  numbers, the reference softmax and attention, calling a student's function on copies;
- ``softmax_checks``: :func:`check_softmax_example` and :func:`check_softmax`;
- ``worked_example_checks``: :func:`check_worked_example`;
- ``attention_checks``: :func:`check_self_attention_example` and :func:`check_self_attention`;
- ``token_checks``: :func:`check_pixels_to_tokens_example`, :func:`check_pixels_to_tokens`, :func:`check_attention_pairs`;
- ``question_checks``: :func:`check_weight_matrices`, :func:`check_related`, :func:`check_why_dot_product`,
  :func:`check_why_scaling`.
"""

from vitkit.grading import seal
from vitkit.grading.ps1.attention_checks import check_self_attention, check_self_attention_example
from vitkit.grading.ps1.question_checks import (
    check_related,
    check_weight_matrices,
    check_why_dot_product,
    check_why_scaling,
)
from vitkit.grading.ps1.reference import FULL_HD_PIXEL_PAIRS
from vitkit.grading.ps1.softmax_checks import check_softmax, check_softmax_example
from vitkit.grading.ps1.token_checks import (
    check_attention_pairs,
    check_pixels_to_tokens,
    check_pixels_to_tokens_example,
)
from vitkit.grading.ps1.worked_example_checks import check_worked_example

__all__ = [
    "FULL_HD_PIXEL_PAIRS",
    "check_attention_pairs",
    "check_pixels_to_tokens",
    "check_pixels_to_tokens_example",
    "check_related",
    "check_self_attention",
    "check_self_attention_example",
    "check_softmax",
    "check_softmax_example",
    "check_weight_matrices",
    "check_why_dot_product",
    "check_why_scaling",
    "check_worked_example",
]

seal(__name__)
