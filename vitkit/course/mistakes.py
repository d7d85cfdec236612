"""Named mistakes in an executed notebook: the ``[code]`` a failed check printed, per grade cell.

Reads no torch: a grading worker needs only the codes, read from the catalogue's data module, not the checks.
"""

from __future__ import annotations

import importlib
import importlib.util
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
        stderr = "".join(
            str(out.get("text", ""))
            for out in cell.get("outputs", [])
            if out.get("output_type") == "stream" and out.get("name") == "stderr"
        )
        if stderr.strip():
            found.append(["other", f"the cell wrote to stderr, which nbgrader scores as 0: {first_line(stderr)}"])
        elif lost_points:
            found.append(["other", "the cell ran without an error but scored 0: was it run, or its source changed?"])
    return found


def _catalogue_module():
    """``vitkit/grading/catalogue.py``, the catalogue as data, loaded from its file without running ``vitkit.grading``
    (whose checks import torch): a grading worker needs only the codes. The checks import the same module."""
    loaded = sys.modules.get("vitkit.grading.catalogue")
    if loaded is not None:
        return loaded
    global _LOADED
    if _LOADED is None:
        path = Path(__file__).resolve().parents[1] / "grading" / "catalogue.py"
        spec = importlib.util.spec_from_file_location("_vitkit_mistake_catalogue", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
        spec.loader.exec_module(module)
        _LOADED = module
    return _LOADED


_LOADED = None


def known_codes() -> set[str]:
    """Every mistake code of the catalogue (``vitkit/grading/catalogue.py``); imports no torch."""
    return set(_catalogue_module().CATALOGUE)


def catalogue():
    """The catalogue itself, code -> MistakeInfo(code, question, message, hint); imports no torch."""
    return _catalogue_module().CATALOGUE


def catalogue_codes() -> set[str]:
    """The codes of the runtime catalogue, with every problem set's checks imported (imports torch).

    The same table as :func:`known_codes`: the checks read their messages from the catalogue module.
    """
    from vitkit import grading

    for name in grading.PROBLEM_SETS:
        importlib.import_module(f"vitkit.grading.{name}")
    return set(grading.CATALOGUE)
