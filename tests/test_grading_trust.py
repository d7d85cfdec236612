"""Grades you can trust wherever the course lives: private folders, ordinary users, no namespaces; no forged
grade, no infrastructure zero, resumable batches.

Every case grades the tiny ``fx`` fixture (add: 2 points, mean: 3) with real nbgrader. CI runs as root in
a folder everyone may enter: the private folder and the ordinary user are made here.
"""

from __future__ import annotations

import csv
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "course"))
import builders  # noqa: E402

from vitkit.course import confine, grade  # noqa: E402
from vitkit.course import feedback as feedback_mod  # noqa: E402
from vitkit.course.paths import Course  # noqa: E402
from vitkit.course.sandbox import Limits  # noqa: E402

LIMITS = Limits(timeout=20, memory_gb=2, output_mb=1, wall=120)
ANSWERS = {"add": builders.ADD, "mean": builders.MEAN}
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(
    not ROOT, reason="makes a private folder for another user / an ordinary user: needs root"
)
pytestmark = pytest.mark.slow

# A background process that outlives its cell and keeps trying to forge the grade, for ~60 s.
_FORGER = """
import os, subprocess, sys
code = {code!r}
subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
"""
GRADEBOOK_ATTACK = """
import glob, sqlite3, time
for _ in range(600):
    for db in glob.glob("/tmp/**/gradebook.db", recursive=True) + glob.glob("/root/**/gradebook.db", recursive=True):
        try:
            con = sqlite3.connect(db, timeout=0.1); con.execute("UPDATE grade SET auto_score = max_score"); con.commit()
        except Exception:
            pass
    time.sleep(0.1)
"""
NOTEBOOK_ATTACK = """
import glob, json, time
for _ in range(600):
    for path in glob.glob("/tmp/**/autograded/**/*.ipynb", recursive=True):
        try:
            nb = json.load(open(path))
            for cell in nb["cells"]:
                cell["outputs"] = []
            json.dump(nb, open(path, "w"))
        except Exception:
            pass
    time.sleep(0.1)
"""
GRADER_ATTACK = """
import os, signal, time
for _ in range(300):
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            for sig in (signal.SIGSTOP, signal.SIGKILL):
                try:
                    os.kill(int(pid), sig)
                except Exception:
                    pass
    time.sleep(0.2)
"""


def exported(course: Course) -> dict[str, str]:
    out = feedback_mod.export(course, course.reports / "grades.csv")
    return {r["student"]: r["fx"] for r in csv.DictReader(out.open())}


def scores(results) -> dict[str, tuple[str, float]]:
    return {r.student: (r.status, r.score) for r in results}


# ----------------------------------------------------------------------------- forgery


def test_submissions_that_attack_grading_while_it_runs_get_what_their_honest_cells_earn(tmp_path):
    """A blank notebook forging the gradebook copy, one rewriting autograded notebooks, one killing every process
    it can see: each gets exactly what its honest cells earn, and nothing it started survives."""
    attacks = {
        "gradebook": {"add": "raise NotImplementedError()\n" + _FORGER.format(code=GRADEBOOK_ATTACK)},  # blank + forger
        "notebook": {"add": builders.ADD + _FORGER.format(code=NOTEBOOK_ATTACK)},  # add right, mean blank
        "grader": {"add": builders.ADD, "mean": builders.MEAN + _FORGER.format(code=GRADER_ATTACK)},
        "honest": ANSWERS,
    }
    course = builders.make_class(tmp_path / "course", attacks)
    results = grade.autograde(course, ["fx"], limits=LIMITS, progress=False)
    got = scores(results)
    assert got == {
        "gradebook": ("graded", 0.0),
        "notebook": ("graded", 2.0),
        "grader": ("graded", 5.0),
        "honest": ("graded", 5.0),
    }, {r.student: (r.reason, r.log_tail[-1500:]) for r in results}
    assert exported(course) == {"gradebook": "0.0", "notebook": "2.0", "grader": "5.0", "honest": "5.0"}
    out = subprocess.run(["pgrep", "-f", "UPDATE grade SET|autograded/\\*\\*|SIGSTOP"], capture_output=True, text=True)
    assert out.stdout.strip() == "", "a process the student's code started survived grading"


