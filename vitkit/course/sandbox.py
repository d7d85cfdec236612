"""Grading one submission: a plain function, run by the coordinator in-process or as a Dask task.

:func:`grade_submission` runs real ``nbgrader autograde`` for one student in a throwaway working
copy: a fresh folder holding only the student's submitted files, the non-notebook files of the
source, and a copy of a *template* gradebook (the assignment's cells, with solution sources
blanked). Nothing of the real course is written: the function returns a :class:`GradeResult`
(scores per grade cell, mistake codes per question, the failure reason, the autograded notebook
bytes) and the coordinator alone writes the gradebook and the autograded/feedback folders.

The nbgrader process and the student's kernel run confined (see :func:`confinement`):

- as root: in new network and PID namespaces (``unshare``; the namespace has only a loopback
  interface, for the kernel's sockets to nbgrader) as a throwaway unprivileged uid (``setpriv``), so
  the course folder, the gradebook, other students' work and ``solutions/`` are read-only to it;
- not root, where unprivileged user namespaces are allowed: in a user namespace with new network,
  PID and mount namespaces, the course folder bind-mounted read-only;
- otherwise unconfined, and the result says so (``GradeResult.sandbox``).

Always: nbgrader's per-cell timeout, an address-space limit (``prlimit --as``: ``--memory`` GB on top
of what a kernel's libraries map, measured once per machine, see :func:`kernel_baseline_gb`) and file-size,
process-count and core limits, an output cap per cell, a wall-clock limit for the whole task, and
at the end every process of the task is killed (the PID namespace dies with its first process;
the throwaway uid's processes and the process group are killed too), so nothing survives.
"""

from __future__ import annotations

import ast
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vitkit.course.mistakes import first_line, known_codes, mistakes_in_cell
from vitkit.course.paths import Course
from vitkit.course.scan import scan_for_tampering, student_sources

# ----------------------------------------------------------------------------- the result record


@dataclass
class Limits:
    """What one grading task may use."""

    timeout: int = 300  # seconds per cell (nbgrader's Execute.timeout)
    memory_gb: float = 4.0  # address space of nbgrader and the kernel (RLIMIT_AS)
    output_mb: float = 4.0  # outputs kept per cell; the rest is dropped with a note
    wall: int | None = None  # seconds for the whole task; default 3 × timeout + 120
    # Address space the kernel's libraries map before the notebook allocates anything (torch's CUDA build maps
    # over 3 GB of shared objects); None: measured once on this machine (:func:`kernel_baseline_gb`).
    baseline_gb: float | None = None

    @property
    def wall_seconds(self) -> int:
        return self.wall if self.wall is not None else 3 * self.timeout + 120

    @property
    def address_space(self) -> int:
        """RLIMIT_AS in bytes: ``memory_gb`` on top of what the libraries of a kernel map."""
        base = self.baseline_gb if self.baseline_gb is not None else kernel_baseline_gb()
        return int((self.memory_gb + base) * 2**30)


@dataclass
class GradeResult:
    """What grading one (student, problem set) produced; plain data, safe to send between processes."""

    student: str
    ps: str
    status: str  # "graded", "failed" (nothing could run: score 0), "flagged" (tampering: 0), "missing"
    reason: str = ""  # why it failed, was flagged, or what went wrong in some cells (timeouts, kernel death)
    # per notebook, per grade cell: [auto_score, max_score]
    scores: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    # per notebook, per grade cell: [(code, message)]; code "other" for failures the catalogue doesn't name
    mistakes: dict[str, dict[str, list[list[str]]]] = field(default_factory=dict)
    notebooks: dict[str, bytes] = field(default_factory=dict)  # autograded notebooks (name -> .ipynb bytes)
    timestamp: str | None = None
    seconds: float = 0.0
    sandbox: str = ""
    log_tail: str = ""
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase of this task (profiling, `vitkit bench`)

    @property
    def score(self) -> float:
        return sum(s for cells in self.scores.values() for s, _ in cells.values())

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("notebooks")
        return data


# ----------------------------------------------------------------------------- the memory limit's baseline

_BASELINE: float | None = None
_BASELINE_PROBE = ("import torch, numpy, matplotlib.pyplot, ipykernel.ipkernel\n"
                   "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmSize:')))")
