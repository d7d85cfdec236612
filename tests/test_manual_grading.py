"""Written answers, graded by a person, in the kit's pipeline (no hub, no browser: ``test_hub.py`` does those).

The ``fx`` fixture gains a manually graded markdown answer (2 points). Two students: ``answered``
(both code questions right, an answer written) and ``silent`` (code right, the answer left as the
stub, which nbgrader itself scores 0). Autograde, then a person's points as formgrader stores them
(``Grade.manual_score`` in the gradebook), then autograde again: status, export, report and
feedback show both kinds of points, and neither kind is ever lost to the other.
"""

from __future__ import annotations

import csv
import io
import sys
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "course"))
import builders  # noqa: E402

from vitkit.course import feedback as feedback_mod  # noqa: E402
from vitkit.course import grade, report, status  # noqa: E402
from vitkit.course.paths import Course  # noqa: E402
from vitkit.course.sandbox import Limits  # noqa: E402

LIMITS = Limits(timeout=8, memory_gb=2, output_mb=1, wall=150)
WRITTEN = builders.WRITTEN


def give_manual_points(course: Course, student: str, gid: str, points: float, comment: str = "") -> None:
    """What formgrader does when a person grades a cell: ``manual_score`` (and a comment) in the gradebook."""
    from nbgrader.api import Gradebook

    with warnings.catch_warnings(), Gradebook(course.db_url, "vitkit") as gb:
        warnings.simplefilter("ignore")
        g = gb.find_grade(gid, "fx", "fx", student)
        g.manual_score = points
        g.needs_manual_grade = False
        if comment:
            gb.find_comment(gid, "fx", "fx", student).manual_comment = comment
        gb.db.commit()


def gradebook_scores(course: Course, student: str) -> dict[str, tuple]:
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, "vitkit") as gb:
        return {g.name: (g.auto_score, g.manual_score) for g in gb.find_submission_notebook("fx", "fx", student).grades}


def exported(course: Course) -> tuple[dict[str, dict], list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = feedback_mod.export(course, course.reports / "grades.csv")
    return {r["student"]: r for r in csv.DictReader(out.open())}, [str(w.message) for w in caught]


def status_text(course: Course) -> str:
    buf = io.StringIO()
    with redirect_stdout(buf):
        status(course)
    return buf.getvalue()


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    answers = {"add": builders.ADD, "mean": builders.MEAN}
    students = {
        "answered": answers | {WRITTEN: "Dividing the one number by a count of one leaves it as it is."},
        "silent": answers,
    }
    course = builders.make_class(tmp_path_factory.mktemp("course"), students, written_answer=True)
    results = grade.autograde(course, ["fx"], limits=LIMITS, progress=False)
    assert {r.student: r.status for r in results} == {"answered": "graded", "silent": "graded"}, [
        r.reason for r in results
    ]
    return course


def test_a_written_answer_waits_for_a_person_and_costs_no_autograded_points(course):
    records = grade.load_records(course, "fx")
    assert records["answered"]["manual"] == {"fx": {WRITTEN: [None, 2.0]}}  # answered: a person grades it
    assert records["silent"]["manual"] == {"fx": {WRITTEN: [0.0, 2.0]}}  # left as the stub: 0 without a person
    for rec in records.values():
        assert WRITTEN not in rec["scores"]["fx"] and WRITTEN not in rec["mistakes"]["fx"]
        assert rec["scores"]["fx"] == {"test_add": [2.0, 2.0], "test_mean": [3.0, 3.0]}
    text = status_text(course)
    assert f"answered: needs manual grading ({WRITTEN})" in text and "silent: needs manual grading" not in text
    assert "written answers: 1 of 2 submissions fully graded by a person" in text
    rows, warned = exported(course)
    assert (rows["answered"]["fx"], rows["answered"]["written:fx"]) == ("5.0", "")  # pending: blank, named in a warning
    assert (rows["silent"]["fx"], rows["silent"]["written:fx"]) == ("5.0", "0.0")
    assert any("answered/fx: written" in w for w in warned)


def test_manual_points_add_to_the_autograded_ones_everywhere(course):
    give_manual_points(course, "answered", WRITTEN, 1.5, comment="Right idea; say why the count is one.")
    assert gradebook_scores(course, "answered")["test_add"] == (2.0, None)  # the autograded points are untouched
    rows, warned = exported(course)
    assert (rows["answered"]["fx"], rows["answered"]["written:fx"], rows["answered"]["total"]) == ("6.5", "1.5", "6.5")
    assert not any("written" in w for w in warned)
    assert "needs manual grading" not in status_text(course)
    page = report.report(course, "fx").read_text()
    assert "Written answers (graded by a person)" in page
    assert f"<td>{WRITTEN}</td><td>2</td><td>0</td><td>0.75 / 2</td>" in page  # graded 2, waiting 0, mean of 1.5 and 0
    feedback_mod.feedback(course, ["fx"])
    answered = (course.feedback / "answered" / "fx" / "fx.html").read_text()
    assert "fx: 6.5 / 7" in answered and "1.5 / 2" in answered and "say why the count is one" in answered
    assert "fx: 5 / 7" in (course.feedback / "silent" / "fx" / "fx.html").read_text()


def test_grading_again_keeps_a_persons_points_and_a_person_keeps_the_autograded_ones(course):
    # A person may also override an autograded cell in formgrader: the next autograde keeps that too.
    give_manual_points(course, "silent", "test_mean", 1.0)
    again = grade.autograde(course, ["fx"], limits=LIMITS, progress=False, force=True)
    assert [r.status for r in again] == ["graded", "graded"]
    scores = gradebook_scores(course, "answered")
    assert scores[WRITTEN] == (None, 1.5) and scores["test_add"] == (2.0, None) and scores["test_mean"] == (3.0, None)
    assert gradebook_scores(course, "silent")["test_mean"] == (3.0, 1.0)
    rows, _ = exported(course)
    assert (rows["answered"]["fx"], rows["answered"]["written:fx"]) == ("6.5", "1.5")
    assert rows["silent"]["fx"] == "3.0"  # 2 (add) + 1 (a person's override of mean) + 0 (unanswered written)
