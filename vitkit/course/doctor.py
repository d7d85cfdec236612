"""``vitkit course doctor``: can grading work here, and how well is the student's code confined?

Each check prints one line (``ok``, ``warn`` or ``FAIL``) and, where one fails, what to change.
``autograde`` runs the same checks first and refuses to start when one fails that would make every
grade wrong (the kernel cannot start, nothing can be written): a whole class is never graded 0 for
a reason that is the host's, not the students'.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from vitkit.course import confine
from vitkit.course.paths import Course


@dataclass
class Check:
    name: str
    status: str  # "ok", "warn", "FAIL"
    detail: str
    fix: str = ""

    def line(self) -> str:
        return f"{self.status:<4} {self.name}: {self.detail}" + (f"\n     -> {self.fix}" if self.fix else "")


# What the confined probe reports: its uid, whether the kit and the kernel's packages import, and whether it can
# see what it must not (the course, the grading folders).
_PROBE = """
import importlib.util, json, os, sys
out = {"uid": os.getuid(), "missing": [m for m in ("ipykernel", "torch", "nbformat") if importlib.util.find_spec(m) is None]}
try:
    import ipykernel, vitkit  # noqa: F401
except Exception as err:
    out["import"] = f"{type(err).__name__}: {err}"
out["sees"] = [p for p in sys.argv[2:] if os.path.exists(p)]
try:
    bytearray(int(sys.argv[1]))
    out["allocated"] = True
except MemoryError:
    out["allocated"] = False
