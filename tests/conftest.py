"""Fixtures several test modules share.

- ``one_thread``: torch on one thread for a module of tiny models (``pytestmark = pytest.mark.usefixtures(...)``);
- ``injected`` and ``grades``: a problem set's injection run and its ``nbgrader autograde`` run, once per
  test class of ``tests/test_psN.py`` (a :class:`tests.problem_set.ProblemSetChecks`, which names the
  problem set in ``PS``).
"""

from __future__ import annotations

import pytest
import torch

from tests.nbtools import autograde_class, run_injections


@pytest.fixture(scope="module")
def one_thread():
    # tiny models gain nothing from a second thread, and on a busy machine two threads wait on each other
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="class")
def injected(request) -> dict[str, str | None]:
    """Every wrong and correct answer of the class's problem set, run in one process: ``{name: error or None}``.

    With the class's ``TAMPERING_RUNS_LAST``, its tampering answers run in that process too, after the others.
    """
    answers = request.cls.answers()
    last = answers["tamperer"] if request.cls.TAMPERING_RUNS_LAST else []
    return run_injections(request.cls.PS, answers["answer"] + last)


@pytest.fixture(scope="class")
def grades(request, tmp_path_factory) -> dict[str, dict[str, tuple[float, float]]]:
    """One nbgrader autograde run over the class's students (the solution, the blank exercise...): ``{student: scores}``."""
    return autograde_class(request.cls.PS, request.cls.students(tmp_path_factory.mktemp("class")))
