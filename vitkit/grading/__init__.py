"""What notebook tests call: checks with messages that name the mistake, out of students' reach.

A check compares a student's function with a reference on the lecture's numbers and on random
inputs, and when it fails it raises a :class:`Mistake` carrying a stable code from the catalogue
(``ps1.softmax.wrong_axis``), so that the class-wide report can count mistakes. The error text
always starts with the code in brackets: ``[ps1.softmax.wrong_axis] your softmax ...``.

Students run in the same Python process as the tests, so the checks defend themselves:
- the comparison functions are captured when this package is imported, and every check (its
  shared wrapper) first verifies that ``torch.testing``, numpy's testing functions and the comparison functions it relies on are
  still the originals (a student who replaced them gets ``[tampering]``, never points);
- this package and its submodules are read-only: assigning to their attributes raises;
- the instructor's autograder also scans submissions for tampering (``vitkit.course``).

Grading is fair in three ways the shared wrapper of every ``check_*`` provides: a check declares the
notebook's earlier parts its student code calls (:func:`uses`) and runs with the references in their
place, so one mistake costs one question; warnings are notes on stdout, never a failure (nbgrader
gives 0 to a test cell that writes to stderr); a failure shows the message and hint in full, wrapped,
without the grader's frames (:meth:`Mistake._render_traceback_`).
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import re
import sys
import textwrap
import types
import warnings

import numpy as np
import numpy.testing
import torch
import torch.testing

# ----------------------------------------------------------------------------- the mistake catalogue
# The catalogue is data, in a module of its own that imports no torch (the sandbox and the report read it too).
from vitkit.grading.catalogue import CATALOGUE, PROBLEM_SETS, MistakeInfo  # noqa: E402, F401


class Mistake(AssertionError):
    """A failed check that knows which mistake it found. ``str(err)`` starts with ``[code]``."""

    def __init__(self, code: str, detail: str = ""):
        info = CATALOGUE.get(code)
        if info is None:
            raise KeyError(f"unknown mistake code {code!r}; add its row to vitkit/grading/catalogue.py first")
        self.code, self.info, self.detail = code, info, detail
        super().__init__(self._text())

    def _text(self) -> str:
        text = f"[{self.code}] {self.info.message}" + (f" ({self.detail})" if self.detail else "")
        return f"{text}. Hint: {self.info.hint}"

    def add_detail(self, more: str) -> None:
        """Append to the detail in brackets (e.g. which references were in place)."""
        self.detail = f"{self.detail}; {more}" if self.detail else more
        self.args = (self._text(),)

    def _render_traceback_(self) -> list[str]:
        """What IPython, Validate's dialog and ``nbgrader validate`` show: the mistake and its hint in full,
        wrapped to a notebook's width, without the grading code's frames or any file path."""
        head = f"[{self.code}] {self.info.message}" + (f" ({self.detail})" if self.detail else "") + "."
        lines = [f"{type(self).__name__}:"]
        for part in (head, f"Hint: {self.info.hint}"):
            lines += textwrap.wrap(part, WIDTH, break_long_words=False, break_on_hyphens=False) or [""]
        return lines


WIDTH = 78  # characters per line of a message: a notebook's output area and Validate's dialog show this much


# ----------------------------------------------------------------------------- integrity

# The objects the checks rely on, captured now, before any student code runs in this process.
_WATCHED = {
    "torch.testing.assert_close": (torch.testing, "assert_close"),
    "torch.allclose": (torch, "allclose"),
    "torch.isclose": (torch, "isclose"),
    "torch.equal": (torch, "equal"),
    "torch.Tensor.allclose": (torch.Tensor, "allclose"),
    "numpy.allclose": (np, "allclose"),
    "numpy.isclose": (np, "isclose"),
    "numpy.array_equal": (np, "array_equal"),
    "numpy.testing.assert_allclose": (numpy.testing, "assert_allclose"),
    "numpy.testing.assert_array_equal": (numpy.testing, "assert_array_equal"),
    "numpy.testing.assert_array_almost_equal": (numpy.testing, "assert_array_almost_equal"),
    "numpy.testing.assert_equal": (numpy.testing, "assert_equal"),
    "numpy.testing.assert_almost_equal": (numpy.testing, "assert_almost_equal"),
    "builtins.isinstance": (builtins, "isinstance"),
    "builtins.abs": (builtins, "abs"),
    "builtins.all": (builtins, "all"),
    "builtins.len": (builtins, "len"),
    "builtins.AssertionError": (builtins, "AssertionError"),
}
_ORIGINALS = {name: getattr(owner, attr) for name, (owner, attr) in _WATCHED.items()}
_LIBRARY_DIRS = tuple(str(__import__("pathlib").Path(m.__file__).resolve().parent) for m in (torch, np))
_allclose = torch.allclose
_isclose = torch.isclose


def _from_library(obj) -> bool:
    """True for C functions and classes, and for Python functions defined in torch's or numpy's files."""
    code = getattr(obj, "__code__", None)
    if code is None:
        return True  # C-level callables cannot be written in a notebook cell
    return code.co_filename.startswith(_LIBRARY_DIRS)


def verify_integrity() -> None:
    """Raise ``Mistake('tampering')`` if a watched testing function or this package was altered."""
    changed = [name for name, (owner, attr) in _WATCHED.items() if getattr(owner, attr, None) is not _ORIGINALS[name]]
    # If this package was first imported after a student's patch, the "original" is the patch:
    # the real functions come from torch, numpy or the builtins, never from a notebook.
    changed += [name for name, obj in _ORIGINALS.items() if not _from_library(obj)]
    for name, module in list(sys.modules.items()):
        if name == __name__ or name.startswith(__name__ + "."):
            if type(module) is not _ReadOnlyModule:
                changed.append(name)
    for name, (module, snapshot) in _SEALED.items():
        # a student may write through module.__dict__ or ModuleType.__setattr__, around the read-only class
        if sys.modules.get(name) is not module:
            changed.append(name)
        added = (
            vars(module).keys() - snapshot.keys() - _SUBMODULE_NAMES - {"__warningregistry__"}
        )  # warnings writes that one
        changed += [f"{name}.{key} (added)" for key in sorted(added)]
        changed += [f"{name}.{key}" for key, value in snapshot.items() if vars(module).get(key, _MISSING) is not value]
    if changed:
        raise Mistake("tampering", "changed: " + ", ".join(changed))


class _ReadOnlyModule(types.ModuleType):
    def __setattr__(self, name, value):
        if (
            isinstance(value, types.ModuleType)
            and value.__name__ == f"{self.__name__}.{name}"
            and name not in self.__dict__
        ):
            super().__setattr__(name, value)  # the import system attaching a submodule on first import
            if self.__name__ in _SEALED:
                _SEALED[self.__name__][1][name] = value
            return None
        raise AttributeError(f"{self.__name__} is read-only: the grading checks cannot be replaced ({name!r})")

    def __delattr__(self, name):
        raise AttributeError(f"{self.__name__} is read-only: the grading checks cannot be removed ({name!r})")


_SEALED: dict[str, tuple[types.ModuleType, dict]] = {}
_SUBMODULE_NAMES: set[str] = set()
_MISSING = object()


def _student_facing(check):
    """Wrap a check: integrity first, warnings shown as notes, references in place, a message in place of the grader's insides.

    - ``verify_integrity()`` runs before the check (every check, none forgets it);
    - warnings raised while the student's code runs are caught and printed as a note on stdout: nbgrader
      gives 0 to a test cell that writes to stderr, and a warning is never a mistake;
    - the earlier parts the check declared with :func:`uses` are the references while it runs (see
      :func:`references`), so a mistake there costs only its own question;
    - ``NotImplementedError`` becomes ``[not_written]``; a :class:`Mistake` loses the grader's traceback.
    """
    used = getattr(check, "_uses", {})

    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        __tracebackhide__ = True  # noqa: F841 (IPython and pytest hide frames that set this)
        verify_integrity()
        replaced, failure = [], None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                with references(args[0] if args else None, used) as replaced:
                    result = check(*args, **kwargs)
            except NotImplementedError:
                failure = Mistake("not_written")
            except Mistake as mistake:
                failure = mistake
            except Exception as error:  # a genuine error in the student's code: its traceback, down their lines only
                _print_notes(caught)
                raise error.with_traceback(_without_grader_frames(error.__traceback__))
        _print_notes(caught)
        if failure is None:
            if replaced:
                print(_graded_with(replaced) + ".")
            return result
        if replaced:
            failure.add_detail(_graded_with(replaced))
        raise failure.with_traceback(None) from None

    return wrapper


def _print_notes(caught) -> None:
    for note in dict.fromkeys(_note(w.category, w.message) for w in caught):
        print("\n".join(textwrap.wrap(note, WIDTH, subsequent_indent="  ", break_long_words=False)))


_GRADING_DIR = str(__import__("pathlib").Path(__file__).resolve().parent)


def _without_grader_frames(tb):
    """The traceback ``tb`` without the frames of this package's files (the student's and torch's frames stay)."""
    frames = []
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(_GRADING_DIR):
            frames.append(tb)
        tb = tb.tb_next
    out = None
    for frame in reversed(frames):
        out = types.TracebackType(out, frame.tb_frame, frame.tb_lasti, frame.tb_lineno)
    return out