print(json.dumps(out))
"""


def _probe_kernel(course: Course, level: str, alloc_gb: float, limit_gb: float) -> tuple[dict | None, str, float]:
    """Run the probe exactly as a kernel would run (same launcher, same confinement); (report, error, seconds)."""
    import json

    base = confine.grading_base()
    work = Path(tempfile.mkdtemp(prefix="doctor-", dir=base))
    uid = confine.claim_uid() if level in ("uid+ns", "uid") else None
    clock = time.perf_counter()
    try:
        secret = work / "grader" / "gradebook.db"
        probe = [
            sys.executable,
            "-c",
            _PROBE,
            str(int(alloc_gb * 2**30)),
            str(secret),
            str(course.source),
            str(course.gradebook),
        ]
        kernel = confine.Kernel.prepare(work, level, course.root, int(limit_gb * 2**30), uid, command=probe)
        secret.write_text("the grader's")
        grader = kernel.grader
        conn = grader / "conn.json"
        conn.write_text("{}")
        proc = subprocess.run(
            ["/bin/sh", str(kernel.spec_dir / "launch.sh"), str(conn)],
            cwd=grader,
            capture_output=True,
            text=True,
            timeout=60,
        )
        seconds = time.perf_counter() - clock
        lines = proc.stdout.strip().splitlines()
        try:
            return json.loads(lines[-1]), "", seconds
        except (IndexError, ValueError):
            return None, (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1][:300], seconds
    except (OSError, subprocess.SubprocessError, RuntimeError) as err:
        return None, f"{type(err).__name__}: {err}", time.perf_counter() - clock
    finally:
        if uid is not None:
            confine.release_uid(uid)
        shutil.rmtree(work, ignore_errors=True)


def checks(course: Course, scheduler: str | None = None) -> list[Check]:
    """Every check, in order; fast (well under a second when all is fine, after the first run on a machine)."""
    out = []
    level = confine.isolation()
    tools = [t for t in ("unshare", "setpriv", "prlimit") if not shutil.which(t)]
    if tools:
        out.append(
            Check(
                "tools",
                "FAIL" if "prlimit" in tools else "warn",
                f"not found: {', '.join(tools)}",
                "install util-linux (Debian: apt-get install util-linux)",
            )
        )
    who = "root" if os.geteuid() == 0 else f"user {os.geteuid()}"
    desc = confine.describe(level, 61000 if level.startswith("uid") else None, 4).rsplit(",", 1)[0]
    if level == "none":
        out.append(
            Check(
                "isolation",
                "warn",
                f"{who}: {desc}",
                "a hostile notebook could reach its gradebook copy: grade as root, or where unprivileged user "
                "namespaces are allowed (sysctl kernel.unprivileged_userns_clone=1; in Docker, --security-opt "
                "seccomp=unconfined or grade as root)",
            )
        )
    else:
        out.append(Check("isolation", "ok", f"{who}: {desc}"))

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:  # the kernel as graded, and one whose memory limit must bite: side by side
        normal = pool.submit(_probe_kernel, course, level, 0.05, 8.0)
        limited = pool.submit(_probe_kernel, course, level, 1.0, 0.5)
        (report, error, seconds), (small, _, _) = normal.result(), limited.result()
    if report is None or "import" in report or report["missing"]:
        why = error if report is None else report.get("import") or f"cannot find {', '.join(report['missing'])}"
        unreachable = [a for a in map(confine.untraversable_ancestor, confine.kernel_paths()) if a]
        fix = (
            f"the kernel's user cannot enter {unreachable[0]}: move the venv and the course where other users may "
            f"enter, or `chmod o+x` each folder on the way"
            if unreachable and level == "uid"
            else "files of the venv or the kit are not readable to other users (umask 077?): "
            f"chmod -R o+rX {sys.prefix} and the course folder"
        )
        out.append(Check("kernel", "FAIL", f"a confined kernel cannot start its interpreter: {why}", fix))
    else:
        out.append(
            Check(
                "kernel",
                "ok",
                f"starts confined as uid {report['uid']} and imports ipykernel and vitkit ({seconds:.2f} s)",
            )
        )
        seen = report["sees"]
        forged = [p for p in seen if p != str(course.source)]
        if level == "none":
            pass
        elif forged:
            out.append(
                Check(
                    "hidden",
                    "FAIL",
                    f"the kernel can reach {', '.join(forged)}",
                    "report this: the confinement does not hide the grader's files",
                )
            )
        elif seen:
            out.append(
                Check(
                    "hidden",
                    "warn",
                    f"the kernel can read {course.source} (no mount namespace on this host)",
                    f"chmod o-rwx {course.source} so that students' code cannot read the solutions",
                )
            )
        else:
            out.append(Check("hidden", "ok", "the kernel sees neither the course, the gradebook nor the grader's copy"))
    if report is not None:
        if small is None:  # a 0.5 GB address space may not even start the interpreter: that is the limit biting too
            out.append(Check("memory limit", "ok", "a kernel limited to 0.5 GB cannot allocate 1 GB"))
        elif small.get("allocated"):
            out.append(
                Check(
                    "memory limit",
                    "FAIL",
                    "a kernel limited to 0.5 GB allocated 1 GB",
                    "prlimit --as has no effect here: grading would not stop a notebook that eats the machine",
                )
            )
        else:
            out.append(Check("memory limit", "ok", "a kernel limited to 0.5 GB cannot allocate 1 GB"))

    if importlib.util.find_spec("nbgrader") is None:
        out.append(
            Check(
                "nbgrader", "FAIL", f"{sys.executable} cannot import nbgrader", "make setup (or pip install nbgrader)"
            )
        )
    for folder in (course.submitted, course.source):
        if folder.exists() and not os.access(folder, os.R_OK | os.X_OK):
            out.append(
                Check("course", "FAIL", f"cannot read {folder}", f"run as the course's owner or chmod u+rX {folder}")
            )
    writable = course.gradebook if course.gradebook.exists() else Path(course.root)
    if not os.access(writable, os.W_OK):
        out.append(Check("course", "FAIL", f"cannot write {writable}", "run as the course's owner"))
    else:
        out.append(Check("course", "ok", f"{course.root} readable, {writable} writable"))
    for where in {tempfile.gettempdir(), course.root}:
        free = shutil.disk_usage(where).free / 2**30
        if free < 1:
            out.append(
                Check("disk", "FAIL", f"{free:.2f} GB free under {where}", "free some space: each task needs a copy")
            )
    if not any(c.name == "disk" for c in out):
        out.append(
            Check(
                "disk", "ok", f"{shutil.disk_usage(tempfile.gettempdir()).free / 2**30:.0f} GB free for working copies"
            )
        )
    if importlib.util.find_spec("distributed") is None:
        out.append(
            Check(
                "dask",
                "FAIL" if scheduler else "warn",
                "dask.distributed is not installed",
                "pip install 'dask[distributed]' (needed for --jobs > 1 and --scheduler)",
            )
        )
    else:
        out.append(
            Check("dask", "ok", "dask.distributed importable" + (f"; scheduler {scheduler}" if scheduler else ""))
        )
    return out


def run(course: Course, scheduler: str | None = None) -> int:
    """Print every check; 1 when one failed."""
    results = checks(course, scheduler)
    for c in results:
        print(c.line())
    return 1 if any(c.status == "FAIL" for c in results) else 0


def require(course: Course, scheduler: str | None = None) -> None:
    """Raise ``SystemExit`` naming every failed check (what to change) before a batch starts."""
    failed = [c for c in checks(course, scheduler) if c.status == "FAIL"]
    if failed:
        raise SystemExit(
            "vitkit: grading cannot work here, nothing was graded:\n" + "\n".join(c.line() for c in failed)
        )
