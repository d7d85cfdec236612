"""What grading leaves behind, per submission: its record, its gradebook rows, its written answers.

The coordinator (:mod:`vitkit.course.grade`) alone calls :func:`write_result`: a submission's scores go
into the gradebook, its notebooks into ``autograded/<student>/<ps>/``, and last, atomically, its record
into ``autograded/.vitkit/<ps>/<student>.json``, which ``feedback``, ``report``, ``status`` and the next
``autograde`` (:func:`pending`) read. :func:`manual_grades` reads what a person gave written answers in
formgrader; :func:`decide` is the instructor's verdict on a flagged submission.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

from vitkit.course.paths import Course
from vitkit.course.sandbox import GradeResult, fingerprint


def record_path(course: Course, ps: str, student: str) -> Path:
    return course.results / ps / f"{student}.json"


def load_records(course: Course, ps: str) -> dict[str, dict]:
    """The stored grading records of ``ps``, by student."""
    folder = course.results / ps
    if not folder.is_dir():
        return {}
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_result(course: Course, result: GradeResult) -> None:
    """Store one task's result: gradebook scores, ``autograded/<student>/<ps>/``, and last the record.

    A result that holds no grade (``error``: the grader failed) writes no score: its record says why,
    and the next ``autograde`` grades it again. The record is written last and atomically: an
    interrupted batch never leaves a record for a submission whose scores are not in the gradebook.
    """
    from nbgrader.api import Gradebook, MissingEntry
    from nbgrader.utils import parse_utc

    rec = record_path(course, result.ps, result.student)
    rec.parent.mkdir(parents=True, exist_ok=True)
    if result.graded:
        out = course.autograded / result.student / result.ps
        if out.exists():
            shutil.rmtree(out)
        if result.notebooks:
            out.mkdir(parents=True)
            for name, data in result.notebooks.items():
                (out / f"{name}.ipynb").write_bytes(data)
            if result.timestamp:
                (out / "timestamp.txt").write_text(result.timestamp)
        with warnings.catch_warnings(), Gradebook(course.db_url, "vitkit") as gb:
            warnings.simplefilter("ignore")  # SQLAlchemy's autoflush chatter inside nbgrader's API
            gb.update_or_create_student(result.student)
            kwargs = {}
            if result.timestamp:
                try:
                    kwargs["timestamp"] = parse_utc(result.timestamp)
                except Exception:
                    pass
            gb.update_or_create_submission(result.ps, result.student, **kwargs)
            for nb in gb.find_assignment(result.ps).notebooks:
                scores = result.scores.get(nb.name, {}) if result.status == "graded" else {}
                answers = result.manual.get(nb.name, {}) if result.status == "graded" else {}
                for cell in nb.grade_cells:
                    try:
                        grade = gb.find_grade(cell.name, nb.name, result.ps, result.student)
                    except MissingEntry:
                        continue
                    # Only auto_score is ours: manual_score (a person's points, from formgrader) is never touched,
                    # so grading again keeps them, and nbgrader's score is manual_score where a person gave one.
                    if cell.name in answers:
                        grade.auto_score = answers[cell.name][0]  # None: a written answer for a person to grade
                    else:
                        grade.auto_score = scores.get(cell.name, [0.0])[0]
                    grade.needs_manual_grade = grade.auto_score is None and grade.manual_score is None
            gb.db.commit()
    _write_atomic(rec, json.dumps(result.to_json(), indent=1, sort_keys=True))


def written_answers(course: Course, ps: str) -> dict[str, list[str]]:
    """notebook -> grade ids of its manually graded answers (cells both graded and a solution: written answers)."""
    out = {}
    for name in course.notebooks(ps):
        nb = json.loads((course.source / ps / f"{name}.ipynb").read_text())
        out[name] = [
            c["metadata"]["nbgrader"]["grade_id"]
            for c in nb["cells"]
            if c.get("metadata", {}).get("nbgrader", {}).get("grade") and c["metadata"]["nbgrader"].get("solution")
        ]
    return out


def manual_grades(course: Course, ps: str) -> dict[str, dict[str, dict]]:
    """Every submission's written answers as the gradebook holds them now (formgrader writes there).

    ``{student: {grade_id: {"notebook", "score", "max", "auto", "manual", "comment", "pending"}}}``:
    ``manual`` is a person's points (None: none yet), ``auto`` nbgrader's own (0 for an unanswered cell,
    None otherwise), ``score`` what counts (``manual`` where given, else ``auto``, else 0), ``pending``
    True while the answer waits for a person.
    """
    from nbgrader.api import Gradebook, MissingEntry

    answers = written_answers(course, ps)
    if not any(answers.values()) or not course.gradebook.is_file():
        return {}
    out: dict[str, dict[str, dict]] = {}
    with warnings.catch_warnings(), Gradebook(course.db_url, "vitkit") as gb:
        warnings.simplefilter("ignore")
        for student in load_records(course, ps):
            for name, gids in answers.items():
                try:
                    nb = gb.find_submission_notebook(name, ps, student)
                except MissingEntry:
                    continue
                grades = {g.name: g for g in nb.grades}
                comments = {c.name: c.manual_comment or c.auto_comment or "" for c in nb.comments}
                for gid in gids:
                    g = grades.get(gid)
                    if g is None:
                        continue
                    pending = g.manual_score is None and g.auto_score is None
                    out.setdefault(student, {})[gid] = {
                        "notebook": name,
                        "max": float(g.max_score),
                        "comment": comments.get(gid, ""),
                        "auto": g.auto_score,
                        "manual": g.manual_score,
                        "pending": pending,
                        "score": 0.0
                        if pending
                        else float(g.manual_score if g.manual_score is not None else g.auto_score),
                    }
    return out


def decide(course: Course, student: str, ps: str, verdict: str) -> None:
    """The instructor's verdict on a flagged submission: ``accept`` keeps its grade, ``zero`` sets every question to 0."""
    from nbgrader.api import Gradebook, MissingEntry

    rec_path = record_path(course, ps, student)
    if not rec_path.is_file():
        raise SystemExit(f"no grading record for {student}/{ps}: run `vitkit course autograde {ps}` first")
    rec = json.loads(rec_path.read_text())
    if not rec.get("flags"):
        raise SystemExit(f"{student}/{ps} was not flagged; nothing to decide")
    if verdict not in ("accept", "zero"):
        raise SystemExit(f"unknown verdict {verdict!r}: use accept or zero")
    scores = (
        rec["scores"]
        if verdict == "accept"
        else {nb: {g: [0.0, top] for g, (_, top) in cells.items()} for nb, cells in rec["scores"].items()}
    )
    with warnings.catch_warnings(), Gradebook(course.db_url, "vitkit") as gb:
        warnings.simplefilter("ignore")
        for nb, cells in scores.items():
            for gid, (score, _) in cells.items():
                try:
                    gb.find_grade(gid, nb, ps, student).auto_score = score
                except MissingEntry:
                    continue
        gb.db.commit()
    rec["decision"] = "accepted" if verdict == "accept" else "zeroed"
    _write_atomic(rec_path, json.dumps(rec, indent=1, sort_keys=True))


def pending(course: Course, tasks: list[tuple[str, str]], force: bool = False) -> list[tuple[str, str]]:
    """The (student, ps) of ``tasks`` still to grade: no record, a record without a grade, or changed files."""
    if force:
        return list(tasks)
    records = {ps: load_records(course, ps) for ps in {ps for _, ps in tasks}}
    out = []
    for student, ps in tasks:
        rec = records[ps].get(student)
        if (
            rec is None
            or rec.get("status") == "error"
            or rec.get("fingerprint") != fingerprint(course.submitted / student / ps)
        ):
            out.append((student, ps))
    return out
