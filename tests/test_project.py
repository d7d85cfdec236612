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


def test_bench_prints_side_by_side_ratios():
    result = subprocess.run(
        [sys.executable, "-m", "vitkit.cli", "bench", "--only", "model", "--quick", "--rounds", "2"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert re.search(r"step time vitkit ÷ timm: \d+\.\d+", result.stdout)
    assert re.search(r"training FLOP/s ÷ matmul FLOP/s: vitkit \d+\.\d+, timm \d+\.\d+", result.stdout)


@pytest.mark.slow
def test_bench_cpu_bf16_times_both_precisions_side_by_side_and_says_what_auto_runs():
    result = subprocess.run(
        [sys.executable, "-m", "vitkit.cli", "bench", "--only", "cpu_bf16", "--quick"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert re.search(r"precision='auto' on this CPU runs (fp32|bf16)", result.stdout)
    for name in ("vit_mnist", "resnet_mnist"):
        assert re.search(
            rf"{name} +step of 64: fp32 +\d+\.\d ms, bf16 +\d+\.\d ms \(bf16 \d+\.\d\d× the speed\); after 1 epochs "
            rf"of its recipe: test accuracy fp32 \d\.\d{{4}}, bf16 \d\.\d{{4}}",
            result.stdout,
        ), result.stdout
