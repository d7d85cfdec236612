"""Problem set 4's checks of the block's parts: the MLP and the pre-norm Block."""

from __future__ import annotations

from vitkit.grading import Mistake, close, largest_difference, seal, uses
from vitkit.grading.ps4.reference import (
    _BLOCK_VARIANTS,
    TOL,
    _block,
    _block_weights,
    _gen,
    _load,
    _mlp,
    _mlp_weights,
    _rand,
    _run,
)
from vitkit.vit import Mlp as _ReferenceMLP

# ----------------------------------------------------------------------------- the checks the notebook calls


def check_mlp(student_cls, cases=((8, 16, (2, 5)), (12, 24, (1, 3)), (6, 4, (3, 7)))) -> None:
    """The student's ``MLP(dim, hidden)`` with known weights on tokens (B, N, dim): fc2(GELU(fc1(x)))."""
    for i, (dim, hidden, (B, N)) in enumerate(cases):
        g = _gen(400 + i)
        sd = _mlp_weights(dim, hidden, g)
        mlp = student_cls(dim, hidden)
        _load(mlp, sd, "ps4.mlp.names", f"MLP({dim}, {hidden})")
        x = _rand((B, N, dim), g)
        where = f"MLP({dim}, {hidden}) on tokens of shape {(B, N, dim)}"
        out = _run(mlp, x, "ps4.mlp.wrong_shape", (B, N, dim), where)
        if close(out, _mlp(x, sd), **TOL):
            continue
        for variant in ("no_activation", "relu", "activation_after_fc2"):
            if close(out, _mlp(x, sd, variant=variant), **TOL):
                raise Mistake(f"ps4.mlp.{variant}", where)
        raise Mistake("ps4.mlp.not_close", f"{where}: {largest_difference(out, _mlp(x, sd))}")
    print("MLP: fc1 -> GELU -> fc2, right on every shape.")


@uses(MLP=_ReferenceMLP)
def check_block(student_cls, cases=((16, 4, 2.0, (2, 5)), (12, 3, 4.0, (1, 9)), (8, 1, 1.0, (3, 2)))) -> None:
    """The student's ``Block(dim, num_heads, mlp_ratio)`` with known weights against the pre-norm block."""
    for i, (dim, heads, ratio, (B, N)) in enumerate(cases):
        g = _gen(410 + i)
        sd = _block_weights(dim, int(dim * ratio), g)
        block = student_cls(dim, heads, mlp_ratio=ratio)
        _load(block, sd, "ps4.block.names", f"Block({dim}, {heads}, mlp_ratio={ratio})")
        x = _rand((B, N, dim), g)
        where = f"Block({dim}, {heads}, mlp_ratio={ratio}) on tokens of shape {(B, N, dim)}"
        out = _run(block, x, "ps4.block.wrong_shape", (B, N, dim), where)
        ref = _block(x, sd, heads)
        if close(out, ref, **TOL):
            continue
        for variant, name in _BLOCK_VARIANTS.items():
            if close(out, _block(x, sd, heads, variant=variant), **TOL):
                raise Mistake(f"ps4.block.{name}", where)
        raise Mistake("ps4.block.not_close", f"{where}: {largest_difference(out, ref)}")
    print("Block: pre-norm attention and MLP, each with its residual.")


seal(__name__)
