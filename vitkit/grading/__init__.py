"""What notebook tests call: checks with messages that name the mistake, out of students' reach.

A check compares a student's function with a reference on the lecture's numbers and on random
inputs, and when it fails it raises a :class:`Mistake` carrying a stable code from the catalogue
(``ps1.softmax.wrong_axis``), so that the class-wide report can count mistakes. The error text
always starts with the code in brackets: ``[ps1.softmax.wrong_axis] your softmax ...``.

Students run in the same Python process as the tests, so the checks defend themselves:
- the comparison functions are captured when this package is imported, and each check verifies
  that ``torch.testing``, numpy's testing functions and the comparison functions it relies on are
  still the originals (a student who replaced them gets ``[tampering]``, never points);
- this package and its submodules are read-only: assigning to their attributes raises;
- the instructor's autograder also scans submissions for tampering (``vitkit.course``).
"""

from __future__ import annotations

import builtins
import functools
import sys
import types
from dataclasses import dataclass

import numpy as np
import numpy.testing
import torch
import torch.testing

# ----------------------------------------------------------------------------- the mistake catalogue


@dataclass(frozen=True)
class MistakeInfo:
    code: str  # stable, short: "<ps>.<question>.<what>"
    question: str  # the graded function or answer it belongs to, e.g. "ps1.softmax"
    message: str  # what is wrong, addressed to the student
    hint: str  # how to fix it


CATALOGUE: dict[str, MistakeInfo] = {}


def define(code: str, question: str, message: str, hint: str) -> MistakeInfo:
    """Add a named mistake to the catalogue (each problem set's module defines its own)."""
    if code in CATALOGUE:
        raise ValueError(f"mistake code {code!r} is defined twice")
    CATALOGUE[code] = info = MistakeInfo(code, question, message, hint)
    return info


class Mistake(AssertionError):
    """A failed check that knows which mistake it found. ``str(err)`` starts with ``[code]``."""

    def __init__(self, code: str, detail: str = ""):
        info = CATALOGUE.get(code)
        if info is None:
            raise KeyError(f"unknown mistake code {code!r}; define it in the catalogue first")
        self.code, self.info, self.detail = code, info, detail
        text = f"[{code}] {info.message}"
        if detail:
            text += f" ({detail})"
        super().__init__(f"{text}. Hint: {info.hint}")


define("tampering", "integrity", "the testing functions were replaced or patched in this notebook",
       "remove the code that assigns to torch.testing, numpy.testing, builtins or vitkit.grading; tests only pass with the real checks")

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
        added = vars(module).keys() - snapshot.keys() - _SUBMODULE_NAMES - {"__warningregistry__"}  # warnings writes that one
        changed += [f"{name}.{key} (added)" for key in sorted(added)]
        changed += [f"{name}.{key}" for key, value in snapshot.items() if vars(module).get(key, _MISSING) is not value]
    if changed:
        raise Mistake("tampering", "changed: " + ", ".join(changed))


class _ReadOnlyModule(types.ModuleType):
    def __setattr__(self, name, value):
        if isinstance(value, types.ModuleType) and value.__name__ == f"{self.__name__}.{name}" and name not in self.__dict__:
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
    """Wrap a check so that a failure shows the student the test cell and the mistake, not the grader's insides."""

    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        __tracebackhide__ = True  # noqa: F841 (IPython and pytest hide frames that set this)
        try:
            return check(*args, **kwargs)
        except Mistake as mistake:
            raise mistake.with_traceback(None) from None

    return wrapper


def seal(module_name: str) -> None:
    """Make a grading module read-only and remember its contents (called at the end of each grading module).

    Its public ``check_*`` functions are wrapped so that a Mistake reaches the notebook without the
    grading code's traceback: Validate and the feedback show the test cell's line and the message.
    """
    module = sys.modules[module_name]
    for name, value in list(vars(module).items()):
        if name.startswith("check") and isinstance(value, types.FunctionType) and value.__module__ == module_name:
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
    if isinstance(value, np.ndarray) or isinstance(value, (list, tuple)):
        try:
            return torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError):
            pass
    raise Mistake("not_a_tensor", f"{name} is {type(value).__name__}")


define("not_a_tensor", "general", "the function returned something that is not a tensor or an array of numbers",
       "return a torch.Tensor (or a numpy array); did you forget a return statement?")
define("wrong_shape", "general", "the result has the wrong shape", "compare the shapes after each step with the shapes the docstring asks for")
define("not_close", "general", "the result differs from the correct values", "check each step against the lecture's worked example")


def close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-6) -> bool:
    """Elementwise closeness of two tensors of the same shape (no NaNs allowed), with the captured originals."""
    actual, expected = actual.to(torch.float64), expected.to(torch.float64)
    return actual.shape == expected.shape and bool(_allclose(actual, expected, rtol=rtol, atol=atol))


def check_shape(actual: torch.Tensor, expected_shape, name: str = "your result", code: str = "wrong_shape") -> None:
    if tuple(actual.shape) != tuple(expected_shape):
        raise Mistake(code, f"{name} has shape {tuple(actual.shape)}, expected {tuple(expected_shape)}")


def check_close(actual, expected, name: str = "your result", rtol: float = 1e-5, atol: float = 1e-6, code: str = "not_close") -> None:
    """Raise a Mistake unless ``actual`` has ``expected``'s shape and values; the message says how far off it is."""
    verify_integrity()
    actual, expected = as_tensor(actual, name), as_tensor(expected)
    check_shape(actual, expected.shape, name)
    if not close(actual, expected, rtol, atol):
        worst = (actual - expected).abs().nan_to_num(float("inf")).max().item()
        raise Mistake(code, f"{name}: largest difference {worst:.3g}")


seal(__name__)
