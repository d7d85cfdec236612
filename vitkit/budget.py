"""One place that decides how long heavy notebook cells run.

Training cells ask ``budget(full, quick)``: the full value when a person runs the notebook, the
quick one while nbgrader autogrades or validates (it sets ``NBGRADER_EXECUTION``), in the test
suite and in ``make tutorial``'s quick mode (``VITKIT_QUICK=1``). So grading time never depends on
how long a student chose to train.
"""

from __future__ import annotations

import os


def quick() -> bool:
    """True while autograding/validating (NBGRADER_EXECUTION set) or when VITKIT_QUICK is set to a non-zero value."""
    if os.environ.get("NBGRADER_EXECUTION"):
        return True
    return os.environ.get("VITKIT_QUICK", "").strip().lower() not in ("", "0", "false", "no")


def budget(full, quick_value):
    """``quick_value`` in quick mode (see :func:`quick`), else ``full``: ``epochs = budget(10, 1)``."""
    return quick_value if quick() else full