def _graded_with(replaced: list[str]) -> str:
    names = " and ".join(replaced)
    return f"graded with the reference {names} in place of yours"


def uses(**references_by_name):
    """Declare the notebook's earlier parts a check's student code calls, with their references.

    ``@uses(MLP=ReferenceMLP)`` on ``check_block(student_cls)``: while the check runs, the name
    ``MLP`` in the student's notebook means the reference, so a mistake in the MLP costs the MLP's
    question only.
    """

    def mark(check):
        check._uses = dict(references_by_name)
        return check

    return mark


def _namespace(student) -> dict | None:
    """The globals a student's function or class reads its names from (the notebook's), or None."""
    if isinstance(student, types.FunctionType):
        return student.__globals__
    if isinstance(student, type):
        for klass in student.__mro__:
            for value in vars(klass).values():
                if isinstance(value, (staticmethod, classmethod)):
                    value = value.__func__
                if (
                    isinstance(value, types.FunctionType)
                    and value.__globals__.get("__name__") not in (None, "builtins")
                    and not value.__module__.startswith(("torch", "vitkit"))
                ):
                    return value.__globals__
    return None


@contextlib.contextmanager
def references(student, replacements: dict):
    """Rebind, in the student's notebook namespace, each name of ``replacements`` that the notebook defines, to its reference.

    Yields the names rebound (those whose notebook value was not already the reference); restores the
    notebook's own values afterwards, whatever happens.
    """
    namespace = _namespace(student) if replacements else None
    if namespace is None or namespace.get("__name__", "").startswith("vitkit"):
        yield []
        return
    saved = {name: namespace[name] for name in replacements if name in namespace}
    replaced = [name for name in saved if saved[name] is not replacements[name]]
    try:
        for name in saved:
            namespace[name] = replacements[name]
        yield replaced
    finally:
        for name, value in saved.items():
            namespace[name] = value


