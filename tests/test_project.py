"""The kit as a project: dependencies declared alike, the CLI, the benchmark runs."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"]} | {_name(r) for r in project["optional-dependencies"]["dev"]}
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = lines.index("  - pip:")
    conda_pip = {
        _name(x.strip()[2:])
        for x in lines[start + 1 :]
        if x.strip().startswith("- ") and not x.strip().startswith("- -e")
    }
    assert conda_pip == declared
    assert any(line.strip() == "- -e ." for line in lines), "environment.yml must install the kit itself"


def test_cli_lists_models_with_parameter_counts():
    out = subprocess.run(
        [sys.executable, "-m", "vitkit.cli", "models"], capture_output=True, text=True, check=True
    ).stdout
    assert re.search(r"vit_base\s+ViT\s+86,567,656 parameters", out)


def test_cli_rejects_unknown_command():
    result = subprocess.run([sys.executable, "-m", "vitkit.cli", "nope"], capture_output=True, text=True)
    assert result.returncode == 2 and "invalid choice" in result.stderr


def _bench(section: str, *more: str) -> subprocess.CompletedProcess:
    """`vitkit bench --only SECTION --quick [MORE]`, which must succeed."""
    command = [sys.executable, "-m", "vitkit.cli", "bench", "--only", section, "--quick", *more]
    return subprocess.run(command, capture_output=True, text=True, check=True)


def test_bench_prints_side_by_side_ratios():
    result = _bench("model", "--rounds", "2")
    assert re.search(r"step time vitkit ÷ timm: \d+\.\d+", result.stdout)
    assert re.search(r"training FLOP/s ÷ matmul FLOP/s: vitkit \d+\.\d+, timm \d+\.\d+", result.stdout)


@pytest.mark.slow
def test_bench_accuracy_checks_the_default_vit_command_against_its_target():
    result = _bench("accuracy")
    assert re.search(
        r"^vit_mnist as `vitkit train` runs it \(1 epochs of 3,600 images\): test accuracy 0\.\d{4} after +\d+\.\d s +"
        r"\(target ≥ 0\.975 within 90 s: NOT met\)$",  # one epoch (--quick) is far from 97.5 %
        result.stdout,
        re.M,
    ), result.stdout
    assert re.search(r"^resnet_mnist +1 epochs: test accuracy", result.stdout, re.M), result.stdout


@pytest.mark.slow
def test_bench_cpu_bf16_times_the_precisions_side_by_side_and_says_what_auto_runs():
    from vitkit.train.devices import _cpu_runs_bf16

    result = _bench("cpu_bf16")
    assert re.search(r"CPU bf16 instructions: avx512_bf16 (yes|no), amx_bf16 (yes|no)", result.stdout)
    for name, auto in (("vit_mnist", "fp32"), ("resnet_mnist", "bf16" if _cpu_runs_bf16() else "fp32")):
        assert re.search(
            rf"{name} +fp32 +\d+\.\d ms \(1\.00×\) acc \d\.\d{{4}}, bf16 +\d+\.\d ms \(\d+\.\d\d×\) acc \d\.\d{{4}}, "
            rf"bf16-conv +\d+\.\d ms \(\d+\.\d\d×\) acc \d\.\d{{4}}; precision='auto' runs {auto}$",
            result.stdout,
            re.M,
        ), result.stdout
