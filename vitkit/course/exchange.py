"""nbgrader's exchange: the course's way in and out on a JupyterHub (``--exchange`` of release, collect, feedback).

On a hub, students fetch a released assignment in JupyterLab's Assignment List, submit it there, and
later fetch their feedback there. nbgrader moves the files through a folder every user of the hub can
reach (its *exchange*, ``Exchange.root``; ``/srv/nbgrader/exchange`` unless configured)::

    <root>/<course_id>/outbound/<ps>/                      released assignments   (release --exchange)
    <root>/<course_id>/inbound/<student>+<ps>+<timestamp>+<random>/   submissions  (collect --exchange)
    <root>/<course_id>/feedback/<hash>.html                feedback, one page per notebook (feedback --release)

These functions are thin layers over nbgrader's own ``release_assignment``, ``collect`` and
``release_feedback``. What they add: ``collect`` marks late submissions against the due date and
lists who has not submitted, in ``reports/collect.json`` like the LMS path
(:mod:`vitkit.course.collect`); feedback goes out as the kit's own pages (hidden tests removed, see
:mod:`vitkit.course.feedback`), never nbgrader's ``generate_feedback`` (which shows hidden tests).
A feedback page is filed under a hash of the submission's secret, so a student finds only their own.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from vitkit.course.assignment import nbgrader
from vitkit.course.collect import Collected, write_log
from vitkit.course.paths import Course, read_config


def _root_args(root: str | None) -> list[str]:
    return [f"--Exchange.root={root}"] if root else []


def exchange_root(course: Course, root: str | None = None) -> Path:
    """The exchange folder: ``root`` if given, else ``Exchange.root`` as nbgrader's configuration sets it."""
    if root:
        return Path(root)
    from jupyter_core.paths import jupyter_config_path

    for folder in (course.root, *jupyter_config_path()):
        cfg = read_config(folder)
        if "root" in cfg.get("Exchange", {}):
            return Path(cfg.Exchange.root)
    return Path("/srv/nbgrader/exchange")


def release(course: Course, ps: str, root: str | None = None) -> Path:
    """Put ``exercises/<ps>/`` where students fetch it (``<root>/<course>/outbound/<ps>/``); returns that folder.

    Releasing again replaces it (students who fetched keep their copy). The assignment must be in the
    gradebook: run ``vitkit course release <ps>`` first (``vitkit course release --exchange`` does both).
    """
    nbgrader(course, "release_assignment", ps, "--force", *_root_args(root))
    return exchange_root(course, root) / course_id(course) / "outbound" / ps


def course_id(course: Course) -> str:
    """``CourseDirectory.course_id`` of the course's nbgrader_config.py (the exchange's folder name)."""
    value = read_config(course.root).get("CourseDirectory", {}).get("course_id", "")
    if not value:
        raise SystemExit(
            f"{course.path('nbgrader_config.py')} sets no c.CourseDirectory.course_id: the exchange files "
            f"each course under its id; add c.CourseDirectory.course_id = 'yourcourse'"
        )
    return value


def inbound(course: Course, ps: str, root: str | None = None) -> dict[str, list[str]]:
    """student -> the names of their submissions of ``ps`` waiting in the exchange, oldest first."""
    folder = exchange_root(course, root) / course_id(course) / "inbound"
    out: dict[str, list[str]] = {}
    if folder.is_dir():
        for entry in sorted(folder.iterdir()):
            parts = entry.name.rsplit("+", 3)
            if len(parts) >= 3 and parts[1] == ps:
                out.setdefault(parts[0], []).append(entry.name)
    return {s: sorted(names, key=lambda n: n.rsplit("+", 3)[2]) for s, names in out.items()}


