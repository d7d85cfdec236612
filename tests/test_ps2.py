"""Problem set 2 (multi-head attention): the notebook runs, releases, grades fairly, names mistakes."""

from __future__ import annotations

import pytest

import vitkit.grading.ps2  # noqa: F401  (defines the problem set's mistakes)
from tests.nbtools import ROOT, run_notebook
from tests.problem_set import ProblemSetChecks

PS = "ps2_multihead_attention"
pytestmark = pytest.mark.slow


def test_solution_runs_top_to_bottom():
    nb = run_notebook(ROOT / "solutions" / PS / f"{PS}.ipynb")
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "2,362,368" in printed  # ViT-B's attention layer, formula and built layer alike
    assert "head 1: [0, 0, 1, 2, 3" in printed  # the hand-built head looks one token back


class TestMultiheadAttention(ProblemSetChecks):
    PS = PS
    AUTOGRADED = {"test_mhsa", "test_mhsa_hidden", "test_params", "test_shapes"}
    POINTS = 10
    GRADED = {"mhsa", "params", "shapes"}
