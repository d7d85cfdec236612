"""Reading what ``nbgrader autograde`` left in a grading task's working copy into the task's :class:`GradeResult`.

The phases of nbgrader's log; the scores, the written answers and the mistakes in the gradebook copy and the
autograded notebooks; and, where nbgrader left no autograded notebook, whose failure that was (the notebook's
or the grader's). :mod:`vitkit.course.sandbox` runs the task and imports these back.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from vitkit.course.execute import FIRST_CELL
from vitkit.course.mistakes import known_codes, mistakes_in_cell

if TYPE_CHECKING:
    from vitkit.course.sandbox import GradeResult

_LOG_TIME = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) \[AutogradeApp \| \w+\] (.*)$", re.M)


def _log_phases(log_text: str, result: GradeResult) -> None:
    """Split the nbgrader phase by the timestamps of its log: start-up, preparing, executing the notebook, saving."""
    stamps = [
        (int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000, msg) for h, m, s, ms, msg in _LOG_TIME.findall(log_text)
    ]
    if not stamps or "nbgrader" not in result.phases:
        return
    first = stamps[0][0]
    execute = next((t for t, msg in stamps if msg.startswith("Autograding ")), None)
    written = [t for t, msg in stamps if msg.startswith("Writing ")]
    last = stamps[-1][0]
    if execute is None or not written or written[-1] < execute:
        return
    total = result.phases["nbgrader"]
    result.phases["nbgrader.execute"] = round(written[-1] - execute, 3)  # kernel start and every cell
    result.phases["nbgrader.prepare"] = round(execute - first, 3)  # gradebook, overwrite cells, sanitize
    result.phases["nbgrader.startup"] = round(max(0.0, total - (last - first)), 3)  # interpreter, imports, exit


def _diagnose(log_text: str, rc: int, ran: bool, kernel_started: bool) -> tuple[str, str]:
    """(status, reason) when nbgrader produced no autograded notebook: the notebook's failure or the grader's."""
    if not kernel_started:
        lines = [line for line in log_text.splitlines() if "| ERROR]" in line or "Error" in line]
        return "error", f"nbgrader failed before starting the kernel (exit {rc}): " + (
            lines[-1].strip()[:300] if lines else "no log"
        )
    if not ran:
        lines = [line for line in log_text.splitlines() if "Kernel" in line or "| ERROR]" in line or "Error" in line]
        return "error", (
            "the sandboxed kernel did not start (run `vitkit course doctor`): "
            + (lines[-1].strip()[:300] if lines else f"nbgrader exit {rc}")
        )
    if "DeadKernelError" in log_text or "kernel died" in log_text.lower():
        return "failed", "the notebook's kernel died (os._exit, a crash, or the memory limit)"
    if "MemoryError" in log_text or "Cannot allocate memory" in log_text:
        return "failed", "out of memory (the memory limit)"
    if "CellTimeoutError" in log_text or "TimeoutError" in log_text:
        return "failed", "a cell ran past the per-cell timeout and the kernel could not be interrupted"
    lines = [line for line in log_text.splitlines() if "| ERROR]" in line or "Error" in line]
    return "error", f"nbgrader autograde failed (exit {rc}) after running the notebook: " + (
        lines[-1].strip()[:300] if lines else "no log"
    )


def _read_results(
    root: Path,
    student: str,
    ps: str,
    expected: list[str],
    result: GradeResult,
    log_text: str,
    rc: int,
    kernel_started: bool,
) -> None:
    from nbgrader.api import Gradebook, MissingEntry

    known = known_codes()
    outdir = root / "autograded" / student / ps
    notes, statuses = [], []
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "vitkit") as gb:
        for name in expected:
            path = outdir / f"{name}.ipynb"
            try:
                sub = gb.find_submission_notebook(name, ps, student)
            except MissingEntry:
                sub = None
            if not (root / "submitted" / student / ps / f"{name}.ipynb").is_file():
                notes.append(f"{name}.ipynb: not submitted")
                continue
            if not path.is_file() or sub is None:
                status, why = _diagnose(log_text, rc, FIRST_CELL in log_text, kernel_started)
                statuses.append(status)
                notes.append(f"{name}.ipynb: {why}")
                continue
            data = path.read_bytes()
            result.notebooks[name] = data
            nb = json.loads(data)
            answers = {
                c["metadata"]["nbgrader"]["grade_id"]
                for c in nb["cells"]
                if c.get("metadata", {}).get("nbgrader", {}).get("grade") and c["metadata"]["nbgrader"].get("solution")
            }
            result.scores[name] = {
                g.name: [float(g.auto_score or 0.0), float(g.max_score)] for g in sub.grades if g.name not in answers
            }
            result.manual[name] = {
                g.name: [None if g.auto_score is None else float(g.auto_score), float(g.max_score)]
                for g in sub.grades
                if g.name in answers
            }
            per_cell = {}
            for cell in nb["cells"]:
                meta = cell.get("metadata", {}).get("nbgrader", {})
                gid = meta.get("grade_id")
                outs = cell.get("outputs", [])
                if any(o.get("ename") == "CellTimeoutError" for o in outs):
                    notes.append(f"cell {gid or '?'} stopped at the per-cell timeout")
                if any("output beyond" in str(o.get("text", "")) for o in outs):
                    notes.append(f"cell {gid or '?'}: output capped")
                if meta.get("grade") and gid in result.scores[name]:
                    score, top = result.scores[name][gid]
                    if score < top:
                        per_cell[gid] = mistakes_in_cell(cell, known, lost_points=True)
            result.mistakes[name] = per_cell
    result.reason = "; ".join(dict.fromkeys(notes))
    if "error" in statuses:  # one notebook not graded through the grader's fault: the whole submission is graded again
        result.status, result.scores, result.notebooks, result.mistakes, result.manual = "error", {}, {}, {}, {}
    elif statuses and not result.scores:
        result.status = "failed"
