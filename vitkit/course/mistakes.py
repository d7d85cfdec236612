"""Named mistakes in an executed notebook: the ``[code]`` a failed check printed, per grade cell.

Reads no torch: a grading worker needs only the codes, not the checks that define them.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

_CODE = re.compile(r"^\s*\[([A-Za-z0-9_.\-]+)\]")


def first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def mistakes_in_cell(cell: dict, known: set[str], lost_points: bool = False) -> list[list[str]]:
    """``[code, message]`` for each error output of an executed cell: a known ``[code]`` or ``other``.

    A cell without an error that wrote to stderr lost its points for that (nbgrader gives 0 to a test
    cell that writes to stderr): ``other`` says so and quotes the first line. With ``lost_points`` (the
    cell scored less than its points), a cell with neither still gets a reason, never an empty list.
    """
    found = []
    if any(out.get("ename") == "CellTimeoutError" for out in cell.get("outputs", [])):
        return [["other", "CellTimeoutError: the cell ran past the per-cell timeout"]]
    for out in cell.get("outputs", []):
        if out.get("output_type") != "error":
            continue
        ename, evalue = out.get("ename", "Error"), str(out.get("evalue", ""))
        m = _CODE.match(evalue)
        if m and m.group(1) in known:
            found.append([m.group(1), evalue.strip()])
        else:
            found.append(["other", f"{ename}: {first_line(evalue)}".rstrip(": ")])
    if not found:
        stderr = "".join(str(out.get("text", "")) for out in cell.get("outputs", [])
                         if out.get("output_type") == "stream" and out.get("name") == "stderr")
        if stderr.strip():
            found.append(["other", f"the cell wrote to stderr, which nbgrader scores as 0: {first_line(stderr)}"])
        elif lost_points:
            found.append(["other", "the cell ran without an error but scored 0: was it run, or its source changed?"])
    return found


_KNOWN: set[str] | None = None


def known_codes() -> set[str]:
    """Every mistake code of the catalogue, read from the ``define("code", ...)`` calls of ``vitkit/grading/*.py``.

    Read from the source, not imported: a grading worker then needs neither torch nor the checks
    (``tests/test_mistake_report.py`` proves the two agree). Codes of modules already imported are added.
    """
    global _KNOWN
    if _KNOWN is None:
        codes = set()
        for path in sorted((Path(__file__).resolve().parents[1] / "grading").glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "define" and node.args
                        and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                    codes.add(node.args[0].value)
        _KNOWN = codes
    grading = sys.modules.get("vitkit.grading")
    return _KNOWN | set(getattr(grading, "CATALOGUE", ()))


def catalogue_codes() -> set[str]:
    """The codes of the runtime catalogue, with every problem set's checks imported (imports torch)."""
    import importlib

    from vitkit import grading

    for name in ("ps1", "ps2", "ps3", "ps4", "ps5"):
        try:
            importlib.import_module(f"vitkit.grading.{name}")
        except ImportError:
            pass
    return set(grading.CATALOGUE)


