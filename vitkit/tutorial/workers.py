"""Training runs side by side: the tutorial's runs do not depend on each other (but for a teacher and its student),
so on a CPU they go to worker processes of one thread each rather than one after another in this process.

Small models use two threads badly: on the course's 2-core CPU, two ``vit_mnist`` runs of 456 steps in two
processes of one thread took 38 s together, the same run with both threads in one process 29 s, so the two
processes train 1.5 times as many runs per second. A GPU trains in this process (``workers`` 1).

A :class:`Job` is a chain of runs on one share of the data: a teacher (:data:`TEACHERS`) comes before its students,
in the same process. Results come back in the order of the jobs whatever the order they finish in, and each run's
numbers depend on its seed only, not on which worker ran it or when.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from vitkit.data import Dataset
from vitkit.tutorial.plan import TEACHERS, Plan, run_budget

__all__ = ["Job", "chains", "run_jobs", "worker_layout"]


@dataclass
class Job:
    """Runs on one share of the data, one after another: ``arms`` are (label, preset name or (seed) -> model)."""

    arms: list[tuple[str, object]]
    data: Dataset
    seed: int
    full_train_images: int | None = None  # the full split's size, so that a share gets as many steps
    validate: bool = True  # per-epoch validation (False: the history's validation columns are NaN)
    keep: set[str] = field(default_factory=set)  # labels whose trained model comes back (the others: None)
    teachers: dict = field(default_factory=dict)  # {label: trained model} teachers made earlier, for students here
    progress: bool = False  # fit's progress bar per epoch


def chains(labels) -> list[list[str]]:
    """``labels`` grouped into chains that train one after another: each teacher with its students, the rest alone.

    ``["vit_mnist", "deit_mnist", "resnet_mnist"]`` -> ``[["resnet_mnist", "deit_mnist"], ["vit_mnist"]]``.
    """
    labels = list(labels)
    for student, teacher in TEACHERS.items():
        if student in labels and teacher not in labels:
            raise ValueError(f"{student} learns from {teacher}; add {teacher!r} to the models trained with it")
    out = []
    for label in labels:
        if label in TEACHERS:
            continue  # trained right after its teacher
        students = [s for s in labels if TEACHERS.get(s) == label]
        out.append([label, *students])
    return sorted(out, key=len, reverse=True)  # the longest chains first, so that no worker waits for one at the end


def worker_layout(p: Plan, device: torch.device) -> tuple[int, int]:
    """(worker processes, threads each) for plan ``p`` on ``device``: (1, this process's threads) on a GPU or when
    ``p.workers`` is 1; else ``p.workers`` (default: the usable cores, at most 4) sharing the cores."""
    if device.type != "cpu":
        return 1, torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = min(cores, 4) if p.workers is None else p.workers
    if workers < 1:
        raise ValueError(f"Plan.workers must be at least 1 (1: train in this process), got {p.workers}")
    return workers, max(1, cores // workers)


def _start_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    if hasattr(signal, "SIGTERM") and os.path.exists("/proc/self"):  # Linux: die with the notebook's kernel
        try:
            import ctypes

            ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _run_job(job: Job, p: Plan, device) -> list[tuple[str, nn.Module | None, object]]:
    """Train ``job``'s arms in order; [(label, model or None, Run)]."""
    from vitkit.tutorial.run import train_model

    trained, out = dict(job.teachers), []
    for label, make in job.arms:
        teacher = trained.get(TEACHERS[label]) if label in TEACHERS else None
        model = make if isinstance(make, str) else make(job.seed)
        model, run = train_model(
            model,
            job.data,
            p,
            full_train_images=job.full_train_images,
            validate=job.validate,
            label=label,
            device=device,
            teacher=teacher,
            seed=job.seed,
            progress=job.progress,
            budget=run_budget(label, p),
        )
        trained[label] = model
        out.append((label, model if label in job.keep else None, run))
    return out


def run_jobs(jobs: list[Job], p: Plan, device: torch.device, on_done: Callable[[list], None] = lambda r: None) -> list:
    """Run ``jobs`` (in worker processes on a CPU, see :func:`worker_layout`); their results in the jobs' order.

    ``on_done(result)`` is called here, in this process, as each job finishes (for printing and progress).
    """
    workers, threads = worker_layout(p, device)
    results: list = [None] * len(jobs)
    if workers == 1 or len(jobs) == 1:
        for i, job in enumerate(jobs):
            results[i] = _run_job(job, p, device)
            on_done(results[i])
        return results
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads or locks copied from this one
    pool = ProcessPoolExecutor(
        min(workers, len(jobs)), mp_context=context, initializer=_start_worker, initargs=(threads,)
    )
    try:
        futures = {pool.submit(_run_job, job, p, device): i for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            on_done(results[futures[future]])
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        for process in list(getattr(pool, "_processes", {}).values()):  # stop the runs in flight too
            process.terminate()
        raise
    pool.shutdown()
    return results
