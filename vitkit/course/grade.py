"""Releasing, and grading a class: the coordinator that schedules one task per submission.

The coordinator builds a *template* gradebook per problem set (``nbgrader generate_assignment``
into a scratch folder, once per version of the source: kept in ``autograded/.vitkit/templates/``),
records the assignment in the course gradebook (a copy of, or the rows of, that generated
gradebook when the course lacks it), sends one :func:`vitkit.course.sandbox.grade_submission` task per
(student, problem set) to a Dask ``distributed`` client (a ``LocalCluster`` of single-threaded
worker processes, or an existing scheduler), or runs them in-process with ``jobs=1``, and alone
writes the real gradebook (nbgrader's ``Gradebook`` API), ``autograded/`` and the per-submission
records that ``feedback`` and ``report`` read. Tasks are submitted with no retries and the
scheduler allows no re-runs: a task whose worker dies is graded 0 with the reason.

Fixed costs are paid once per class, here, not once per task: local workers are forked from this
process (which has imported nbgrader, vitkit and torch already), the memory limit's baseline is
measured once, and the mistake codes are read from the checks' source, so a task's own cost is
one sandboxed ``nbgrader autograde`` (see :mod:`vitkit.course.sandbox`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from vitkit.course.paths import Course
from vitkit.course.sandbox import GradeResult, Limits, grade_submission, kernel_baseline_gb


# Seconds spent by the last ``autograde`` call in the coordinator, per phase (``vitkit bench`` and profiling read it).
TIMINGS: dict[str, float] = {}


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


def _source_stamp(course: Course, ps: str) -> str:
    """A hash of everything ``generate_assignment`` reads for ``ps``: its source files, the config, nbgrader's version."""
    import hashlib

    import nbgrader

    h = hashlib.sha256(f"{nbgrader.__version__}|{ps}".encode())
    for path in [course.path("nbgrader_config.py"), *sorted(p for p in (course.source / ps).rglob("*") if p.is_file())]:
        if ".ipynb_checkpoints" in path.parts or not path.is_file():
            continue
        h.update(str(path.relative_to(course.root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:20]


def generated_gradebook(course: Course, ps: str) -> Path:
    """A gradebook holding only ``ps``'s assignment, as ``generate_assignment`` records it (solutions included).

    Made once per version of ``solutions/<ps>/`` and the config (one ``nbgrader generate_assignment``,
    several seconds) and kept in ``autograded/.vitkit/templates/``: grading the same problem set again
    reuses it.
    """
    cache = course.results / "templates" / f"{ps}-{_source_stamp(course, ps)}.db"
    if cache.is_file():
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    for old in cache.parent.glob(f"{ps}-*.db"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="vitkit-template-") as tmp:
        db = Path(tmp) / "gradebook.db"
        nbgrader(course, "generate_assignment", ps, "--force", f"--CourseDirectory.db_url=sqlite:///{db}",
                 f"--CourseDirectory.release_directory={tmp}/release")
        shutil.copy(db, cache.with_suffix(".tmp"))
        os.replace(cache.with_suffix(".tmp"), cache)
    return cache


def make_template(course: Course, ps: str) -> bytes:
    """A gradebook holding only ``ps``'s assignment (its cells, checksums and test sources), as bytes.

    Solution cells' source is blanked: the gradebook copy sits beside the student's code in the sandbox.
    """
    from nbgrader.api import Gradebook

    with tempfile.TemporaryDirectory(prefix="vitkit-template-") as tmp:
        db = Path(tmp) / "gradebook.db"
        shutil.copy(generated_gradebook(course, ps), db)
        with warnings.catch_warnings(), Gradebook(f"sqlite:///{db}", "vitkit") as gb:
            warnings.simplefilter("ignore")
            for nb in gb.find_assignment(ps).notebooks:
                for cell in nb.source_cells:
                    if not cell.locked:
                        cell.source = ""
            gb.db.commit()
        return db.read_bytes()


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
    """Record ``ps`` in the course gradebook (cells and points) without touching ``exercises/``.

    A course with no gradebook yet starts from the generated one (the same rows ``generate_assignment``
    would write); otherwise ``generate_assignment`` updates the course's own.
    """
    generated = generated_gradebook(course, ps)
    if not course.gradebook.exists():
        tmp = course.gradebook.with_name(".gradebook.db.tmp")
        shutil.copy(generated, tmp)
        os.replace(tmp, course.gradebook)
        return
    if _cells(course.db_url, ps) is None and _merge_assignment(course.gradebook, generated, ps):
        return
    with tempfile.TemporaryDirectory(prefix="vitkit-assign-") as tmp:
        nbgrader(course, "generate_assignment", ps, "--force", f"--CourseDirectory.release_directory={tmp}")


def _merge_assignment(gradebook: Path, generated: Path, ps: str) -> bool:
    """Copy the rows of a generated gradebook (one assignment, no students) into the course's; False if it cannot.

    Only for an assignment the course gradebook does not hold yet, and only between gradebooks of the
    same schema version (else nbgrader's own generate_assignment does it).
    """
    import sqlite3

    con = sqlite3.connect(gradebook, timeout=60, isolation_level=None)
    try:
        con.execute("ATTACH DATABASE ? AS gen", (str(generated),))
        version = "SELECT version_num FROM {}.alembic_version"
        if con.execute(version.format("main")).fetchall() != con.execute(version.format("gen")).fetchall():
            return False
        if con.execute("SELECT 1 FROM main.assignment WHERE name = ?", (ps,)).fetchone():
            return False
        tables = [r[0] for r in con.execute("SELECT name FROM gen.sqlite_master WHERE type = 'table' AND name != 'alembic_version'")]
        con.execute("BEGIN IMMEDIATE")
        for table in tables:
            ours = {r[1] for r in con.execute(f'PRAGMA main.table_info("{table}")')}
            cols = [r[1] for r in con.execute(f'PRAGMA gen.table_info("{table}")') if r[1] in ours]
            if not cols:
                raise sqlite3.OperationalError(f"no table {table} in the course gradebook")
            names = ", ".join(f'"{c}"' for c in cols)
            con.execute(f'INSERT OR IGNORE INTO main."{table}" ({names}) SELECT {names} FROM gen."{table}"')
        con.execute("COMMIT")
        return True
    except sqlite3.Error:
        if con.in_transaction:
            con.execute("ROLLBACK")
        return False
    finally:
        con.close()


# ----------------------------------------------------------------------------- running the tasks


def _preload() -> None:
    """Import what a grading task uses, here, before workers are forked from this process."""
    import nbgrader.api  # noqa: F401

    from vitkit.course import mistakes

    mistakes.known_codes()


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
    # Workers are forked from this process, which has already imported everything a task needs (vitkit pulls in
    # torch): spawned workers would each spend seconds importing it again, per class.
    method = "fork" if sys.platform == "linux" else "spawn"
    with dask.config.set({"distributed.scheduler.allowed-failures": 0, "distributed.worker.daemon": False,
                          "distributed.worker.multiprocessing-method": method}):
        clock = time.perf_counter()
        if scheduler:
            cluster, client = None, Client(scheduler, timeout="30s")
        else:
            cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, memory_limit=0,
                                   dashboard_address=":0", silence_logs=logging.ERROR)
            client = Client(cluster)
        TIMINGS["cluster_start"] = round(time.perf_counter() - clock, 3)
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
            clock = time.perf_counter()
            client.close()
            if cluster is not None:
                cluster.close()
            TIMINGS["cluster_close"] = round(time.perf_counter() - clock, 3)


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
    TIMINGS.clear()
    clock = time.perf_counter()
    templates = {}
    needed = sorted({ps for _, ps in tasks})
    if len(needed) > 1 and jobs > 1:  # generate_assignment runs are independent subprocesses: as many at once as jobs
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(jobs, len(needed))) as pool:
            list(pool.map(lambda ps: generated_gradebook(course, ps), needed))
    for ps in needed:
        templates[ps] = make_template(course, ps)
        if _cells(course.db_url, ps) != _cells(f"sqlite:///{generated_gradebook(course, ps)}", ps):
            ensure_assignment(course, ps)
    if limits.baseline_gb is None:  # measured (or read from its cache) once here, not in every task
        limits = dataclasses.replace(limits, baseline_gb=kernel_baseline_gb())
    _preload()
    TIMINGS["prepare"] = round(time.perf_counter() - clock, 3)  # templates, course gradebook, imports
    clock = time.perf_counter()
    results = run_tasks(course, tasks, templates, limits, jobs, scheduler, progress, on_result=lambda r: write_result(course, r))
    TIMINGS["grade"] = round(time.perf_counter() - clock, 3)  # the tasks, with cluster start and close
    return sorted(results, key=lambda r: (r.ps, r.student))
