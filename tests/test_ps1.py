"""Problem set 1 (self-attention): the notebook runs, its release is generated, it grades fairly.

Fair means: the solution gets full marks through real ``nbgrader autograde``, the untouched
exercise gets zero, every classic wrong answer in tests/injections/ps1.py is rejected under its
own mistake code, every differently-written correct answer passes, and patching the testing
functions from a student's cell earns nothing.
"""

from __future__ import annotations

import json
from collections import Counter

import nbformat
import pytest

from tests.injections import Injection, load
from tests.nbtools import (
    ROOT,
    assert_only_its_own_question_fails,
    assert_release_in_sync,
    autograde_class,
    nbgrader_cells,
    run_injections,
    run_notebook,
)
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


def test_committed_notebooks_carry_no_outputs_or_execution_counts():
    for path in (SOLUTION, EXERCISE):
        nb = nbformat.read(path, as_version=4)
        dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
        assert not dirty, f"{path.relative_to(ROOT)}: cells {dirty} carry outputs; strip them"


def test_exercise_is_exactly_what_generate_assignment_makes():
    assert_release_in_sync(PS)


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


# ----------------------------------------------------------------------------- grading with nbgrader


@pytest.fixture(scope="module")
def grades(tmp_path_factory):
    """One nbgrader autograde run over a small class: the solution, the untouched exercise, a patcher."""
    patcher = tmp_path_factory.mktemp("ps1-class") / "patcher.ipynb"
    # Right answers, but torch's and numpy's testing functions replaced by no-ops before any test runs:
    # the checks must refuse to grade rather than trust them.
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
    return autograde_class(PS, {"solution": SOLUTION, "blank": EXERCISE, "patcher": patcher})


def test_autograde_gives_the_solution_full_marks(grades):
    scores = grades["solution"]
    assert len(scores) == 9
    assert {k: s for k, (s, m) in scores.items() if s != m} == {}
    assert sum(m for _, m in scores.values()) == 17


def test_autograde_gives_the_untouched_exercise_zero(grades):
    assert {k: s for k, (s, _) in grades["blank"].items() if s} == {}


def test_patching_the_testing_functions_earns_no_points(grades):
    assert {k: s for k, (s, _) in grades["patcher"].items() if s} == {}


_VITKIT_PATCH = """
import vitkit.grading, vitkit.grading.ps1
for module, name in ((vitkit.grading.ps1, 'check_softmax'), (vitkit.grading.ps1, 'check_softmax_example'),
                     (vitkit.grading, 'verify_integrity'), (vitkit.grading, 'Mistake')):
    try:
        setattr(module, name, lambda *args, **kwargs: None)
    except AttributeError:
        pass
"""
_WRONG_AXIS = next(i for i in WRONG if i.code == "ps1.softmax.wrong_axis")
# Run after WRONG and CORRECT: the numpy patch stays in the injection process.
TAMPERING = [
    Injection(
        "softmax",
        "ps1.softmax.wrong_axis",
        _WRONG_AXIS.source + _VITKIT_PATCH,
        name="wrong softmax, patches vitkit.grading",
    ),
    Injection(
        "softmax",
        "tampering",
        CORRECT[0].source + "import numpy.testing\nnumpy.testing.assert_allclose = lambda *a, **k: None\n",
        name="right softmax, patches numpy.testing",
    ),
]


@pytest.mark.parametrize("injection", TAMPERING, ids=lambda i: i.name)
def test_patching_from_a_student_cell_is_caught_or_has_no_effect(injected, injection):
    assert (injected[injection.name] or "").startswith(f"[{injection.code}]"), injected[injection.name]


# ----------------------------------------------------------------------------- wrong and correct answers


@pytest.fixture(scope="module")
def injected():
    return run_injections(PS, WRONG + CORRECT + TAMPERING)


@pytest.mark.parametrize("injection", WRONG, ids=lambda i: i.name)
def test_wrong_answer_is_rejected_with_its_mistake_code(injected, injection):
    error = injected[injection.name]
    assert error is not None, f"the notebook's tests accept the wrong answer {injection.name}:\n{injection.source}"
    assert error.startswith(f"[{injection.code}]"), f"expected [{injection.code}], got: {error}"


@pytest.mark.parametrize("injection", CORRECT, ids=lambda i: i.name)
def test_correct_answer_written_differently_passes(injected, injection):
    assert injected[injection.name] is None, (
        f"a correct answer is rejected:\n{injection.source}\n{injected[injection.name]}"
    )


def test_every_graded_function_has_three_wrong_answers_and_a_correct_alternative():
    functions = {"softmax", "worked_example", "self_attention", "pixels_to_tokens", "attention_pairs"}
    assert functions <= _graded_solution_cells(nbformat.read(SOLUTION, as_version=4))
    wrong = Counter(i.cell for i in WRONG)
    assert {f: wrong[f] for f in functions if wrong[f] < 3} == {}
    assert functions <= {i.cell for i in CORRECT}
    assert _graded_solution_cells(nbformat.read(SOLUTION, as_version=4)) <= {i.cell for i in WRONG}


def test_every_injected_mistake_is_in_the_catalogue_under_its_question():
    import vitkit.grading.ps1  # noqa: F401  (defines the codes)

    for injection in WRONG:
        info = CATALOGUE.get(injection.code)
        assert info is not None, f"{injection.code} is not in the catalogue"
        assert injection.code.startswith(info.question + "."), (injection.code, info.question)
        assert info.message and info.hint


def test_ps1_catalogue_codes_are_all_exercised_or_structural():
    """Codes nothing injects must be ones an injection cannot reach (a crash or an odd return)."""
    import vitkit.grading.ps1  # noqa: F401

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


@pytest.mark.parametrize("inj", WRONG + CORRECT, ids=lambda i: i.name)
def test_an_injected_answer_changes_no_other_questions_points(injected, inj):
    """The whole score vector: a mistake costs its own question only, a correct variant costs nothing."""
    assert_only_its_own_question_fails(injected, inj, PS)
