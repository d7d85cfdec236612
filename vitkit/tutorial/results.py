"""The tutorial's results: what a run measured (:class:`Results`), the closing table, the findings, and where
figures and ``results.json`` are written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from vitkit.robustness import PROBES
from vitkit.tutorial.plan import MODELS, OUT_ENV, PRETRAINED, SCRATCH_TWIN
from vitkit.tutorial.run import Run, measure

# ----------------------------------------------------------------------------- results, the closing table, figures


@dataclass
class Results:
    """Every number the tutorial measures; ``results.json`` is this, and the closing table is written from it."""

    plan: dict
    device: str
    quick: bool
    precision: str = "fp32"  # what fit's precision="auto" runs on that device for a model with convolutions
    # (vitkit.train.resolve_precision; each model's own in models[name]["precision"])
    test_images: int = 0  # size of the test split every accuracy is measured on
    models: dict = field(
        default_factory=dict
    )  # name -> measure(...) + {"test_accuracy", "test_loss", "train_seconds", "steps"}
    data_efficiency: list = field(default_factory=list)  # Run dicts
    robustness: dict = field(default_factory=dict)  # probe -> {"severities": [...], name: [...]}
    pretrained: str = ""  # what was found for the pre-trained arm
    seconds: dict = field(default_factory=dict)  # wall time of each part of the run

    def add_model(self, model: nn.Module, run: Run, image_shape) -> None:
        batch = self.plan.get("throughput_batch", 256)
        self.models[run.model] = {
            **measure(model, run, image_shape, batch),
            "test_accuracy": run.test_accuracy,
            "test_loss": run.test_loss,
            "train_seconds": run.seconds,
            "steps": run.steps,
            "epochs": run.epochs,
            "precision": run.precision,
        }

    def accuracy_vs_data(self) -> dict[str, dict[float, float]]:
        """{model label: {fraction: mean test accuracy over the seeds}} from the data-efficiency runs."""
        return {
            label: {f: stats["mean"] for f, stats in curve.items()}
            for label, curve in accuracy_stats(self.data_efficiency).items()
        }

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Results":
        return cls(**json.loads(text))


def accuracy_stats(runs: list[dict]) -> dict[str, dict[float, dict]]:
    """{model label: {fraction: {"mean", "std", "min", "max", "n"}}} of the test accuracies of ``runs`` (Run dicts), over seeds.

    std is the sample standard deviation (0 for a single run).
    """
    grouped: dict[str, dict[float, list[float]]] = {}
    for run in runs:
        grouped.setdefault(run["model"], {}).setdefault(run["fraction"], []).append(run["test_accuracy"])
    return {
        label: {
            f: {
                "mean": statistics.fmean(v),
                "std": statistics.stdev(v) if len(v) > 1 else 0.0,
                "min": min(v),
                "max": max(v),
                "n": len(v),
            }
            for f, v in sorted(curve.items())
        }
        for label, curve in grouped.items()
    }


def robustness_summary(curve: dict) -> dict:
    """One probe's curves ({"severities": [...], model: [accuracy...]}) summed up for the table.

    {"auc": {model: mean accuracy over the severity range (trapezoids, severities scaled to [0, 1])},
     "severity": the damaged severity where the models' accuracies are furthest apart (the last one on ties),
     "at": {model: accuracy at that severity}}.
    """
    severities = curve["severities"]
    names = [n for n in curve if n != "severities"]
    span = (severities[-1] - severities[0]) or 1.0
    auc = {
        n: sum(
            (b - a) * (curve[n][i] + curve[n][i + 1]) / 2 for i, (a, b) in enumerate(zip(severities, severities[1:]))
        )
        / span
        for n in names
    }
    damaged = [i for i, sev in enumerate(severities) if sev > 0] or [len(severities) - 1]
    spread = {i: max(curve[n][i] for n in names) - min(curve[n][i] for n in names) if names else 0.0 for i in damaged}
    best = max(damaged, key=lambda i: (round(spread[i], 9), i))
    return {"auc": auc, "severity": severities[best], "at": {n: curve[n][best] for n in names}}


def closing_table(results: Results) -> list[list[str]]:
    """The measured comparison as rows of strings (a header row first): one column per model, one row per measure."""
    names = list(results.models)
    curves = results.accuracy_vs_data()
    columns = names + [label for label in curves if label not in names]
    rows = [["measure", *columns]]

    def row(label, values):
        rows.append([label, *values])

    def per_model(key, fmt):
        return [fmt(results.models[n][key]) if n in results.models else "–" for n in columns]

    row(
        f"test accuracy (full training split; {results.test_images:,d} test images)",
        per_model("test_accuracy", lambda v: f"{v:.3f}"),
    )
    row("parameters", per_model("parameters", lambda v: f"{v:,d}"))
    row("forward MFLOPs per image", per_model("flops", lambda v: f"{v / 1e6:.1f}"))
    row("training throughput (images/s)", per_model("train_images_per_s", lambda v: f"{v:,.0f}"))
    row("inference throughput (images/s)", per_model("inference_images_per_s", lambda v: f"{v:,.0f}"))
    row("wall time of the full-split run (s)", per_model("train_seconds", lambda v: f"{v:.0f}"))
    row("training precision (`auto`)", [results.models.get(n, {}).get("precision", "–") for n in columns])
    stats = accuracy_stats(results.data_efficiency)
    fractions = sorted({f for curve in curves.values() for f in curve})
    seeds = max((s["n"] for curve in stats.values() for s in curve.values()), default=1)
    for fraction in fractions:
        label = f"test accuracy, {fraction:.0%} of the training data" + (
            f" (mean ± std of {seeds} seeds)" if seeds > 1 else ""
        )
        row(label, [_mean_spread(stats[n][fraction]) if fraction in stats.get(n, {}) else "–" for n in columns])
    for probe_name, curve in results.robustness.items():
        summary = robustness_summary(curve)
        what = PROBES[probe_name][1]
        row(
            f"{probe_name}: area under the accuracy curve, 0–{curve['severities'][-1]:g}",
            [f"{summary['auc'][n]:.3f}" if n in curve else "–" for n in columns],
        )
        row(
            f"{probe_name} at {summary['severity']:g}, where the models differ most ({what})",
            [f"{summary['at'][n]:.3f}" if n in curve else "–" for n in columns],
        )
    return rows


def _mean_spread(stats: dict) -> str:
    return f"{stats['mean']:.3f} ± {stats['std']:.3f}" if stats["n"] > 1 else f"{stats['mean']:.3f}"


def findings(results: Results, vit: str = MODELS[0], cnn: str = MODELS[1]) -> list[str]:
    """Plain sentences comparing the ViT and the CNN, each computed from ``results`` (never from expectations)."""
    lines = []
    m = results.models
    if vit in m and cnn in m:
        gap = 100 * (m[cnn]["test_accuracy"] - m[vit]["test_accuracy"])
        lead, trail = (cnn, vit) if gap >= 0 else (vit, cnn)
        lines.append(
            f"On the full training split {lead} beat {trail} by {abs(gap):.1f} percentage points of test accuracy "
            f"({m[vit]['test_accuracy']:.3f} vs {m[cnn]['test_accuracy']:.3f}) with "
            f"{m[vit]['parameters'] / m[cnn]['parameters']:.1f}× the parameters in the ViT."
        )
    curves = results.accuracy_vs_data()
    stats = accuracy_stats(results.data_efficiency)  # the same runs, with their spread
    if vit in curves and cnn in curves:
        shared = sorted(set(curves[vit]) & set(curves[cnn]))
        if len(shared) >= 2:
            gaps = {f: 100 * (curves[cnn][f] - curves[vit][f]) for f in (shared[0], shared[-1])}
            lines.append(
                f"CNN minus ViT test accuracy: {gaps[shared[0]]:+.1f} points with {shared[0]:.0%} of the data, "
                f"{gaps[shared[-1]]:+.1f} points with {shared[-1]:.0%}."
            )
    scratch = SCRATCH_TWIN if SCRATCH_TWIN in curves else vit  # the tiny ViT has vit_mnist's shape (glyph_config)
    if PRETRAINED in curves and scratch in curves:
        shared = sorted(set(curves[PRETRAINED]) & set(curves[scratch]))
        gains = ", ".join(f"{100 * (curves[PRETRAINED][f] - curves[scratch][f]):+.1f} at {f:.0%}" for f in shared)
        share = results.plan.get("finetune", 1.0)  # results written before Plan.finetune: every step
        tuned = f" (fine-tuned with {share:.0%} of the steps)" if share < 1 else ""
        lines.append(
            f"Pre-training the tiny ViT{tuned} changed its test accuracy by (points, against {scratch} from scratch): "
            f"{gains}."
        )
    transformers = [a for a in ("hybrid_mnist", "deit_mnist") if a in m]
    if transformers and vit in m and cnn in m:
        best = max(transformers, key=lambda a: m[a]["test_accuracy"])
        gap = 100 * (m[cnn]["test_accuracy"] - m[best]["test_accuracy"])
        text = (
            f"The best transformer arm, {best}, reached {m[best]['test_accuracy']:.3f} on the full split: "
            f"{abs(gap):.1f} points {'behind' if gap > 0 else 'ahead of'} the CNN and "
            f"{100 * (m[best]['test_accuracy'] - m[vit]['test_accuracy']):+.1f} against the plain ViT"
        )
        full_best, full_cnn = stats.get(best, {}).get(1.0), stats.get(cnn, {}).get(1.0)
        if full_best and full_cnn and min(full_best["n"], full_cnn["n"]) > 1:
            seed_gap = 100 * (full_cnn["mean"] - full_best["mean"])
            text += (
                f"; over {min(full_best['n'], full_cnn['n'])} seeds {_mean_spread(full_best)} against the CNN's "
                f"{_mean_spread(full_cnn)}: {abs(seed_gap):.1f} points {'behind' if seed_gap > 0 else 'ahead'}"
            )
        low = min(curves.get(best, {}), default=None)
        if low is not None and low < 1.0 and low in curves.get(vit, {}):
            text += f"; with {low:.0%} of the data {100 * (curves[best][low] - curves[vit][low]):+.1f} points against the plain ViT"
        lines.append(text + ".")
    if "convmixer_mnist" in m and vit in m:
        cm = m["convmixer_mnist"]
        lines.append(
            f"ConvMixer (the ViT's patches, no attention) reached {cm['test_accuracy']:.3f} with "
            f"{cm['parameters']:,d} parameters, against the ViT's {m[vit]['test_accuracy']:.3f} with {m[vit]['parameters']:,d}."
        )
    noisy = [
        f"{n} at {f:.0%}: ±{100 * st['std']:.1f}"
        for n, curve in stats.items()
        for f, st in curve.items()
        if st["n"] > 1
    ]
    if noisy:
        widest = max(noisy, key=lambda t: float(t.rsplit("±", 1)[1]))
        lines.append(
            f"Across seeds the widest spread (standard deviation, points) was {widest}: differences smaller than that are not findings."
        )
    for probe_name, curve in results.robustness.items():
        names = [n for n in curve if n != "severities"]
        if len(names) >= 2:
            summary = robustness_summary(curve)
            ranked = sorted(names, key=lambda n: -summary["auc"][n])
            lines.append(
                f"{probe_name}, area under the accuracy curve: "
                + ", ".join(f"{n} {summary['auc'][n]:.3f}" for n in ranked)
                + f" (the models differ most at {summary['severity']:g})."
            )
    return lines


def markdown(rows: list[list[str]]) -> str:
    """Rows of strings (header first) as a GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(rows[0]) + " |", "| --- |" + " ---: |" * (len(rows[0]) - 1)]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


