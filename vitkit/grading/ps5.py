"""Checks for problem set 5, pre-training and fine-tuning.

The test cells of ``ps5_pretrain_finetune`` call only these functions: the new zero-initialised head
(the paper's fine-tuning recipe), freezing for a linear probe, resampling position embeddings to
fine-tune at a higher resolution, and the measured pay-off of pre-training. References are computed
with functions captured when this module is imported.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import nn

from vitkit.grading import Mistake, _graded_with, close, position_grid_check, references, seal

_interpolate = F.interpolate
_cat = torch.cat
_randn = torch.randn
_Generator = torch.Generator
_named_parameters = nn.Module.named_parameters
_state_dict = nn.Module.state_dict
_Linear = nn.Linear


# The mistakes these checks name, with their messages and hints, are rows of vitkit/grading/catalogue.py.

# ----------------------------------------------------------------------------- helpers


def _small_vit(num_classes=7, seed=500):
    from vitkit.vit import ViT, ViTConfig

    torch.manual_seed(seed)
    model = ViT(
        ViTConfig(
            img_size=14, patch_size=7, in_chans=1, num_classes=num_classes, dim=24, depth=2, num_heads=3, mlp_ratio=2.0
        )
    )
    g = _Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in _named_parameters(model):
            p.copy_(_randn(p.shape, generator=g) * 0.2)  # "pre-trained": nothing is zero, nothing is one
    return model


# ----------------------------------------------------------------------------- the checks the notebook calls


def check_new_head(student_fn) -> None:
    """The student's ``new_head(model, num_classes)``: a new zero-initialised nn.Linear(dim, num_classes), nothing else changed."""
    for num_classes in (3, 10, 1):
        model = _small_vit()
        before = {k: v.clone() for k, v in _state_dict(model).items() if not k.startswith("head.")}
        old_head = model.head
        result = student_fn(model, num_classes)
        if not isinstance(result, nn.Module):
            raise Mistake("ps5.new_head.no_model", f"new_head returned {type(result).__name__}")
        head = getattr(result, "head", None)
        where = f"new_head(a ViT with dim 24 and 7 classes, {num_classes})"
        if not isinstance(head, _Linear):
            raise Mistake("ps5.new_head.not_linear", f"{where}: head is {type(head).__name__}")
        if head is old_head or (head.out_features == 7 and num_classes != 7):
            raise Mistake("ps5.new_head.old_head_kept", where)
        if (head.in_features, head.out_features) != (24, num_classes):
            raise Mistake(
                "ps5.new_head.wrong_size",
                f"{where}: nn.Linear({head.in_features}, {head.out_features}), expected nn.Linear(24, {num_classes})",
            )
        if not close(head.weight.detach(), torch.zeros_like(head.weight), 0, 0):
            raise Mistake(
                "ps5.new_head.not_zero_init",
                f"{where}: the largest weight is {head.weight.detach().abs().max().item():.3g}",
            )
        if head.bias is None:
            raise Mistake("ps5.new_head.no_bias", where)
        if not close(head.bias.detach(), torch.zeros_like(head.bias), 0, 0):
            raise Mistake("ps5.new_head.bias_not_zero", where)
        if not all(p.requires_grad for p in head.parameters()):
            raise Mistake("ps5.new_head.frozen", where)
        after = {k: v for k, v in _state_dict(result).items() if not k.startswith("head.")}
        changed = sorted(k for k in before if k not in after or not close(after[k], before[k], 0, 0))
        if changed:
            raise Mistake("ps5.new_head.body_changed", f"{where}: changed {changed[:4]}")
    print("new_head: a zero-initialised nn.Linear(dim, num_classes); the pre-trained body untouched.")


def check_linear_probe(student_fn) -> None:
    """The student's ``linear_probe(model)``: every parameter frozen except the head's."""
    model = _small_vit()
    result = student_fn(model)
    if not isinstance(result, nn.Module):
        raise Mistake("ps5.linear_probe.no_model", f"linear_probe returned {type(result).__name__}")
    trainable = {name for name, p in _named_parameters(result) if p.requires_grad}
    head = {"head.weight", "head.bias"}
    if not head <= trainable:
        raise Mistake("ps5.linear_probe.head_frozen", f"trainable: {sorted(trainable)[:6]}")
    extra = sorted(trainable - head)
    if trainable == {name for name, _ in _named_parameters(result)}:
        raise Mistake("ps5.linear_probe.nothing_frozen", f"all {len(trainable)} parameter tensors are trainable")
    if extra:
        code = (
            "ps5.linear_probe.embeddings_trainable"
            if any(n in ("cls_token", "pos_embed") or n.startswith("patch_embed.") for n in extra)
            else "ps5.linear_probe.body_trainable"
        )
        raise Mistake(code, f"still trainable: {extra[:6]}{' ...' if len(extra) > 6 else ''}")
    print("linear_probe: only model.head learns.")