BASELINE_HEADROOM_GB = 1.0  # thread stacks, malloc arenas, later imports of a kernel


def kernel_baseline_gb() -> float:
    """GB of address space a kernel maps before the notebook's own allocations, plus headroom.

    RLIMIT_AS counts mapped files: a CUDA build of torch maps over 3 GB of shared objects on import
    and allocates almost none of it, so a plain ``--as=4G`` leaves a kernel less than 1 GB and
    oneDNN fails inside ``nn.Conv2d`` (``could not create a primitive``). Measured once per
    interpreter and torch install (a subprocess that imports what kernels import), cached in the
    temp folder.
    """
    global _BASELINE
    if _BASELINE is not None:
        return _BASELINE
    import hashlib
    import importlib.util

    spec = importlib.util.find_spec("torch")
    stamp = f"{sys.executable}|{spec.origin if spec else ''}|{os.stat(spec.origin).st_mtime if spec else ''}"
    cache = Path(tempfile.gettempdir()) / f".vitkit-baseline-{hashlib.sha1(stamp.encode()).hexdigest()[:12]}"
    try:
        _BASELINE = float(cache.read_text())
        return _BASELINE
    except (OSError, ValueError):
        pass
    kb = 0
    try:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2", "MPLBACKEND": "Agg"}
        out = subprocess.run([sys.executable, "-c", _BASELINE_PROBE], capture_output=True, text=True, timeout=300, env=env)
        kb = int(out.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        kb = 4 * 2**20  # could not measure: assume a CUDA build of torch
    _BASELINE = round(kb / 2**20 + BASELINE_HEADROOM_GB, 2)
    try:
        cache.write_text(str(_BASELINE))
    except OSError:
        pass
    return _BASELINE


# ----------------------------------------------------------------------------- confinement

_UID_BASE, _UID_SLOTS = 61000, 2000
_lock_files: dict[int, object] = {}


def _claim_uid() -> int:
    """A throwaway uid no other grading task on this machine is using now (an flock per uid)."""
    start = os.getpid() % _UID_SLOTS
    for k in range(_UID_SLOTS):
        uid = _UID_BASE + (start + k) % _UID_SLOTS
        f = open(f"/tmp/.vitkit-sandbox-{uid}.lock", "a")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        _lock_files[uid] = f
        return uid
    raise RuntimeError("no free sandbox uid: more than 2000 grading tasks at once on this machine?")


def _release_uid(uid: int) -> None:
    f = _lock_files.pop(uid, None)
    if f is not None:
        f.close()


def _userns_works() -> bool:
    try:
        return subprocess.run(["unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--mount", "true"],
                              capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def confinement(uid: int | None, limits: Limits, protect: list[str], stage: str | None = None) -> tuple[list[str], str]:
    """The command prefix that confines a grading run, and a one-line description of it.

    ``uid``: the throwaway uid to run as (root only). ``protect``: folders to make read-only when we
    cannot switch users (bind mounts in a private mount namespace). ``stage``: an empty folder used
    as a mount point when the interpreter must be made visible to the throwaway uid.
    """
    mem = limits.address_space
    rlimits = ["prlimit", f"--as={mem}", f"--fsize={2**30}", "--core=0", "--nofile=1024", "--"]
    if os.geteuid() == 0 and shutil.which("unshare") and shutil.which("setpriv"):
        ns = ["unshare", "--net", "--pid", "--fork", "--kill-child"]
        # Loopback only, for the kernel's sockets to nbgrader; the namespace has no other interface.
        steps = ["ip link set lo up"] if shutil.which("ip") else []
        hidden = _untraversable_ancestor(sys.base_prefix)
        if hidden and stage:
            # The interpreter lives where the throwaway uid cannot look (e.g. /root/.pyenv): in a private mount
            # namespace, cover that folder with an empty tmpfs holding only the interpreter, read-only.
            prefix = _shq(sys.base_prefix)
            steps.append(f"mount --bind {prefix} {_shq(stage)} && mount -t tmpfs -o mode=0755,size=1m vitkit {_shq(hidden)} && "
                         f"mkdir -p {prefix} && mount --bind {_shq(stage)} {prefix} && mount -o remount,bind,ro {prefix}")
            ns.append("--mount")
        if steps:
            ns += ["sh", "-c", " && ".join(steps) + " && exec \"$@\"", "sh"]
        drop = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs", "--inh-caps=-all"]
        rlimits.insert(1, f"--nproc={512}")  # per uid, and the uid is this task's alone
        return ns + drop + rlimits, f"uid {uid}, no network, own PID namespace, {limits.memory_gb:g} GB (+{mem / 2**30 - limits.memory_gb:.1f} GB mapped)"
    if shutil.which("unshare") and _userns_works():
        binds = " && ".join(f"mount --bind {p} {p} && mount -o remount,bind,ro {p}" for p in map(_shq, protect))
        lo = "ip link set lo up && " if shutil.which("ip") else ""
        ns = ["unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child", "--mount",
              "sh", "-c", f"{lo}{binds} && exec \"$@\"", "sh"]
        return ns + rlimits, f"user namespace, course read-only, no network, {limits.memory_gb:g} GB"
    return rlimits, f"UNCONFINED (not root and no user namespaces): limits only, {limits.memory_gb:g} GB"


def _untraversable_ancestor(path: str) -> str | None:
    """The outermost folder on ``path`` that others may not enter (``/root`` for a pyenv under it), or None."""
    parts = Path(path).resolve().parts
    for i in range(2, len(parts) + 1):
        folder = os.path.join(*parts[:i])
        if not os.stat(folder).st_mode & 0o001:
            return folder
    return None


def _shq(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _kill_uid(uid: int) -> None:
    """SIGKILL every process running as ``uid`` (a background process a student left behind)."""
    for _ in range(3):
        alive = False
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                if os.stat(f"/proc/{pid}").st_uid == uid:
                    os.kill(int(pid), signal.SIGKILL)
                    alive = True
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                pass
        if not alive:
            return
        time.sleep(0.05)


# ----------------------------------------------------------------------------- the sandbox's nbgrader config

_SANDBOX_CONFIG = '''\
# Written by vitkit.course.sandbox for one grading task; nothing here is the course's own config.
import os
from nbgrader.preprocessors import Execute, IgnorePattern, LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbformat.v4 import output_from_msg

MAX_OUTPUT = {max_output}


class CappedExecute(Execute):
    """nbgrader's Execute keeping at most MAX_OUTPUT bytes of outputs per cell (errors always kept)."""

    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] == "error":
            return super().output(outs, msg, display_id, cell_index)
        used = getattr(self, "_vk_used", {{}})
        self._vk_used = used
        size = len(str(msg.get("content", "")))
        if used.get(cell_index, 0) + size > MAX_OUTPUT:
            if used.get(cell_index, 0) <= MAX_OUTPUT:
                outs.append(output_from_msg({{"msg_type": "stream", "header": {{"msg_type": "stream"}},
                    "content": {{"name": "stderr", "text": "\\n[vitkit: output beyond %d MB dropped]\\n" % (MAX_OUTPUT >> 20)}}}}))
            used[cell_index] = MAX_OUTPUT + 1
            return None
        used[cell_index] = used.get(cell_index, 0) + size
        return super().output(outs, msg, display_id, cell_index)


c = get_config()
c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = "vitkit"
c.CourseDirectory.source_directory = "source"
c.Execute.timeout = {timeout}
CappedExecute.timeout = {timeout}
c.CappedExecute.timeout = {timeout}
# A flood of output can still be in flight when the cell finishes: drop what is late instead of failing the notebook.
c.Execute.iopub_timeout = 10
c.Execute.raise_on_iopub_timeout = False
c.CappedExecute.iopub_timeout = 10
c.CappedExecute.raise_on_iopub_timeout = False
c.LimitOutput.max_lines = 2000
c.Application.log_format = "%(asctime)s.%(msecs)03d [%(name)s | %(levelname)s] %(message)s"
c.Application.log_datefmt = "%H:%M:%S"
c.Autograde.autograde_preprocessors = [CappedExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                       SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
'''


# ----------------------------------------------------------------------------- the task


def grade_submission(course: Course, student: str, ps: str, limits: Limits, template: bytes) -> GradeResult:
    """Autograde ``student``'s submission of ``ps``; never raises for anything the submission does.

    ``template``: the bytes of a gradebook holding the assignment (``vitkit.course.grade.make_template``).
    The real course is only read: a worker on another machine needs the course folder mounted.
    """
    start = time.perf_counter()
    result = GradeResult(student, ps, "graded")
    try:
        _grade(course, student, ps, limits, template, result)
    except Exception as err:  # a bug of ours or the platform's: a failed grade with the reason, never a lost student
        result.status, result.reason = "failed", f"grading error: {type(err).__name__}: {err}"
        result.scores = {}
    result.seconds = round(time.perf_counter() - start, 3)
    return result


# The sandboxed nbgrader process: nbgrader's own CLI, minus the one import that costs more than the rest of its
# start-up together (jsonschema's optional IRI format checker builds a grammar on import; nbformat never uses it).
_NBGRADER_MAIN = ("import sys; sys.modules.setdefault('rfc3987_syntax', None)\n"
                  "from nbgrader.apps.nbgraderapp import main\n"
                  "sys.argv[0] = 'nbgrader'; sys.exit(main())")


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
    problems, findings = [], []
    for name in present:
        try:
            nb = _read_notebook((submitted / f"{name}.ipynb").read_text(errors="replace"))
        except Exception as err:
            problems.append(f"{name}.ipynb is not a notebook ({type(err).__name__}: {first_line(err)[:200]})")
            continue
        findings += [f"{name}.ipynb {f}" for f in scan_for_tampering(student_sources(nb))]
    phase("scan")
    if problems:
        result.status, result.reason = "failed", "; ".join(problems)
        return
    if findings:
        result.status, result.reason = "flagged", "tampering: " + "; ".join(findings[:5])
        return

    work = Path(tempfile.mkdtemp(prefix="vitkit-grade-"))
    uid = _claim_uid() if os.geteuid() == 0 else None
    proc = None
    try:
        root = work / "course"
        shutil.copytree(submitted, root / "submitted" / student / ps)
        src = course.source / ps
        shutil.copytree(src, root / "source" / ps, ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
        (root / "gradebook.db").write_bytes(template)
        (root / "nbgrader_config.py").write_text(_SANDBOX_CONFIG.format(
            root=str(root), timeout=int(limits.timeout), max_output=int(limits.output_mb * 2**20)))
        home = work / "home"
        for sub in ("", ".jupyter", "runtime", "tmp", ".ipython", ".cache"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        if uid is not None:
            os.chmod(work, 0o700)
            for dirpath, dirnames, filenames in os.walk(work):
                os.chown(dirpath, uid, uid)
                for f in filenames:
                    os.chown(os.path.join(dirpath, f), uid, uid)
        (work / "stage").mkdir()
        prefix, result.sandbox = confinement(uid, limits, protect=[course.root], stage=str(work / "stage"))
        venv_bin = str(Path(sys.executable).parent)
        env = {
            "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(home / "tmp"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
            "IPYTHONDIR": str(home / ".ipython"), "MPLCONFIGDIR": str(home / ".cache"), "XDG_CACHE_HOME": str(home / ".cache"),
            "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
            "MALLOC_ARENA_MAX": "2",  # each thread's 64 MB malloc arena counts against the address-space limit
            "NBGRADER_EXECUTION": "autograde",
        }
        cmd = prefix + [sys.executable, "-c", _NBGRADER_MAIN, "autograde", ps, "--student", student, "--force",
                        "--log-level=INFO"]
        phase("setup")
        log = open(work / "nbgrader.log", "wb")
        try:
            proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
            try:
                proc.wait(timeout=limits.wall_seconds)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
        finally:
            if proc is not None:
                _kill_group(proc)
            if uid is not None:
                _kill_uid(uid)
            log.close()
        phase("nbgrader")
        log_text = (work / "nbgrader.log").read_bytes()[-20000:].decode(errors="replace")
        result.log_tail = log_text[-4000:]
        _log_phases(log_text, result)
        if timed_out:
            result.status = "failed"
            result.reason = f"grading took longer than the {limits.wall_seconds} s wall-clock limit and was stopped"
            return
        _read_results(root, student, ps, expected, result, log_text, proc.returncode)
        phase("read")
    finally:
        if uid is not None:
            _kill_uid(uid)
            _release_uid(uid)
        if os.environ.get("VITKIT_KEEP_SANDBOX"):  # debugging the sandbox itself: keep the working copy
            print(f"vitkit: kept sandbox {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
        phase("cleanup")


_LOG_TIME = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) \[AutogradeApp \| \w+\] (.*)$", re.M)


def _log_phases(log_text: str, result: GradeResult) -> None:
    """Split the nbgrader phase by the timestamps of its log: start-up, preparing, executing the notebook, saving."""
    stamps = [(int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000, msg) for h, m, s, ms, msg in _LOG_TIME.findall(log_text)]
    if not stamps or "nbgrader" not in result.phases:
        return
    first = stamps[0][0]
    execute = next((t for t, msg in stamps if msg.startswith("Autograding ")), None)
    written = [t for t, msg in stamps if msg.startswith("Writing ")]
    last = stamps[-1][0]
    if execute is None or not written or written[-1] < execute:
        return
    total = result.phases["nbgrader"]
    result.phases["nbgrader.execute"] = round(written[-1] - execute, 3)  # kernel start and every cell
    result.phases["nbgrader.prepare"] = round(execute - first, 3)  # gradebook, overwrite cells, sanitize
    result.phases["nbgrader.startup"] = round(max(0.0, total - (last - first)), 3)  # interpreter, imports, exit


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _diagnose(log_text: str, rc: int) -> str:
    """A one-line reason from nbgrader's log when it produced no autograded notebook."""
    if "DeadKernelError" in log_text or "Kernel died" in log_text or "kernel died" in log_text.lower():
        return "the notebook's kernel died (os._exit, a crash, or the memory limit)"
    if "MemoryError" in log_text or "Cannot allocate memory" in log_text:
        return "out of memory (the memory limit)"
    if "CellTimeoutError" in log_text or "TimeoutError" in log_text:
        return "a cell ran past the per-cell timeout and the kernel could not be interrupted"
    errors = [line for line in log_text.splitlines() if "[AutogradeApp | ERROR]" in line or "Error" in line]
    return f"nbgrader autograde failed (exit {rc}): " + (errors[-1].strip()[:300] if errors else "no log")


def _read_results(root: Path, student: str, ps: str, expected: list[str], result: GradeResult, log_text: str, rc: int) -> None:
    from nbgrader.api import Gradebook, MissingEntry

    known = known_codes()
    outdir = root / "autograded" / student / ps
    notes = []
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "vitkit") as gb:
        for name in expected:
            path = outdir / f"{name}.ipynb"
            try:
                sub = gb.find_submission_notebook(name, ps, student)
            except MissingEntry:
                sub = None
            if not path.is_file() or sub is None:
                result.status = "failed"
                notes.append(f"{name}.ipynb: " + (_diagnose(log_text, rc) if (root / "submitted" / student / ps / f"{name}.ipynb").is_file()
                                                   else "not submitted"))
                continue
            result.scores[name] = {g.name: [float(g.auto_score or 0.0), float(g.max_score)] for g in sub.grades}
            data = path.read_bytes()
            result.notebooks[name] = data
            nb = json.loads(data)
            per_cell = {}
            for cell in nb["cells"]:
                meta = cell.get("metadata", {}).get("nbgrader", {})
                gid = meta.get("grade_id")
                outs = cell.get("outputs", [])
                if any(o.get("ename") == "CellTimeoutError" for o in outs):
                    notes.append(f"cell {gid or '?'} stopped at the per-cell timeout")
                if any("output beyond" in str(o.get("text", "")) for o in outs):
                    notes.append(f"cell {gid or '?'}: output capped")
                if meta.get("grade") and gid in result.scores[name]:
                    score, top = result.scores[name][gid]
                    if score < top:
                        per_cell[gid] = mistakes_in_cell(cell, known) or [["other", "no points (no error message)"]]
            result.mistakes[name] = per_cell
    if result.status == "failed" and result.scores:
        result.status = "graded"  # some notebooks graded; the reason names the others
    result.reason = "; ".join(dict.fromkeys(notes))
