"""The ViT-vs-CNN tutorial (`vitkit tutorial`, `make tutorial`) and lecture 3, executed in quick mode."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch
from nbtools import ROOT, run_notebook

from vitkit import count_flops, count_params, create_model, tutorial
from vitkit.data import load_dataset

TUTORIAL = ROOT / "lectures" / "04_vit_vs_cnn.ipynb"
LECTURE3 = ROOT / "lectures" / "03_vit_training.ipynb"


@pytest.fixture(scope="module")
def tutorial_run(tmp_path_factory):
    """`vitkit tutorial --quick` into a fresh folder, as `make tutorial` calls it: (out folder, completed process)."""
    out = tmp_path_factory.mktemp("tutorial")
    env = {
        **os.environ,
        "MPLBACKEND": "Agg",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "vitkit.cli", "tutorial", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"vitkit tutorial --quick failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return out, proc


def table_cells(markdown: str) -> dict[str, list[str]]:
    """{measure: [value per model column]} of the closing table, and its header under "measure"."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in markdown.strip().splitlines()]
    return {row[0]: row[1:] for row in rows if not set(row[1]) <= set("-: ")}


# ----------------------------------------------------------------------------- committed notebooks


@pytest.mark.parametrize("path", [TUTORIAL, LECTURE3], ids=lambda p: p.name)
def test_committed_lecture_notebooks_carry_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name} cell {i} has outputs; strip them before committing"
            )


# ----------------------------------------------------------------------------- `vitkit tutorial --quick`


@pytest.mark.slow
def test_tutorial_writes_notebook_report_figures_and_table(tutorial_run):
    out, proc = tutorial_run
    executed = out / TUTORIAL.name
    assert executed.is_file() and (out / "04_vit_vs_cnn.html").is_file()
    nb = nbformat.read(executed, as_version=4)
    assert all(c.execution_count is not None for c in nb.cells if c.cell_type == "code")  # every cell ran
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    html = (out / "04_vit_vs_cnn.html").read_text()
    assert "<html" in html and "data:image/png;base64" in html  # the report carries the plots
    figures = {p.stem for p in (out / "figures").glob("*.png")}
    assert {"training_curves", "data_efficiency", "robustness", "where_models_look"} <= figures
    table = (out / "table.md").read_text()
    assert table.strip() in proc.stdout  # the command prints the table it wrote
    # headless progress: each section as it starts, runs done and the time left while training
    assert "section: 2. Data efficiency" in proc.stdout and "section: 3. Robustness" in proc.stdout
    assert re.search(
        r"\[data efficiency\] run \d+/\d+ · \d+% of the training · \d+:\d\d elapsed · about \d+:\d\d left", proc.stdout
    )


