"""``vitkit check <notebook>``: run a notebook's visible tests and print a per-question summary.

Like nbgrader's Validate button: the notebook runs top to bottom in a fresh kernel (in quick mode,
``NBGRADER_VALIDATING`` set, so training cells run short), then each graded test cell is reported
as passed, or failed with the named mistake, its message and hint. Exit status 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``vitkit check``."""
    parser.add_argument(
        "notebook", help="the notebook to check, e.g. exercises/ps1_self_attention/ps1_self_attention.ipynb"
    )
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell (default 300)")


def check_notebook(path: str | Path, timeout: int = 300) -> list[dict]:
    """Execute ``path`` (not modified on disk) and return one ``{question, points, passed, mistakes}`` per test cell."""
    import nbformat
    from nbclient import NotebookClient

    from vitkit.course.feedback import catalogue
    from vitkit.course.mistakes import mistakes_in_cell

    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"{path}: no such notebook; give the path of your .ipynb file")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:
        raise SystemExit(
            f"{path} is not a readable notebook ({type(err).__name__}: {err}); restore it from exercises/"
        ) from None
    os.environ["NBGRADER_VALIDATING"] = "1"
    client = NotebookClient(
        nb,
        timeout=timeout,
        allow_errors=True,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    client.execute()
    cat = catalogue()
    known = set(cat)
    rows = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            found = mistakes_in_cell(json.loads(json.dumps(cell)), known)
            rows.append(
                {
                    "question": meta.get("grade_id"),
                    "points": meta.get("points", 0),
                    "passed": not found,
                    "mistakes": found,
                }
            )
    return rows


def main(args: argparse.Namespace) -> int:
    """Print the summary; 0 when every visible test passed."""
    from vitkit.course.feedback import catalogue

    rows = check_notebook(args.notebook, args.timeout)
    cat = catalogue()
    for r in rows:
        print(f"{'PASS' if r['passed'] else 'FAIL'}  {r['question']} ({r['points']:g} points)")
        for code, message in r["mistakes"]:
            info = cat.get(code)
            print(f"      {message}" if not info else f"      [{code}] {info.message}. Hint: {info.hint}")
    passed = sum(r["passed"] for r in rows)
    print(
        f"{passed} of {len(rows)} visible tests pass"
        + ("" if passed == len(rows) else "; hidden tests run at grading time")
    )
    return 0 if passed == len(rows) else 1
