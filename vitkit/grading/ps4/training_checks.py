"""Problem set 4's checks of counting and training: the parameter count formula, train_step, the loss curve."""

from __future__ import annotations

import math

import torch
from torch import nn

from vitkit.grading import Mistake, as_tensor, close, seal
from vitkit.grading.ps4.reference import _cross_entropy, _deepcopy, _gen, _parameters, _rand, _softmax


def _count(img_size, patch_size, in_chans, num_classes, dim, depth, mlp_ratio, leave_out=()):
    n = (img_size // patch_size) ** 2
    hidden = int(mlp_ratio * dim) if "mlp_ratio" not in leave_out else dim
    bias = "bias" not in leave_out
    patch = patch_size * patch_size * in_chans * dim + (dim if bias else 0)
    if "patch_embed" in leave_out:
        patch = patch_size * patch_size * dim + dim
    cls = 0 if "cls" in leave_out else dim
    pos = 0 if "pos" in leave_out else (n + (0 if "cls" in leave_out else 1)) * dim
    norms_per_block = 0 if "norms" in leave_out else 4 * dim
    attn = 4 * dim * dim + (4 * dim if bias else 0)
    if "attention" in leave_out:
        attn = 3 * dim * dim + (3 * dim if bias else 0)
    mlp = 2 * dim * hidden + ((hidden + dim) if bias else 0)
    final = 0 if ("norms" in leave_out or "final_norm" in leave_out) else 2 * dim
    head = 0 if "head" in leave_out else dim * num_classes + (num_classes if bias else 0)
    return patch + cls + pos + depth * (norms_per_block + attn + mlp) + final + head


# (forgetting the CLS token shows as −dim, its token and position together as −2·dim: checked after these)
_COUNT_MISTAKES = {
    ("pos",): "no_pos_embed",
    ("bias",): "no_bias",
    ("norms",): "no_norms",
    ("final_norm",): "no_final_norm",
    ("head",): "no_head",
    ("mlp_ratio",): "mlp_ratio",
    ("patch_embed",): "patch_embed",
    ("attention",): "attention",
}


def check_parameter_count(student_fn) -> None:
    """The student's ``vit_parameter_count(img_size, patch_size, in_chans, num_classes, dim, depth, mlp_ratio)``."""
    cases = [
        (224, 16, 3, 1000, 768, 12, 4.0),
        (28, 7, 1, 10, 64, 2, 2.0),
        (32, 4, 3, 100, 192, 6, 2.0),
        (224, 16, 3, 1000, 192, 12, 4.0),
        (64, 8, 3, 7, 48, 3, 3.0),
    ]
    for case in cases:
        expected = _count(*case)
        got = student_fn(*case)
        call = f"vit_parameter_count{case}"
        try:
            whole = not isinstance(got, bool) and float(got) == int(got)
        except (TypeError, ValueError, OverflowError):
            whole = False
        if not whole:
            raise Mistake("ps4.param_count.wrong", f"{call} returned {got!r}, not a whole number")
        got = int(got)
        if got == expected:
            continue
        for leave_out, name in _COUNT_MISTAKES.items():
            if _count(*case, leave_out=leave_out) == got:
                raise Mistake(f"ps4.param_count.{name}", f"{call} returned {got:,}, expected {expected:,}")
        if got == expected - case[4]:  # the CLS token alone, or the CLS token's position alone
            raise Mistake("ps4.param_count.no_cls", f"{call} returned {got:,}, expected {expected:,}")
        raise Mistake("ps4.param_count.wrong", f"{call} returned {got:,}, expected {expected:,} ({got - expected:+,})")
    print(f"Parameter counts are right: ViT-B/16 has {_count(*cases[0]):,}.")


def check_train_step(student_fn) -> None:
    """The student's ``train_step(model, images, labels, optimizer) -> float``: one SGD step, twice, against the reference."""
    g = _gen(430)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.Tanh(), nn.Linear(6, 4)).double()
    with torch.no_grad():
        for p in _parameters(model):
            p.copy_(_rand(p.shape, g, 0.5))
    reference = _deepcopy(model)
    ref_opt = torch.optim.SGD(_parameters(reference), lr=0.5)
    opt = torch.optim.SGD(_parameters(model), lr=0.5)
    start = [p.detach().clone() for p in _parameters(model)]
    for step in range(2):
        images, labels = _rand((5, 3, 2, 2), g), torch.randint(0, 4, (5,), generator=g)
        logits = reference(images)
        expected_loss = _cross_entropy(logits, labels)
        softmax_loss = _cross_entropy(_softmax(logits, -1), labels)
        ref_opt.zero_grad()
        expected_loss.backward()
        ref_opt.step()
        got = student_fn(model, images, labels, opt)
        try:
            got = float(got)
        except (TypeError, ValueError, RuntimeError):
            raise Mistake("ps4.train_step.not_a_number", f"step {step + 1} returned {type(got).__name__}") from None
        where = f"step {step + 1} of SGD(lr=0.5) on a small model"
        if abs(got - softmax_loss.item()) < 1e-6 and abs(got - expected_loss.item()) > 1e-6:
            raise Mistake("ps4.train_step.softmax_before_loss", where)
        if abs(got - expected_loss.item()) > 1e-6 * max(1.0, abs(expected_loss.item())):
            raise Mistake(
                "ps4.train_step.loss_wrong", f"{where}: returned {got:.6g}, expected {expected_loss.item():.6g}"
            )
        params, ref_params = list(_parameters(model)), list(_parameters(reference))
        if step == 0 and all(close(p.detach(), s) for p, s in zip(params, start)):
            raise Mistake("ps4.train_step.no_step", where)
        if not all(close(p.detach(), r.detach(), 1e-6, 1e-8) for p, r in zip(params, ref_params)):
            raise Mistake("ps4.train_step.no_zero_grad" if step == 1 else "ps4.train_step.not_close", where)
    print("train_step: the loss before the update, then one optimizer step on fresh gradients.")


def check_training(losses) -> None:
    """The training run's losses (one per step) fell: the last 10 steps' mean loss well below the first 10's."""
    losses = as_tensor(losses, "losses").flatten()
    if len(losses) < 20:
        raise Mistake(
            "ps4.training.loss_did_not_fall", f"only {len(losses)} losses were recorded; run the training cell above"
        )
    first, last = losses[:10].mean().item(), losses[-10:].mean().item()
    if not (last < 0.8 * first and last < math.log(10)):
        raise Mistake(
            "ps4.training.loss_did_not_fall",
            f"mean loss of the first 10 steps {first:.3f}, of the last 10 steps {last:.3f}",
        )
    print(f"The loss fell from {first:.3f} to {last:.3f}.")


seal(__name__)