@pytest.mark.slow
def test_tutorial_table_is_written_from_the_run(tutorial_run):
    out, _ = tutorial_run
    results = json.loads((out / "results.json").read_text())
    cells = table_cells((out / "table.md").read_text())
    names = list(tutorial.COMPARED)  # the ViT, the CNN and every arm of the debate ran
    assert cells["measure"][: len(names)] == names
    assert results["quick"] is True
    data = load_dataset("mnist5k")
    for i, name in enumerate(names):
        measured = results["models"][name]
        model = create_model(name)
        assert measured["parameters"] == count_params(model)  # the presets themselves, not a remembered number
        assert measured["flops"] == count_flops(model, (1, 28, 28))
        assert cells["parameters"][i] == f"{count_params(model):,d}"
        assert 0.0 <= measured["test_accuracy"] <= 1.0
        accuracy_row = next(v for k, v in cells.items() if k.startswith("test accuracy (full"))
        assert accuracy_row[i] == f"{measured['test_accuracy']:.3f}"
        assert measured["train_images_per_s"] > 0 and measured["inference_images_per_s"] > 0
    # data efficiency: every fraction of the plan for every model and seed, with the same number of steps
    plan = results["plan"]
    runs = results["data_efficiency"]
    assert len(plan["seeds"]) >= 2 and sorted({r["fraction"] for r in runs}) == sorted(plan["fractions"])
    stats = tutorial.accuracy_stats(runs)
    for name in names:
        for seed in plan["seeds"]:
            mine = sorted((r for r in runs if r["model"] == name and r["seed"] == seed), key=lambda r: r["fraction"])
            assert [r["fraction"] for r in mine] == sorted(plan["fractions"])
            assert [r["train_images"] for r in mine] == [
                len(load_dataset("mnist5k", seed=seed, fraction=f).train) if f < 1 else len(data.train)
                for f in sorted(plan["fractions"])
            ]
            assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in mine)
            assert len({r["steps"] for r in mine}) == 1, (
                "every data-efficiency run of a model gets the same number of steps"
            )
            if seed == plan["seed"]:
                assert (
                    mine[-1]["test_accuracy"] == results["models"][name]["test_accuracy"]
                )  # the 100% point is the main run
        for fraction in plan["fractions"]:
            accuracies = [r["test_accuracy"] for r in runs if r["model"] == name and r["fraction"] == fraction]
            assert stats[name][fraction]["n"] == len(plan["seeds"]) == len(accuracies)
            row = next(
                v for k, v in cells.items() if k.startswith(f"test accuracy, {fraction:.0%} of the training data")
            )
            assert (
                row[names.index(name)]
                == f"{sum(accuracies) / len(accuracies):.3f} ± {stats[name][fraction]['std']:.3f}"
            )
    # robustness: one curve per probe and model, severity 0 first, accuracies in [0, 1]; the table's rows from the curves
    assert set(results["robustness"]) == {"occlusion", "patch shuffle", "gaussian noise"}
    for probe, curve in results["robustness"].items():
        assert curve["severities"] == plan["severities"][probe] and curve["severities"][0] == 0
        summary = tutorial.robustness_summary(curve)
        for name in names:
            assert len(curve[name]) == len(curve["severities"])
            assert all(0.0 <= a <= 1.0 for a in curve[name])
            assert (
                cells[f"{probe}: area under the accuracy curve, 0–{curve['severities'][-1]:g}"][names.index(name)]
                == f"{summary['auc'][name]:.3f}"
            )
            row = next(
                v
                for k, v in cells.items()
                if k.startswith(f"{probe} at {summary['severity']:g}, where the models differ most")
            )
            assert row[names.index(name)] == f"{summary['at'][name]:.3f}"


@pytest.mark.slow
def test_tutorial_labels_the_pretrained_arm(tutorial_run):
    out, _ = tutorial_run
    results = json.loads((out / "results.json").read_text())
    path, note = tutorial.find_pretrained()
    assert results["pretrained"] == note
    has_arm = any(r["model"] == tutorial.PRETRAINED for r in results["data_efficiency"])
    assert has_arm == (path is not None)
    if path is None:
        assert note.startswith("not available")


# ----------------------------------------------------------------------------- the pieces, fast


def test_plan_gives_both_models_the_same_recipe_and_the_same_steps_at_every_fraction():
    plan = tutorial.Plan(epochs=3)
    full = 3600
    steps = {
        f: tutorial._epochs_for(round(f * full), full, plan) * tutorial._steps_per_epoch(round(f * full), plan)
        for f in plan.fractions
    }
    assert max(steps.values()) / min(steps.values()) < 1.1, steps  # equal up to rounding to whole epochs
    assert plan.fractions == (0.1, 0.25, 0.5, 1.0)


def test_balanced_indices_take_classes_in_turn():
    labels = torch.arange(10).repeat_interleave(100)  # sorted by class, as mnist5k's test split is
    keep = tutorial.balanced_indices(labels, 200, seed=0)
    assert len(keep) == 200 and len(set(keep.tolist())) == 200
    assert torch.bincount(labels[keep], minlength=10).tolist() == [20] * 10


def test_closing_table_marks_missing_measures_and_reads_the_results():
    results = tutorial.Results(plan={}, device="cpu", quick=True, test_images=10)
    results.models = {
        "vit_mnist": {
            "test_accuracy": 0.5,
            "parameters": 7,
            "flops": 2e6,
            "train_images_per_s": 1.0,
            "inference_images_per_s": 2.0,
            "train_seconds": 3.0,
            "precision": "fp32",
        }
    }
    results.data_efficiency = [{"model": tutorial.PRETRAINED, "fraction": 0.1, "test_accuracy": 0.25}]
    results.robustness = {"occlusion": {"severities": [0.0, 0.5], "vit_mnist": [0.5, 0.25]}}
    rows = tutorial.closing_table(results)
    cells = {r[0]: r[1:] for r in rows}
    assert rows[0] == ["measure", "vit_mnist", tutorial.PRETRAINED]
    assert cells["parameters"] == ["7", "–"]
    assert cells["training precision (`auto`)"] == ["fp32", "–"]
    assert cells["test accuracy, 10% of the training data"] == ["–", "0.250"]  # one seed: no spread
    assert cells["occlusion: area under the accuracy curve, 0–0.5"] == ["0.375", "–"]
    assert cells["occlusion at 0.5, where the models differ most (share of 4×4 patches blanked)"] == ["0.250", "–"]
    assert table_cells(tutorial.markdown(rows))["parameters"] == ["7", "–"]


