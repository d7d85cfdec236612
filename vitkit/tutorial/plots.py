"""The tutorial's figures: training curves, data efficiency, robustness, where the models look."""

from __future__ import annotations

import statistics

import torch
from torch import nn

from vitkit.data import Dataset
from vitkit.robustness import PROBES, gradient_saliency
from vitkit.tutorial.plan import COMPARED, Plan
from vitkit.tutorial.results import Results, accuracy_stats
from vitkit.tutorial.run import Run, examples

# ----------------------------------------------------------------------------- plots


def plot_curves(runs: dict[str, Run]):
    """Training curves of the full-data runs: loss and validation accuracy per epoch, one line per model."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for i, (name, run) in enumerate(runs.items()):
        h, color = run.history, f"C{i}"  # one colour per model: training solid, validation dashed
        for ax, key in zip(axes, ("loss", "accuracy")):
            ax.plot(h["epoch"], h[f"train_{key}"], "o-", color=color, label=f"{name} train")
            ax.plot(h["epoch"], h[f"val_{key}"], "s--", color=color, label=f"{name} validation")
    for ax, what in zip(axes, ("loss", "accuracy")):
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_data_efficiency(results: Results):
    """Test accuracy against the number of training images, one line per model: the mean over seeds, bars from min to max."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    images = {}
    for run in results.data_efficiency:
        images.setdefault((run["model"], run["fraction"]), []).append(run["train_images"])
    ticks = {}
    for name, curve in accuracy_stats(results.data_efficiency).items():
        xs = [statistics.median(images[(name, f)]) for f in curve]
        means = [st["mean"] for st in curve.values()]
        low = [st["mean"] - st["min"] for st in curve.values()]
        high = [st["max"] - st["mean"] for st in curve.values()]
        style = "o-" if name in COMPARED else "s--"  # the tiny ViTs of the pre-training comparison: dashed
        ax.errorbar(xs, means, yerr=[low, high], fmt=style, capsize=3, label=name)
        for x, f in zip(xs, curve):
            ticks[x] = f"{x:,.0f}\n({f:.0%})"
    ax.set_xscale("log")
    ax.set_xticks(sorted(ticks), [ticks[n] for n in sorted(ticks)], fontsize=8)
    ax.minorticks_off()
    ax.set_xlabel("training images (log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title("accuracy against data, same number of steps (mean, min–max over seeds)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_robustness(curves: dict):
    """Accuracy against severity, one panel per probe, one line per model."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.5), squeeze=False)
    for ax, (probe_name, curve) in zip(axes[0], curves.items()):
        for name, values in curve.items():
            if name != "severities":
                ax.plot(curve["severities"], values, "o-", label=name)
        ax.set_title(probe_name)
        ax.set_xlabel(PROBES[probe_name][1])
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_probe_examples(data: Dataset, p: Plan):
    """A test image under each probe at each severity of the plan (what the models are asked to classify)."""
    import matplotlib.pyplot as plt

    images, _ = examples(data, 1)
    per_probe = max(len(p.severities[n]) for n in PROBES)
    fig, axes = plt.subplots(len(PROBES), per_probe, figsize=(1.6 * per_probe, 1.8 * len(PROBES)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, name in enumerate(PROBES):
        probe = PROBES[name][0]
        kwargs = {"std": data.std} if name == "gaussian noise" else {}
        for c, sev in enumerate(p.severities[name]):
            damaged = probe(images, sev, generator=torch.Generator().manual_seed(0), **kwargs)
            axes[r, c].imshow(data.denormalize(damaged)[0].permute(1, 2, 0).squeeze(-1), cmap="gray", vmin=0, vmax=1)
            axes[r, c].set_title(f"{name}\n{sev:g}", fontsize=8)
    fig.tight_layout()
    return fig


def where_models_look(models: dict[str, nn.Module], images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Maps (B, H, W) in [0, 1] of where each model looks at ``images`` (B, C, H, W), keyed "<model>: <method>".

    Every model: gradient saliency for its own prediction. A ViT also: the CLS token's attention to
    the patches in the last block (mean over heads) and attention rollout, upsampled to the image size.
    """
    from vitkit.analysis import cls_attention, rollout_map, upsample_map
    from vitkit.vit import ViT

    out = {}
    size = tuple(images.shape[-2:])
    for name, model in models.items():
        if isinstance(model, ViT):
            attentions = [
                w.cpu() for w in model.attention_maps(images.to(next(model.parameters()).device))
            ]  # depth × (B, heads, T, T)
            last = upsample_map(cls_attention(attentions[-1], model.num_prefix_tokens).mean(1), size)  # (B, H, W)
            out[f"{name}: last-block attention"] = last / last.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
            out[f"{name}: attention rollout"] = rollout_map(attentions, size, model.num_prefix_tokens)
        out[f"{name}: gradient saliency"] = gradient_saliency(model, images)
    return out


def plot_where_models_look(looks: dict[str, torch.Tensor], pixels: torch.Tensor, labels: torch.Tensor | None = None):
    """One row per image: the image, then each map of :func:`where_models_look` laid over it."""
    import matplotlib.pyplot as plt

    B = pixels.shape[0]
    cols = 1 + len(looks)
    fig, axes = plt.subplots(B, cols, figsize=(1.9 * cols, 1.9 * B), squeeze=False)
    grey = pixels[:, 0].cpu()  # (B, H, W)
    for b in range(B):
        axes[b, 0].imshow(grey[b], cmap="gray")
        axes[b, 0].set_title("image" if labels is None else f"image ({int(labels[b])})", fontsize=8)
        for c, (title, maps) in enumerate(looks.items(), start=1):
            axes[b, c].imshow(grey[b], cmap="gray")
            axes[b, c].imshow(maps[b], cmap="inferno", alpha=0.6, vmin=0, vmax=1)
            if b == 0:
                axes[b, c].set_title(title.replace(": ", "\n"), fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig
