"""The course's pages escape what students wrote, and the kit reads nbgrader_config.py as nbgrader does."""

from __future__ import annotations

import json

from vitkit.course import config_timeout, report
from vitkit.course.feedback import catalogue, summary_html
from vitkit.course.paths import Course

SCRIPT = "<script>alert(1)</script>"


def test_a_students_comment_and_error_are_escaped_in_their_feedback_summary():
    record = {
        "ps": "ps1",
        "status": "graded",
        "reason": SCRIPT,
        "scores": {"ps1": {"test_softmax": [0.0, 2.0]}},
        "mistakes": {"ps1": {"test_softmax": [["other", SCRIPT]]}},
    }
    written = {"why": {"notebook": "ps1", "max": 1.0, "comment": SCRIPT, "manual": 1.0, "pending": False, "score": 1.0}}
    page = summary_html(record, catalogue(), written)
    assert "<script>" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 3  # the reason, the error, the grader's comment
    assert "<h2>ps1: 1 / 3</h2>" in page and "<table" in page


def test_a_student_named_like_markup_is_escaped_in_the_class_report(tmp_path):
    course = Course(str(tmp_path))
    (course.source / "ps").mkdir(parents=True)
    (course.source / "ps" / "ps.ipynb").write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4}))
    (course.results / "ps").mkdir(parents=True)
    records = {
        "ann": {
            "status": "graded",
            "scores": {"ps": {"q": [0.0, 1.0]}},
            "mistakes": {"ps": {"q": [["other", SCRIPT]]}},
        },
        SCRIPT.replace("/", ""): {"status": "failed", "reason": "the kernel died", "scores": {}},
    }
    for student, record in records.items():
        (course.results / "ps" / f"{student}.json").write_text(json.dumps({"ps": "ps", **record}))
    page = report.report(course, "ps").read_text()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)" in page  # the failed student's name
    assert "<code>other: &lt;script&gt;alert(1)&lt;/script&gt;</code>" in page  # the mistake, as a label


def test_the_timeout_is_read_as_python_reads_the_config_not_by_pattern(tmp_path):
    course = Course(str(tmp_path))
    assert config_timeout(course) == 300  # no config: nbgrader's kit default
    # A pattern over the text would read 30 (the docstring's example line) or 10 (the start of the product).
    (tmp_path / "nbgrader_config.py").write_text(
        '"""An example course.\n\nc.Execute.timeout = 30 was too short for the training cell.\n"""\n'
        "c = get_config()  # noqa\n"
        "# c.Execute.timeout = 5\n"
        "c.Execute.timeout = 10 * 60\n"
        "c.CourseDirectory.course_id = 'demo'\n"
    )
    assert config_timeout(course) == 600
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\nc.Execute.timeout = 300\nc.Execute.timeout = 45\n")
    assert config_timeout(course) == 45  # the last assignment wins, as in nbgrader
