"""Problem set 4 (the whole Vision Transformer): the notebook runs, releases, grades fairly, names mistakes."""

from __future__ import annotations

import nbformat
import pytest

import vitkit.grading.ps4  # noqa: F401  (defines the problem set's mistakes)
from tests.nbtools import ROOT, run_notebook
from tests.problem_set import ProblemSetChecks

PS = "ps4_vision_transformer"
pytestmark = pytest.mark.slow


def test_solution_runs_top_to_bottom_and_its_vit_learns():
    nb = run_notebook(ROOT / "solutions" / PS / f"{PS}.ipynb")
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "ViT-B/16: 86,567,656 parameters" in printed  # the student's class at ViT-B/16's settings
    assert "The loss fell from" in printed


def test_exercise_keeps_the_timm_names_of_the_skeleton():
    source = "".join(c.source for c in nbformat.read(ROOT / "exercises" / PS / f"{PS}.ipynb", as_version=4).cells)
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


class TestVisionTransformer(ProblemSetChecks):
    PS = PS
    AUTOGRADED = {
        "test_mlp",
        "test_block",
        "test_vit",
        "test_vit_hidden",
        "test_vit_base",
        "test_param_count",
        "test_train_step",
        "test_training",
    }
    POINTS = 16
    GRADED = {"mlp", "block", "vit", "param_count", "train_step"}
