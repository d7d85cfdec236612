"""Collecting submissions into nbgrader's ``submitted/<student>/<ps>/`` layout.

From a folder or an LMS zip. Canvas names each file ``<name>_<userid>_<submissionid>_<original>``
(``<name>_late_<userid>_...`` when late) and appends ``-1``, ``-2`` to resubmitted originals. A
file goes to the problem set whose notebook has its (original) name; a notebook with another name
goes where its nbgrader cell ids say it belongs (a renamed notebook); anything else is reported as
unmatched, never dropped silently. A folder may also hold one subfolder per student.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from vitkit.course.paths import Course

_CANVAS = re.compile(r"^(?P<name>[^_/]+?)(?P<late>_late)?_(?P<userid>\d+)_(?P<subid>\d+)_(?P<original>.+)$")
_RESUBMITTED = re.compile(r"(-\d+| \(\d+\))$")


@dataclass
class Collected:
    """What ``collect`` did: the files it placed, and those it could not place (with why)."""

    placed: list[dict] = field(default_factory=list)  # {student, ps, notebook, source, late, userid}
    unmatched: list[dict] = field(default_factory=list)  # {source, reason}


def parse_name(filename: str) -> dict:
    """Split a Canvas submission file name: ``{student, userid, late, original}`` (student '' if not Canvas-style)."""
    m = _CANVAS.match(Path(filename).name)
    if not m:
        return {"student": "", "userid": "", "late": False, "original": Path(filename).name}
    return {"student": m["name"].lower(), "userid": m["userid"], "late": bool(m["late"]), "original": m["original"]}


def _grade_ids(nb: dict) -> set[str]:
    return {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in nb.get("cells", [])} - {None}


def _index(course: Course) -> tuple[dict[str, str], dict[str, tuple[str, set[str]]]]:
    """Notebook name -> problem set, and notebook name -> (ps, its graded cell ids) to recognise renamed ones."""
    by_name, ids = {}, {}
    for ps in course.problem_sets():
        for name in course.notebooks(ps):
            by_name[name] = ps
            try:
                nb = json.loads((course.source / ps / f"{name}.ipynb").read_text())
                ids[name] = (ps, _grade_ids(nb))
            except (OSError, ValueError):
                pass
    return by_name, ids


def _entries(source: Path):
    """(relative name, bytes, modification time) of every file in a zip or under a folder."""
    if source.is_file() and zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as z:
            for info in z.infolist():
                if info.is_dir() or "__MACOSX" in info.filename:
                    continue
                yield info.filename, z.read(info), datetime(*info.date_time, tzinfo=timezone.utc)
    elif source.is_dir():
        for path in sorted(source.rglob("*")):
            if path.is_file() and ".ipynb_checkpoints" not in path.parts:
                yield (
                    str(path.relative_to(source)),
                    path.read_bytes(),
                    datetime.fromtimestamp(path.stat().st_mtime, timezone.utc),
                )
    else:
        raise SystemExit(
            f"--from {source}: not a folder or a zip file; give the folder of notebooks or the zip your LMS exported"
        )


def collect(course: Course, source: str | Path, overwrite: bool = True) -> Collected:
    """Copy every submission in ``source`` (folder or zip) into ``submitted/`` and log it in ``reports/collect.json``."""
    by_name, ids = _index(course)
    if not by_name:
        raise SystemExit(
            f"no problem sets in {course.source}: collect matches submissions to solutions/<ps>/<notebook>.ipynb"
        )
    done = Collected()
    for rel, data, mtime in _entries(Path(source)):
        parts = Path(rel).parts
        info = parse_name(parts[-1])
        if not info["student"] and len(parts) >= 2:  # folder layout: <student>/<notebook> or <student>/<ps>/<notebook>
            info["student"] = parts[0].lower()
        if not info["student"]:
            done.unmatched.append(
                {
                    "source": rel,
                    "reason": "no student in the name (expected <name>_<userid>_<submissionid>_<file> or <student>/<file>)",
                }
            )
            continue
        original = Path(info["original"])
        if original.suffix != ".ipynb":
            done.unmatched.append({"source": rel, "reason": f"not a notebook ({original.name})"})
            continue
        stem = _RESUBMITTED.sub("", original.stem)
        notebook, how = stem, "name"
        if stem not in by_name:
            try:
                found = _grade_ids(json.loads(data))
            except (ValueError, UnicodeDecodeError):
                found = set()
            best = max(ids.items(), key=lambda kv: len(kv[1][1] & found), default=None)
            if best is None or not best[1][1] & found:
                done.unmatched.append(
                    {
                        "source": rel,
                        "reason": f"{original.name} is no problem set's notebook (known: {', '.join(sorted(by_name))})",
                    }
                )
                continue
            notebook, how = best[0], f"renamed {original.name}, matched by its cells"
        ps = by_name[notebook]
        dest = course.submitted / info["student"] / ps
        target = dest / f"{notebook}.ipynb"
        if target.exists() and not overwrite:
            done.unmatched.append(
                {"source": rel, "reason": f"{target} exists (collect without --no-overwrite to replace it)"}
            )
            continue
        dest.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        (dest / "timestamp.txt").write_text(mtime.strftime("%Y-%m-%d %H:%M:%S.%f UTC"))
        done.placed.append(
            {
                "student": info["student"],
                "ps": ps,
                "notebook": notebook,
                "source": rel,
                "late": info["late"],
                "userid": info["userid"],
                "matched_by": how,
            }
        )
    write_log(course, done)
    return done


def write_log(course: Course, done: Collected) -> None:
    """Add ``done`` to ``reports/collect.json`` (a submission collected again replaces its earlier entry)."""
    log = course.reports / "collect.json"
    log.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(log.read_text()) if log.is_file() else {"placed": [], "unmatched": []}
    keep = [
        p for p in previous["placed"] if (p["student"], p["ps"]) not in {(q["student"], q["ps"]) for q in done.placed}
    ]
    log.write_text(json.dumps({"placed": keep + done.placed, "unmatched": done.unmatched}, indent=1))
