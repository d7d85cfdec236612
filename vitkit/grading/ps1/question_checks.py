"""Problem set 1's checks of the lecture's questions: how many weight matrices, which inputs are related, and
two multiple-choice questions (why dot products, why divide by √d_k)."""

from __future__ import annotations

from vitkit.grading import Mistake, seal
from vitkit.grading.ps1.reference import _isinstance, _tuple


def check_weight_matrices(n_weight_matrices) -> None:
    """How many weight matrices does (single-head) self-attention learn? Three: W_q, W_k, W_v."""
    if n_weight_matrices == 3 and not _isinstance(n_weight_matrices, bool):
        return
    if n_weight_matrices == 9:
        raise Mistake("ps1.weight_matrices.per_input", "9 = 3 inputs × 3")
    raise Mistake("ps1.weight_matrices.wrong", f"you answered {n_weight_matrices!r}")


def _as_set(answer, name):
    if _isinstance(answer, (int,)) and not _isinstance(answer, bool):
        return {answer}
    if _isinstance(answer, (set, frozenset, list, _tuple)) and all(
        _isinstance(a, int) and not _isinstance(a, bool) for a in answer
    ):
        return set(answer)
    raise Mistake("ps1.related.wrong", f"{name} = {answer!r}: give input numbers, e.g. {{2}} or {{1, 3}}")


def check_related(most_related, least_related) -> None:
    """To which inputs is input 1 most and least related? Scores [2, 4, 4]: most {2, 3}, least {1}."""
    most, least = _as_set(most_related, "most_related"), _as_set(least_related, "least_related")
    if most == {2, 3} and least == {1}:
        return
    if most == {1} and least == {2, 3}:
        raise Mistake("ps1.related.swapped")
    if (most, least) in (({1, 2}, {0}),) or 0 in most | least:
        raise Mistake("ps1.related.zero_based", f"most={sorted(most)}, least={sorted(least)}")
    if most in ({2}, {3}) and least == {1}:
        raise Mistake("ps1.related.tie", f"you answered most={sorted(most)}")
    raise Mistake("ps1.related.wrong", f"most={sorted(most)}, least={sorted(least)}")


def _choice(answer, question, right, wrong_codes):
    letter = answer.strip().lower().strip("()").strip(".") if _isinstance(answer, str) else answer
    if letter == right:
        return
    if letter in wrong_codes:
        raise Mistake(f"ps1.{question}.{wrong_codes[letter]}", f"you answered {letter!r}")
    raise Mistake(f"ps1.{question}.not_an_option", f"you answered {answer!r}")


def check_why_dot_product(answer) -> None:
    """Multiple choice: why are the scores dot products? (b): a cheap similarity, all pairs in one matrix product."""
    _choice(answer, "why_dot_product", "b", {"a": "normalises", "c": "positive", "d": "position"})


def check_why_scaling(answer) -> None:
    """Multiple choice: why divide by √d_k? (c): dot products grow like √d_k and saturate the softmax."""
    _choice(answer, "why_scaling", "c", {"a": "normalises", "b": "speed", "d": "averages"})


seal(__name__)
