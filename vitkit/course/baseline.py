"""The memory limit's baseline: what a kernel maps before the notebook's own allocations.

Part of the kernel's confinement (:mod:`vitkit.course.confine`, which imports it back and explains the limits).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# ----------------------------------------------------------------------------- the memory limit's baseline

_BASELINE: float | None = None
_BASELINE_PROBE = (
    "import torch, numpy, matplotlib.pyplot, ipykernel.ipkernel\n"
    "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmSize:')))"
)
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
    spec = importlib.util.find_spec("torch")
    stamp = f"{sys.executable}|{spec.origin if spec else ''}|{os.stat(spec.origin).st_mtime if spec else ''}"
    cache = (
        Path(tempfile.gettempdir()) / f".vitkit-baseline-{os.geteuid()}-{hashlib.sha1(stamp.encode()).hexdigest()[:12]}"
    )
    try:
        _BASELINE = float(cache.read_text())
        return _BASELINE
    except (OSError, ValueError):
        pass
    kb = 0
    try:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "OMP_NUM_THREADS": "1",
            "MALLOC_ARENA_MAX": "2",
            "MPLBACKEND": "Agg",
        }
        out = subprocess.run(
            [sys.executable, "-c", _BASELINE_PROBE], capture_output=True, text=True, timeout=300, env=env
        )
        kb = int(out.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        kb = 4 * 2**20  # could not measure: assume a CUDA build of torch
    _BASELINE = round(kb / 2**20 + BASELINE_HEADROOM_GB, 2)
    try:
        cache.write_text(str(_BASELINE))
    except OSError:
        pass
    return _BASELINE