class timed:
    """``with timed(results, "training"):`` adds the block's wall time (s) to ``results.seconds["training"]``."""

    def __init__(self, results: Results, part: str):
        self.results, self.part = results, part

    def __enter__(self):
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.results.seconds[self.part] = round(
            self.results.seconds.get(self.part, 0.0) + time.perf_counter() - self.started, 2
        )
        return False


def output_dir() -> Path | None:
    """The folder ``vitkit tutorial`` asked the notebook to write into (``$VITKIT_TUTORIAL_OUT``), created; None in JupyterLab."""
    value = os.environ.get(OUT_ENV)
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    (path / "figures").mkdir(parents=True, exist_ok=True)
    return path


def save_figure(fig, name: str, out: Path | None = None) -> None:
    """Save ``fig`` as ``<out>/figures/<name>.png`` when there is an output folder (headless runs)."""
    out = output_dir() if out is None else out
    if out is not None:
        fig.savefig(out / "figures" / f"{name}.png", dpi=110, bbox_inches="tight")


def save_results(results: Results, out: Path | None = None) -> str:
    """Write ``results.json`` and ``table.md`` (when there is an output folder); return the table as markdown."""
    table = markdown(closing_table(results))
    out = output_dir() if out is None else out
    if out is not None:
        (out / "results.json").write_text(results.to_json())
        (out / "table.md").write_text(table + "\n")
    return table
