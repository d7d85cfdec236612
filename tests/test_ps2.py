"""Problem set 2 (multi-head attention): the notebook runs, releases, grades fairly, names mistakes."""

from __future__ import annotations

import nbformat
import pytest

import vitkit.grading.ps2  # noqa: F401  (defines the problem set's mistakes)
from tests.injections import load
from tests.injections.ps2 import TAMPERING
from tests.nbtools import (
    ROOT,
    assert_only_its_own_question_fails,
    assert_release_in_sync,
    autograde_class,
    run_injections,
    run_notebook,
)
from vitkit.grading import CATALOGUE

PS = "ps2_multihead_attention"
SOLUTION = ROOT / "solutions" / PS / f"{PS}.ipynb"
EXERCISE = ROOT / "exercises" / PS / f"{PS}.ipynb"
WRONG, CORRECT = load(PS)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def injected():
    return run_injections(PS, WRONG + CORRECT)


def test_solution_runs_top_to_bottom():
    nb = run_notebook(SOLUTION)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "2,362,368" in printed  # ViT-B's attention layer, formula and built layer alike
    assert "head 1: [0, 0, 1, 2, 3" in printed  # the hand-built head looks one token back


@pytest.mark.parametrize("path", [SOLUTION, EXERCISE], ids=["solution", "exercise"])
def test_committed_notebook_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name} cells {dirty} carry outputs or execution counts; strip them"


def test_exercise_is_the_release_of_the_solution():
    assert_release_in_sync(PS)


@pytest.fixture(scope="module")
def grades():
    """One nbgrader autograde run over the solution and the untouched exercise."""
    return autograde_class(PS, {"solution": SOLUTION, "blank": EXERCISE})


def test_autograde_gives_the_solution_full_marks(grades):
    scores = grades["solution"]
    assert set(scores) == {"test_mhsa", "test_mhsa_hidden", "test_params", "test_shapes"}
    assert all(score == maximum > 0 for score, maximum in scores.values()), scores


def test_autograde_gives_the_untouched_exercise_zero(grades):
    scores = grades["blank"]
    assert scores and all(score == 0 for score, _ in scores.values()), scores


def test_every_injected_mistake_is_in_the_catalogue_under_its_question():
    for inj in WRONG:
        assert inj.code in CATALOGUE, inj.code
        assert CATALOGUE[inj.code].question == f"ps2.{inj.cell}"
    graded = {inj.cell for inj in WRONG}
    assert graded == {"mhsa", "params", "shapes"}
    assert all(sum(inj.cell == cell for inj in WRONG) >= 3 for cell in graded)


@pytest.mark.parametrize("inj", WRONG, ids=lambda i: i.name)
def test_wrong_answer_is_rejected_with_its_mistake_code(injected, inj):
    error = injected[inj.name]
    assert error is not None, f"{inj.name} passed the tests"
    assert error.startswith(f"[{inj.code}]"), error


@pytest.mark.parametrize("inj", CORRECT, ids=lambda i: i.name)
def test_correct_answer_written_differently_passes(injected, inj):
    assert injected[inj.name] is None, injected[inj.name]


def test_replacing_torch_allclose_is_caught_as_tampering():
    error = run_injections(PS, [TAMPERING])[TAMPERING.name]
    assert error is not None and error.startswith("[tampering]"), error


@pytest.mark.parametrize("inj", WRONG + CORRECT, ids=lambda i: i.name)
def test_an_injected_answer_changes_no_other_questions_points(injected, inj):
    """The whole score vector: a mistake costs its own question only, a correct variant costs nothing."""
    assert_only_its_own_question_fails(injected, inj, PS)
