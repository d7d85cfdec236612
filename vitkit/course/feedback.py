"""Feedback for students, and grades for the LMS.

Feedback is an HTML page per student and problem set, rendered from the autograded notebook after
two changes that plain nbgrader does not make (nbgrader issue #917, it leaks hidden tests):
every test cell's source is replaced by the *released* version (no hidden tests), and every error
output is cut to its last line (``ename: message``), so no traceback shows hidden code. A summary at
the top lists the score per question and the student's named mistakes with their hints.
"""

from __future__ import annotations

import csv
import io
import json
import re
import warnings
from pathlib import Path

from vitkit.course.pages import render
from vitkit.course.paths import Course
from vitkit.course.records import load_records

_HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\n?", re.S)


def catalogue():
    """The mistake catalogue (code -> MistakeInfo), read from its data module: no torch, no checks imported."""
    from vitkit.course.mistakes import catalogue as read

    return read()


def released_cells(course: Course, ps: str, notebook: str) -> dict[str, str]:
    """grade_id -> source of the released notebook's cells (what students see: no hidden tests)."""
    path = course.release / ps / f"{notebook}.ipynb"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run `vitkit course release {ps}` before feedback")
    nb = json.loads(path.read_text())
    return {
        c["metadata"]["nbgrader"]["grade_id"]: "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in nb["cells"]
        if "grade_id" in c.get("metadata", {}).get("nbgrader", {})
    }


def sanitize(nb: dict, released: dict[str, str]) -> dict:
    """The notebook with test cells as released (no hidden tests) and errors cut to their last line."""
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell["cell_type"] == "code" and (meta.get("grade") or meta.get("locked")) and not meta.get("solution"):
            cell["source"] = released.get(meta.get("grade_id"), "# (test code not shown)")
        src = cell.get("source", "")
        cell["source"] = _HIDDEN.sub("", "".join(src) if isinstance(src, list) else src)
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                last = f"{out.get('ename', 'Error')}: {out.get('evalue', '')}".rstrip(": ")
                out["traceback"] = [last]
    return nb


def summary_html(record: dict, cat, written: dict[str, dict] | None = None) -> str:
    """The per-question table at the top of a student's feedback.

    ``written``: this student's written answers as :func:`vitkit.course.records.manual_grades` gives them
    (a person's points and comment, or "not graded yet").
    """
    questions = [
        {
            "gid": gid,
            "score": score,
            "top": top,
            "mistakes": [
                {"info": cat.get(code), "message": message}
                for code, message in record.get("mistakes", {}).get(nb_name, {}).get(gid, [])
            ],
        }
        for nb_name, cells in record.get("scores", {}).items()
        for gid, (score, top) in cells.items()
    ]
    written = written or {}
    answers = [
        {
            **m,
            "gid": gid,
            "note": m["comment"]
            or (
                "a person grades this written answer"
                if m["pending"]
                else "unanswered"
                if m["manual"] is None
                else "graded by a person"
            ),
        }
        for gid, m in sorted(written.items())
    ]
    scores = [sc for cells in record.get("scores", {}).values() for sc in cells.values()]
    return render(
        "feedback_summary.html.j2",
        ps=record["ps"],
        graded=record.get("status") == "graded",
        reason=record.get("reason", ""),
        total=sum(s for s, _ in scores) + sum(m["score"] for m in written.values()),
        top=sum(t for _, t in scores) + sum(m["max"] for m in written.values()),
        written_pending=any(m["pending"] for m in written.values()),
        questions=questions,
        written=answers,
    )


def feedback(course: Course, problem_sets: list[str] | None = None) -> list[Path]:
    """Write ``feedback/<student>/<ps>/<notebook>.html`` for every graded record; returns the pages written."""
    import nbformat
    from markupsafe import Markup
    from nbconvert import HTMLExporter

    from vitkit.course.records import manual_grades

    cat = catalogue()
    exporter = HTMLExporter(template_name="lab")
    written = []
    for ps in course.resolve(problem_sets):
        notebooks = course.notebooks(ps)
        released = {n: released_cells(course, ps, n) for n in notebooks}
        manual = manual_grades(course, ps)
        for student, record in load_records(course, ps).items():
            out = course.feedback / student / ps
            out.mkdir(parents=True, exist_ok=True)
            # What nbgrader's release_feedback needs to file the pages where only this student finds them
            # (a submission that came through the exchange has both; one from an LMS zip has no secret).
            for name in ("timestamp.txt", "submission_secret.txt"):
                if (course.submitted / student / ps / name).is_file():
                    (out / name).write_text((course.submitted / student / ps / name).read_text())
            summary = summary_html(record, cat, manual.get(student))
            for name in notebooks:
                path = course.autograded / student / ps / f"{name}.ipynb"
                if path.is_file():
                    nb = sanitize(json.loads(path.read_text()), released[name])
                    body, _ = exporter.from_notebook_node(nbformat.from_dict(nb))
                    body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + summary, body, count=1)
                else:
                    body = render("feedback_page.html.j2", ps=ps, summary=Markup(summary))
                page = out / f"{name}.html"
                page.write_text(body)
                written.append(page)
    return written


