"""The checks every problem set passes, written once: each ``tests/test_psN.py`` subclasses them.

A problem set's test class names its notebook and what grading it must give::

    class TestPatchEmbeddings(ProblemSetChecks):
        PS = "ps3_patch_embeddings"
        AUTOGRADED = {...}  # the grade_ids nbgrader scores
        POINTS = 20  # what the solution earns
        GRADED = {...}  # the answer cells tests/injections/ps3.py gives wrong answers for

and inherits: the committed notebooks carry no outputs, the exercise is the release of the solution,
autograde gives the solution full marks and the blank exercise zero, every wrong answer in
``tests/injections/<ps>.py`` is rejected under its own mistake code (and costs its own question only),
every differently-written correct answer passes, and replacing the testing functions is caught.

The ``injected`` and ``grades`` fixtures (one injection run and one ``nbgrader autograde`` run per
class) are in ``tests/conftest.py``; the answers are parametrised here from the class's data.
"""

from __future__ import annotations

import nbformat

from tests.injections import Injection, load, tampering
from tests.nbtools import ROOT, assert_only_its_own_question_fails, assert_release_in_sync, run_injections
from vitkit.grading import CATALOGUE


class ProblemSetChecks:
    PS: str
    AUTOGRADED: set[str]
    POINTS: int
    GRADED: set[str]
    # True: the TAMPERING answers run in the shared injection process, after all the others (one process less
    # each); only where no answer's patch could hide another's. False: each in a process of its own.
    TAMPERING_RUNS_LAST = False

    @classmethod
    def notebook(cls, folder: str):
        return ROOT / folder / cls.PS / f"{cls.PS}.ipynb"

    @classmethod
    def answers(cls) -> dict[str, list[Injection]]:
        """The problem set's injections by the argument name the checks take them as."""
        wrong, correct = load(cls.PS)
        return {"wrong": wrong, "correct": correct, "answer": wrong + correct, "tamperer": tampering(cls.PS)}

    @classmethod
    def students(cls, folder) -> dict:
        """The notebooks graded in one class (``{student: path}``); a problem set may add its own in ``folder``."""
        return {"solution": cls.notebook("solutions"), "blank": cls.notebook("exercises")}

    def pytest_generate_tests(self, metafunc):
        for name, injections in self.answers().items():
            if name in metafunc.fixturenames:
                metafunc.parametrize(name, injections, ids=lambda i: i.name)
        if "folder" in metafunc.fixturenames:
            metafunc.parametrize("folder", ["solutions", "exercises"], ids=["solution", "exercise"])

    # ------------------------------------------------------------------------- the notebooks

    def test_committed_notebook_has_no_outputs(self, folder):
        path = self.notebook(folder)
        nb = nbformat.read(path, as_version=4)
        dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
        assert not dirty, f"{path.relative_to(ROOT)}: cells {dirty} carry outputs or execution counts; strip them"

    def test_exercise_is_the_release_of_the_solution(self):
        assert_release_in_sync(self.PS)

    # ------------------------------------------------------------------------- grading with nbgrader

    def test_autograde_gives_the_solution_full_marks(self, grades):
        scores = grades["solution"]
        assert set(scores) == self.AUTOGRADED
        assert all(score == maximum > 0 for score, maximum in scores.values()), scores
        assert sum(maximum for _, maximum in scores.values()) == self.POINTS

    def test_autograde_gives_the_untouched_exercise_zero(self, grades):
        scores = grades["blank"]
        assert set(scores) == self.AUTOGRADED and all(score == 0 for score, _ in scores.values()), scores

    # ------------------------------------------------------------------------- wrong and correct answers

    def test_every_injected_mistake_is_in_the_catalogue_under_its_question(self):
        wrong = self.answers()["wrong"]
        prefix = self.PS.split("_")[0]
        for inj in wrong:
            info = CATALOGUE.get(inj.code)
            assert info is not None, f"{inj.code} is not in the catalogue"
            # a written answer's cell is answer_<question>
            assert info.question == f"{prefix}.{inj.cell.removeprefix('answer_')}", (inj.code, info.question)
            assert info.message and info.hint, inj.code
        assert {inj.cell for inj in wrong} == self.GRADED
        # three classic mistakes per function (a written answer may have fewer wrong choices)
        code_cells = {cell for cell in self.GRADED if not cell.startswith("answer_")}
        assert {c: n for c in code_cells if (n := sum(inj.cell == c for inj in wrong)) < 3} == {}

    def test_wrong_answer_is_rejected_with_its_mistake_code(self, injected, wrong):
        error = injected[wrong.name]
        assert error is not None, f"the notebook's tests accept the wrong answer {wrong.name}:\n{wrong.source}"
        assert error.startswith(f"[{wrong.code}]"), f"expected [{wrong.code}], got: {error}"

    def test_correct_answer_written_differently_passes(self, injected, correct):
        assert injected[correct.name] is None, (
            f"a correct answer is rejected:\n{correct.source}\n{injected[correct.name]}"
        )

    def test_an_injected_answer_changes_no_other_questions_points(self, injected, answer):
        """The whole score vector: a mistake costs its own question only, a correct variant costs nothing."""
        assert_only_its_own_question_fails(injected, answer, self.PS)

    def test_replacing_the_testing_functions_is_caught(self, request, tamperer):
        """A patch lasts for the whole process: each runs on its own, or after every other answer."""
        if self.TAMPERING_RUNS_LAST:
            error = request.getfixturevalue("injected")[tamperer.name]
        else:
            error = run_injections(self.PS, [tamperer])[tamperer.name]
        assert error is not None and error.startswith(f"[{tamperer.code}]"), error
