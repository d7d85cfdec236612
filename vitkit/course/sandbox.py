"""Grading one submission: a plain function, run by the coordinator in-process or as a Dask task.

:func:`grade_submission` runs real ``nbgrader autograde`` for one student in a private working copy
(a folder of its own under :func:`vitkit.course.confine.grading_base`): ``grader/`` holds the course
copy nbgrader works in (the student's submitted files, the non-notebook files of the source, a copy
of a *template* gradebook with the assignment's cells, solution sources blanked), ``kernel/`` the
student's kernel's own folder. Nothing of the real course is written: the function returns a
:class:`GradeResult` and the coordinator alone writes the gradebook, ``autograded/`` and ``feedback/``.

The student's kernel runs confined (:mod:`vitkit.course.confine`): it cannot reach ``grader/``, the
course, or the nbgrader process, so the scores nbgrader writes to the gradebook copy come from the
outputs it received and nothing else; everything the kernel started is dead before they are read.

What went wrong is told apart by who caused it:

- ``graded``: nbgrader ran the notebook; points as earned (cells that timed out or a kernel that died
  midway cost what they cost, with the reason). The static scan's findings (:mod:`vitkit.course.scan`)
  ride along as ``flags`` for the instructor to accept or zero; they never stop the grading.
- ``failed``: the submission itself could not be graded (not a notebook, its kernel died before any
  test, it ran past the wall-clock limit): 0 points, with the reason.
- ``error``: *the grader* failed (the kernel never started, nbgrader crashed before the first cell,
  the working copy could not be made, the worker was lost): **not graded**, no points recorded,
  graded again by the next ``autograde``.
- ``missing``: none of the problem set's notebooks was submitted.

Reading back what nbgrader left (its log's phases, the gradebook copy, the autograded notebooks, whose
failure it was) is in :mod:`vitkit.course.autograded`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vitkit.course import confine
from vitkit.course.autograded import _log_phases, _read_results
from vitkit.course.execute import FIRST_CELL, config_text
from vitkit.course.mistakes import first_line
from vitkit.course.paths import Course
from vitkit.course.scan import scan_for_tampering, student_sources

# ----------------------------------------------------------------------------- the result record


@dataclass
class Limits:
    """What one grading task may use."""

    timeout: int = 300  # seconds per cell (nbgrader's Execute.timeout)
    memory_gb: float = 4.0  # address space of the kernel (RLIMIT_AS), on top of what its libraries map
    output_mb: float = 4.0  # outputs kept per cell; the rest is dropped with a note
    wall: int | None = None  # seconds for the whole task; default 3 × timeout + 120
    # Address space the kernel's libraries map before the notebook allocates anything (torch's CUDA build maps
    # over 3 GB of shared objects); None: measured once on this machine (:func:`confine.kernel_baseline_gb`).
    baseline_gb: float | None = None

    @property
    def wall_seconds(self) -> int:
        return self.wall if self.wall is not None else 3 * self.timeout + 120

    @property
    def address_space(self) -> int:
        """RLIMIT_AS in bytes: ``memory_gb`` on top of what the libraries of a kernel map."""
        base = self.baseline_gb if self.baseline_gb is not None else confine.kernel_baseline_gb()
        return int((self.memory_gb + base) * 2**30)


STATUSES = ("graded", "failed", "error", "missing")


@dataclass
class GradeResult:
    """What grading one (student, problem set) produced; plain data, safe to send between processes."""

    student: str
    ps: str
    status: str  # one of STATUSES (see the module docstring)
    reason: str = ""  # why it failed or was not graded, or what went wrong in some cells (timeouts, kernel death)
    # per notebook, per autograded cell: [auto_score, max_score]
    scores: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    # per notebook, per manually graded answer (a written answer): [auto_score, max_score]; auto_score None: a person
    # must grade it, 0.0: left unanswered (nbgrader gives 0 without a person). Never in ``scores`` or ``score``.
    manual: dict[str, dict[str, list]] = field(default_factory=dict)
    # per notebook, per grade cell: [(code, message)]; code "other" for failures the catalogue doesn't name
    mistakes: dict[str, dict[str, list[list[str]]]] = field(default_factory=dict)
    notebooks: dict[str, bytes] = field(default_factory=dict)  # autograded notebooks (name -> .ipynb bytes)
    flags: list[str] = field(default_factory=list)  # the static scan's findings, for the instructor
    fingerprint: str = ""  # hash of the submitted files: a later autograde skips an unchanged, graded submission
    timestamp: str | None = None
    seconds: float = 0.0
    sandbox: str = ""
    log_tail: str = ""
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase of this task (profiling, `vitkit bench`)

    @property
    def score(self) -> float:
        return sum(s for cells in self.scores.values() for s, _ in cells.values())

    @property
    def graded(self) -> bool:
        """Whether this result holds a grade (anything but the grader's own failure)."""
        return self.status != "error"

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("notebooks")
        return data


def fingerprint(folder: Path) -> str:
    """A hash of every file under ``folder`` (names and bytes): what the student handed in."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:20]


# ----------------------------------------------------------------------------- the task


def grade_submission(course: Course, student: str, ps: str, limits: Limits, template: bytes) -> GradeResult:
    """Autograde ``student``'s submission of ``ps``; never raises.

    ``template``: the bytes of a gradebook holding the assignment (``vitkit.course.assignment.make_template``).
    The real course is only read: a worker on another machine needs the course folder mounted.
    """
    start = time.perf_counter()
    result = GradeResult(student, ps, "graded")
    try:
        _grade(course, student, ps, limits, template, result)
    except Exception as err:  # a bug of ours or the platform's: not graded, with the reason; never a student's 0
        result.status, result.reason = "error", f"grading error: {type(err).__name__}: {first_line(err)}"
        result.scores, result.notebooks, result.manual = {}, {}, {}
    result.seconds = round(time.perf_counter() - start, 3)
    return result


# The nbgrader process: nbgrader's own CLI, minus the one import that costs more than the rest of its start-up
# together (jsonschema's optional IRI format checker builds a grammar on import; nbformat never uses it).
_NBGRADER_MAIN = (
    "import sys; sys.modules.setdefault('rfc3987_syntax', None)\n"
    "from nbgrader.apps.nbgraderapp import main\n"
    "sys.argv[0] = 'nbgrader'; sys.exit(main())"
)


def _read_notebook(text: str) -> dict:
    """A submitted notebook as a dict (plain JSON for v4; nbformat converts older versions)."""
    nb = json.loads(text)
    if not isinstance(nb, dict) or not isinstance(nb.get("cells", []), list):
        raise ValueError("not a notebook: no list of cells")
    if nb.get("nbformat", 4) < 4 or "cells" not in nb:
        import nbformat

        nb = nbformat.reads(text, as_version=4)
    return nb


def _grade(course: Course, student: str, ps: str, limits: Limits, template: bytes, result: GradeResult) -> None:
    clock = time.perf_counter()

    def phase(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        result.phases[name] = round(result.phases.get(name, 0.0) + now - clock, 3)
        clock = now

    submitted = course.submitted / student / ps
    expected = course.notebooks(ps)
    if (submitted / "timestamp.txt").is_file():
        result.timestamp = (submitted / "timestamp.txt").read_text().strip()
    present = [n for n in expected if (submitted / f"{n}.ipynb").is_file()]
    if not present:
        result.status, result.reason = "missing", f"no {', '.join(n + '.ipynb' for n in expected)} in {submitted}"
        return
    result.fingerprint = fingerprint(submitted)
    problems = []
    for name in present:
        try:
            nb = _read_notebook((submitted / f"{name}.ipynb").read_text(errors="replace"))
        except Exception as err:
            problems.append(f"{name}.ipynb is not a notebook ({type(err).__name__}: {first_line(err)[:200]})")
            continue
        result.flags += [f"{name}.ipynb {f}" for f in scan_for_tampering(student_sources(nb))]
    phase("scan")
    if problems:
        result.status, result.reason = "failed", "; ".join(problems)
        return

    level = confine.isolation()
    work = Path(tempfile.mkdtemp(prefix="task-", dir=confine.grading_base()))
    uid = confine.claim_uid() if level in ("uid+ns", "uid") else None
    try:
        grader, home = work / "grader", work / "kernel"
        root = grader / "course"
        shutil.copytree(submitted, root / "submitted" / student / ps)
        shutil.copytree(
            course.source / ps, root / "source" / ps, ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints")
        )
        (root / "gradebook.db").write_bytes(template)
        (root / "nbgrader_config.py").write_text(
            config_text(str(root), int(limits.timeout), int(limits.output_mb * 2**20), ipc=str(home / "ipc"))
        )
        kernel = confine.Kernel.prepare(work, level, course.root, limits.address_space, uid)
        result.sandbox = confine.describe(level, uid, limits.memory_gb)
        venv_bin = str(Path(sys.executable).parent)
        env = {
            "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(grader / "home"),
            "LANG": "C.UTF-8",
            "JUPYTER_RUNTIME_DIR": str(grader / "runtime"),
            "JUPYTER_CONFIG_DIR": str(grader / "home"),
            "JUPYTER_PATH": str(grader / "jupyter"),
            "JUPYTER_DATA_DIR": str(grader / "jupyter"),
            "PYTHONDONTWRITEBYTECODE": "1",
            "JUPYTER_PLATFORM_DIRS": "1",
            "NBGRADER_EXECUTION": "autograde",
            "TMPDIR": str(grader / "home"),
        }
        cmd = [
            sys.executable,
            "-c",
            _NBGRADER_MAIN,
            "autograde",
            ps,
            "--student",
            student,
            "--force",
            "--log-level=INFO",
        ]
        phase("setup")
        log_path = grader / "nbgrader.log"
        proc = None
        with open(log_path, "wb") as log:
            try:
                proc = subprocess.Popen(
                    cmd,
                    cwd=root,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
                try:
                    proc.wait(timeout=limits.wall_seconds)
                    timed_out = False
                except subprocess.TimeoutExpired:
                    timed_out = True
            finally:
                if proc is not None:
                    _kill_group(proc)
                if uid is not None:
                    confine.kill_uid(uid)  # everything the student's uid started is dead before anything is read
        phase("nbgrader")
        log_text = log_path.read_bytes()[-20000:].decode(errors="replace")
        result.log_tail = log_text[-4000:]
        _log_phases(log_text, result)
        ran = FIRST_CELL in log_text
        if timed_out:
            if ran:
                result.status = "failed"
                result.reason = f"grading took longer than the {limits.wall_seconds} s wall-clock limit and was stopped"
            else:
                result.status, result.reason = (
                    "error",
                    f"nbgrader did not start the notebook within {limits.wall_seconds} s",
                )
            return
        _read_results(
            root, student, ps, expected, result, log_text, proc.returncode, kernel_started=kernel.started.exists()
        )
        phase("read")
    finally:
        if uid is not None:
            confine.release_uid(uid)
        if os.environ.get("VITKIT_KEEP_SANDBOX"):  # debugging the sandbox itself: keep the working copy
            print(f"vitkit: kept sandbox {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
        phase("cleanup")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
