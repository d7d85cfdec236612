"""Grading on Dask three ways gives the same CSV: in-process (--jobs 1), a LocalCluster (--jobs 2), and a
``dask scheduler`` with two ``dask worker`` processes on 127.0.0.1 that this test starts and stops."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "course"))
import builders  # noqa: E402

from vitkit.course import feedback as feedback_mod  # noqa: E402
from vitkit.course import grade  # noqa: E402
from vitkit.course.paths import Course  # noqa: E402
from vitkit.course.sandbox import Limits  # noqa: E402

LIMITS = Limits(timeout=8, memory_gb=2, output_mb=1, wall=150)
STUDENTS = ["partial", "exit", "patcher", "hidden"]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return builders.make_class(tmp_path_factory.mktemp("dask-course"), {n: builders.CLASS[n][0] for n in STUDENTS})


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """A dask scheduler (no re-runs of failed tasks) and two single-threaded workers on 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("dask")
    info = tmp / "scheduler.json"
    bindir = Path(sys.executable).parent
    env = dict(os.environ, DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="0", PATH=f"{bindir}:{os.environ['PATH']}")
    procs = [
        subprocess.Popen(
            [
                str(bindir / "dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(info),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    deadline = time.time() + 60
    while not info.exists() and time.time() < deadline:
        time.sleep(0.2)
    address = json.loads(info.read_text())["address"]
    for _ in range(2):
        procs.append(
            subprocess.Popen(
                [
                    str(bindir / "dask"),
                    "worker",
                    address,
                    "--nthreads",
                    "1",
                    "--memory-limit",
                    "0",
                    "--no-dashboard",
                    "--host",
                    "127.0.0.1",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    from distributed import Client

    with Client(address, timeout="30s") as client:
        client.wait_for_workers(2, timeout=90)
        yield address, procs, client
    for p in reversed(procs):
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()


def graded(course: Course, **how) -> tuple[str, dict]:
    results = grade.autograde(course, ["fx"], limits=LIMITS, progress=False, force=True, **how)
    csv_text = feedback_mod.export(course, course.reports / "grades.csv").read_text()
    return csv_text, {r.student: (r.status, r.reason, r.scores, r.mistakes) for r in results}


def test_grades_are_identical_in_process_on_a_local_cluster_and_on_a_scheduler(course, scheduler):
    address, procs, client = scheduler
    workers_before = set(client.scheduler_info()["workers"])
    one = graded(course, jobs=1)
    two = graded(course, jobs=2)
    remote = graded(course, scheduler=address)
    assert one == two == remote
    rows = dict(line.split(",")[:2] for line in one[0].splitlines()[1:])
    assert rows == {s: str(builders.CLASS[s][2]) for s in STUDENTS}
    assert one[1]["exit"][0] == "failed" and "kernel died" in one[1]["exit"][1]
    assert one[1]["patcher"][0] == "graded"  # flagged for the instructor, and still graded
    # no worker died or restarted, and the gradebook is a sound SQLite file
    assert set(client.scheduler_info()["workers"]) == workers_before and all(p.poll() is None for p in procs)
    assert sqlite3.connect(course.gradebook).execute("PRAGMA integrity_check").fetchone() == ("ok",)
