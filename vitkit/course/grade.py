"""Grading a class: the coordinator that schedules one task per submission.

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

Releasing and the template gradebooks are in :mod:`vitkit.course.assignment`, the records and gradebook
rows a result leaves in :mod:`vitkit.course.records`; their public names are importable from here too.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

from vitkit.course.assignment import (
    _cells,
    ensure_assignment,
    generated_gradebook,
    make_template,
    nbgrader,
    release,
    release_differences,
)
from vitkit.course.confine import kernel_baseline_gb
from vitkit.course.paths import Course
from vitkit.course.records import (
    decide,
    load_records,
    manual_grades,
    pending,
    record_path,
    write_result,
    written_answers,
)
from vitkit.course.sandbox import GradeResult, Limits, grade_submission

__all__ = [
    "TIMINGS",
    "BatchStopped",
    "STOP_AFTER",
    "autograde",
    "run_tasks",
    # from vitkit.course.assignment
    "nbgrader",
    "release",
    "release_differences",
    "generated_gradebook",
    "make_template",
    "ensure_assignment",
    # from vitkit.course.records
    "record_path",
    "load_records",
    "write_result",
    "written_answers",
    "manual_grades",
    "decide",
    "pending",
]

# Seconds spent by the last ``autograde`` call in the coordinator, per phase (``vitkit bench`` and profiling read it).
TIMINGS: dict[str, float] = {}


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