def due_date(course: Course, ps: str, due: str | None = None) -> datetime | None:
    """The due date of ``ps`` (UTC): ``due`` if given (and stored in the gradebook), else the gradebook's, else None."""
    import warnings

    from nbgrader.api import Gradebook, MissingEntry
    from nbgrader.utils import parse_utc

    with warnings.catch_warnings(), Gradebook(course.db_url, "vitkit") as gb:
        warnings.simplefilter("ignore")
        if due:
            try:
                when = parse_utc(due)
            except Exception as err:
                raise SystemExit(f"--due {due!r} is not a date: use e.g. '2026-12-05 17:00:00 UTC' ({err})") from None
            gb.update_or_create_assignment(ps, duedate=when)
            return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when
        try:
            when = gb.find_assignment(ps).duedate
        except MissingEntry:
            return None
    if when is None:
        return None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when


def collect(course: Course, ps: str, root: str | None = None, due: str | None = None) -> Collected:
    """Copy each student's latest submission of ``ps`` from the exchange into ``submitted/<student>/<ps>/``.

    Like the LMS path: every placed submission is logged in ``reports/collect.json``, marked ``late``
    when its timestamp is after the due date (``due``, or the gradebook's); students of the roster
    (the gradebook) who submitted nothing are listed as ``unmatched`` with reason "did not submit".
    """
    from nbgrader.utils import parse_utc

    nbgrader(course, "collect", ps, "--update", *_root_args(root))
    when = due_date(course, ps, due)
    waiting = inbound(course, ps, root)
    done = Collected()
    notebooks = set(course.notebooks(ps))
    for student, names in sorted(waiting.items()):
        folder = course.submitted / student / ps
        stamp = folder / "timestamp.txt"
        if not stamp.is_file():
            done.unmatched.append(
                {"source": f"exchange:{names[-1]}", "reason": f"nbgrader collect did not place it in {folder}"}
            )
            continue
        taken = parse_utc(stamp.read_text().strip())
        taken = taken.replace(tzinfo=timezone.utc) if taken.tzinfo is None else taken
        handed = sorted(p.stem for p in folder.glob("*.ipynb"))
        for name in handed if handed else ["(no notebook)"]:
            done.placed.append(
                {
                    "student": student,
                    "ps": ps,
                    "notebook": name,
                    "source": f"exchange:{names[-1]}",
                    "late": bool(when and taken > when),
                    "userid": "",
                    "matched_by": "name" if name in notebooks else f"not a notebook of {ps}",
                }
            )
    for student in sorted(set(roster(course)) - set(waiting)):
        done.unmatched.append(
            {"source": f"exchange:{student}", "reason": f"{student} did not submit {ps}", "missing": True}
        )
    write_log(course, done)
    return done


def roster(course: Course) -> list[str]:
    """The students the gradebook knows (from roster.csv through nbgrader_config.py, or earlier grading)."""
    import warnings

    from nbgrader.api import Gradebook

    if not course.gradebook.is_file():
        return []
    with warnings.catch_warnings(), Gradebook(course.db_url, "vitkit") as gb:
        warnings.simplefilter("ignore")
        return sorted(s.id for s in gb.students)


def release_feedback(course: Course, ps: str, root: str | None = None) -> list[str]:
    """Put the feedback pages of ``ps`` (``vitkit course feedback``) in the exchange; returns the students served.

    Only submissions that came through the exchange can be returned there: nbgrader files each page
    under a hash of the submission's secret, which only the student's own submission holds. Others
    (collected from an LMS zip) are left out.
    """
    served, skipped = [], []
    for folder in sorted(course.feedback.glob(f"*/{ps}")):
        if (
            (folder / "submission_secret.txt").is_file()
            and (folder / "timestamp.txt").is_file()
            and any(folder.glob("*.html"))
        ):
            served.append(folder.parent.name)
        else:
            skipped.append(folder.parent.name)
    if served:
        args = [f"--CourseDirectory.student_id_exclude={','.join(skipped)}"] if skipped else []
        nbgrader(course, "release_feedback", ps, *args, *_root_args(root))
    return served
