"""``vitkit tutorial`` (``make tutorial``): the notebook executed headless, with its progress printed, into
an HTML report, the figures, ``results.json`` and ``table.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from vitkit.tutorial.plan import NOTEBOOK, OUT_ENV, PROGRESS_ENV, _clock
from vitkit.tutorial.results import Results, findings

# ----------------------------------------------------------------------------- `vitkit tutorial`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``vitkit tutorial``."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the quick budget (VITKIT_QUICK=1): checks that everything runs, in about a minute",
    )
    parser.add_argument(
        "--out",
        default="build/tutorial",
        help="folder for the executed notebook, HTML report, figures and table (default build/tutorial)",
    )
    parser.add_argument(
        "--notebook", default=str(NOTEBOOK), help="the tutorial notebook (default lectures/04_vit_vs_cnn.ipynb)"
    )
    parser.add_argument("--timeout", type=int, default=3600, help="seconds any one cell may run (default 3600)")


def execute_notebook(nb, folder: Path, env: dict, timeout: int, on_cell_start=None) -> None:
    """Run notebook ``nb`` top to bottom, in place, in a fresh python3 kernel of this environment started in ``folder``.

    ``on_cell_start(cell, cell_index)``, if given, is called as each cell starts.
    """
    from nbclient import NotebookClient

    env = {
        **env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    }  # the kernel is this environment's Python
    hooks = {"on_cell_start": on_cell_start} if on_cell_start is not None else {}
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(folder)}}, **hooks
    )
    client.execute(env=env, cwd=str(folder))


def section_titles(nb) -> dict[int, str]:
    """{cell index: the title of the section ("## ..." heading) that cell belongs to}, for the cells after the first heading."""
    titles, current = {}, None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            heading = next((line[3:].strip() for line in cell.source.splitlines() if line.startswith("## ")), None)
            current = heading or current
        if current is not None:
            titles[i] = current
    return titles


class _ProgressPrinter:
    """While a headless run lasts: print each new section as its first cell starts, and every line the notebook
    appends to the progress file (:func:`report_progress`), with the time since the run started."""

    def __init__(self, nb, progress_file: Path, started: float, stream=None):
        import threading

        self.titles, self.file, self.started, self.stream = (
            section_titles(nb),
            progress_file,
            started,
            stream or sys.stdout,
        )
        self.cells, self.section, self.offset = len(nb.cells), None, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=5)
        self._drain()
        return False

    def on_cell_start(self, cell, cell_index: int, **_) -> None:
        title = self.titles.get(cell_index, "setting up")
        if title != self.section:
            self.section = title
            print(
                f"[{_clock(time.perf_counter() - self.started)}] section: {title} (cell {cell_index + 1}/{self.cells})",
                file=self.stream,
                flush=True,
            )

    def _drain(self) -> None:
        if self.file.is_file():
            with open(self.file, encoding="utf-8") as f:
                f.seek(self.offset)
                text = f.read()
            complete = text[: text.rfind("\n") + 1]  # whole lines only
            self.offset += len(complete.encode("utf-8"))
            for line in complete.splitlines():
                print(f"  {line}", file=self.stream, flush=True)

    def _follow(self) -> None:
        while not self.stop.wait(1.0):
            self._drain()


def run_tutorial(notebook: Path, out: Path, quick_mode: bool, timeout: int = 3600) -> tuple[Path, Path, str]:
    """Execute ``notebook`` headless into ``out``; return (executed notebook, HTML report, closing table as markdown)."""
    import nbformat
    from nbconvert import HTMLExporter

    notebook, out = Path(notebook).resolve(), Path(out).resolve()
    if not notebook.is_file():
        raise FileNotFoundError(
            f"no tutorial notebook at {notebook}; run from a clone of the kit or pass --notebook PATH"
        )
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("results.json", "table.md"):
        (out / stale).unlink(missing_ok=True)
    env = dict(os.environ)
    env[OUT_ENV] = str(out)
    progress_file = out / "progress.log"
    progress_file.unlink(missing_ok=True)
    env[PROGRESS_ENV] = str(progress_file)
    env.setdefault("MPLBACKEND", "Agg")
    env["VITKIT_QUICK"] = "1" if quick_mode else "0"
    nb = nbformat.read(notebook, as_version=4)
    error = None
    try:
        with _ProgressPrinter(nb, progress_file, time.perf_counter()) as printer:
            execute_notebook(nb, notebook.parent, env, timeout, on_cell_start=printer.on_cell_start)
    except Exception as err:  # keep what ran: the partial notebook and report help to see what failed
        error = err
    executed = out / notebook.name
    nbformat.write(nb, executed)
    html, _ = HTMLExporter().from_notebook_node(nb)
    report = executed.with_suffix(".html")
    report.write_text(html, encoding="utf-8")
    if error is not None:
        raise RuntimeError(f"the tutorial notebook failed; see {executed} and {report}:\n{error}") from None
    table_path = out / "table.md"
    if not table_path.is_file():
        raise RuntimeError(f"the notebook ran but wrote no {table_path}; its last cell must call tutorial.save_results")
    return executed, report, table_path.read_text()


def main(args: argparse.Namespace) -> int:
    """``vitkit tutorial``: run the ViT-vs-CNN notebook headless, write its report under --out, print the table."""
    started = time.perf_counter()
    print(f"running {args.notebook} ({'quick' if args.quick else 'full'} budget) into {args.out} ...", flush=True)
    executed, report, table = run_tutorial(Path(args.notebook), Path(args.out), args.quick, args.timeout)
    figures = sorted((Path(args.out) / "figures").glob("*.png"))
    print(f"\n{table}\n")
    results = Results.from_json((Path(args.out) / "results.json").read_text())
    by_precision: dict = {}
    for name, measured in results.models.items():
        by_precision.setdefault(measured.get("precision", results.precision), []).append(name)
    ran = "; ".join(f"{precision} for {', '.join(names)}" for precision, names in by_precision.items())
    print(f"device {results.device}, precision {ran or results.precision}")
    for sentence in findings(results):
        print("-", sentence)
    print()
    print(
        f"executed notebook: {executed}\nHTML report:       {report}\nfigures:           {len(figures)} in {Path(args.out) / 'figures'}"
    )
    print(f"finished in {time.perf_counter() - started:.0f} s", flush=True)
    return 0
