"""The instructor pipeline end to end on the tiny ``fx`` fixture assignment (no torch in the notebooks).

An LMS-style zip holding correct, blank, partial and hostile submissions goes through collect,
autograde (sandboxed, on a Dask LocalCluster), feedback, export and report; every grade in the CSV
is the expected one, hostile submissions get their reason, nothing outside a submission's own
copy is written, no process survives, and the hidden tests never reach the feedback.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "course"))
import builders  # noqa: E402

from vitkit.course import collect as collect_mod  # noqa: E402
from vitkit.course import feedback as feedback_mod  # noqa: E402
from vitkit.course import grade, report  # noqa: E402
from vitkit.course.paths import Course  # noqa: E402
from vitkit.course.sandbox import Limits  # noqa: E402
from vitkit.course.scan import scan_for_tampering  # noqa: E402

LIMITS = Limits(timeout=8, memory_gb=2, output_mb=1, wall=150)
MARKER = "987123"  # the background process a hostile submission leaves behind sleeps this long


def tree_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


def hostile_extras(root: Path, release: dict) -> tuple[dict[str, bytes], dict[str, float]]:
    """More zip members (name -> bytes) and their expected fx scores (student -> score)."""
    ans = {"add": builders.ADD, "mean": builders.MEAN}
    wrong_add = {"add": "def add(a, b):\n    return a - b\n", "mean": builders.MEAN}

    def edit_tests(nb):  # a student replaces the test of add by `pass` (nbgrader restores it)
        for cell in nb["cells"]:
            if cell["metadata"].get("nbgrader", {}).get("grade_id") == "test_add":
                cell["source"] = "pass"

    def delete_test(nb):  # a student deletes the test cell of mean
        nb["cells"] = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") != "test_mean"]

    writer = builders.MEAN + "".join(
        f"try:\n    open({str(p)!r}, 'a').write('graded by me')\nexcept Exception as err:\n    print('blocked', err)\n"
        for p in (
            root / "gradebook.db",
            root / "submitted" / "correct" / "fx" / "fx.ipynb",
            root / "solutions" / "fx" / "fx.ipynb",
        )
    )
    spawner = builders.MEAN + (
        "import subprocess, os\n"
        f"subprocess.Popen(['sleep', '{MARKER}'], start_new_session=True)\n"
        "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        f"        os.execvp('sleep', ['sleep', '{MARKER}'])\n    os._exit(0)\n"
    )
    members = {
        "notjson_2001_6001_fx.ipynb": b"this is not a notebook {",
        "renamed_2002_6002_my homework.ipynb": json.dumps(builders.submission(release, ans)).encode(),
        "resubmit_2003_6003_fx-1.ipynb": json.dumps(builders.submission(release, ans)).encode(),
        "edited_2004_6004_fx.ipynb": json.dumps(builders.submission(release, wrong_add, edit_tests)).encode(),
        "deleted_2005_6005_fx.ipynb": json.dumps(builders.submission(release, ans, delete_test)).encode(),
        "writer_2006_6006_fx.ipynb": json.dumps(
            builders.submission(release, {"add": builders.ADD, "mean": writer})
        ).encode(),
        "spawner_2007_6007_fx.ipynb": json.dumps(
            builders.submission(release, {"add": builders.ADD, "mean": spawner})
        ).encode(),
        "stray_2008_6008_notes.txt": b"my notes",
    }
    expected = {
        "notjson": 0.0,
        "renamed": 5.0,
        "resubmit": 5.0,
        "edited": 3.0,
        "deleted": 2.0,
        "writer": 5.0,
        "spawner": 5.0,
    }
    return members, expected


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """A course with the whole fixture class collected from a zip and autograded with --jobs 2."""
    root = tmp_path_factory.mktemp("course")
    course, release = builders.release_fx(root)
    extras, expected_extra = hostile_extras(root, release)
    names = list(builders.CLASS)
    zip_path = builders.class_zip(release, names, root.parent / "canvas.zip", extras)
    collected = collect_mod.collect(course, zip_path)
    protected = {p: tree_hash(p) for p in (course.submitted, course.source)}
    results = grade.autograde(course, ["fx"], jobs=2, limits=LIMITS, progress=False)
    expected = {n: builders.CLASS[n][2] for n in names} | expected_extra
    return course, collected, results, expected, protected


def test_collect_places_canvas_files_and_reports_the_rest(graded_class):
    course, collected, _, expected, _ = graded_class
    assert sorted({p["student"] for p in collected.placed}) == sorted(expected)
    assert [u["source"] for u in collected.unmatched] == ["stray_2008_6008_notes.txt"]
    late = [p["student"] for p in collected.placed if p["late"]]
    assert late == ["partial"]
    renamed = next(p for p in collected.placed if p["student"] == "renamed")
    assert renamed["notebook"] == "fx" and "matched by its cells" in renamed["matched_by"]
    assert (course.submitted / "resubmit" / "fx" / "fx.ipynb").is_file()


def test_every_submission_gets_its_expected_grade_in_the_exported_csv(graded_class):
    course, _, results, expected, _ = graded_class
    out = feedback_mod.export(course, course.reports / "grades.csv")
    rows = {r["student"]: float(r["fx"]) for r in csv.DictReader(out.open())}
    assert rows == expected
    canvas = list(csv.reader((feedback_mod.export(course, course.reports / "canvas.csv", "canvas")).open()))
    assert canvas[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"] and canvas[1][5] == "5.0"
    assert {r[0]: r[1] for r in canvas[2:]}["correct"] == "1000"


def test_hostile_submissions_are_graded_with_their_reason(graded_class):
    _, _, results, _, _ = graded_class
    by = {r.student: r for r in results}
    assert by["exit"].status == "failed" and "kernel died" in by["exit"].reason
    assert by["loop"].status == "graded" and "timeout" in by["loop"].reason
    assert by["chatty"].status == "graded" and "output capped" in by["chatty"].reason
    assert len(by["chatty"].notebooks["fx"]) < 3 * 2**20  # 200 MB printed, about 1 MB kept
    assert by["notjson"].status == "failed" and "not a notebook" in by["notjson"].reason
    # Flagged, and still graded: what its honest cells earn (add wrong, mean right); the instructor decides.
    assert by["patcher"].status == "graded" and any("builtins.AssertionError" in f for f in by["patcher"].flags)
    assert by["memory"].mistakes == {"fx": {}}  # MemoryError in its own cell; its answers still pass
    assert all(r.sandbox.startswith("kernel as uid ") for r in results if r.status == "graded"), {
        r.sandbox for r in results
    }


def test_nothing_outside_a_submissions_copy_is_written_and_no_process_survives(graded_class):
    course, _, results, _, protected = graded_class
    assert {p: tree_hash(p) for p in protected} == protected
    writer = next(r for r in results if r.student == "writer")
    assert json.loads(
        writer.notebooks["fx"]
    )  # it ran (flagged for the instructor: it names grading files); its writes were refused
    assert writer.status == "graded" and any("gradebook.db" in f for f in writer.flags), writer.flags
    assert "blocked" in writer.notebooks["fx"].decode() and "graded by me" not in course.gradebook.read_bytes().decode(
        errors="replace"
    )
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert f"sleep {MARKER}" not in ps


def test_mistakes_are_recorded_per_question(graded_class):
    course, _, results, _, _ = graded_class
    by = {r.student: r for r in results}
    assert by["partial"].mistakes["fx"] == {
        "test_mean": [["wrong_shape", by["partial"].mistakes["fx"]["test_mean"][0][1]]]
    }
    assert by["blank"].mistakes["fx"]["test_add"][0] == ["other", "NotImplementedError"]
    assert by["correct"].mistakes == {"fx": {}}


def test_feedback_shows_failures_and_hints_but_never_hidden_tests(graded_class):
    course, _, _, _, _ = graded_class
    pages = feedback_mod.feedback(course, ["fx"])
    assert len(pages) == len(list(course.results.glob("fx/*.json")))
    hidden = (course.feedback / "hidden" / "fx" / "fx.html").read_text()
    assert "HIDDEN-SECRET" not in hidden and "if add(-5, 5) != 0" not in hidden and "BEGIN HIDDEN" not in hidden
    assert "Traceback" not in hidden and "AssertionError: [not_close]" in hidden  # the error's last line only
    assert "3 / 5" in hidden and "differs from the correct values" in hidden
    partial = (course.feedback / "partial" / "fx" / "fx.html").read_text()
    assert "the result has the wrong shape" in partial and "compare the shapes" in partial  # message and catalogue hint
    assert "HIDDEN-SECRET" not in partial
    assert "could not be graded" in (course.feedback / "exit" / "fx" / "fx.html").read_text()


def test_report_counts_mistakes_per_question(graded_class):
    course, _, results, _, _ = graded_class
    page = report.report(course, "fx")
    rows = list(csv.DictReader((course.reports / "fx" / "mistakes.csv").open()))
    count = {(r["question"], r["mistake"]): int(r["students"]) for r in rows}
    graded = [r for r in results if r.status == "graded"]
    assert count[("test_mean", "wrong_shape")] == 1  # partial
    assert (
        count[("test_add", "not_close")] == 3
    )  # hidden (hidden test), edited (visible test restored), patcher (flagged, graded)
    assert count[("test_add", "other: NotImplementedError")] == 1  # blank
    assert all(float(r["share"]) == round(int(r["students"]) / len(graded), 4) for r in rows)
    text = page.read_text()
    assert "data:image/png;base64," in text and "exit" in text and "kernel died" in text and "patcher" in text


def test_autograde_again_gives_the_same_grades_and_leaves_submitted_alone(graded_class):
    course, _, results, _, protected = graded_class
    # Already graded and unchanged: nothing to do without --force.
    assert grade.autograde(course, ["fx"], jobs=1, limits=LIMITS, progress=False, students=["partial", "hidden"]) == []
    again = grade.autograde(
        course, ["fx"], jobs=1, limits=LIMITS, progress=False, students=["partial", "hidden", "patcher"], force=True
    )
    first = {r.student: (r.status, r.scores, r.mistakes) for r in results}
    assert {r.student: (r.status, r.scores, r.mistakes) for r in again} == {
        s: first[s] for s in ("partial", "hidden", "patcher")
    }
    assert tree_hash(course.submitted) == protected[course.submitted]


@pytest.mark.parametrize(
    "source, flagged",
    [
        ("import torch\ntorch.testing.assert_close = lambda *a, **k: None", True),
        ("import numpy as np\nnp.testing.assert_allclose = print", True),
        ("from vitkit import grading\ngrading.check_close = lambda *a, **k: None", True),
        ("import vitkit.grading as g\nsetattr(g, 'check_close', None)", True),
        ("import sys\nsys.modules['vitkit.grading'].check_close = 1", True),
        ("import importlib\nimportlib.reload(x)", True),
        ("torch.testing.__dict__['assert_close'] = None", True),
        ("def attention(q, k, v):\n    scores = q @ k.T\n    return scores.softmax(-1) @ v", False),
        ("x = {}\nx['a'] = 1\nmodel.weight = 3", False),
    ],
)
def test_static_scan_flags_tampering_patterns(source, flagged):
    assert bool(scan_for_tampering([source])) is flagged


def test_cli_registers_course_and_check():
    from vitkit.cli import COMMANDS, build_parser

    assert COMMANDS["course"][0] == "vitkit.course" and COMMANDS["check"][0] == "vitkit.course.check"
    args = build_parser(["course", "autograde", "fx", "--jobs", "2"]).parse_args(
        ["course", "autograde", "fx", "--jobs", "2"]
    )
    assert args.action == "autograde" and args.jobs == 2 and args.ps == ["fx"]


@pytest.mark.slow
def test_every_problem_set_solution_gets_full_marks_in_the_sandbox(tmp_path):
    """Each problem set's solution, graded sandboxed on a LocalCluster (--jobs 2), earns every point.

    Regression: a 4 GB RLIMIT_AS left a kernel under 1 GB once torch's CUDA libraries were mapped, so
    ps3's convolution test failed inside oneDNN ('could not create a primitive', 18/20); a checkpoint
    readable by root only cost ps5 6 of 8 points. Plain nbgrader gave full marks to both.
    """
    repo = Path(__file__).resolve().parents[1]
    root = tmp_path / "course"
    shutil.copytree(repo / "solutions", root / "solutions", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copy(repo / "nbgrader_config.py", root / "nbgrader_config.py")
    course = Course(str(root))
    pss = course.problem_sets()
    assert len(pss) >= 5
    for ps in pss:
        shutil.copytree(root / "solutions" / ps, root / "submitted" / "solution" / ps)
    results = grade.autograde(course, pss, jobs=2, limits=Limits(timeout=300, memory_gb=4), progress=False)
    assert sorted(r.ps for r in results) == pss
    for r in results:
        top = sum(t for cells in r.scores.values() for _, t in cells.values())
        assert (r.status, r.reason, r.mistakes) == ("graded", "", {r.ps: {}}), (
            r.ps,
            r.reason,
            r.mistakes,
            r.log_tail[-2000:],
        )
        assert top > 0 and r.score == top, (r.ps, r.scores)
        if os.geteuid() == 0:
            assert r.sandbox.startswith("kernel as uid "), r.sandbox
    rows = {r["student"]: r for r in csv.DictReader(feedback_mod.export(course, course.reports / "grades.csv").open())}
    assert float(rows["solution"]["total"]) == sum(r.score for r in results)
