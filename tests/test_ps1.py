"""Problem set 1 (self-attention): the notebook runs, its release is generated, it grades fairly.

Fair means: the solution gets full marks through real ``nbgrader autograde``, the untouched
exercise gets zero, every classic wrong answer in tests/injections/ps1.py is rejected under its
own mistake code, every differently-written correct answer passes, and patching the testing
functions from a student's cell earns nothing (the checks all problem sets share are in
tests/problem_set.py).
"""

from __future__ import annotations

import json
from collections import Counter

import nbformat
import pytest

import vitkit.grading.ps1  # noqa: F401  (defines the problem set's mistakes)
from tests.injections import load
from tests.nbtools import ROOT, nbgrader_cells, run_notebook
from tests.problem_set import ProblemSetChecks
from vitkit.grading import CATALOGUE

PS = "ps1_self_attention"
SOLUTION = ROOT / "solutions" / PS / f"{PS}.ipynb"
EXERCISE = ROOT / "exercises" / PS / f"{PS}.ipynb"
WRONG, CORRECT = load(PS)
pytestmark = pytest.mark.slow


def _graded_solution_cells(nb) -> set[str]:
    """The code answers (written answers, markdown cells a person grades, are not among them)."""
    return {
        c.metadata["nbgrader"]["grade_id"]
        for c in nb.cells
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
    }


def _with_cell(nb, after_grade_id: str, source: str):
    """A copy of ``nb`` with an extra, unlocked student cell after the cell ``after_grade_id``."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    index = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == after_grade_id)
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
    return nb


# ----------------------------------------------------------------------------- the notebooks


def test_solution_notebook_runs_top_to_bottom_and_shows_the_attention_picture():
    nb = run_notebook(SOLUTION)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs)
    assert "4,299,816,960,000" in text  # the full-HD pixel pairs
    assert any("image/png" in o.get("data", {}) for o in outputs), "the 9×9 attention matrix is not drawn"


def test_exercise_hides_solutions_and_hidden_tests():
    cells = nbgrader_cells(nbformat.read(EXERCISE, as_version=4))
    text = "".join(source for _, source, _ in cells)
    code = "".join(source for kind, source, _ in cells if kind == "code")
    for leaked in (
        "BEGIN SOLUTION",
        "BEGIN HIDDEN TESTS",
        "check_softmax(softmax)",
        "logsumexp",
        "key.transpose(-2, -1) / math.sqrt",
    ):
        assert leaked not in text, f"the released exercise shows {leaked!r}"
    assert code.count("raise NotImplementedError()") == len(
        _graded_solution_cells(nbformat.read(EXERCISE, as_version=4))
    )


class TestSelfAttention(ProblemSetChecks):
    PS = PS
    AUTOGRADED = {
        "test_softmax",
        "test_worked_example",
        "test_self_attention",
        "test_pixels_to_tokens",
        "test_attention_pairs",
        "test_answer_weight_matrices",
        "test_answer_related",
        "test_answer_why_dot_product",
        "test_answer_why_scaling",
    }
    POINTS = 17
    TAMPERING_RUNS_LAST = True  # one process less each; why it is safe: tests/injections/ps1.py
    GRADED = {"softmax", "worked_example", "self_attention", "pixels_to_tokens", "attention_pairs"} | {
        "answer_weight_matrices",
        "answer_related",
        "answer_why_dot_product",
        "answer_why_scaling",
    }

    @classmethod
    def students(cls, folder) -> dict:
        """The solution, the blank exercise and a patcher: right answers, but torch's and numpy's testing
        functions replaced by no-ops before any test runs (the checks must refuse to grade rather than trust them).
        """
        patcher = folder / "patcher.ipynb"
        nbformat.write(
            _with_cell(
                nbformat.read(SOLUTION, as_version=4),
                "imports",
                (
                    "import numpy.testing, torch.testing\n"
                    "torch.testing.assert_close = lambda *args, **kwargs: None\n"
                    "numpy.testing.assert_allclose = lambda *args, **kwargs: None\n"
                    "torch.allclose = lambda *args, **kwargs: True\n"
                ),
            ),
            patcher,
        )
        return {**super().students(folder), "patcher": patcher}

    def test_patching_the_testing_functions_earns_no_points(self, grades):
        assert {k: s for k, (s, _) in grades["patcher"].items() if s} == {}


# ----------------------------------------------------------------------------- wrong and correct answers


def test_every_graded_function_has_three_wrong_answers_and_a_correct_alternative():
    functions = {"softmax", "worked_example", "self_attention", "pixels_to_tokens", "attention_pairs"}
    assert functions <= _graded_solution_cells(nbformat.read(SOLUTION, as_version=4))
    wrong = Counter(i.cell for i in WRONG)
    assert {f: wrong[f] for f in functions if wrong[f] < 3} == {}
    assert functions <= {i.cell for i in CORRECT}
    assert _graded_solution_cells(nbformat.read(SOLUTION, as_version=4)) <= {i.cell for i in WRONG}


def test_ps1_catalogue_codes_are_all_exercised_or_structural():
    """Codes nothing injects must be ones an injection cannot reach (a crash or an odd return)."""
    ps1_codes = {c for c in CATALOGUE if c.startswith("ps1.")}
    injected = {i.code for i in WRONG}
    untested = ps1_codes - injected
    generic = {
        c
        for c in untested
        if c.rsplit(".", 1)[1]
        in {
            "not_written",
            "wrong",
            "wrong_values",
            "wrong_scores",
            "wrong_output",
            "wrong_weights",
            "wrong_shape",
            "not_a_pair",
            "dtype",
            "not_an_option",
        }
    }
    assert untested - generic == set()
