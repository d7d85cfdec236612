"""The self-attention explorer: its numbers are the lecture's, and its controls change what it shows."""

import math

import pytest
import torch

from vitkit.widgets import attention_explorer, attention_step, render_step
from vitkit.worked_example import W_K, W_Q, W_V, X


def _lecture(query_index, scale=True):
    return attention_step(X, W_Q, W_K, W_V, query_index, scale)


def test_attention_step_reproduces_the_lecture_for_input_1():
    step = _lecture(0, scale=False)
    assert step.query.tolist() == [1, 0, 2]
    assert step.keys.tolist() == [[0, 1, 1], [4, 4, 0], [2, 3, 1]]
    assert step.values.tolist() == [[1, 2, 3], [2, 8, 0], [2, 6, 3]]
    assert step.scores.tolist() == [2, 4, 4]
    e = [math.exp(s) for s in (2, 4, 4)]
    assert torch.allclose(step.weights, torch.tensor([v / sum(e) for v in e], dtype=torch.float64))
    # The slides round the weights to [0, 0.5, 0.5] and get [2.0, 7.0, 1.5]; the exact softmax is close.
    assert torch.allclose(step.output, torch.tensor([2.0, 7.0, 1.5], dtype=torch.float64), atol=0.35)


def test_attention_step_matches_vitkit_self_attention_for_every_token():
    from vitkit.attention import self_attention

    g = torch.Generator().manual_seed(0)
    x, w_q, w_k, w_v = (torch.randn(s, generator=g, dtype=torch.float64) for s in ((5, 4), (4, 3), (4, 3), (4, 2)))
    for scale in (True, False):
        output, weights = self_attention(x, w_q, w_k, w_v, scale=scale)
        for i in range(5):
            step = attention_step(x, w_q, w_k, w_v, i, scale)
            assert torch.allclose(step.weights, weights[i]) and torch.allclose(step.output, output[i])
            assert step.weights.sum().item() == pytest.approx(1.0)


def test_scaling_softens_the_weights():
    assert _lecture(1, scale=True).weights.max() < _lecture(1, scale=False).weights.max()


def test_attention_step_names_bad_inputs():
    with pytest.raises(ValueError, match="query_index 3 is out of range"):
        _lecture(3)
    with pytest.raises(ValueError, match="w_q has 3 rows"):
        attention_step(X, [[1.0] * 3] * 3, W_K, W_V, 0)


def test_render_step_shows_scores_weights_and_output():
    text = render_step(_lecture(0, scale=False), ["input 1", "input 2", "input 3"], scale=False)
    assert "query of <b>input 1</b>: [1, 0, 2]" in text and "<td>4</td>" in text and "new representation" in text


def test_explorer_output_follows_the_dropdown_and_the_checkbox():
    explorer = attention_explorer()
    first = explorer.table.value
    assert "input 1" in first and "score / √3" in first
    explorer.query.value = 1
    second = explorer.table.value
    assert second != first and "query of <b>input 2</b>" in second
    explorer.scale.value = False
    assert explorer.table.value != second and "score (not scaled)" in explorer.table.value
    assert {"vitkit-query", "vitkit-scale", "vitkit-attention-table"} <= set(
        explorer.query._dom_classes + explorer.scale._dom_classes + explorer.table._dom_classes
    )


def test_explorer_rejects_names_of_the_wrong_length():
    with pytest.raises(ValueError, match="names has 2 entries for 3 tokens"):
        attention_explorer(names=["a", "b"])


@pytest.mark.slow
def test_lecture_1_runs_top_to_bottom_with_its_explorer_and_figures():
    from tests.nbtools import ROOT, run_notebook

    nb = run_notebook(ROOT / "lectures" / "01_self_attention.ipynb")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) == 2, "the lecture shows two attention explorers"
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3
    assert "4,299,816,960,000" in "".join(o.get("text", "") for o in outputs)
    for path in [ROOT / "lectures" / "01_self_attention.ipynb"]:
        committed = __import__("nbformat").read(path, as_version=4)
        assert not [c for c in committed.cells if c.cell_type == "code" and (c.outputs or c.execution_count)], (
            f"strip the outputs of {path.name}"
        )
