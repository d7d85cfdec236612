"""Fair marks (issue 14), checked in-process: the checks called directly with student-style answers.

What the shared wrapper of every check guarantees: the references of earlier parts are in place
while a check runs and the notebook's own names come back afterwards; a warning is a note on
stdout, never stderr (nbgrader gives 0 to a test cell that writes to stderr); a failure shows the
whole message and hint, wrapped, without the grader's frames or paths; one verdict per skill.
"""

from __future__ import annotations

import math
import sys
import traceback

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import vitkit.grading.ps1 as ps1
import vitkit.grading.ps3 as ps3
import vitkit.grading.ps4 as ps4
import vitkit.grading.ps5 as ps5
from vitkit.course.mistakes import mistakes_in_cell
from vitkit.grading import WIDTH, Mistake


def _notebook(source: str) -> dict:
    """Run ``source`` as a notebook cell would: its functions read their globals from the returned namespace."""
    namespace = {"__name__": "__main__", "torch": torch, "F": F, "nn": nn, "math": math}
    exec(compile(source, "<cell>", "exec"), namespace)
    return namespace


WRONG_SOFTMAX_AND_RIGHT_ATTENTION = """
def softmax(x, dim=-1):
    e = torch.exp(x)
    return e / e.sum()  # over every entry: wrong

def self_attention(x, w_q, w_k, w_v):
    query, key, value = x @ w_q, x @ w_k, x @ w_v
    weights = softmax(query @ key.transpose(-2, -1) / math.sqrt(key.shape[-1]), dim=-1)
    return weights @ value, weights
"""


def test_a_softmax_mistake_costs_softmax_only_and_the_notebook_keeps_its_own_softmax(capsys):
    nb = _notebook(WRONG_SOFTMAX_AND_RIGHT_ATTENTION)
    own = nb["softmax"]
    with pytest.raises(Mistake) as err:
        ps1.check_softmax(nb["softmax"])
    assert err.value.code.startswith("ps1.softmax.")
    ps1.check_self_attention(nb["self_attention"])  # graded with the reference softmax: full marks
    assert "graded with the reference softmax in place of yours" in capsys.readouterr().out
    assert nb["softmax"] is own  # restored after the check


def test_the_notebook_gets_its_names_back_when_a_check_fails():
    nb = _notebook(
        WRONG_SOFTMAX_AND_RIGHT_ATTENTION.replace("return weights @ value, weights", "return weights, weights @ value")
    )
    own = nb["softmax"]
    with pytest.raises(Mistake) as err:
        ps1.check_self_attention(nb["self_attention"])
    assert err.value.code == "ps1.self_attention.return_order"
    assert "graded with the reference softmax in place of yours" in str(err.value)
    assert nb["softmax"] is own


def test_a_relu_mlp_costs_the_mlp_only():
    nb = _notebook("""
from vitkit.attention import Attention

class MLP(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim)
    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))

class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, num_heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), MLP(dim, int(dim * mlp_ratio))
    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))
""")
    with pytest.raises(Mistake) as err:
        ps4.check_mlp(nb["MLP"])
    assert err.value.code == "ps4.mlp.relu"
    ps4.check_block(nb["Block"])  # nn.LayerNorm's default eps too: not a mistake


def test_a_warning_in_the_students_code_is_a_note_on_stdout_not_stderr(capfd):
    nb = _notebook("""
def train_step(model, images, labels, optimizer):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    return float(loss)  # torch warns: a tensor that requires grad converted to a scalar

def sincos_position_embedding(grid_h, grid_w, dim):
    import warnings
    warnings.warn("a warning of the student's own")
    q = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(q, dtype=torch.float64) / q)
    rows, cols = torch.meshgrid(torch.arange(grid_h, dtype=torch.float64), torch.arange(grid_w, dtype=torch.float64), indexing="ij")
    r, c = rows.reshape(-1, 1) * omega, cols.reshape(-1, 1) * omega
    return torch.cat([r.sin(), r.cos(), c.sin(), c.cos()], dim=1)
""")
    ps4.check_train_step(nb["train_step"])
    ps3.check_sincos(nb["sincos_position_embedding"])
    out, err = capfd.readouterr()
    assert err == ""
    assert "Note (a warning, not a mistake): UserWarning: a warning of the student's own" in out
    assert "Triggered internally" not in out  # no path into torch's sources


def test_a_failure_shows_the_whole_hint_wrapped_without_paths():
    nb = _notebook("def pixels_to_tokens(image):\n    return image.reshape(-1, image.shape[0])\n")
    with pytest.raises(Mistake) as err:
        ps1.check_pixels_to_tokens(nb["pixels_to_tokens"])
    lines = err.value._render_traceback_()
    text = " ".join(lines)
    assert all(len(line) <= WIDTH for line in lines), lines
    assert err.value.info.hint.split()[-1] in text and f"[{err.value.code}]" in text
    assert "/" not in text.replace(err.value.info.hint, "").replace(err.value.info.message, "").replace(
        err.value.detail, ""
    )
    # the check's insides are gone (the wrapper's own frame sets __tracebackhide__, which IPython honours)
    assert not any("grading/ps1" in f.filename for f in traceback.extract_tb(err.value.__traceback__))


def test_a_genuine_error_keeps_the_students_frames_without_the_graders():
    nb = _notebook("def softmax(x, dim=-1):\n    return x.no_such_method()\n")
    with pytest.raises(AttributeError) as err:
        ps1.check_softmax(nb["softmax"])
    files = [f.filename for f in traceback.extract_tb(err.value.__traceback__)]
    assert "<cell>" in files
    assert not any("grading/ps1" in name for name in files), files  # the module ps1.py or the package ps1/


