"""Where a course's folders are: the kit's layout of nbgrader's course directory.

``solutions/`` is nbgrader's source, ``exercises/`` its release; ``submitted/``, ``autograded/``,
``feedback/``, ``gradebook.db`` and ``reports/`` are working folders (git-ignored). A course is any
folder with this layout and an ``nbgrader_config.py``; the kit's repository is one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Course:
    """The paths of one course directory (picklable: grading tasks receive it)."""

    root: str

    def path(self, *parts: str) -> Path:
        return Path(self.root, *parts)

    @property
    def source(self) -> Path:
        return self.path("solutions")

    @property
    def release(self) -> Path:
        return self.path("exercises")

    @property
    def submitted(self) -> Path:
        return self.path("submitted")

    @property
    def autograded(self) -> Path:
        return self.path("autograded")

    @property
    def feedback(self) -> Path:
        return self.path("feedback")

    @property
    def reports(self) -> Path:
        return self.path("reports")

    @property
    def gradebook(self) -> Path:
        return self.path("gradebook.db")

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.gradebook}"

    @property
    def results(self) -> Path:
        """Where the coordinator keeps each graded submission's record (mistakes, failure reasons)."""
        return self.path("autograded", ".vitkit")

    def problem_sets(self) -> list[str]:
        """Every assignment in ``solutions/`` (a folder holding at least one notebook), sorted."""
        if not self.source.is_dir():
            return []
        return sorted(p.name for p in self.source.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))

    def notebooks(self, ps: str) -> list[str]:
        """The notebook names (no ``.ipynb``) of problem set ``ps``."""
        return sorted(p.stem for p in (self.source / ps).glob("*.ipynb"))

    def students(self, ps: str | None = None) -> list[str]:
        """Students with a folder in ``submitted/`` (for ``ps`` only: those who submitted it)."""
        if not self.submitted.is_dir():
            return []
        return sorted(
            p.name
            for p in self.submitted.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (ps is None or (p / ps).is_dir())
        )

    def resolve(self, problem_sets: list[str] | str | None) -> list[str]:
        """The named problem sets (all when empty), each checked to exist; the error lists the known ones."""
        known = self.problem_sets()
        if not problem_sets:
            return known
        names = [problem_sets] if isinstance(problem_sets, str) else list(problem_sets)
        for name in names:
            if name not in known:
                raise SystemExit(f"unknown problem set {name!r} in {self.source}; known: {', '.join(known) or 'none'}")
        return names


def read_config(folder: str | Path):
    """The traitlets ``Config`` that ``folder``'s ``nbgrader_config.py`` sets (empty when there is none).

    traitlets' own loader runs the file as nbgrader does (``c = get_config()``, ``__file__``), so what the
    kit reads is exactly what nbgrader will use: comments, docstrings, expressions and later assignments
    mean what they mean in Python.
    """
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    if not Path(folder, "nbgrader_config.py").is_file():
        return Config()
    return PyFileConfigLoader("nbgrader_config.py", path=str(folder)).load_config()


def find_course(start: str | None = None) -> Course:
    """The course whose ``nbgrader_config.py`` is in ``start`` (default: the working folder) or above it."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "nbgrader_config.py").is_file():
            return Course(str(folder))
    raise SystemExit(
        f"no nbgrader_config.py in {here} or any folder above it; run vitkit course from the course "
        f"folder or pass --root COURSE"
    )
