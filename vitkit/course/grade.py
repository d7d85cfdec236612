"""Releasing, and grading a class: the coordinator that schedules one task per submission.

The coordinator builds a *template* gradebook per problem set (``nbgrader generate_assignment``
into a scratch folder, once per version of the source: kept in ``autograded/.vitkit/templates/``),
records the assignment in the course gradebook (a copy of, or the rows of, that generated
gradebook when the course lacks it), sends one :func:`vitkit.course.sandbox.grade_submission` task per
(student, problem set) to a Dask ``distributed`` client (a ``LocalCluster`` of single-threaded
worker processes, or an existing scheduler), or runs them in-process with ``jobs=1``, and alone
writes the real gradebook (nbgrader's ``Gradebook`` API), ``autograded/`` and the per-submission
records that ``feedback`` and ``report`` read. Tasks are submitted with no retries and the
scheduler allows no re-runs: a task whose worker dies is *not graded* (the grader's failure, never a
student's 0) and is graded again by the next ``autograde``.

Batches resume: a submission's record is written last, after its gradebook rows, and names the hash
of the submitted files; ``autograde`` skips every submission whose record holds a grade for the same
files (``force=True`` grades everything again). When the first submissions of a batch all fail for
the same reason outside the students' notebooks, the batch stops with that reason.

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

from vitkit.course.confine import kernel_baseline_gb
from vitkit.course.paths import Course
from vitkit.course.sandbox import GradeResult, Limits, fingerprint, grade_submission

# Seconds spent by the last ``autograde`` call in the coordinator, per phase (``vitkit bench`` and profiling read it).
TIMINGS: dict[str, float] = {}


def nbgrader(course: Course, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run an nbgrader command in the course folder with the venv's ``bin/`` first on PATH (nbgrader calls alembic)."""
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run(
        [os.path.join(bindir, "nbgrader"), *args], cwd=course.root, env=env, capture_output=True, text=True
    )
    if check and proc.returncode != 0:
        raise SystemExit(
            f"nbgrader {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
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
            names |= {
                p.relative_to(committed)
                for p in committed.rglob("*")
                if p.is_file() and ".ipynb_checkpoints" not in p.parts
            }
        return sorted(
            str(n)
            for n in names
            if not (fresh / n).is_file()
            or not (committed / n).is_file()
            or _content(fresh / n) != _content(committed / n)
        )


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
        nbgrader(
            course,
            "generate_assignment",
            ps,
            "--force",
            f"--CourseDirectory.db_url=sqlite:///{db}",
            f"--CourseDirectory.release_directory={tmp}/release",
        )
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

    if db_url.startswith("sqlite:///") and not Path(db_url[len("sqlite:///") :]).is_file():
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
        tables = [
            r[0]
            for r in con.execute(
                "SELECT name FROM gen.sqlite_master WHERE type = 'table' AND name != 'alembic_version'"
            )
        ]
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


class BatchStopped(RuntimeError):
    """The first submissions of a batch all failed for one reason outside the students' notebooks."""


STOP_AFTER = 3  # identical grader failures at the start of a batch that stop it


def run_tasks(
    course: Course,
    tasks: list[tuple[str, str]],
    templates: dict[str, bytes],
    limits: Limits,
    jobs: int = 1,
    scheduler: str | None = None,
    progress: bool = True,
    on_result=None,
) -> list[GradeResult]:
    """Grade every (student, ps) in ``tasks``; ``on_result(result)`` is called in this process as each finishes.

    ``jobs == 1`` and no scheduler: in this process, one after another. Otherwise on Dask: a
    ``LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True)`` or ``Client(scheduler)``.
    Raises :class:`BatchStopped` when the first ``STOP_AFTER`` results are all the same grader failure
    (what was graded before is stored; the rest is left for the next run).
    """
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), unit="submission", desc="autograde", disable=not progress, file=sys.stderr)
    counts = {"done": 0, "failed": 0, "not graded": 0}
    results = []

    def done(result: GradeResult) -> None:
        results.append(result)
        if on_result:
            on_result(result)
        counts["not graded" if result.status == "error" else "failed" if result.status == "failed" else "done"] += 1
        bar.update(1)
        bar.set_postfix(counts, left=len(tasks) - len(results))
        first = results[:STOP_AFTER]
        if (
            len(results) == STOP_AFTER <= len(tasks) - 1
            and all(r.status == "error" for r in first)
            and len({_reason_kind(r.reason) for r in first}) == 1
        ):
            raise BatchStopped(
                f"the first {STOP_AFTER} submissions were not graded, each for the same reason: "
                f"{first[0].reason}. Fix it (`vitkit course doctor` helps) and run autograde again: "
                f"it continues with what is not graded yet."
            )

    try:
        if jobs <= 1 and not scheduler:
            for student, ps in tasks:
                done(grade_submission(course, student, ps, limits, templates[ps]))
        else:
            _run_on_dask(course, tasks, templates, limits, jobs, scheduler, done)
    finally:
        bar.close()
    return results