# ----------------------------------------------------------------------------- export


def grades_table(course: Course, problem_sets: list[str] | None = None) -> tuple[list[str], list[list]]:
    """Header and rows (student, score per problem set, total) from the gradebook.

    A submission that is not graded (the grader failed, or autograde has not reached it yet) is blank,
    never 0, and a warning names it; one that was not submitted is 0.
    """
    from nbgrader.api import Gradebook, MissingEntry

    pss = course.resolve(problem_sets)
    records = {ps: load_records(course, ps) for ps in pss}
    submitted = {ps: set(course.students(ps)) for ps in pss}
    rows, blank = [], []
    with Gradebook(course.db_url, "vitkit") as gb:
        for student in sorted({s.id for s in gb.students} | {s for ps in pss for s in submitted[ps]}):
            row = [student]
            for ps in pss:
                rec = records[ps].get(student)
                if (rec is None and student in submitted[ps]) or (rec is not None and rec["status"] == "error"):
                    row.append("")
                    blank.append(f"{student}/{ps}: " + (rec["reason"] if rec else "not graded yet"))
                    continue
                try:
                    row.append(round(gb.find_submission(ps, student).score, 4))
                except MissingEntry:
                    row.append(0.0)
            row.append(round(sum(v for v in row[1:] if v != ""), 4))
            rows.append(row)
    if blank:
        warnings.warn(
            "not graded, left blank in the export (run `vitkit course autograde` again):\n  " + "\n  ".join(blank),
            stacklevel=2,
        )
    return ["student", *pss, "total"], rows


def written_columns(course: Course, problem_sets: list[str]) -> tuple[list[str], dict[str, list], list[str]]:
    """The export's manual-grading columns: ``written:<ps>`` (a person's points, blank while any is pending).

    Returns the column names, ``{student: values}`` and the ``student/ps`` whose written answers are pending.
    The problem-set columns already hold autograded plus manual points (nbgrader's score).
    """
    from vitkit.course.records import manual_grades

    manual = {ps: manual_grades(course, ps) for ps in problem_sets}
    with_written = [ps for ps in problem_sets if manual[ps]]
    values, pending = {}, []
    for student in sorted({s for ps in with_written for s in manual[ps]}):
        row = []
        for ps in with_written:
            cells = manual[ps].get(student, {})
            waiting = sorted(g for g, m in cells.items() if m["pending"])
            if waiting:
                pending.append(f"{student}/{ps}: {', '.join(waiting)}")
            row.append("" if not cells or waiting else round(sum(m["score"] for m in cells.values()), 4))
        values[student] = row
    names = [f"written:{ps}" for ps in with_written]
    return names, values, pending


def max_scores(course: Course, problem_sets: list[str]) -> list[float]:
    from nbgrader.api import Gradebook, MissingEntry

    out = []
    with Gradebook(course.db_url, "vitkit") as gb:
        for ps in problem_sets:
            try:
                out.append(gb.find_assignment(ps).max_score)
            except MissingEntry:
                out.append(0.0)
    return out


def export(course: Course, path: str | Path, fmt: str = "csv", problem_sets: list[str] | None = None) -> Path:
    """Write the grades: ``csv`` (student, one column per problem set, total) or ``canvas`` (Canvas's gradebook import)."""
    header, rows = grades_table(course, problem_sets)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if fmt == "csv":
        extra, by_student, pending = written_columns(course, header[1:-1])
        w.writerow(header + extra)
        w.writerows(row + by_student.get(row[0], [""] * len(extra)) for row in rows)
        if pending:
            warnings.warn(
                "written answers not graded by a person yet (counted as 0 until they are; grade them in "
                "formgrader):\n  " + "\n  ".join(pending),
                stacklevel=2,
            )
    elif fmt == "canvas":
        log = course.reports / "collect.json"
        userids = {p["student"]: p["userid"] for p in json.loads(log.read_text())["placed"]} if log.is_file() else {}
        pss = header[1:-1]
        w.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", *pss])
        w.writerow(["Points Possible", "", "", "", "", *max_scores(course, pss)])
        for row in rows:
            w.writerow([row[0], userids.get(row[0], ""), "", row[0], "", *row[1:-1]])
    else:
        raise SystemExit(f"unknown export format {fmt!r}; use --format csv or --format canvas")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buf.getvalue())
    return path
