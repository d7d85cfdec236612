"""What the host allows and the throwaway uids: the isolation level a grading task gets.

The design (the two sides of a task, what each level confines) is in :mod:`vitkit.course.confine`, which
imports these names back.
"""

from __future__ import annotations

import fcntl
import functools
import os
import signal
import subprocess
import time

LEVELS = ("uid+ns", "uid", "userns", "none")

# ----------------------------------------------------------------------------- what the host allows


def _runs(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=20, stdin=subprocess.DEVNULL).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@functools.lru_cache(maxsize=None)
def _probe(euid: int, refuse_ns: bool) -> str:
    if euid == 0:
        if not refuse_ns and _runs(["unshare", "--net", "--pid", "--fork", "--mount", "--mount-proc", "true"]):
            return "uid+ns"
        return "uid" if _runs(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "true"]) else "none"
    uid, gid = os.getuid(), os.getgid()
    if not refuse_ns and _runs(
        [
            "unshare",
            "--user",
            "--map-root-user",
            "--net",
            "--pid",
            "--fork",
            "--mount",
            "--mount-proc",
            "unshare",
            "--user",
            f"--map-user={uid}",
            f"--map-group={gid}",
            "--mount",
            "true",
        ]
    ):
        return "userns"
    return "none"


def isolation() -> str:
    """The strongest level this host allows: ``uid+ns``, ``uid``, ``userns`` or ``none`` (see the module docstring).

    ``VITKIT_NO_NAMESPACES=1`` behaves as a container that refuses namespaces (tests, or a host whose
    namespaces misbehave).
    """
    return _probe(os.geteuid(), os.environ.get("VITKIT_NO_NAMESPACES", "") not in ("", "0"))


def describe(level: str, uid: int | None, memory_gb: float) -> str:
    """One line for the record: what confined the kernel."""
    return {
        "uid+ns": f"kernel as uid {uid}, own PID/mount/network namespaces, course hidden, {memory_gb:g} GB",
        "uid": f"kernel as uid {uid} (no namespaces on this host: network not isolated), {memory_gb:g} GB",
        "userns": f"kernel in a nested user namespace, own PID/mount/network namespaces, course hidden, {memory_gb:g} GB",
        "none": f"UNCONFINED kernel (not root and no user namespaces): limits only, {memory_gb:g} GB",
    }[level]


# ----------------------------------------------------------------------------- throwaway uids (root)

_UID_BASE, _UID_SLOTS = 61000, 2000
_lock_files: dict[int, object] = {}


def claim_uid() -> int:
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


def release_uid(uid: int) -> None:
    kill_uid(uid)
    f = _lock_files.pop(uid, None)
    if f is not None:
        f.close()


def kill_uid(uid: int) -> None:
    """SIGKILL every process running as ``uid`` (whatever a student's kernel left behind)."""
    for _ in range(20):
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
