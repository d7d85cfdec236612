"""The notebook test kit every problem set's tests use.

- :func:`run_notebook` executes a notebook top to bottom in a real kernel (quick budget by default);
- :func:`generate_release` / :func:`assert_release_in_sync` prove that ``exercises/<ps>`` is exactly
  what ``nbgrader generate_assignment`` makes of ``solutions/<ps>``;
- :func:`autograde` runs the real ``nbgrader autograde`` on one notebook in a scratch course and
  returns the scores per graded cell;
- :func:`run_injections` puts wrong (and differently-right) implementations into the solution
  notebook's answer cells and runs that question's tests, all in one fresh Python process.

Tests import it as ``from tests.nbtools import ...`` (pytest runs from the repo root).

A problem set's notebook follows nbgrader's conventions plus one of ours: the test cells of a
question are the graded, non-solution code cells whose ``grade_id`` is ``test_<question>`` or starts
with ``test_<question>_``, where ``<question>`` is the ``grade_id`` of the solution cell.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin/: nbgrader calls alembic and jupyter from PATH
STUDENT = "student"

__all__ = [
    "ROOT",
    "run_notebook",
    "generate_release",
    "assert_release_in_sync",
    "autograde",
    "autograde_class",
    "run_injections",
    "nbgrader_cells",
    "question_test_cells",
    "strip_outputs",
]


def _env(extra: dict | None = None, quick: bool = True) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("MPLBACKEND", "Agg")
    if quick:
        env.setdefault("VITKIT_QUICK", "1")
    env.update(extra or {})
    return env


# ----------------------------------------------------------------------------- executing notebooks


class NotebookError(AssertionError):
    """A notebook cell failed; the message holds the cell's source and its error."""


