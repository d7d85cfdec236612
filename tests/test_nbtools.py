"""The notebook test kit itself: failures name the cell, injections are isolated from each other."""

import nbformat
import pytest

from tests.injections import Injection
from tests.nbtools import NotebookError, question_test_cells, run_notebook


@pytest.mark.slow
def test_run_notebook_names_the_failing_cell_and_its_error(tmp_path):
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("import os\nquick = os.environ['VITKIT_QUICK']"),
            nbformat.v4.new_code_cell("assert quick == '1'\nraise ValueError('patch size 7 does not divide 32')"),
        ]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(NotebookError, match=r"(?s)raise ValueError.*patch size 7 does not divide 32"):
        run_notebook(path)


def test_test_cells_belong_to_the_question_named_in_their_grade_id():
    def cell(gid, src, grade, solution):
        c = nbformat.v4.new_code_cell(src)
        c.metadata["nbgrader"] = {"grade_id": gid, "grade": grade, "solution": solution, "locked": not solution}
        return c

    nb = nbformat.v4.new_notebook(
        cells=[
            cell("softmax", "def softmax(x): ...", False, True),
            cell("test_softmax", "a", True, False),
            cell("test_softmax_hidden", "b", True, False),
            cell("test_softmax2", "c", True, False),  # another question's tests
            cell("softmax_plot", "d", False, False),
        ]
    )
    assert question_test_cells(nb, "softmax") == ["a", "b"]


def test_injection_names_default_to_cell_code_and_a_hash_of_the_source():
    a = Injection("softmax", "ps1.softmax.unstable", "\n    def softmax(x):\n        return x\n")
    assert a.source == "def softmax(x):\n    return x\n"
    assert a.name.startswith("softmax/ps1.softmax.unstable/") and a.name != Injection("softmax", None, "x = 1").name
