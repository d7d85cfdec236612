"""The ``vitkit`` command: one subcommand per job, each implemented by the module that owns it.

A module that provides a subcommand defines ``add_arguments(parser)`` and ``main(args) -> int``;
it is listed in ``COMMANDS`` and imported only when that subcommand runs (``vitkit --help`` stays fast).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name: (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("vitkit.cli", "list the model presets with their parameter counts"),
    "bench": ("vitkit.bench", "benchmarks printing side-by-side ratios (make bench)"),
    "course": (
        "vitkit.course",
        "instructor: release, collect, autograde (sandboxed, on Dask), feedback, export, report",
    ),
    "check": ("vitkit.course.check", "student: run a notebook's visible tests and print a per-question summary"),
    "pretrain": (
        "vitkit.pretrain",
        "pre-train the tiny ViT on generated glyphs: writes vitkit/checkpoints/vit_glyphs.pt (PS5)",
    ),
    "tutorial": (
        "vitkit.tutorial",
        "run the ViT-vs-CNN tutorial headless: report, figures and table under build/ (make tutorial)",
    ),
    "train": ("vitkit.cli_train", "train a model preset on a data set (per-epoch table, checkpoint, history)"),
    "eval": ("vitkit.cli_train", "evaluate a checkpoint on a data set's split"),
    "doctor": (
        "vitkit.cli_train",
        "say what training will use on this machine and why: device, precision, compile, processes per GPU",
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``vitkit models``."""


def main(args: argparse.Namespace) -> int:
    """``vitkit models``: every registered preset with its parameter count."""
    from vitkit import count_params, create_model, list_models

    for name in list_models():
        model = create_model(name)
        print(f"{name:16s} {type(model).__name__:12s} {count_params(model):>12,d} parameters")
    return 0


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vitkit", description="Vision Transformers course kit: models, training, grading."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if a in COMMANDS), None)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if name == chosen:  # import only the module whose subcommand runs
            importlib.import_module(module).add_arguments(p)
    return parser


def run(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    return importlib.import_module(args._module).main(args) or 0


def entry() -> None:
    """Console-script entry point."""
    sys.exit(run())


if __name__ == "__main__":
    entry()
