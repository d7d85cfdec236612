"""Problem set 5 (pre-training and fine-tuning): the notebook runs, releases, grades fairly, names mistakes."""

from __future__ import annotations

import pytest

import vitkit.grading.ps5  # noqa: F401  (defines the problem set's mistakes)
from tests.nbtools import ROOT, run_notebook
from tests.problem_set import ProblemSetChecks

PS = "ps5_pretrain_finetune"
pytestmark = pytest.mark.slow


def test_solution_runs_and_pretraining_pays_off():
    nb = run_notebook(ROOT / "solutions" / PS / f"{PS}.ipynb")
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "Pre-training pays off:" in printed, printed[-2000:]
    assert (
        "from scratch" in printed
        and "linear probe" in printed
        and "at 42×42 with resampled position embeddings" in printed
    )


class TestPretrainFinetune(ProblemSetChecks):
    PS = PS
    AUTOGRADED = {"test_new_head", "test_linear_probe", "test_gain", "test_resample"}
    POINTS = 8
    GRADED = {"new_head", "linear_probe", "resample"}
