"""Confinement: the student's kernel runs where it can neither forge its grade nor see the course.

One grading task has two sides:

- the **grader**: ``nbgrader autograde`` and its copy of the gradebook, run as the coordinator's own
  user in a private folder (``grader/``, mode 0700). It is the kit's code and only reads the student's
  notebook as data.
- the **kernel**: the student's code. nbgrader starts it through a kernel spec whose command is a
  small shell script, written per task by :func:`write_kernel`, that confines it before ``exec``.

Why this split: a score is computed by nbgrader from the outputs it received and written to a
gradebook only the grader can reach; no process the student's code starts can reach the gradebook,
the autograded notebook, or the grader process (to write, signal or trace it). Kernel and grader talk
over ZMQ's ``ipc`` transport, sockets in the kernel's own folder, so the kernel needs no network.

What the host allows decides the level (:func:`isolation`; each record says which one applied):

=============  ===========================================================================================
``uid+ns``     root with namespaces (a server, a VM): the kernel runs as a throwaway uid in new PID, mount
               and network namespaces. In its mount namespace the course, the grading folders and every
               folder others may not enter (``/root``, a 0700 parent) are covered by empty tmpfs mounts; the
               interpreter, its site-packages and the kit are bound back read-only where they lay, so a
               course under ``/root`` or a private ``mktemp -d`` folder grades the same as one in ``/srv``.
``uid``        root where namespaces are refused (Docker's default profile): the throwaway uid alone. The
               venv must be reachable by other users (the doctor says so before anything is graded).
``userns``     an ordinary user with unprivileged user namespaces (a laptop, a hub server): the kernel runs
               in a new user namespace nested twice (the hiding mounts are made in the first and *locked* in
               the second, where the kernel has no capabilities), with its own PID and network namespaces;
               the course, the grading folders and the home folder are hidden, the interpreter bound back
               read-only.
``none``       an ordinary user without user namespaces: limits only. Grades of honest notebooks are right,
               but a hostile one could reach the gradebook copy: the doctor and every record say so.
=============  ===========================================================================================

Always: the kernel is PID 1 of its namespace where there is one (when it exits, every process it
started is killed by the kernel of the OS), an address-space limit (``prlimit --as``, ``memory_gb`` on
top of what a kernel's libraries map, see :func:`kernel_baseline_gb`), file-size, core and open-file
limits; as root, every process of the throwaway uid is killed before the results are read.

The level and the throwaway uids are in :mod:`vitkit.course.isolation`, the memory baseline in
:mod:`vitkit.course.baseline`; both are imported here, so ``confine.isolation()`` and the rest still work.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import site
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from vitkit.course.baseline import BASELINE_HEADROOM_GB, kernel_baseline_gb
from vitkit.course.isolation import LEVELS, claim_uid, describe, isolation, kill_uid, release_uid

__all__ = [
    "BASELINE_HEADROOM_GB",
    "LEVELS",
    "Kernel",
    "claim_uid",
    "describe",
    "grading_base",
    "hidden_folders",
    "isolation",
    "kernel_baseline_gb",
    "kernel_paths",
    "kill_uid",
    "release_uid",
    "untraversable_ancestor",
]

# ----------------------------------------------------------------------------- paths the kernel needs, paths it must not see


def kernel_paths() -> list[str]:
    """Folders the kernel's interpreter reads: the prefixes, the standard library, site-packages, the kit's package.

    The kit's own folder is listed (not its parent) so that an editable install in the course folder
    exposes ``vitkit/`` and not ``solutions/``.
    """
    paths = {
        sys.prefix,
        sys.base_prefix,
        sysconfig.get_paths()["stdlib"],
        os.path.dirname(os.path.realpath(sys.executable)),
    }
    sites = [p for p in site.getsitepackages() if os.path.isdir(p)]
    paths.update(sites)
    for folder in sites:  # .pth files of editable installs name source folders
        for pth in Path(folder).glob("*.pth"):
            for line in pth.read_text(errors="replace").splitlines():
                if line and not line.startswith(("#", "import")) and os.path.isdir(line.strip()):
                    paths.add(line.strip())
    kit = importlib.util.find_spec("vitkit")
    if kit and kit.origin:
        paths.add(os.path.dirname(kit.origin))
    return _outermost(os.path.realpath(p) for p in paths)


def _outermost(paths) -> list[str]:
    """The paths that lie inside no other of them, sorted."""
    out: list[str] = []
    for p in sorted(set(paths), key=len):
        if not any(_under(p, q) for q in out):
            out.append(p)
    return sorted(out)


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def untraversable_ancestor(path: str) -> str | None:
    """The outermost folder on ``path`` that other users may not enter (``/root``, a 0700 parent), or None."""
    parts = Path(path).resolve().parts
    for i in range(2, len(parts) + 1):
        folder = os.path.join(*parts[:i])
        try:
            if not os.stat(folder).st_mode & 0o001:
                return folder
        except OSError:
            return None
    return None


def grading_base() -> Path:
    """The folder under which every grading task of this user keeps its working copy (hidden from kernels)."""
    base = Path(tempfile.gettempdir()) / f"vitkit-grading-{os.geteuid()}"
    base.mkdir(mode=0o711, exist_ok=True)
    st = base.stat()
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise RuntimeError(f"{base} belongs to uid {st.st_uid} or is writable by others: remove it and grade again")
    os.chmod(base, 0o711)
    return base


# ----------------------------------------------------------------------------- the kernel's launcher


@dataclass
class Kernel:
    """What one task's kernel is confined by; :meth:`write` puts its launcher and kernel spec on disk."""

    level: str
    home: Path  # the kernel's own folder: its working copy, HOME, TMPDIR, sockets (owned by ``uid`` as root)
    grader: Path  # the grader's folder (gradebook copy, autograded notebooks, log): never visible to the kernel
    hide: list[str]  # folders covered by an empty tmpfs in the kernel's mount namespace
    address_space: int  # RLIMIT_AS in bytes
    uid: int | None = None  # the throwaway uid (root only)
    command: list[str] = field(default_factory=list)  # what runs confined; default: the ipykernel launcher

    @classmethod
    def prepare(
        cls,
        work: Path,
        level: str,
        course_root: str,
        address_space: int,
        uid: int | None = None,
        command: list[str] | None = None,
    ) -> "Kernel":
        """Lay out one task's folder ``work``: ``grader/`` (0700, the grader's alone) and ``kernel/`` (the kernel's own,
        owned by ``uid`` as root), with the launcher and kernel spec written; ``work`` itself 0711."""
        grader, home = work / "grader", work / "kernel"
        for sub in ("cwd", "tmp", ".ipython", ".cache"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        for sub in ("home", "runtime"):
            (grader / sub).mkdir(parents=True, exist_ok=True)
        kernel = cls(
            level,
            home=home,
            grader=grader,
            hide=hidden_folders(course_root, level),
            address_space=address_space,
            uid=uid,
            command=command or [],
        )
        kernel.write()
        os.chmod(grader, 0o700)
        os.chmod(work, 0o711)
        if uid is not None:
            for dirpath, _, filenames in os.walk(home):
                os.chown(dirpath, uid, uid)
                for f in filenames:
                    os.chown(os.path.join(dirpath, f), uid, uid)
        os.chmod(home, 0o700)
        return kernel

    @property
    def spec_dir(self) -> Path:
        return self.grader / "jupyter" / "kernels" / "vitkit-sandbox"

    @property
    def started(self) -> Path:
        """Written by the launcher (with the grader's rights) when nbgrader starts the kernel."""
        return self.grader / "kernel-started"

    def write(self) -> None:
        """The launcher script and the kernel spec ``vitkit-sandbox`` (JUPYTER_PATH=grader/jupyter)."""
        import json

        self.spec_dir.mkdir(parents=True, exist_ok=True)
        script = self.spec_dir / "launch.sh"
        script.write_text(self.script())
        spec = {
            "argv": ["/bin/sh", str(script), "{connection_file}"],
            "display_name": "vitkit sandbox",
            "language": "python",
            "interrupt_mode": "message",
            "metadata": {"debugger": False},
        }
        (self.spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))

    def script(self) -> str:
        """The shell script nbgrader runs to start the kernel: copy what it needs, confine, exec."""
        q = shlex.quote
        home, work = self.home, self.home / "cwd"
        env = {
            "HOME": str(home),
            "TMPDIR": str(home / "tmp"),
            "PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin",
            "IPYTHONDIR": str(home / ".ipython"),
            "MPLCONFIGDIR": str(home / ".cache"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "JUPYTER_RUNTIME_DIR": str(home / "tmp"),
            "MPLBACKEND": "Agg",
            "PYTHONDONTWRITEBYTECODE": "1",
            "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": "1",
            "MALLOC_ARENA_MAX": "2",
            "NBGRADER_EXECUTION": "autograde",
        }
        kernel = (
            ["prlimit", f"--as={self.address_space}", f"--fsize={2**30}", "--core=0", "--nofile=1024"]
            + (["--nproc=512"] if self.uid is not None else [])
            + ["--", "env", "-i"]
            + [f"{k}={v}" for k, v in env.items()]
            + (self.command or [sys.executable, "-m", "ipykernel_launcher", "-f", str(home / "kernel.json")])
        )
        if self.uid is not None:
            kernel = [
                "setpriv",
                f"--reuid={self.uid}",
                f"--regid={self.uid}",
                "--clear-groups",
                "--no-new-privs",
                "--inh-caps=-all",
                "--",
            ] + kernel
        lines = [
            "# Written by vitkit.course.confine for one grading task: starts the student's kernel confined.",
            "set -eu",
            'conn="$1"; shift',
            f"cp -R . {q(str(work))}/  # what nbgrader prepared beside the notebook (data files)",
            f'cp "$conn" {q(str(home / "kernel.json"))}',
        ]
        if self.uid is not None:
            lines.append(f"chown -R {self.uid}:{self.uid} {q(str(home))}")
        lines.append(f": > {q(str(self.started))}")
        inner = [f"cd {q(str(work))}", " ".join(map(q, kernel)) + ' "$@"']
        if self.level in ("uid+ns", "userns"):
            inner = self._mounts() + inner
            inner[-1] = "exec " + inner[-1]
            if (
                self.level == "userns"
            ):  # a second user namespace locks the mounts above; the kernel gets no capabilities
                inner[-1] = inner[-1].replace(
                    "exec prlimit",
                    f"exec unshare --user --map-user={os.getuid()} --map-group={os.getgid()} --mount -- prlimit",
                    1,
                )
            userns = ["--user", "--map-root-user"] if self.level == "userns" else []
            lines.append(
                "exec "
                + " ".join(
                    [
                        "unshare",
                        *userns,
                        "--net",
                        "--pid",
                        "--fork",
                        "--kill-child",
                        "--mount",
                        "--mount-proc",
                        "/bin/sh",
                        "-c",
                        q("\n".join(["set -eu", *inner])),
                        "sh",
                        '"$@"',
                    ]
                )
            )
        else:
            lines += inner[:-1] + ["exec " + inner[-1]]
        return "\n".join(lines) + "\n"

    def _mounts(self) -> list[str]:
        """Cover every hidden folder with an empty tmpfs, then bind back, where they were, the folders the kernel needs."""
        q = shlex.quote
        hide = _outermost(self.hide)
        needed = [(p, True) for p in kernel_paths()] + [(str(self.home), False)]
        back = [(p, ro) for p, ro in needed if any(_under(p, h) for h in hide)]
        # A folder is bound back through a descriptor of the hidden folder above it, opened before the cover
        # (mount -c: don't resolve the path again, it would land in the cover). sh has descriptors 3 to 9.
        fds = {h: fd for fd, h in enumerate([h for h in hide if any(_under(p, h) for p, _ in back)], start=3)}
        if fds and max(fds.values()) > 9:
            raise RuntimeError(f"too many hidden folders hold what the kernel needs: {', '.join(fds)}")
        steps = [f"exec {fd}<{q(h)}" for h, fd in fds.items()]
        steps += [f"mount -t tmpfs -o mode=0755,size=1m vitkit-hidden {q(h)}" for h in hide]
        for p, ro in back:
            h = next(h for h in hide if _under(p, h))
            source = f"/proc/self/fd/{fds[h]}" + p[len(h.rstrip("/")) :]
            steps.append(
                f"mkdir -p {q(p)} && mount --no-canonicalize --bind {q(source)} {q(p)}"
                + (f" && mount -o remount,bind,ro {q(p)}" if ro else "")
            )
        steps += [f"exec {fd}<&-" for fd in fds.values()]
        return steps


def hidden_folders(course_root: str, level: str) -> list[str]:
    """What the kernel must not see: the course, every grading folder, and (root) the folders others may not enter,
    or (a user) the home folder with whatever else the user owns there."""
    hide = [os.path.realpath(course_root), str(grading_base())]
    if level == "uid+ns":
        hide += [a for a in map(untraversable_ancestor, kernel_paths()) if a]
    elif level == "userns" and os.path.isdir(os.path.expanduser("~")):
        hide.append(os.path.realpath(os.path.expanduser("~")))
    return _outermost(h for h in hide if h != "/")  # a course or home at / cannot be covered: the rest still is