def test_not_written_yet():
    nb = _notebook("def prepend_cls(tokens, cls_token):\n    raise NotImplementedError()\n")
    with pytest.raises(Mistake) as err:
        ps3.check_prepend_cls(nb["prepend_cls"])
    assert err.value.code == "not_written"
    with pytest.raises(Mistake) as err:
        ps1.check_worked_example(None, None, None, None, None)  # the blank exercise's cell sets them to None
    assert err.value.code == "ps1.worked_example.not_written"


@pytest.mark.parametrize("mode, code", [("bicubic", None), ("bilinear", "wrong_mode"), ("nearest", "nearest")])
def test_one_verdict_on_position_grid_resampling_in_both_problem_sets(mode, code):
    def resample(pos_embed, new_grid):
        cls, grid = pos_embed[:, :1], pos_embed[:, 1:]
        h, dim = math.isqrt(grid.shape[1]), grid.shape[2]
        grid = grid.reshape(1, h, h, dim).permute(0, 3, 1, 2)
        grid = F.interpolate(
            grid, size=(new_grid, new_grid), mode=mode, **({} if mode == "nearest" else {"align_corners": False})
        )
        return torch.cat([cls, grid.permute(0, 2, 3, 1).reshape(1, -1, dim)], dim=1)

    for ps, check in (("ps3", ps3.check_resample), ("ps5", ps5.check_resample)):
        if code is None:
            check(resample)
        else:
            with pytest.raises(Mistake) as err:
                check(resample)
            assert err.value.code == f"{ps}.resample.{code}"


def test_a_test_cell_that_wrote_to_stderr_is_named_never_no_error_message():
    cell = {"outputs": [{"output_type": "stream", "name": "stderr", "text": "UserWarning: something\n"}]}
    [[code, message]] = mistakes_in_cell(cell, set())
    assert code == "other" and "stderr" in message and "UserWarning: something" in message
    [[_, message]] = mistakes_in_cell({"outputs": []}, set(), lost_points=True)
    assert "no error message" not in message and message
    assert mistakes_in_cell({"outputs": []}, set()) == []


def test_warnings_outside_a_check_print_on_stdout_in_a_graded_notebook():
    import warnings

    assert warnings.showwarning.__module__ == "vitkit.grading" or "pytest" in sys.modules  # pytest swaps it per test
    from vitkit import grading

    assert grading._show_warning_on_stdout.__module__ == "vitkit.grading"


GAIN_NOTEBOOK = """
from vitkit.pretrain import CHECKPOINT
from vitkit.pretrained import load

def fine_tune_pretrained():
    # stands for the notebook's fine-tuning (no training here): 0.9 with a zero nn.Linear(dim, 10) head, else 0.0
    model = new_head(load(CHECKPOINT), 10)
    head = getattr(model, "head", None)
    right = isinstance(head, nn.Linear) and head.out_features == 10 and not head.weight.any() and not head.bias.any()
    return model, None, 0.9 if right else 0.0
"""


def test_a_new_head_mistake_costs_the_head_only_not_the_gain(capsys):
    # the student's head returns nothing: their experiment cell failed before the fine-tuned accuracy was measured
    nb = _notebook("def new_head(model, num_classes):\n    model.head = nn.Linear(7, 7)\n" + GAIN_NOTEBOOK)
    own = nb["new_head"]
    ps5.check_pretraining_pays_off(nb["fine_tune_pretrained"], {"from scratch": 0.5}, nb["new_head"])
    out = capsys.readouterr().out
    assert "Pre-training pays off: 90.0% against 50.0%" in out
    assert "graded with the reference new_head in place of yours" in out
    assert nb["new_head"] is own  # restored after the check


def test_a_right_new_head_is_graded_on_the_notebooks_own_numbers(capsys):
    nb = _notebook(
        "def new_head(model, num_classes):\n"
        "    model.head = nn.Linear(model.config.dim, num_classes)\n"
        "    nn.init.zeros_(model.head.weight)\n    nn.init.zeros_(model.head.bias)\n    return model\n" + GAIN_NOTEBOOK
    )
    results = {"from scratch": 0.5, "pre-trained, fine-tuned": 0.52}  # the notebook's own run: too small a gain
    with pytest.raises(Mistake) as err:
        ps5.check_pretraining_pays_off(nb["fine_tune_pretrained"], results, nb["new_head"])
    assert err.value.code == "ps5.gain.no_gain" and "pre-trained 52.0%" in str(err.value)
    assert "reference" not in str(err.value)
    results["pre-trained, fine-tuned"] = 0.8
    ps5.check_pretraining_pays_off(nb["fine_tune_pretrained"], results, nb["new_head"])
    out = capsys.readouterr().out
    assert "80.0% against 50.0%" in out and "reference" not in out
    blank = _notebook("def new_head(model, num_classes):\n    raise NotImplementedError()\n" + GAIN_NOTEBOOK)
    with pytest.raises(Mistake) as err:  # nothing written: no experiment of the student's to grade
        ps5.check_pretraining_pays_off(blank["fine_tune_pretrained"], {"from scratch": 0.5}, blank["new_head"])
    assert err.value.code == "not_written"


def test_losses_returned_as_tensors_that_require_grad_are_graded_like_floats(capsys):
    # a train_step that returns the loss tensor itself (not .item()): the question's float and a 0-d tensor are equal
    weight = torch.ones(1, requires_grad=True)
    losses = [(weight * (3.0 - 2.5 * step / 40)).sum() for step in range(40)]
    assert all(loss.requires_grad for loss in losses)
    ps4.check_training(losses)
    assert "The loss fell from" in capsys.readouterr().out