def _note(category, message) -> str:
    """A warning as the student reads it: its text, without where in torch's C++ sources it was triggered."""
    text = re.sub(r"\s*\(Triggered internally at [^)]*\)", "", str(message)).strip()
    return f"Note (a warning, not a mistake): {category.__name__}: {text}"


def _show_warning_on_stdout(message, category, filename, lineno, file=None, line=None):
    """Warnings in a graded notebook print on stdout: nbgrader scores a test cell that writes to stderr as 0."""
    print(
        "\n".join(textwrap.wrap(_note(category, message), WIDTH, subsequent_indent="  ", break_long_words=False)),
        file=sys.stdout,
    )


def seal(module_name: str) -> None:
    """Make a grading module read-only and remember its contents (called at the end of each grading module).

    Its public ``check_*`` functions are wrapped so that a Mistake reaches the notebook without the
    grading code's traceback: Validate and the feedback show the test cell's line and the message.
    """
    module = sys.modules[module_name]
    for name, value in list(vars(module).items()):
        if name.startswith("check_") and isinstance(value, types.FunctionType) and value.__module__ == module_name:
            vars(module)[name] = _student_facing(value)
    module.__class__ = _ReadOnlyModule
    _SEALED[module_name] = (module, dict(vars(module)))
    if "." in module_name:
        _SUBMODULE_NAMES.add(module_name.rsplit(".", 1)[1])


# ----------------------------------------------------------------------------- comparisons


def as_tensor(value, name: str = "your result") -> torch.Tensor:
    """A student's result as a float64 tensor, or ``Mistake('not_a_tensor')`` naming what came back."""
    if isinstance(value, torch.Tensor):
        return value.detach().to(torch.float64)
    if isinstance(value, (list, tuple)):  # e.g. losses a train_step returned as tensors (some still require grad)
        value = [v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v for v in value]
    if isinstance(value, np.ndarray) or isinstance(value, (list, tuple)):
        try:
            return torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError):
            pass
    raise Mistake("not_a_tensor", f"{name} is {type(value).__name__}")


def close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    """Elementwise closeness of two tensors of the same shape (no NaNs allowed), with the captured originals."""
    actual, expected = actual.to(torch.float64), expected.to(torch.float64)
    return actual.shape == expected.shape and bool(_allclose(actual, expected, rtol=rtol, atol=atol))


def largest_difference(actual: torch.Tensor, expected: torch.Tensor) -> str:
    """``"largest difference 0.123"``: how far ``actual`` is from ``expected`` (same shape) at worst; NaN counts as inf."""
    worst = (actual.to(torch.float64) - expected.to(torch.float64)).abs().nan_to_num(float("inf")).max().item()
    return f"largest difference {worst:.3g}"


def check_shape(actual: torch.Tensor, expected_shape, name: str = "your result", code: str = "wrong_shape") -> None:
    if tuple(actual.shape) != tuple(expected_shape):
        raise Mistake(code, f"{name} has shape {tuple(actual.shape)}, expected {tuple(expected_shape)}")


def check_close(
    actual, expected, name: str = "your result", rtol: float = 1e-5, atol: float = 1e-6, code: str = "not_close"
) -> None:
    """Raise a Mistake unless ``actual`` has ``expected``'s shape and values; the message says how far off it is."""
    actual, expected = as_tensor(actual, name), as_tensor(expected)
    check_shape(actual, expected.shape, name)
    if not close(actual, expected, rtol, atol):
        raise Mistake(code, f"{name}: {largest_difference(actual, expected)}")


# ----------------------------------------------------------------------------- one skill, one check: resampling a position grid
# In a module of its own, vitkit/grading/position_grid.py (it uses the comparisons above), imported back here.
from vitkit.grading.position_grid import position_grid_check  # noqa: E402, F401

# A graded notebook imports this package before any answer runs: from then on a warning (from a student's
# code in a test cell, outside any check) prints on stdout, where it cannot cost the cell its points.
warnings.showwarning = _show_warning_on_stdout

seal(f"{__name__}.catalogue")
seal(__name__)