def test_vitkit_tutorial_names_a_missing_notebook(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tutorial notebook at .*--notebook"):
        tutorial.run_tutorial(tmp_path / "missing.ipynb", tmp_path / "out", quick_mode=True)


# ----------------------------------------------------------------------------- lecture 3


@pytest.mark.slow
def test_lecture3_runs_top_to_bottom():
    nb = run_notebook(LECTURE3, timeout=600)
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert re.search(
        r"98\.13", "\n".join(c.source for c in nb.cells)
    )  # the paper's Table 5 figures, quoted with their source
    assert "Traceback" not in text


def test_findings_are_computed_from_the_numbers():
    results = tutorial.Results(plan={}, device="cpu", quick=False, test_images=1000)
    results.models = {
        "vit_mnist": {"test_accuracy": 0.80, "parameters": 800},
        "resnet_mnist": {"test_accuracy": 0.95, "parameters": 400},
    }
    results.data_efficiency = [
        {"model": m, "fraction": f, "test_accuracy": a}
        for m, f, a in [
            ("vit_mnist", 0.1, 0.3),
            ("resnet_mnist", 0.1, 0.8),
            ("vit_mnist", 1.0, 0.8),
            ("resnet_mnist", 1.0, 0.95),
        ]
    ]
    results.robustness = {
        "gaussian noise": {"severities": [0.0, 0.8], "vit_mnist": [0.8, 0.5], "resnet_mnist": [0.95, 0.25]}
    }
    text = "\n".join(tutorial.findings(results))
    assert "resnet_mnist beat vit_mnist by 15.0 percentage points" in text and "2.0× the parameters" in text
    assert "+50.0 points with 10% of the data, +15.0 points with 100%" in text
    assert (
        "gaussian noise, area under the accuracy curve: vit_mnist 0.650, resnet_mnist 0.600 (the models differ most at 0.8)"
        in text
    )
    results.models["vit_mnist"]["test_accuracy"] = 0.99
    assert "vit_mnist beat resnet_mnist by 4.0" in "\n".join(tutorial.findings(results))


def test_the_best_arm_finding_gives_the_seed_means_at_full_data():
    results = tutorial.Results(plan={}, device="cpu", quick=False, test_images=1000)
    results.models = {
        "vit_mnist": {"test_accuracy": 0.86, "parameters": 800},
        "resnet_mnist": {"test_accuracy": 0.98, "parameters": 300},
        "hybrid_mnist": {"test_accuracy": 0.97, "parameters": 400},
        "deit_mnist": {"test_accuracy": 0.87, "parameters": 800},
    }
    results.data_efficiency = [
        {"model": m, "fraction": f, "test_accuracy": a, "seed": s}
        for m, f, accuracies in [
            ("vit_mnist", 0.1, (0.82, 0.84, 0.83)),
            ("hybrid_mnist", 0.1, (0.95, 0.96, 0.94)),
            ("hybrid_mnist", 1.0, (0.97, 0.98, 0.978)),
            ("resnet_mnist", 1.0, (0.98, 0.99, 0.985)),
        ]
        for s, a in enumerate(accuracies)
    ]
    text = "\n".join(tutorial.findings(results))
    assert "The best transformer arm, hybrid_mnist, reached 0.970 on the full split: 1.0 points behind the CNN" in text
    assert "over 3 seeds 0.976 ± 0.005 against the CNN's 0.985 ± 0.005: 0.9 points behind" in text
    assert "with 10% of the data +12.0 points against the plain ViT" in text


def test_pretrained_arms_fine_tune_the_checkpoint_beside_its_scratch_twin(tmp_path):
    from vitkit.pretrain import glyph_config
    from vitkit.pretrained import save
    from vitkit.vit import ViT

    torch.manual_seed(1)
    body = ViT(glyph_config())  # 36 glyph classes, as `vitkit pretrain` writes it
    save(body, tmp_path / "vit_glyphs.pt")
    arms = tutorial.pretrained_arms(tmp_path / "vit_glyphs.pt", num_classes=10, seed=0)
    assert list(arms) == [tutorial.PRETRAINED, tutorial.SCRATCH_TWIN]
    tuned, twin = arms[tutorial.PRETRAINED](), arms[tutorial.SCRATCH_TWIN]()
    assert tuned.head.out_features == 10 and (tuned.head.weight == 0).all() and (tuned.head.bias == 0).all()
    assert torch.equal(tuned.pos_embed, body.pos_embed)  # the body is the checkpoint's
    assert twin.config == tuned.config and not torch.equal(twin.pos_embed, body.pos_embed)
    assert count_params(twin) == count_params(tuned)
    assert list(tutorial.pretrained_arms(tmp_path / "vit_glyphs.pt", scratch_twin=False)) == [tutorial.PRETRAINED]
    assert tutorial.pretrained_arms(None) == {}


def test_vit_mnist_is_the_pretrained_tiny_vits_twin_from_scratch():
    """Without a separate twin (the plan's default) vit_mnist's runs are the pre-trained ViT's baseline: the same
    architecture, and with the same seed the same initial weights as the twin would have had."""
    from vitkit import create_model
    from vitkit.tutorial.run import _scratch_arm

    assert tutorial.Plan(epochs=1).scratch_twin is False
    torch.manual_seed(3)
    vit = create_model("vit_mnist")
    twin = _scratch_arm(10, init_seed=3)
    assert twin.config == vit.config
    assert all(torch.equal(a, b) for a, b in zip(vit.state_dict().values(), twin.state_dict().values()))


def test_the_pretraining_finding_measures_against_vit_mnist_without_a_twin():
    results = tutorial.Results(plan={}, device="cpu", quick=False, test_images=1000)
    results.data_efficiency = [
        {"model": m, "fraction": f, "test_accuracy": a, "seed": 0}
        for m, f, a in [
            ("vit_mnist", 0.1, 0.80),
            ("vit_mnist", 1.0, 0.90),
            (tutorial.PRETRAINED, 0.1, 0.93),
            (tutorial.PRETRAINED, 1.0, 0.95),
        ]
    ]
    text = "\n".join(tutorial.findings(results))
    assert (
        "Pre-training the tiny ViT changed its test accuracy by (points, against vit_mnist from scratch): "
        "+13.0 at 10%, +5.0 at 100%." in text
    )
    results.data_efficiency += [
        {"model": tutorial.SCRATCH_TWIN, "fraction": f, "test_accuracy": a, "seed": 0}
        for f, a in ((0.1, 0.83), (1.0, 0.95))
    ]
    assert f"against {tutorial.SCRATCH_TWIN} from scratch): +10.0 at 10%, +0.0 at 100%." in "\n".join(
        tutorial.findings(results)
    )


def test_smaller_splits_get_the_same_steps_and_warm_up(monkeypatch):
    import vitkit.train as train
    from vitkit.train import History

    calls = []
    monkeypatch.setattr(train, "fit", lambda model, data, **kw: calls.append((len(data.train), kw)) or History())
    monkeypatch.setattr(train, "evaluate", lambda model, split: {"accuracy": 0.5, "loss": 1.0})
    plan = tutorial.Plan(epochs=4, batch_size=64, warmup=1.0)
    full = load_dataset("mnist5k")
    tenth = load_dataset("mnist5k", fraction=0.1)
    _, run_full = tutorial.train_model(torch.nn.Linear(1, 1), full, plan)
    _, run_tenth = tutorial.train_model(
        torch.nn.Linear(1, 1), tenth, plan, full_train_images=len(full.train), validate=False
    )
    (n_full, kw_full), (n_tenth, kw_tenth) = calls
    steps = lambda n, kw: kw["config"].epochs * -(-n // kw["config"].batch_size)  # noqa: E731
    assert steps(n_full, kw_full) == run_full.steps and steps(n_tenth, kw_tenth) == run_tenth.steps
    assert abs(run_tenth.steps - run_full.steps) / run_full.steps < 0.05
    warm = lambda n, kw: kw["config"].warmup * -(-n // kw["config"].batch_size)  # noqa: E731  warm-up in steps
    assert warm(n_tenth, kw_tenth) == pytest.approx(warm(n_full, kw_full))
    assert run_tenth.fraction == 0.1 and run_full.fraction == 1.0


def test_the_pretrained_vit_fine_tunes_for_its_share_of_the_steps(monkeypatch):
    import vitkit.train as train
    from vitkit.train import History

    calls = []
    monkeypatch.setattr(train, "fit", lambda model, data, **kw: calls.append(kw["config"]) or History())
    monkeypatch.setattr(train, "evaluate", lambda model, split: {"accuracy": 0.5, "loss": 1.0})
    plan = tutorial.Plan(epochs=8, batch_size=64, warmup=1.0)
    assert plan.finetune == 0.5 and tutorial.run_budget(tutorial.PRETRAINED, plan) == 0.5
    assert tutorial.run_budget("vit_mnist", plan) == tutorial.run_budget(tutorial.SCRATCH_TWIN, plan) == 1.0
    full = load_dataset("mnist5k")
    _, whole = tutorial.train_model(torch.nn.Linear(1, 1), full, plan)
    _, half = tutorial.train_model(torch.nn.Linear(1, 1), full, plan, budget=plan.finetune)
    assert (calls[0].epochs, calls[1].epochs) == (8, 4) and half.steps * 2 == whole.steps
    assert calls[1].warmup == calls[0].warmup / 2  # warm-up keeps its share of the shorter run
    with pytest.raises(ValueError, match="share of the plan's steps"):
        tutorial.train_model(torch.nn.Linear(1, 1), full, plan, budget=0)


def test_seeds_give_mean_and_spread_in_the_table():
    runs = [
        {"model": "vit_mnist", "fraction": 0.1, "test_accuracy": a, "seed": s} for s, a in enumerate((0.80, 0.90, 0.85))
    ]
    stats = tutorial.accuracy_stats(runs)["vit_mnist"][0.1]
    assert stats["n"] == 3 and stats["mean"] == pytest.approx(0.85) and stats["std"] == pytest.approx(0.05)
    assert (stats["min"], stats["max"]) == (0.80, 0.90)
    results = tutorial.Results(plan={}, device="cpu", quick=False, data_efficiency=runs)
    cells = {r[0]: r[1:] for r in tutorial.closing_table(results)}
    assert cells["test accuracy, 10% of the training data (mean ± std of 3 seeds)"] == ["0.850 ± 0.050"]


def test_robustness_summary_reports_where_the_models_differ_not_where_all_are_at_chance():
    curve = {"severities": [0.0, 0.25, 0.5, 1.0], "a": [0.99, 0.90, 0.40, 0.10], "b": [0.98, 0.60, 0.30, 0.11]}
    summary = tutorial.robustness_summary(curve)
    assert summary["severity"] == 0.25 and summary["at"] == {"a": 0.90, "b": 0.60}
    # trapezoids over [0, 1]: a = 0.25·(0.99+0.90)/2 + 0.25·(0.90+0.40)/2 + 0.5·(0.40+0.10)/2
    assert summary["auc"]["a"] == pytest.approx(0.25 * 1.89 / 2 + 0.25 * 1.30 / 2 + 0.5 * 0.50 / 2)


def test_progress_lines_say_section_runs_and_time_left(tmp_path, monkeypatch):
    log = tmp_path / "progress.log"
    monkeypatch.setenv(tutorial.PROGRESS_ENV, str(log))
    plan = tutorial.Plan(epochs=2, batch_size=100, fractions=(0.5, 1.0), seeds=(0, 1), efficiency=("a", "b"))
    total = tutorial.start_progress(plan, 1000, extra_arms=1, names=("a", "b"))
    assert total == (2 + 3 * 2 * 2 - 2) * 20  # full runs + data-efficiency runs less the reused ones, 20 steps each
    # the pre-trained tiny ViT fine-tunes for plan.finetune (½) of a run's 20 steps, at each share and seed
    assert tutorial.start_progress(plan, 1000, extra_arms=[tutorial.PRETRAINED], names=("a", "b")) == (
        (2 + 2 * 2 * 2 - 2) * 20 + 10 * 2 * 2
    )
    total = tutorial.start_progress(plan, 1000, extra_arms=1, names=("a", "b"))
    first = tutorial.report_progress("training on the full split", 1, 2, steps=total // 4)
    assert re.fullmatch(
        r"\[training on the full split\] run 1/2 · 25% of the training · \d+:\d\d elapsed · about \d+:\d\d left", first
    )
    assert log.read_text().splitlines() == [first]
    titles = tutorial.section_titles(nbformat.read(TUTORIAL, as_version=4))
    assert "2. Data efficiency" in titles.values() and "3. Robustness" in titles.values()


def test_data_efficiency_trains_every_seed_and_teaches_deit_with_the_cnn_of_its_share(monkeypatch):
    import vitkit.train as train
    from vitkit.train import History

    calls = []
    monkeypatch.setattr(
        train, "fit", lambda model, data, **kw: calls.append((model, data.train.images, kw)) or History()
    )
    monkeypatch.setattr(train, "evaluate", lambda model, split: {"accuracy": 0.5, "loss": 1.0})
    plan = tutorial.Plan(epochs=1, fractions=(0.1, 1.0), seeds=(0, 1, 2), workers=1)  # in this process: fit is patched
    runs, _ = tutorial.data_efficiency(plan, names=("deit_mnist", "resnet_mnist"), device="cpu")
    assert len(runs) == 2 * 2 * 3 and sorted(r.seed for r in runs) == [0] * 4 + [1] * 4 + [2] * 4
    assert [type(c[0]).__name__ for c in calls[:2]] == ["ResNet", "DistilledViT"]  # the teacher first
    for (cnn, cnn_images, cnn_kw), (_, images, kw) in zip(calls[::2], calls[1::2]):
        assert (
            kw["teacher"] is cnn and torch.equal(images, cnn_images) and kw["config"].seed == cnn_kw["config"].seed
        )  # same share, same seed
        assert cnn_kw["teacher"] is None
    tenths = [images for _, images, kw in calls[::2] if len(images) < 1000]
    assert len(tenths) == 3 and not torch.equal(tenths[0], tenths[1])  # each seed draws its own share


def test_runs_side_by_side_in_workers_come_back_in_order_with_the_numbers_of_runs_made_here():
    from vitkit.tutorial.workers import chains, worker_layout

    assert chains(["vit_mnist", "deit_mnist", "resnet_mnist"]) == [["resnet_mnist", "deit_mnist"], ["vit_mnist"]]
    with pytest.raises(ValueError, match="add 'resnet_mnist'"):
        chains(["deit_mnist"])
    with pytest.raises(ValueError, match="at least 1"):
        worker_layout(tutorial.Plan(epochs=1, workers=0), torch.device("cpu"))
    assert worker_layout(tutorial.Plan(epochs=1, workers=4), torch.device("cuda"))[0] == 1  # a GPU trains here
    small = dict(epochs=1, batch_size=32, max_steps=2, fractions=(0.25, 1.0), seeds=(0, 1), test_images=100)
    names = ("deit_mnist", "convmixer_mnist", "resnet_mnist")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker runs on this 2-core machine, so that the numbers can be compared
    try:
        here, _ = tutorial.data_efficiency(tutorial.Plan(**small, workers=1), names=names, device="cpu")
    finally:
        torch.set_num_threads(threads)
    plan = tutorial.Plan(**small, workers=2)
    full = tutorial.train_models(tutorial.load_data(plan), plan, names=names, device="cpu")
    assert list(full) == list(names) and {type(m).__name__ for m, _ in full.values()} == {
        "DistilledViT",
        "ConvMixer",
        "ResNet",
    }
    side, new = tutorial.data_efficiency(plan, names=names, device="cpu")
    assert [(r.model, r.fraction, r.seed) for r in side] == [(r.model, r.fraction, r.seed) for r in here]
    assert set(new) == set(names)  # the models of the full split with the plan's seed come back
    if worker_layout(plan, torch.device("cpu"))[1] == 1:
        for a, b in zip(side, here):
            assert a.test_accuracy == pytest.approx(b.test_accuracy, abs=0.02), (a.model, a.fraction, a.seed)
