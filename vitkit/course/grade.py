"""Releasing, and grading a class: the coordinator that schedules one task per submission.

The coordinator builds a *template* gradebook per problem set (``nbgrader generate_assignment``
into a scratch folder), sends one :func:`vitkit.course.sandbox.grade_submission` task per
(student, problem set) to a Dask ``distributed`` client (a ``LocalCluster`` of single-threaded
worker processes, or an existing scheduler), or runs them in-process with ``jobs=1``, and alone
writes the real gradebook (nbgrader's ``Gradebook`` API), ``autograded/`` and the per-submission
records that ``feedback`` and ``report`` read. Tasks are submitted with no retries and the
scheduler allows no re-runs: a task whose worker dies is graded 0 with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from vitkit.course.paths import Course
from vitkit.course.sandbox import GradeResult, Limits, grade_submission


def nbgrader(course: Course, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run an nbgrader command in the course folder with the venv's ``bin/`` first on PATH (nbgrader calls alembic)."""
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run([os.path.join(bindir, "nbgrader"), *args], cwd=course.root, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"nbgrader {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return proc


# ----------------------------------------------------------------------------- release


def release(course: Course, ps: str) -> None:
    """Regenerate ``exercises/<ps>/`` from ``solutions/<ps>/`` and record the assignment in the gradebook."""
    nbgrader(course, "generate_assignment", ps, "--force")


def release_differences(course: Course, ps: str) -> list[str]:
    """Files in which ``exercises/<ps>/`` differs from what ``nbgrader generate_assignment`` makes now (empty: in sync)."""
    with tempfile.TemporaryDirectory(prefix="vitkit-release-") as tmp:
        nbgrader(course, "generate_assignment", ps, "--force", "--no-db", f"--CourseDirectory.release_directory={tmp}")
        fresh, committed = Path(tmp) / ps, course.release / ps
        names = {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
        if committed.is_dir():
            names |= {p.relative_to(committed) for p in committed.rglob("*") if p.is_file() and ".ipynb_checkpoints" not in p.parts}
        return sorted(str(n) for n in names
                      if not (fresh / n).is_file() or not (committed / n).is_file() or _content(fresh / n) != _content(committed / n))


def _content(path: Path):
    if path.suffix == ".ipynb":  # compare notebooks as JSON: key order and indentation are not differences
        return json.loads(path.read_text())
    return path.read_bytes()


# ----------------------------------------------------------------------------- templates


def make_template(course: Course, ps: str) -> bytes:
    """A gradebook holding only ``ps``'s assignment (its cells, checksums and test sources), as bytes.

    Solution cells' source is blanked: the gradebook copy sits beside the student's code in the sandbox.
    """
    from nbgrader.api import Gradebook

    with tempfile.TemporaryDirectory(prefix="vitkit-template-") as tmp:
        db = Path(tmp) / "gradebook.db"
        nbgrader(course, "generate_assignment", ps, "--force", f"--CourseDirectory.db_url=sqlite:///{db}",
                 f"--CourseDirectory.release_directory={tmp}/release")
        with Gradebook(f"sqlite:///{db}", "vitkit") as gb:
            for nb in gb.find_assignment(ps).notebooks:
                for cell in nb.source_cells:
                    if not cell.locked:
                        cell.source = ""
            gb.db.commit()
        return db.read_bytes()


def _template_url(data: bytes) -> str:
    path = Path(tempfile.mkdtemp(prefix="vitkit-template-")) / "gradebook.db"
    path.write_bytes(data)
    return f"sqlite:///{path}"


def _cells(db_url: str, ps: str) -> set | None:
    """(notebook, grade cell, points) of ``ps`` in a gradebook, or None when it is not there."""
    from nbgrader.api import Gradebook, MissingEntry

    if db_url.startswith("sqlite:///") and not Path(db_url[len("sqlite:///"):]).is_file():
        return None
    with Gradebook(db_url, "vitkit") as gb:
        try:
            return {(nb.name, c.name, c.max_score) for nb in gb.find_assignment(ps).notebooks for c in nb.grade_cells}
        except MissingEntry:
            return None


def ensure_assignment(course: Course, ps: str) -> None:
    """Record ``ps`` in the course gradebook (cells and points) without touching ``exercises/``."""
    with tempfile.TemporaryDirectory(prefix="vitkit-assign-") as tmp:
        nbgrader(course, "generate_assignment", ps, "--force", f"--CourseDirectory.release_directory={tmp}")


# ----------------------------------------------------------------------------- running the tasks


def run_tasks(course: Course, tasks: list[tuple[str, str]], templates: dict[str, bytes], limits: Limits,
              jobs: int = 1, scheduler: str | None = None, progress: bool = True, on_result=None) -> list[GradeResult]:
    """Grade every (student, ps) in ``tasks``; ``on_result(result)`` is called in this process as each finishes.

    ``jobs == 1`` and no scheduler: in this process, one after another. Otherwise on Dask: a
    ``LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True)`` or ``Client(scheduler)``.
    """
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), unit="submission", desc="autograde", disable=not progress, file=sys.stderr)
    failures = 0
    results = []

    def done(result: GradeResult) -> None:
        nonlocal failures
        failures += result.status in ("failed", "flagged")
        results.append(result)
        if on_result:
            on_result(result)
        bar.update(1)
        bar.set_postfix(left=len(tasks) - len(results), failures=failures, last=f"{result.student}/{result.ps}")

    try:
        if jobs <= 1 and not scheduler:
            for student, ps in tasks:
                done(grade_submission(course, student, ps, limits, templates[ps]))
        else:
            _run_on_dask(course, tasks, templates, limits, jobs, scheduler, done)
    finally:
        bar.close()
    return results


