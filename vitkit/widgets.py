"""ipywidgets explorers for the lectures and exercises.

The computing part is a pure function (:func:`attention_step`, tested without a browser); the
widget only lays its numbers out. Each control carries a CSS class (``vitkit-query``,
``vitkit-scale``, ``vitkit-attention-table``) so a browser test can find it.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import torch

from vitkit import worked_example


@dataclass(frozen=True)
class AttentionStep:
    """What one query token does in self-attention, step by step (N tokens, d_k, d_v)."""

    query_index: int
    query: torch.Tensor  # (d_k,) the chosen token's query
    keys: torch.Tensor  # (N, d_k)
    values: torch.Tensor  # (N, d_v)
    scores: torch.Tensor  # (N,) query · key_j
    scaled_scores: torch.Tensor  # (N,) scores / √d_k, or the scores themselves when not scaling
    weights: torch.Tensor  # (N,) softmax of scaled_scores: sums to 1
    output: torch.Tensor  # (d_v,) Σ_j weights_j · value_j, the token's new representation


def _tensor(name, value) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float64)
    if t.dim() != 2:
        raise ValueError(f"{name} must be a matrix, got shape {tuple(t.shape)}")
    return t


def attention_step(x, w_q, w_k, w_v, query_index: int, scale: bool = True) -> AttentionStep:
    """Self-attention for the token ``query_index`` of ``x`` (N, D) with w_q, w_k (D, d_k) and w_v (D, d_v)."""
    x, w_q, w_k, w_v = (_tensor(n, v) for n, v in (("x", x), ("w_q", w_q), ("w_k", w_k), ("w_v", w_v)))
    n = x.shape[0]
    if not 0 <= query_index < n:
        raise ValueError(f"query_index {query_index} is out of range: x has {n} tokens, use 0..{n - 1}")
    for name, w in (("w_q", w_q), ("w_k", w_k), ("w_v", w_v)):
        if w.shape[0] != x.shape[1]:
            raise ValueError(
                f"{name} has {w.shape[0]} rows but tokens have {x.shape[1]} values; use a ({x.shape[1]}, d) matrix"
            )
    if w_q.shape[1] != w_k.shape[1]:
        raise ValueError(
            f"queries ({w_q.shape[1]} values) and keys ({w_k.shape[1]}) must have the same size for dot products"
        )
    query, keys, values = x[query_index] @ w_q, x @ w_k, x @ w_v
    scores = keys @ query  # (N,)
    scaled = scores / math.sqrt(keys.shape[1]) if scale else scores
    weights = torch.exp(scaled - scaled.max())
    weights = weights / weights.sum()
    return AttentionStep(query_index, query, keys, values, scores, scaled, weights, weights @ values)


def _fmt(t: torch.Tensor) -> str:
    return "[" + ", ".join(f"{v:g}" if float(v).is_integer() else f"{v:.3f}" for v in t.tolist()) + "]"


def render_step(step: AttentionStep, names: list[str], scale: bool = True) -> str:
    """An HTML table of ``step``: one row per key token (key, score, scaled score, weight as a bar, weighted value)."""
    d_k = step.keys.shape[1]
    scaled_head = f"score / √{d_k}" if scale else "score (not scaled)"
    rows = []
    for j, name in enumerate(names):
        w = float(step.weights[j])
        bar = f'<div style="background:#4c72b0;height:0.8em;width:{100 * w:.1f}px"></div>'
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{_fmt(step.keys[j])}</td><td>{step.scores[j]:g}</td>"
            f"<td>{step.scaled_scores[j]:.3f}</td><td>{w:.3f}</td><td>{bar}</td><td>{_fmt(w * step.values[j])}</td></tr>"
        )
    head = (
        "<tr><th>key token</th><th>key</th><th>query · key</th>"
        f"<th>{scaled_head}</th><th>softmax weight</th><th></th><th>weight × value</th></tr>"
    )
    query_name = html.escape(names[step.query_index])
    return (
        f"<p>query of <b>{query_name}</b>: {_fmt(step.query)}</p>"
        f"<table>{head}{''.join(rows)}</table>"
        f"<p>new representation of <b>{query_name}</b> = Σ weight × value = <b>{_fmt(step.output)}</b></p>"
    )


def attention_explorer(x=None, w_q=None, w_k=None, w_v=None, names=None):
    """A widget: pick a query token (dropdown), toggle the 1/√d_k scaling, and watch scores, softmax and the weighted sum.

    Defaults to the lecture's worked example (3 inputs of 4 values, d_k = d_v = 3).
    Returns an ``ipywidgets.VBox``; its ``query``, ``scale`` and ``table`` attributes are the controls and the output.
    """
    import ipywidgets as widgets

    x = worked_example.X if x is None else x
    w_q, w_k, w_v = (
        worked_example.W_Q if w_q is None else w_q,
        worked_example.W_K if w_k is None else w_k,
        worked_example.W_V if w_v is None else w_v,
    )
    n = _tensor("x", x).shape[0]
    names = [f"input {i + 1}" for i in range(n)] if names is None else list(names)
    if len(names) != n:
        raise ValueError(f"names has {len(names)} entries for {n} tokens; give one name per row of x")
    attention_step(x, w_q, w_k, w_v, 0)  # fail now, with a clear message, on bad shapes

    query = widgets.Dropdown(options=[(name, i) for i, name in enumerate(names)], value=0, description="query token")
    scale = widgets.Checkbox(value=True, description="divide scores by √d_k")
    table = widgets.HTML()
    query.add_class("vitkit-query")
    scale.add_class("vitkit-scale")
    table.add_class("vitkit-attention-table")

    def update(_=None):
        table.value = render_step(attention_step(x, w_q, w_k, w_v, query.value, scale.value), names, scale.value)

    query.observe(update, names="value")
    scale.observe(update, names="value")
    update()
    box = widgets.VBox([widgets.HBox([query, scale]), table])
    box.add_class("vitkit-attention-explorer")
    box.query, box.scale, box.table = query, scale, table
    return box
