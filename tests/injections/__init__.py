"""Wrong and differently-right answers, as data, injected into problem sets' solution notebooks.

``tests/injections/<ps>.py`` defines ``WRONG`` (classic mistakes: each must be rejected with its
mistake code at the start of the error, ``[code] ...``), ``CORRECT`` (correct answers written
differently from the solution: each must pass) and ``TAMPERING`` (answers that patch what grading
relies on: each must be rejected with its code, run on its own or after all the others).
``tests.nbtools.run_injections`` runs them; the instructor tools and the class-wide mistake report
reuse them to build fake classes.
"""

from __future__ import annotations

import hashlib
import importlib
import textwrap
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Injection:
    """``source`` replaces the solution cell whose nbgrader ``grade_id`` is ``cell``.

    ``code`` is the mistake code its tests must report (``None`` for a correct answer).
    ``name`` is unique within a problem set; by default ``<cell>/<code or 'correct'>/<hash>``.
    """

    cell: str
    code: str | None
    source: str
    name: str = field(default="")

    def __post_init__(self):
        object.__setattr__(self, "source", textwrap.dedent(self.source).strip() + "\n")
        if not self.name:
            digest = hashlib.sha1(self.source.encode()).hexdigest()[:6]
            object.__setattr__(self, "name", f"{self.cell}/{self.code or 'correct'}/{digest}")


def changed(source: str, *edits: tuple[str, str]) -> str:
    """``source`` with each ``(old, new)`` of ``edits`` replaced: a mistake written as its difference from a right answer.

    Fails when an ``old`` is not in the source, so a variant never silently stays the right answer.
    """
    source = textwrap.dedent(source)
    for old, new in edits:
        if old not in source:
            raise ValueError(f"{old!r} is not in the answer it should change:\n{source}")
        source = source.replace(old, new)
    return source


def _module(ps: str):
    return importlib.import_module(f"{__name__}.{ps.split('_')[0]}")


def load(ps: str) -> tuple[list[Injection], list[Injection]]:
    """(WRONG, CORRECT) of problem set ``ps`` from ``tests/injections/<ps>.py`` (prefix like ``ps1`` or full name)."""
    module = _module(ps)
    return list(module.WRONG), list(module.CORRECT)


def tampering(ps: str) -> list[Injection]:
    """TAMPERING of problem set ``ps`` from ``tests/injections/<ps>.py``."""
    return list(_module(ps).TAMPERING)