def _run_on_dask(course, tasks, templates, limits, jobs, scheduler, done) -> None:
    import logging

    import dask
    from distributed import Client, LocalCluster, as_completed

    # A worker that dies takes its task with it: never hand that task to another worker (no re-runs).
    with dask.config.set({"distributed.scheduler.allowed-failures": 0, "distributed.worker.daemon": False}):
        if scheduler:
            cluster, client = None, Client(scheduler, timeout="30s")
        else:
            cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, memory_limit=0,
                                   dashboard_address=":0", silence_logs=logging.ERROR)
            client = Client(cluster)
        try:
            shared = {ps: client.scatter(data, broadcast=True) for ps, data in templates.items()}
            futures = {}
            for student, ps in tasks:
                fut = client.submit(grade_submission, course, student, ps, limits, shared[ps], retries=0, pure=False,
                                    key=f"grade-{ps}-{student}-{os.urandom(4).hex()}")
                futures[fut] = (student, ps)
            for fut in as_completed(futures):
                student, ps = futures[fut]
                try:
                    result = fut.result()
                except Exception as err:  # the worker died (KilledWorker) or could not run the task
                    result = GradeResult(student, ps, "failed",
                                         f"the grading worker died ({type(err).__name__}: {str(err)[:200]}); not re-run")
                done(result)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


# ----------------------------------------------------------------------------- writing results (coordinator only)


def record_path(course: Course, ps: str, student: str) -> Path:
    return course.results / ps / f"{student}.json"


def load_records(course: Course, ps: str) -> dict[str, dict]:
    """The stored grading records of ``ps``, by student."""
    folder = course.results / ps
    if not folder.is_dir():
        return {}
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def write_result(course: Course, result: GradeResult) -> None:
    """Store one task's result: gradebook scores, ``autograded/<student>/<ps>/``, and the record."""
    from nbgrader.api import Gradebook, MissingEntry
    from nbgrader.utils import parse_utc

    out = course.autograded / result.student / result.ps
    if out.exists():
        shutil.rmtree(out)
    if result.notebooks:
        out.mkdir(parents=True)
        for name, data in result.notebooks.items():
            (out / f"{name}.ipynb").write_bytes(data)
        if result.timestamp:
            (out / "timestamp.txt").write_text(result.timestamp)
    rec = record_path(course, result.ps, result.student)
    rec.parent.mkdir(parents=True, exist_ok=True)
    rec.write_text(json.dumps(result.to_json(), indent=1, sort_keys=True))

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
            for cell in nb.grade_cells:
                try:
                    grade = gb.find_grade(cell.name, nb.name, result.ps, result.student)
                except MissingEntry:
                    continue
                grade.auto_score = scores.get(cell.name, [0.0])[0]
                grade.needs_manual_grade = False
        gb.db.commit()


def autograde(course: Course, problem_sets: list[str] | None = None, jobs: int = 1, limits: Limits | None = None,
              scheduler: str | None = None, students: list[str] | None = None, progress: bool = True) -> list[GradeResult]:
    """Grade every submission of the problem sets (all by default) and store the results; returns them."""
    limits = limits or Limits()
    pss = course.resolve(problem_sets)
    tasks = [(s, ps) for ps in pss for s in course.students(ps) if students is None or s in students]
    if not tasks:
        print(f"nothing to grade: no submissions of {', '.join(pss)} in {course.submitted}", file=sys.stderr)
        return []
    templates = {}
    for ps in sorted({ps for _, ps in tasks}):
        templates[ps] = make_template(course, ps)
        if _cells(course.db_url, ps) != _cells(_template_url(templates[ps]), ps):
            ensure_assignment(course, ps)
    results = run_tasks(course, tasks, templates, limits, jobs, scheduler, progress, on_result=lambda r: write_result(course, r))
    return sorted(results, key=lambda r: (r.ps, r.student))