# ----------------------------------------------------------------------------- where the course lives


def _private_copy_of_venv(tmp_path: Path) -> tuple[Path, list[str]]:
    """A 0700 folder holding (a bind mount of) the venv: what a clone inside ``mktemp -d`` or /root looks like."""
    private = tmp_path / "private"
    (private / "venv").mkdir(parents=True)
    os.chmod(private, 0o700)
    prefix = ["unshare", "--mount", "sh", "-c", f'mount --bind "{sys.prefix}" "{private}/venv" && exec "$@"', "sh"]
    return private, prefix


@needs_root
def test_a_course_and_venv_inside_a_private_folder_grade_right_as_root(tmp_path):
    private, prefix = _private_copy_of_venv(tmp_path)
    course = builders.make_class(private / "course", {"correct": ANSWERS, "blank": {}, "half": {"add": builders.ADD}})
    python = str(private / "venv" / "bin" / "python")
    env = dict(os.environ, PATH=f"{private}/venv/bin:{os.environ['PATH']}")
    out = subprocess.run(
        prefix + autograde_cli(course, python=python),
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert exported(course) == {"correct": "5.0", "blank": "0.0", "half": "2.0"}, out.stdout + out.stderr
    doctor = subprocess.run(
        prefix + [python, "-m", "vitkit.cli", "course", "--root", course.root, "doctor"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert doctor.returncode == 0 and "ok   kernel" in doctor.stdout and "ok   hidden" in doctor.stdout, doctor.stdout


def public_interpreter(cmd: list[str]) -> list[str]:
    """``cmd`` in a private mount namespace where this machine's interpreter (under /root here) is visible to every
    user, as on a machine whose Python is installed for everyone; ``cmd`` itself when nothing needs it."""
    exposed = [p for p in confine.kernel_paths() if confine.untraversable_ancestor(p)]
    hidden = sorted({confine.untraversable_ancestor(p) for p in exposed})
    if not hidden:
        return cmd
    steps = [f'exec {3 + i}<"{h}"; mount -t tmpfs -o mode=0755 vk "{h}"' for i, h in enumerate(hidden)]
    for p in exposed:
        i = next(i for i, h in enumerate(hidden) if confine._under(p, h))
        steps.append(
            f'mkdir -p "{p}" && mount --no-canonicalize --bind "/proc/self/fd/{3 + i}{p[len(hidden[i]) :]}" "{p}"'
        )
    return ["unshare", "--mount", "sh", "-c", "; ".join(steps + ['exec "$@"']), "sh", *cmd]


def autograde_cli(course: Course, *extra: str, python: str = sys.executable) -> list[str]:
    """``vitkit course autograde fx`` for ``course`` as a command line, run by ``python``."""
    cli = ["-m", "vitkit.cli", "course", "--root", course.root, "autograde", "fx", "--timeout", "20", "--memory", "2"]
    return [python, *cli, *extra]


@needs_root
def test_an_ordinary_user_grades_right_in_their_private_home(tmp_path):
    """As an ordinary user (a user namespace confines the kernel), the course in a 0700 home folder."""
    name = "vitkit-grader"
    if subprocess.run(["id", name], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--create-home", name], check=True, capture_output=True)
    home = Path(pwd.getpwnam(name).pw_dir)
    os.chmod(home, 0o700)
    root = home / f"course-{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    try:
        course = builders.make_class(root, {"correct": ANSWERS, "blank": {}, "half": {"add": builders.ADD}})
        subprocess.run(["chown", "-R", f"{name}:{name}", str(root)], check=True)
        cmd = public_interpreter(
            [
                "runuser",
                "-u",
                name,
                "--",
                "env",
                f"HOME={home}",
                f"PATH={Path(sys.executable).parent}:/usr/bin:/bin",
                *autograde_cli(course),
            ]
        )
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stdout + out.stderr
        records = grade.load_records(course, "fx")
        assert {
            s: (r["status"], sum(v[0] for c in r["scores"].values() for v in c.values())) for s, r in records.items()
        } == {"correct": ("graded", 5.0), "blank": ("graded", 0.0), "half": ("graded", 2.0)}
        sandbox = {r["sandbox"] for r in records.values()}
        assert all(s.startswith("kernel in a nested user namespace") for s in sandbox), sandbox
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_without_namespaces_grades_are_right_and_each_record_says_so(tmp_path):
    course = builders.make_class(tmp_path / "course", {"correct": ANSWERS, "half": {"add": builders.ADD}})
    env = dict(os.environ, VITKIT_NO_NAMESPACES="1", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    out = subprocess.run(
        public_interpreter(autograde_cli(course)), capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0, out.stdout + out.stderr
    records = grade.load_records(course, "fx")
    assert exported(course) == {"correct": "5.0", "half": "2.0"}
    expected = "no namespaces on this host" if ROOT else "UNCONFINED"
    assert all(expected in r["sandbox"] for r in records.values()), [r["sandbox"] for r in records.values()]


# ----------------------------------------------------------------------------- the grader's failure is not a zero


def test_an_unreachable_python_is_refused_up_front_and_never_recorded_as_zero(tmp_path, monkeypatch):
    """The kernel cannot reach the interpreter: the doctor refuses; forced past it, nothing reaches the gradebook,
    the export is blank, status says why, the batch stops early; once fixed, the next autograde grades everyone."""
    if confine.isolation() not in ("uid+ns", "userns"):
        pytest.skip(f"hides the interpreter with a mount namespace; this host has {confine.isolation()}")
    course = builders.make_class(tmp_path / "course", {f"s{i}": ANSWERS for i in range(5)})
    real = confine.hidden_folders
    monkeypatch.setattr(confine, "kernel_paths", lambda: [])  # nothing bound back ...
    monkeypatch.setattr(
        confine,
        "hidden_folders",
        lambda root, level: real(root, level) + [os.path.dirname(sys.base_prefix), os.path.dirname(sys.prefix)],
    )
    with pytest.raises(SystemExit, match="grading cannot work here"):
        grade.autograde(course, ["fx"], limits=LIMITS, progress=False)
    assert grade.load_records(course, "fx") == {}

    with pytest.raises(grade.BatchStopped, match="the same reason"):
        grade.autograde(course, ["fx"], limits=LIMITS, progress=False, doctor=False)
    records = grade.load_records(course, "fx")
    assert len(records) == grade.STOP_AFTER and all(r["status"] == "error" for r in records.values())
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, "vitkit") as gb:
        assert [s.id for s in gb.students if s.submissions] == []  # no score, not even a 0
    with pytest.warns(UserWarning, match="not graded"):
        assert set(exported(course).values()) == {""}
    status = subprocess.run(
        [sys.executable, "-m", "vitkit.cli", "course", "--root", course.root, "status"], capture_output=True, text=True
    )
    assert "not graded: " in status.stdout and "kernel did not start" in status.stdout, status.stdout

    monkeypatch.undo()  # the fix
    results = grade.autograde(course, ["fx"], limits=LIMITS, progress=False)
    assert len(results) == 5 and scores(results) == {f"s{i}": ("graded", 5.0) for i in range(5)}
    assert exported(course) == {f"s{i}": "5.0" for i in range(5)}


# ----------------------------------------------------------------------------- resumable batches


def test_an_interrupted_batch_resumes_with_what_is_left_and_ends_with_the_same_grades(tmp_path):
    students = {f"s{i}": (ANSWERS if i % 2 else {"add": builders.ADD}) for i in range(6)}
    course = builders.make_class(tmp_path / "course", students)
    cmd = autograde_cli(course)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.time() + 300
    while len(grade.load_records(course, "fx")) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = grade.load_records(course, "fx")
    assert 2 <= len(first) < 6, "the batch should have been killed midway"
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert f"{len(first)} of 6 submissions already graded" in again.stderr, again.stderr
    done = grade.load_records(course, "fx")
    assert {s: r["seconds"] for s, r in done.items() if s in first} == {s: r["seconds"] for s, r in first.items()}
    assert exported(course) == {s: ("5.0" if int(s[1:]) % 2 else "2.0") for s in students}
