"""nbgrader's exchange in the kit's pipeline, without a hub: release, submit, collect, feedback back.

A scratch course (the ``fx`` fixture with a written answer) and an exchange folder under the test's
temporary folder. Students are played by nbgrader's own student commands (``fetch_assignment``,
``submit``, ``fetch_feedback``), each with a home (working folder and nbgrader cache) of their own
and ``--student`` for the name a hub would take from their account. The instructor side is the kit's
CLI: ``vitkit course release --exchange``, ``collect --exchange``, ``autograde``, ``feedback --release``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
import warnings
from contextlib import redirect_stdout
from datetime import datetime, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "course"))
import builders  # noqa: E402

from vitkit.course import exchange, grade, main  # noqa: E402
from vitkit.course import feedback as feedback_mod
from vitkit.course.paths import Course  # noqa: E402
from vitkit.course.sandbox import Limits  # noqa: E402

LIMITS = Limits(timeout=8, memory_gb=2, output_mb=1, wall=150)
NBGRADER = str(Path(sys.executable).parent / "nbgrader")
WRONG_ADD = "def add(a, b):\n    return a - b  # BOBS-OWN-LINE\n"


def cli(course: Course, *argv: str) -> str:
    """Run ``vitkit course --root COURSE ARGV...`` in this process; its printed output."""
    from vitkit.cli import build_parser

    argv = ["course", "--root", course.root, *argv]
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(build_parser(argv).parse_args(argv)) == 0
    return buf.getvalue()


class Student:
    """One student's side of the exchange: a home folder, a cache of their own, nbgrader's student commands."""

    def __init__(self, name: str, home: Path, root: Path):
        self.name, self.home, self.root = name, home, root
        home.mkdir(parents=True)

    def nbgrader(self, *args: str) -> str:
        env = dict(
            os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"], HOME=str(self.home)
        )
        proc = subprocess.run(
            [
                NBGRADER,
                *args,
                "--course=vitkit",
                f"--Exchange.root={self.root}",
                f"--Exchange.cache={self.home / 'cache'}",
                f"--student={self.name}",
            ],
            cwd=self.home,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, f"nbgrader {args} as {self.name}:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout + proc.stderr

    def work(self, answers: dict[str, str]) -> None:
        path = self.home / "fx" / "fx.ipynb"
        path.write_text(json.dumps(builders.submission(json.loads(path.read_text()), answers)))


@pytest.fixture(scope="module")
def classroom(tmp_path_factory):
    base = tmp_path_factory.mktemp("classroom")
    root = builders.make_course(base / "course")
    builders.add_written_answer(root)
    course = Course(str(root))
    xroot = base / "exchange"
    out = cli(course, "release", "fx", "--exchange", str(xroot))
    assert (xroot / "vitkit" / "outbound" / "fx" / "fx.ipynb").is_file() and "students can fetch it" in out
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, "vitkit") as gb:  # the roster: carol never submits
        for name in ("alice", "bob", "carol"):
            gb.update_or_create_student(name)
    alice, bob = (Student(n, base / "home" / n, xroot) for n in ("alice", "bob"))
    for s in (alice, bob):
        s.nbgrader("fetch_assignment", "fx")
    alice.work({"add": builders.ADD, "mean": builders.MEAN, builders.WRITTEN: "Dividing by one changes nothing."})
    bob.work({"add": WRONG_ADD, "mean": builders.MEAN})
    alice.nbgrader("submit", "fx")
    time.sleep(1.1)
    due = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    time.sleep(1.1)
    bob.nbgrader("submit", "fx")
    collected = cli(course, "collect", "fx", "--exchange", str(xroot), "--due", due)
    results = grade.autograde(course, ["fx"], limits=LIMITS, progress=False)
    released = cli(course, "feedback", "fx", "--release", "--exchange", str(xroot))
    for s in (alice, bob):
        s.nbgrader("fetch_feedback", "fx")
    return course, xroot, {"alice": alice, "bob": bob}, collected, results, released


def test_collect_takes_submissions_from_the_exchange_with_late_and_missing(classroom):
    course, _, _, collected, results, _ = classroom
    log = json.loads((course.reports / "collect.json").read_text())
    assert {(p["student"], p["late"]) for p in log["placed"]} == {("alice", False), ("bob", True)}
    assert [u["reason"] for u in log["unmatched"]] == ["carol did not submit fx"]
    assert "bob/fx: late" in collected and "MISSING exchange:carol" in collected
    assert (course.submitted / "alice" / "fx" / "submission_secret.txt").is_file()
    assert {r.student: r.score for r in results} == {"alice": 5.0, "bob": 3.0}


def test_each_student_fetches_their_own_feedback_and_not_the_others(classroom):
    course, xroot, students, _, _, released = classroom
    assert "feedback released to 2 students" in released
    assert len(list((xroot / "vitkit" / "feedback").glob("*.html"))) == 2
    pages = {n: list(s.home.glob("fx/feedback/*/fx.html")) for n, s in students.items()}
    assert {n: len(p) for n, p in pages.items()} == {"alice": 1, "bob": 1}
    alice, bob = (pages[n][0].read_text() for n in ("alice", "bob"))
    assert alice == (course.feedback / "alice" / "fx" / "fx.html").read_text()
    assert "fx: 5 / 7" in alice and "not graded yet" in alice and "BOBS-OWN-LINE" not in alice
    assert "fx: 3 / 7" in bob and "BOBS-OWN-LINE" in bob and "Dividing by one" not in bob
    assert "HIDDEN-SECRET" not in alice + bob  # the kit's pages: hidden tests removed


def test_the_export_holds_both_grades_and_the_missing_student(classroom):
    course = classroom[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = {
            r["student"]: r for r in csv.DictReader(feedback_mod.export(course, course.reports / "grades.csv").open())
        }
    assert {s: rows[s]["fx"] for s in rows} == {"alice": "5.0", "bob": "3.0", "carol": "0.0"}
    assert exchange.inbound(course, "fx", str(classroom[1])).keys() == {"alice", "bob"}
