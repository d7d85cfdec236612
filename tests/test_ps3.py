"""Problem set 3 (patch embeddings): the notebook runs, releases, grades fairly, names mistakes."""

from __future__ import annotations

import pytest

import vitkit.grading.ps3  # noqa: F401  (defines the problem set's mistakes)
from tests.nbtools import ROOT, run_notebook
from tests.problem_set import ProblemSetChecks

PS = "ps3_patch_embeddings"
QUESTIONS = ("patchify", "tokens", "embed", "conv", "cls", "pos_embed", "sincos", "pad", "resample")
pytestmark = pytest.mark.slow


def test_solution_runs_top_to_bottom():
    nb = run_notebook(ROOT / "solutions" / PS / f"{PS}.ipynb")
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "patches: (1, 196, 768)" in printed and "196 tokens of 768 values" in printed
    assert "same as vitkit.resample_pos_embed: True" in printed


class TestPatchEmbeddings(ProblemSetChecks):
    PS = PS
    AUTOGRADED = {f"test_{q}" for q in QUESTIONS} | {"test_patchify_hidden"}
    POINTS = 20
    GRADED = set(QUESTIONS)
