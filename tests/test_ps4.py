"""Problem set 4 (the whole Vision Transformer): the notebook runs, releases, grades fairly, names mistakes."""

from __future__ import annotations

import nbformat
import pytest

import vitkit.grading.ps4  # noqa: F401  (defines the problem set's mistakes)
from tests.injections import load
from tests.injections.ps4 import TAMPERING
from tests.nbtools import (
    ROOT,
    assert_only_its_own_question_fails,
    assert_release_in_sync,
    autograde_class,
    run_injections,
    run_notebook,
)
from vitkit.grading import CATALOGUE

PS = "ps4_vision_transformer"
SOLUTION = ROOT / "solutions" / PS / f"{PS}.ipynb"
EXERCISE = ROOT / "exercises" / PS / f"{PS}.ipynb"
WRONG, CORRECT = load(PS)
CODE_QUESTIONS = {
    "test_mlp",
    "test_block",
    "test_vit",
    "test_vit_hidden",
    "test_vit_base",
    "test_param_count",
    "test_train_step",
    "test_training",
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def injected():
    return run_injections(PS, WRONG + CORRECT)


def test_solution_runs_top_to_bottom_and_its_vit_learns():
    nb = run_notebook(SOLUTION)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "ViT-B/16: 86,567,656 parameters" in printed  # the student's class at ViT-B/16's settings
    assert "The loss fell from" in printed


@pytest.mark.parametrize("path", [SOLUTION, EXERCISE], ids=["solution", "exercise"])
def test_committed_notebook_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name} cells {dirty} carry outputs or execution counts; strip them"


def test_exercise_is_the_release_of_the_solution():
    assert_release_in_sync(PS)


def test_exercise_keeps_the_timm_names_of_the_skeleton():
    source = "".join(c.source for c in nbformat.read(EXERCISE, as_version=4).cells)
    for name in (
        "self.fc1",
        "self.fc2",
        "self.norm1",
        "self.attn",
        "self.norm2",
        "self.mlp",
        "self.patch_embed",
        "self.cls_token",
        "self.pos_embed",
        "self.blocks",
        "self.norm",
        "self.head",
    ):
        assert name in source, f"the exercise no longer tells students to create {name}"
    assert (
        "### BEGIN SOLUTION" not in source
        and "x = x + self.attn(self.norm1(x))\n        x = x + self.mlp" not in source
    )


@pytest.fixture(scope="module")
def grades():
    """One nbgrader autograde run over the solution and the untouched exercise."""
    return autograde_class(PS, {"solution": SOLUTION, "blank": EXERCISE})


def test_autograde_gives_the_solution_full_marks(grades):
    scores = grades["solution"]
    assert set(scores) == CODE_QUESTIONS
    assert all(score == maximum > 0 for score, maximum in scores.values()), scores


def test_autograde_gives_the_untouched_exercise_zero(grades):
    scores = grades["blank"]
    assert set(scores) == CODE_QUESTIONS and all(score == 0 for score, _ in scores.values()), scores


def test_every_injected_mistake_is_in_the_catalogue_under_its_question():
    for inj in WRONG:
        assert inj.code in CATALOGUE, inj.code
        assert CATALOGUE[inj.code].question == f"ps4.{inj.cell}"
    graded = {inj.cell for inj in WRONG}
    assert graded == {"mlp", "block", "vit", "param_count", "train_step"}
    assert all(sum(inj.cell == cell for inj in WRONG) >= 3 for cell in graded)


@pytest.mark.parametrize("inj", WRONG, ids=lambda i: i.name)
def test_wrong_answer_is_rejected_with_its_mistake_code(injected, inj):
    error = injected[inj.name]
    assert error is not None, f"{inj.name} passed the tests"
    assert error.startswith(f"[{inj.code}]"), error


@pytest.mark.parametrize("inj", CORRECT, ids=lambda i: i.name)
def test_correct_answer_written_differently_passes(injected, inj):
    assert injected[inj.name] is None, injected[inj.name]


@pytest.mark.parametrize("inj", TAMPERING, ids=lambda i: i.name)
def test_replacing_the_testing_functions_is_caught_as_tampering(inj):
    error = run_injections(PS, [inj])[inj.name]  # one process each: the patch lasts for the whole process
    assert error is not None and error.startswith("[tampering]"), error


@pytest.mark.parametrize("inj", WRONG + CORRECT, ids=lambda i: i.name)
def test_an_injected_answer_changes_no_other_questions_points(injected, inj):
    """The whole score vector: a mistake costs its own question only, a correct variant costs nothing."""
    assert_only_its_own_question_fails(injected, inj, PS)