def _reason_kind(reason: str) -> str:
    """A reason without the names and numbers that differ between students."""
    import re

    return re.sub(r"[0-9]+|/\S+", "#", reason)[:200]


def _run_on_dask(course, tasks, templates, limits, jobs, scheduler, done) -> None:
    import logging

    import dask
    from distributed import Client, LocalCluster, as_completed

    # A worker that dies takes its task with it: never hand that task to another worker (no re-runs).
    # Workers are forked from this process, which has already imported everything a task needs (vitkit pulls in
    # torch): spawned workers would each spend seconds importing it again, per class.
    method = "fork" if sys.platform == "linux" else "spawn"
    with dask.config.set(
        {
            "distributed.scheduler.allowed-failures": 0,
            "distributed.worker.daemon": False,
            "distributed.worker.multiprocessing-method": method,
        }
    ):
        clock = time.perf_counter()
        if scheduler:
            cluster, client = None, Client(scheduler, timeout="30s")
        else:
            cluster = LocalCluster(
                n_workers=jobs,
                threads_per_worker=1,
                processes=True,
                memory_limit=0,
                dashboard_address=":0",
                silence_logs=logging.ERROR,
            )
            client = Client(cluster)
        TIMINGS["cluster_start"] = round(time.perf_counter() - clock, 3)
        try:
            shared = {ps: client.scatter(data, broadcast=True) for ps, data in templates.items()}
            futures = {}
            for student, ps in tasks:
                fut = client.submit(
                    grade_submission,
                    course,
                    student,
                    ps,
                    limits,
                    shared[ps],
                    retries=0,
                    pure=False,
                    key=f"grade-{ps}-{student}-{os.urandom(4).hex()}",
                )
                futures[fut] = (student, ps)
            for fut in as_completed(futures):
                student, ps = futures[fut]
                try:
                    result = fut.result()
                except Exception as err:  # the worker died (KilledWorker) or could not run the task
                    result = GradeResult(
                        student, ps, "error", f"the grading worker was lost ({type(err).__name__}: {str(err)[:200]})"
                    )
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


def autograde(
    course: Course,
    problem_sets: list[str] | None = None,
    jobs: int = 1,
    limits: Limits | None = None,
    scheduler: str | None = None,
    students: list[str] | None = None,
    progress: bool = True,
    force: bool = False,
    doctor: bool = True,
) -> list[GradeResult]:
    """Grade the submissions of the problem sets (all by default) not graded yet, store the results, return them.

    ``force``: grade again what is already graded. ``doctor``: check first that grading can work here
    (:mod:`vitkit.course.doctor`) and refuse with the reason when it cannot.
    """
    limits = limits or Limits()
    pss = course.resolve(problem_sets)
    every = [(s, ps) for ps in pss for s in course.students(ps) if students is None or s in students]
    if not every:
        print(f"nothing to grade: no submissions of {', '.join(pss)} in {course.submitted}", file=sys.stderr)
        return []
    tasks = pending(course, every, force)
    if len(tasks) < len(every):
        print(
            f"{len(every) - len(tasks)} of {len(every)} submissions already graded (unchanged); "
            f"grading the other {len(tasks)}{'' if tasks else ''} (--force grades all again)",
            file=sys.stderr,
        )
    if not tasks:
        return []
    if doctor:
        from vitkit.course.doctor import require

        require(course, scheduler=scheduler)
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
    results = run_tasks(
        course, tasks, templates, limits, jobs, scheduler, progress, on_result=lambda r: write_result(course, r)
    )
    TIMINGS["grade"] = round(time.perf_counter() - clock, 3)  # the tasks, with cluster start and close
    return sorted(results, key=lambda r: (r.ps, r.student))
