"""The assignment as nbgrader records it: releasing ``exercises/``, and the template gradebook per problem set.

``release`` regenerates ``exercises/<ps>/`` from ``solutions/<ps>/`` (``nbgrader generate_assignment``);
``release_differences`` says where the committed release and the source disagree. Grading needs the
assignment's cells, checksums and points: :func:`generated_gradebook` makes a gradebook holding only that
(once per version of the source, kept in ``autograded/.vitkit/templates/``), :func:`make_template` the copy a
sandboxed task receives, and :func:`ensure_assignment` records the assignment in the course's gradebook.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from vitkit.course.paths import Course


def nbgrader(course: Course, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run an nbgrader command in the course folder with the venv's ``bin/`` first on PATH (nbgrader calls alembic)."""
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run(
        [os.path.join(bindir, "nbgrader"), *args], cwd=course.root, env=env, capture_output=True, text=True
    )
    if check and proc.returncode != 0:
        raise SystemExit(
            f"nbgrader {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    return proc


# ----------------------------------------------------------------------------- release


def release(course: Course, ps: str) -> None:
    """Regenerate ``exercises/<ps>/`` from ``solutions/<ps>/`` and record the assignment in the gradebook."""
    nbgrader(course, "generate_assignment", ps, "--force")


def release_differences(course: Course, ps: str) -> list[str]:
    """Files in which ``exercises/<ps>/`` differs from what ``nbgrader generate_assignment`` makes now (empty: in sync)."""
    with tempfile.TemporaryDirectory(prefix="vitkit-release-") as tmp:
        nbgrader(course, "generate_assignment", ps, "--force", "--no-db", f"--CourseDirectory.release_directory={tmp}")
        fresh, committed = Path(tmp) / ps, course.release / ps
        names = {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
        if committed.is_dir():
            names |= {
                p.relative_to(committed)
                for p in committed.rglob("*")
                if p.is_file() and ".ipynb_checkpoints" not in p.parts
            }
        return sorted(
            str(n)
            for n in names
            if not (fresh / n).is_file()
            or not (committed / n).is_file()
            or _content(fresh / n) != _content(committed / n)
        )


def _content(path: Path):
    if path.suffix == ".ipynb":  # compare notebooks as JSON: key order and indentation are not differences
        return json.loads(path.read_text())
    return path.read_bytes()


# ----------------------------------------------------------------------------- templates


def _source_stamp(course: Course, ps: str) -> str:
    """A hash of everything ``generate_assignment`` reads for ``ps``: its source files, the config, nbgrader's version."""
    import hashlib

    import nbgrader

    h = hashlib.sha256(f"{nbgrader.__version__}|{ps}".encode())
    for path in [course.path("nbgrader_config.py"), *sorted(p for p in (course.source / ps).rglob("*") if p.is_file())]:
        if ".ipynb_checkpoints" in path.parts or not path.is_file():
            continue
        h.update(str(path.relative_to(course.root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:20]


def generated_gradebook(course: Course, ps: str) -> Path:
    """A gradebook holding only ``ps``'s assignment, as ``generate_assignment`` records it (solutions included).

    Made once per version of ``solutions/<ps>/`` and the config (one ``nbgrader generate_assignment``,
    several seconds) and kept in ``autograded/.vitkit/templates/``: grading the same problem set again
    reuses it.
    """
    cache = course.results / "templates" / f"{ps}-{_source_stamp(course, ps)}.db"
    if cache.is_file():
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    for old in cache.parent.glob(f"{ps}-*.db"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="vitkit-template-") as tmp:
        db = Path(tmp) / "gradebook.db"
        nbgrader(
            course,
            "generate_assignment",
            ps,
            "--force",
            f"--CourseDirectory.db_url=sqlite:///{db}",
            f"--CourseDirectory.release_directory={tmp}/release",
        )
        shutil.copy(db, cache.with_suffix(".tmp"))
        os.replace(cache.with_suffix(".tmp"), cache)
    return cache


def make_template(course: Course, ps: str) -> bytes:
    """A gradebook holding only ``ps``'s assignment (its cells, checksums and test sources), as bytes.

    Solution cells' source is blanked: the gradebook copy sits beside the student's code in the sandbox.
    """
    from nbgrader.api import Gradebook

    with tempfile.TemporaryDirectory(prefix="vitkit-template-") as tmp:
        db = Path(tmp) / "gradebook.db"
        shutil.copy(generated_gradebook(course, ps), db)
        with warnings.catch_warnings(), Gradebook(f"sqlite:///{db}", "vitkit") as gb:
            warnings.simplefilter("ignore")
            for nb in gb.find_assignment(ps).notebooks:
                for cell in nb.source_cells:
                    if not cell.locked:
                        cell.source = ""
            gb.db.commit()
        return db.read_bytes()


def _cells(db_url: str, ps: str) -> set | None:
    """(notebook, grade cell, points) of ``ps`` in a gradebook, or None when it is not there."""
    from nbgrader.api import Gradebook, MissingEntry

    if db_url.startswith("sqlite:///") and not Path(db_url[len("sqlite:///") :]).is_file():
        return None
    with Gradebook(db_url, "vitkit") as gb:
        try:
            return {(nb.name, c.name, c.max_score) for nb in gb.find_assignment(ps).notebooks for c in nb.grade_cells}
        except MissingEntry:
            return None


def ensure_assignment(course: Course, ps: str) -> None:
    """Record ``ps`` in the course gradebook (cells and points) without touching ``exercises/``.

    A course with no gradebook yet starts from the generated one (the same rows ``generate_assignment``
    would write); otherwise ``generate_assignment`` updates the course's own.
    """
    generated = generated_gradebook(course, ps)
    if not course.gradebook.exists():
        tmp = course.gradebook.with_name(".gradebook.db.tmp")
        shutil.copy(generated, tmp)
        os.replace(tmp, course.gradebook)
        return
    if _cells(course.db_url, ps) is None and _merge_assignment(course.gradebook, generated, ps):
        return
    with tempfile.TemporaryDirectory(prefix="vitkit-assign-") as tmp:
        nbgrader(course, "generate_assignment", ps, "--force", f"--CourseDirectory.release_directory={tmp}")


def _merge_assignment(gradebook: Path, generated: Path, ps: str) -> bool:
    """Copy the rows of a generated gradebook (one assignment, no students) into the course's; False if it cannot.

    Only for an assignment the course gradebook does not hold yet, and only between gradebooks of the
    same schema version (else nbgrader's own generate_assignment does it).
    """
    import sqlite3

    con = sqlite3.connect(gradebook, timeout=60, isolation_level=None)
    try:
        con.execute("ATTACH DATABASE ? AS gen", (str(generated),))
        version = "SELECT version_num FROM {}.alembic_version"
        if con.execute(version.format("main")).fetchall() != con.execute(version.format("gen")).fetchall():
            return False
        if con.execute("SELECT 1 FROM main.assignment WHERE name = ?", (ps,)).fetchone():
            return False
        tables = [
            r[0]
            for r in con.execute(
                "SELECT name FROM gen.sqlite_master WHERE type = 'table' AND name != 'alembic_version'"
            )
        ]
        con.execute("BEGIN IMMEDIATE")
        for table in tables:
            ours = {r[1] for r in con.execute(f'PRAGMA main.table_info("{table}")')}
            cols = [r[1] for r in con.execute(f'PRAGMA gen.table_info("{table}")') if r[1] in ours]
            if not cols:
                raise sqlite3.OperationalError(f"no table {table} in the course gradebook")
            names = ", ".join(f'"{c}"' for c in cols)
            con.execute(f'INSERT OR IGNORE INTO main."{table}" ({names}) SELECT {names} FROM gen."{table}"')
        con.execute("COMMIT")
        return True
    except sqlite3.Error:
        if con.in_transaction:
            con.execute("ROLLBACK")
        return False
    finally:
        con.close()