def check_resample(student_fn) -> None:
    """The student's ``resample_pos_embed(pos_embed, new_grid)``: the grid interpolated bicubically in 2-D, the CLS entry kept.

    The same check as problem set 3's (one skill, one reference: vitkit.embedding.resample_pos_embed).
    """
    position_grid_check(student_fn, "ps5", "resample_pos_embed")
    print("resample_pos_embed: the CLS entry kept, the grid interpolated in 2-D.")


def _reference_new_head(model, num_classes):
    """The question's answer: model.head replaced by a zero-initialised nn.Linear(model.config.dim, num_classes)."""
    head = _Linear(model.config.dim, num_classes)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
    model.head = head
    return model


def _same_model_as_reference(student_fn) -> bool:
    """True when the student's ``new_head(pre-trained model, 10)`` gives the reference's model: the same parameters
    (names, values, order) and the same ``requires_grad``; fine-tuning it then gives the reference's numbers.

    ``NotImplementedError`` (not written yet) propagates; any other error means "not the same".
    """
    from vitkit.pretrain import CHECKPOINT
    from vitkit.pretrained import load

    expected = _reference_new_head(load(CHECKPOINT), 10)
    try:
        got = student_fn(load(CHECKPOINT), 10)
    except NotImplementedError:
        raise
    except Exception:
        return False
    if not isinstance(got, nn.Module) or type(getattr(got, "head", None)) is not _Linear:
        return False
    ours, theirs = list(_named_parameters(expected)), list(_named_parameters(got))
    if [n for n, _ in ours] != [n for n, _ in theirs]:
        return False
    return all(
        a.requires_grad == b.requires_grad and a.shape == b.shape and close(b.detach(), a.detach(), 0, 0)
        for (_, a), (_, b) in zip(ours, theirs)
    )


_RERUNS = (
    weakref.WeakKeyDictionary()
)  # fine_tune -> its test accuracy with the reference new_head (one run per function)


def check_pretraining_pays_off(fine_tune, results: dict, student_new_head, margin: float = 0.05) -> None:
    """The fine-tuned pre-trained model beats the same model trained from scratch by at least ``margin`` test accuracy.

    ``fine_tune()`` is the notebook's fine-tuning (it calls ``new_head``) and returns ``(model, curve, test accuracy)``;
    ``results`` holds the notebook's test accuracies (``"from scratch"``, and ``"pre-trained, fine-tuned"`` unless
    that run failed); ``student_new_head`` is the student's ``new_head``. The question grades the measured pay-off
    only: when the student's head gives the reference's model, the notebook's own numbers count; otherwise (a
    mistake in ``new_head``, which costs the head's points only) the fine-tuning runs again with the reference
    ``new_head`` in place of theirs, and the message says so.
    """
    scratch_accuracy = float(results["from scratch"])
    graded_with = ""
    same = _same_model_as_reference(student_new_head)  # first: a head not written yet leaves no experiment to grade
    if same and "pre-trained, fine-tuned" in results:
        pretrained_accuracy = float(results["pre-trained, fine-tuned"])
    else:
        if fine_tune not in _RERUNS:
            with references(fine_tune, {"new_head": _reference_new_head}):
                _RERUNS[fine_tune] = float(fine_tune()[2])
        pretrained_accuracy = _RERUNS[fine_tune]
        graded_with = "; " + _graded_with(["new_head"])
    if not pretrained_accuracy >= scratch_accuracy + margin:
        raise Mistake(
            "ps5.gain.no_gain",
            f"pre-trained {pretrained_accuracy:.1%}, from scratch {scratch_accuracy:.1%}{graded_with}",
        )
    print(
        f"Pre-training pays off: {pretrained_accuracy:.1%} against {scratch_accuracy:.1%} from scratch "
        f"(+{100 * (pretrained_accuracy - scratch_accuracy):.1f} points){graded_with}."
    )


seal(__name__)