def run_notebook(path, timeout: int = 600, env: dict | None = None) -> nbformat.NotebookNode:
    """Execute the notebook at ``path`` top to bottom in its own folder and return it executed.

    ``timeout`` is per cell (seconds). ``env`` is merged over ``os.environ``, with
    ``VITKIT_QUICK=1`` unless ``env`` says otherwise. The file on disk is not changed.
    Raises :class:`NotebookError` with the failing cell's source and error.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    try:
        # A kernel draws figures inline, as in JupyterLab, even when the test run sets MPLBACKEND=Agg.
        kernel_env = _env({"MPLBACKEND": "module://matplotlib_inline.backend_inline", **(env or {})})
        client.execute(env=kernel_env, cwd=str(path.parent))
    except (CellExecutionError, CellTimeoutError) as err:
        raise NotebookError(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} failed:\n{err}") from None
    return nb


def strip_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove outputs and execution counts from every code cell (committed notebooks carry none)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    return nb


# ----------------------------------------------------------------------------- nbgrader


def _nbgrader(args: list[str], course: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(BIN / "nbgrader"), *args],
        cwd=course,
        env=_env(quick=False),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"nbgrader {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


_BASE_COURSES: dict[str, Path] = {}


def _course_with_release(ps: str) -> Path:
    """A scratch course (config + solutions/<ps>) where generate_assignment has run; made once per ps."""
    if ps not in _BASE_COURSES:
        source = ROOT / "solutions" / ps
        if not (source / f"{ps}.ipynb").exists():
            raise FileNotFoundError(
                f"no nbgrader source {source / (ps + '.ipynb')}; problem sets are folders of solutions/"
            )
        course = Path(tempfile.mkdtemp(prefix=f"vitkit-course-{ps}-"))
        shutil.copy(ROOT / "nbgrader_config.py", course)
        shutil.copytree(
            source, course / "solutions" / ps, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
        )
        _nbgrader(["generate_assignment", ps, "--force"], course)
        _BASE_COURSES[ps] = course
    return _BASE_COURSES[ps]


def generate_release(ps: str) -> Path:
    """Run ``nbgrader generate_assignment`` for ``solutions/<ps>`` in a scratch course; return the released notebook."""
    return _course_with_release(ps) / "exercises" / ps / f"{ps}.ipynb"


def nbgrader_cells(nb: nbformat.NotebookNode) -> list[tuple[str, str, dict]]:
    """(cell type, source, nbgrader metadata) of each cell: what the release must match."""
    return [(c.cell_type, c.source, dict(c.metadata.get("nbgrader", {}))) for c in nb.cells]


def assert_release_in_sync(ps: str) -> None:
    """Fail unless ``exercises/<ps>/<ps>.ipynb`` has the cells ``generate_assignment`` makes from ``solutions/<ps>``."""
    committed_path = ROOT / "exercises" / ps / f"{ps}.ipynb"
    if not committed_path.exists():
        raise AssertionError(
            f"{committed_path} is missing: run `nbgrader generate_assignment {ps} --force` from the repo root"
        )
    generated = nbgrader_cells(nbformat.read(generate_release(ps), as_version=4))
    committed = nbgrader_cells(nbformat.read(committed_path, as_version=4))
    fix = (
        f"regenerate it: `nbgrader generate_assignment {ps} --force` (with the venv's bin/ on PATH), then strip outputs"
    )
    if len(generated) != len(committed):
        raise AssertionError(
            f"exercises/{ps} has {len(committed)} cells, generate_assignment makes {len(generated)}; {fix}"
        )
    for i, (g, c) in enumerate(zip(generated, committed)):
        for what, a, b in (("type", g[0], c[0]), ("source", g[1], c[1]), ("nbgrader metadata", g[2], c[2])):
            if a != b:
                raise AssertionError(
                    f"exercises/{ps} cell {i}: {what} differs from generate_assignment's\n"
                    f"generated: {a!r}\ncommitted: {b!r}\n{fix}"
                )


def autograde(ps: str, notebook_path, student: str = STUDENT, timeout: int = 900) -> dict[str, tuple[float, float]]:
    """Autograde ``notebook_path`` as ``student``'s submission of ``ps`` with real nbgrader.

    Runs in a scratch copy of the course (never this repo's gradebook); returns
    ``{grade_id: (score, max_score)}`` for every autograded cell, read from the gradebook (written answers,
    markdown cells a person grades, are left out: ``test_manual_grading.py`` covers them).
    """
    return autograde_class(ps, {student: notebook_path}, timeout)[student]


def autograde_class(ps: str, notebooks: dict, timeout: int = 900) -> dict[str, dict[str, tuple[float, float]]]:
    """Like :func:`autograde` for several students at once (one ``nbgrader autograde`` run): ``{student: scores}``."""
    from nbgrader.api import Gradebook

    course = Path(tempfile.mkdtemp(prefix=f"vitkit-autograde-{ps}-"))
    try:
        shutil.copytree(_course_with_release(ps), course, dirs_exist_ok=True)
        for student, notebook_path in notebooks.items():
            submitted = course / "submitted" / student / ps
            submitted.mkdir(parents=True)
            shutil.copy(notebook_path, submitted / f"{ps}.ipynb")
        _nbgrader(["autograde", ps, "--force", "--Autograde.create_student=True"], course, timeout)
        scores = {}
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            for student in notebooks:
                nb = gb.find_submission_notebook(ps, ps, student)
                scores[student] = {
                    g.name: (float(g.score), float(g.max_score)) for g in nb.grades if g.cell.cell_type == "code"
                }
        return scores
    finally:
        shutil.rmtree(course, ignore_errors=True)


# ----------------------------------------------------------------------------- injections


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def question_test_cells(nb, question: str) -> list[str]:
    """Sources of the test cells of ``question`` (grade_id ``test_<question>`` or ``test_<question>_*``), in order."""
    out = []
    for cell in nb.cells:
        m = _meta(cell)
        gid = m.get("grade_id", "")
        if (
            cell.cell_type == "code"
            and m.get("grade")
            and not m.get("solution")
            and (gid == f"test_{question}" or gid.startswith(f"test_{question}_"))
        ):
            out.append(cell.source)
    return out


_RUNNER = textwrap.dedent(
    r"""
    import contextlib, io, json, sys, traceback
    spec = json.load(open(sys.argv[1]))
    results = {}

    def clean(src):
        # IPython magics and shell lines have no meaning in plain Python; drop them.
        return "\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("%", "!")))

    ns = {"__name__": "__main__"}
    for i, src in enumerate(spec["setup"]):
        try:
            exec(compile(clean(src), f"<setup cell {i}>", "exec"), ns)
        except Exception:
            print(json.dumps({"__setup_error__": f"setup cell {i} failed:\n{src}\n{traceback.format_exc()}"}))
            sys.exit(3)
    for inj in spec["injections"]:
        # Each injection starts from the same namespace, and every solution cell runs again in it (the
        # injected source in its cell's place), so that the answers' globals are this namespace, as in a notebook.
        local = dict(ns)
        try:
            for gid, src in spec["solutions"]:
                if gid == inj["cell"]:
                    exec(compile(clean(inj["source"]), f"<injection {inj['name']}>", "exec"), local)
                else:
                    with contextlib.redirect_stdout(io.StringIO()):
                        exec(compile(clean(src), f"<solution cell {gid}>", "exec"), local)
        except Exception as exc:
            results[inj["name"]] = {"__source__": f"the injected source itself failed: {type(exc).__name__}: {exc}"}
            continue
        cells = results[inj["name"]] = {}
        for gid, src, index in spec["tests"]:
            if index < inj["index"]:
                continue
            err, out = io.StringIO(), io.StringIO()
            try:
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                    exec(compile(clean(src), f"<test cell {gid}>", "exec"), local)
            except Exception as exc:
                cells[gid] = cells.get(gid) or str(exc) or type(exc).__name__
                continue
            if err.getvalue().strip():  # nbgrader gives 0 to a test cell that writes to stderr
                cells[gid] = cells.get(gid) or "wrote to stderr: " + err.getvalue().strip().splitlines()[0]
            else:
                cells.setdefault(gid, None)
    json.dump(results, open(sys.argv[2], "w"))
    """
)


class InjectionResults(dict):
    """``{name: None or error text}`` of each injection's own question, plus ``cells[name]``: ``{grade_id: None or error}``
    for every test cell of the notebook (the whole score vector: a failed cell scores 0, a passed one its points)."""

    def __init__(self, own: dict, cells: dict):
        super().__init__(own)
        self.cells = cells


def run_injections(ps: str, injections, timeout: int = 600) -> InjectionResults:
    """Run each injection against the solution notebook of ``ps``; return its own question's and every cell's result.

    In one fresh Python process: every code cell of the solution notebook that is not a test cell
    runs once, in order (setup and solution cells, so later cells can use earlier answers); then,
    for each injection, in a copy of that namespace, the solution cells run again with its ``source``
    in place of the solution cell ``cell``, and every test cell of the notebook runs (visible and hidden), as nbgrader would: a
    cell fails on an exception or on anything written to stderr. ``result[name]`` is ``None`` when
    the injection's own question passed, else the first failure's ``str(exc)``; ``result.cells[name]``
    maps each test cell's grade_id (below the injected cell) to ``None`` or its failure.
    """
    path = ROOT / "solutions" / ps / f"{ps}.ipynb"
    nb = nbformat.read(path, as_version=4)
    solution_ids = {_meta(c).get("grade_id") for c in nb.cells if _meta(c).get("solution")}
    setup = [
        c.source
        for c in nb.cells
        if c.cell_type == "code" and not (_meta(c).get("grade") and not _meta(c).get("solution"))
    ]
    solutions = [
        [_meta(c)["grade_id"], c.source] for c in nb.cells if c.cell_type == "code" and _meta(c).get("solution")
    ]
    # [grade_id, source, index]: a test cell above the injected cell runs before it in a notebook, unaffected by it
    tests = [
        [_meta(c)["grade_id"], c.source, i]
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and _meta(c).get("grade") and not _meta(c).get("solution")
    ]
    index = {_meta(c).get("grade_id"): i for i, c in enumerate(nb.cells)}
    items, own_ids = [], {}
    for inj in injections:
        if inj.cell not in solution_ids:
            raise KeyError(
                f"injection {inj.name!r} names cell {inj.cell!r}; {ps}'s solution cells are {sorted(solution_ids)}"
            )
        own_ids[inj.name] = question_grade_ids(nb, inj.cell)
        if not own_ids[inj.name]:
            raise KeyError(f"{ps} has no test cells for {inj.cell!r} (grade_id test_{inj.cell} or test_{inj.cell}_*)")
        items.append({"name": inj.name, "cell": inj.cell, "source": inj.source, "index": index[inj.cell]})
    names = [i["name"] for i in items]
    if len(set(names)) != len(names):
        raise ValueError(f"injection names must be unique: {sorted(n for n in names if names.count(n) > 1)}")
    with tempfile.TemporaryDirectory(prefix="vitkit-inject-") as tmp:
        spec, out = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec.write_text(json.dumps({"setup": setup, "solutions": solutions, "tests": tests, "injections": items}))
        proc = subprocess.run(
            [sys.executable, "-c", _RUNNER, str(spec), str(out)],
            cwd=path.parent,
            env=_env({"MPLBACKEND": "Agg"}),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0 or not out.exists():
            raise AssertionError(
                f"the injection runner for {ps} failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            )
        raw = json.loads(out.read_text())
    own, cells = {}, {}
    for name, result in raw.items():
        if "__source__" in result:
            own[name], cells[name] = result["__source__"], {}
            continue
        cells[name] = result
        own[name] = next((result[gid] for gid in own_ids[name] if result.get(gid)), None)
    return InjectionResults(own, cells)


def question_grade_ids(nb, question: str) -> list[str]:
    """grade_ids of the test cells of ``question`` (``test_<question>`` or ``test_<question>_*``), in order."""
    return [
        _meta(c)["grade_id"]
        for c in nb.cells
        if c.cell_type == "code"
        and _meta(c).get("grade")
        and not _meta(c).get("solution")
        and (
            _meta(c).get("grade_id") == f"test_{question}"
            or _meta(c).get("grade_id", "").startswith(f"test_{question}_")
        )
    ]


def assert_only_its_own_question_fails(results: InjectionResults, injection, ps: str) -> None:
    """The whole score vector of an injected answer: every test cell of another question passes (a mistake costs one question)."""
    nb = nbformat.read(ROOT / "solutions" / ps / f"{ps}.ipynb", as_version=4)
    own = set(question_grade_ids(nb, injection.cell))
    cells = results.cells[injection.name]
    assert cells, results[injection.name]
    others = {gid: err for gid, err in cells.items() if gid not in own and err}
    assert not others, (
        f"{injection.name} ({injection.code or 'correct'}) also costs other questions: {others}\n{injection.source}"
    )
