"""Problem set 1's check of the worked example by hand: the lecture's queries, keys, values, scores and output 1."""

from __future__ import annotations

import math

from vitkit.grading import Mistake, as_tensor, close, seal
from vitkit.grading.ps1.reference import _div, _first, _matmul, _softmax, _t
from vitkit.worked_example import KEYS, QUERIES, SCORES, SLIDE_OUTPUT_1, SLIDE_WEIGHTS_1, VALUES, X


def check_worked_example(queries, keys, values, scores, output_1) -> None:
    """Visible test: the lecture's queries, keys, values, input 1's... scores, and the slide's new representation of input 1."""
    blank = [
        name
        for name, value in zip(
            ("queries", "keys", "values", "scores", "output_1"), (queries, keys, values, scores, output_1)
        )
        if value is None
    ]
    if blank:
        raise Mistake(
            "ps1.worked_example.not_written", ", ".join(blank) + (" is" if len(blank) == 1 else " are") + " None"
        )
    q, k, v = as_tensor(queries, "queries"), as_tensor(keys, "keys"), as_tensor(values, "values")
    Qr, Kr, Vr = _t(QUERIES), _t(KEYS), _t(VALUES)
    if close(q, Kr) and close(k, Qr):
        raise Mistake("ps1.worked_example.queries_keys_swapped", f"queries = {q.tolist()}")
    for name, got, want in (("queries", q, Qr), ("keys", k, Kr), ("values", v, Vr)):
        if not close(got, want):
            raise Mistake(
                "ps1.worked_example.wrong_projection", f"{name} = {got.tolist()}, the lecture's are {want.tolist()}"
            )
    s, Sr = as_tensor(scores, "scores"), _t(SCORES)
    if not close(s, Sr):
        # (The lecture's scores happen to be symmetric, so keys @ queries.T cannot be told apart.)
        found = _first(
            [
                ("ps1.worked_example.keys_not_transposed", f"scores = {s.tolist()}", _matmul(Qr, Kr)),
                ("ps1.worked_example.scores_scaled", "", _div(Sr, math.sqrt(3))),
            ],
            s,
        )
        raise Mistake(
            *(found or ("ps1.worked_example.wrong_scores", f"scores = {s.tolist()}, the lecture's are {Sr.tolist()}"))
        )
    out = as_tensor(output_1, "output_1")
    if not close(out, _t(SLIDE_OUTPUT_1)):
        w = _t(SLIDE_WEIGHTS_1)
        exact = _softmax(Sr[0], -1)
        found = _first(
            [
                ("ps1.worked_example.exact_softmax", f"output_1 = {out.tolist()}", _matmul(exact, Vr)),
                (
                    "ps1.worked_example.exact_softmax",
                    f"output_1 = {out.tolist()} (with the scaling)",
                    _matmul(_softmax(_div(Sr[0], math.sqrt(3)), -1), Vr),
                ),
                ("ps1.worked_example.output_not_values", "you weighted the keys", _matmul(w, Kr)),
                ("ps1.worked_example.output_not_values", "you weighted the queries", _matmul(w, Qr)),
                ("ps1.worked_example.output_not_values", "you weighted the inputs", _matmul(w, _t(X))),
            ],
            out,
        )
        raise Mistake(
            *(
                found
                or (
                    "ps1.worked_example.wrong_output",
                    f"output_1 = {out.tolist()}, the slide's is {list(SLIDE_OUTPUT_1)}",
                )
            )
        )


seal(__name__)
