"""The lecture notebooks run top to bottom (quick budget) and carry no outputs."""

from __future__ import annotations

import nbformat
import pytest

from tests.nbtools import ROOT, run_notebook

LECTURES = [ROOT / "lectures" / "02_vit_architecture.ipynb", ROOT / "lectures" / "05_vit_cnn_debate.ipynb"]

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.stem)
def test_lecture_runs_top_to_bottom(path):
    nb = run_notebook(path)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    if path.stem == "02_vit_architecture":
        assert "patches: (1, 196, 768)" in printed
        assert "accuracy on new random crops" in printed
    if path.stem == "05_vit_cnn_debate":
        assert "hard distillation loss = ½·0.1698 + ½·0.5514 = 0.3606" in printed  # the worked example, by hand
        assert "vitkit.train.distillation_loss   = 0.3606" in printed  # and by the kit: they agree
        assert "one token sees (21, 21) pixels (stride 4" in printed  # the stem's receptive field overlaps
        assert "after 2 block(s) the centre position sees (28, 28) pixels" in printed


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.stem)
def test_committed_lecture_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name} cells {dirty} carry outputs or execution counts; strip them"
